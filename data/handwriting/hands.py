"""The writers: handwriting font families from Debian packages, and stroke writers; each in one split.

A font writer's number is its position in `HANDS`, so numbers stay put when a
font is missing; stroke writer k (`data.handwriting.strokes`) is number
``len(HANDS) + k``, in the split `stroke_role(k)` gives. A font file that cannot draw every character of the corpus
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
from data.handwriting.hershey import HERSHEY_PACKAGE, load_font
from data.handwriting.strokes import StrokeStyle, pen_font, stroke_style
from data.handwriting.text import CHARACTERS, ROLES

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts")


@dataclass(frozen=True)
class Hand:
    """A handwriting font family: one synthetic writer, always in the same split."""

    name: str
    package: str
    files: tuple[str, ...]
    role: str
    style: StrokeStyle | None = None  # a stroke writer's hand; None for a font


# Left out on purpose: fonts-texgyre's Chorus is URW's Z003 again (one writer, not two),
# fonts-gfs-gazis has no Latin letters, fonts-ecolier-lignes-court is fonts-ecolier-court on ruled paper.
# Also left out: fonts-bwht, fonts-humor-sans and fonts-tomsontalks write lower
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
    # after the first 16, so that their writer numbers stayed put
    Hand("z003", "fonts-urw-base35", ("Z003-MediumItalic.otf",), "train"),
    Hand("seto", "fonts-seto", ("setofont.ttf",), "train"),
    Hand("yusei-magic", "fonts-yusei-magic", ("YuseiMagic-Regular.ttf",), "train"),
    Hand("yozfont", "fonts-yozvox-yozfont-standard-kana", ("YOzRSP.ttf",), "train"),
    Hand("aoyagi-soseki", "fonts-aoyagi-soseki", ("aoyagi-soseki.ttf",), "dev"),
)
MAX_STROKE_WRITERS = 99 - len(HANDS)  # writer numbers are 2 digits in the IAM ids (s07-012-03)
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


def stroke_role(k: int) -> str:
    """The split of stroke writer `k`: of every 8, one is a dev writer and one a test writer."""
    return {6: "dev", 7: "test"}.get(k % 8, "train")


def stroke_hands(count: int) -> list[tuple[int, Hand, tuple[str, ...]]]:
    """(writer number, hand, pen fonts) of stroke writers 0..count-1; a UserError if the Hershey data is missing."""
    if not 0 <= count <= MAX_STROKE_WRITERS:
        raise UserError(f"--stroke-writers must be 0..{MAX_STROKE_WRITERS}, not {count}")
    hands = []
    for k in range(count):
        style = stroke_style(k)
        load_font(style.font)  # fails here, naming the package, rather than in a worker
        hand = Hand(f"strokes-{style.font}", HERSHEY_PACKAGE, (f"{style.font}.jhf",), stroke_role(k), style)
        hands.append((len(HANDS) + k, hand, (pen_font(k),)))
    return hands


def installed_hands(stroke_writers: int = 0) -> list[tuple[int, Hand, tuple[str, ...]]]:
    """(writer number, hand, usable font paths) for every hand with a usable font installed,
    then `stroke_writers` stroke writers (their "font" is `strokes.pen_font`).

    Raises a `UserError` naming the packages when no hand, or no hand of some
    split, is installed: the splits could not be writer-disjoint.
    """
    files = font_files()
    hands = []
    for number, hand in enumerate(HANDS):
        usable = _usable_fonts(hand, files)
        if usable:
            hands.append((number, hand, usable))
    hands += stroke_hands(stroke_writers)
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
