"""The writers: handwriting font families from Debian packages, each one writer in one split.

A writer's number is its position in `HANDS`, so numbers stay put when a font
is missing. A font file that cannot draw every character of the corpus
(`data.handwriting.text.CHARACTERS`) is left out, so every writer can write
every line.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import ImageFont

from asr.errors import UserError
from data.handwriting.text import CHARACTERS, ROLES

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")


@dataclass(frozen=True)
class Hand:
    """A handwriting font family: one synthetic writer, always in the same split."""

    name: str
    package: str
    files: tuple[str, ...]
    role: str


# Left out on purpose: fonts-bwht, fonts-humor-sans and fonts-tomsontalks write lower
# case as small capitals (the case would be unreadable), fonts-joscelyn is a
# 16th-century secretary hand, fonts-cabinsketch is an outline sketch face,
# fonts-levien-typoscript lacks lower-case letters and digits.
HANDS: tuple[Hand, ...] = (
    Hand("dkg", "fonts-dkg-handwriting", ("dkg.ttf", "dkgIt.ttf", "dkgBd.ttf"), "train"),
    Hand("breip", "fonts-breip", ("Breip.ttf",), "train"),
    Hand("femkeklaver", "fonts-femkeklaver", ("femkeklaver.ttf",), "train"),
    Hand("rufscript", "fonts-rufscript", ("Rufscript010.ttf",), "train"),
    Hand("ecolier", "fonts-ecolier-court", ("Ecolier-court.ttf",), "train"),
    Hand("kaushan", "fonts-kaushanscript", ("KaushanScript-Regular.otf",), "train"),
    Hand("kristi", "fonts-kristi", ("Kristi.ttf",), "train"),
    Hand(
        "comic-neue", "fonts-comic-neue",
        ("ComicNeue-Regular.otf", "ComicNeue-Italic.otf", "ComicNeue-Bold.otf"), "train",
    ),
    Hand("leckerli", "fonts-leckerli-one", ("LeckerliOne-Regular.ttf",), "train"),
    Hand("lobster", "fonts-lobster", ("lobster.otf",), "train"),
    Hand("klee", "fonts-klee", ("KleeOne-Regular.ttf", "KleeOne-SemiBold.ttf"), "train"),
    Hand("stevehand", "fonts-sjfonts", ("SteveHand.ttf",), "dev"),
    Hand("havana", "fonts-havana", ("Havana-Regular.otf",), "dev"),
    Hand("purisa", "fonts-tlwg-purisa-otf", ("Purisa.otf", "Purisa-Oblique.otf"), "test"),
    Hand("dancing", "fonts-dancingscript", ("DancingScript-Regular.otf", "DancingScript-Bold.otf"), "test"),
    Hand("delphine", "fonts-sjfonts", ("Delphine.ttf",), "test"),
)
FONT_PACKAGES = tuple(dict.fromkeys(hand.package for hand in HANDS))


def font_files() -> dict[str, Path]:
    """Every installed font file by its name; the first folder of `FONT_DIRS` wins."""
    found: dict[str, Path] = {}
    for folder in FONT_DIRS:
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                found.setdefault(path.name, path)
    return found


@functools.cache
def missing_glyphs(path: Path, characters: frozenset[str] = CHARACTERS) -> str:
    """The characters `path` cannot draw: no ink, or the same bitmap as a codepoint no font has."""
    font = ImageFont.truetype(str(path), 32)
    notdef = font.getmask("\U0010fffd")
    notdef_bits = (notdef.size, bytes(notdef))
    missing = []
    for char in sorted(characters - {" "}):
        mask = font.getmask(char)
        if mask.size[0] * mask.size[1] == 0 or not any(bytes(mask)) or (mask.size, bytes(mask)) == notdef_bits:
            missing.append(char)
    return "".join(missing)


def installed_hands() -> list[tuple[int, Hand, tuple[str, ...]]]:
    """(writer number, hand, usable font paths) for every hand with a usable font installed.

    Raises a `UserError` naming the packages when no hand, or no hand of some
    split, is installed: the splits could not be writer-disjoint.
    """
    files = font_files()
    hands = []
    for number, hand in enumerate(HANDS):
        usable = _usable_fonts(hand, files)
        if usable:
            hands.append((number, hand, usable))
    if not hands:
        raise UserError(
            "no handwriting fonts are installed. Install them with: "
            f"apt-get install {' '.join(FONT_PACKAGES)}"
        )
    for role in ROLES:
        if not any(hand.role == role for _, hand, _ in hands):
            packages = sorted({h.package for h in HANDS if h.role == role})
            raise UserError(
                f"no handwriting font for the {role} writers is installed, so the splits cannot be "
                f"writer-disjoint. Install: apt-get install {' '.join(packages)}"
            )
    return hands


def _usable_fonts(hand: Hand, files: dict[str, Path]) -> tuple[str, ...]:
    """The paths of `hand`'s installed fonts that draw every character; a warning for each that cannot."""
    usable = []
    for name in hand.files:
        if name not in files:
            continue
        lacking = missing_glyphs(files[name])
        if lacking:
            warnings.warn(f"{files[name]}: no glyphs for {lacking!r}; this font is not used", stacklevel=3)
        else:
            usable.append(str(files[name]))
    return tuple(usable)
