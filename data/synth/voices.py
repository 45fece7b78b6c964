"""The synthesizers' voices, and the corpus' speakers made from them.

A speaker is a voice at one speaking rate (duration stretch) and one vocal
tract "warp": the audio is resampled as if the voice spoke `warp` times faster,
which raises pitch and formants together (the speed perturbation of Ko et al.,
"Audio augmentation for speech recognition", 2015), while the duration stretch
is multiplied by `warp` so that the speaking rate stays the stretch asked for.
Each voice gives a grid of `len(STRETCHES) * len(WARPS)` speakers.

Speaker IDs look like TIMIT's: the voice's sex (M/F), three letters naming the
voice, and the grid index as the digit (FSLT0 ... FSLT8). The flite and festival
voices each have their own dialect-region folder (DR1-DR7); espeak-ng's
voices share DR8, their letters ``E<accent><variant>`` (MEUA0: en-US+m1).

Hold-out (TIMIT's rule for speakers, applied to voices): a voice of
`TEST_VOICES` or `DEV_VOICES` never speaks in TRAIN, nor does any voice of
the same `Voice.person` (flite's slt and festival's slt HTS voice are one
woman, Carnegie Mellon's ARCTIC speaker slt; flite's kal16 and festival's
kal_diphone are one man). An espeak accent named alone (``espeak:en-GB-scotland``)
holds out every variant of it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from asr.corpora.timit import STANDARD_SPEAKERS
from asr.errors import UserError

# Speaking rate: duration stretch (> 1 is slower), and vocal tract warp (> 1 is higher).
STRETCHES = (0.9, 1.0, 1.12)
WARPS = (0.92, 1.0, 1.08)


@dataclass(frozen=True)
class Voice:
    """One synthesizer voice: ``name`` as the command line spells it (``engine:ident``)."""

    engine: str
    ident: str
    sex: str
    letters: str
    region: int
    person: str = ""  # who the voice is a recording of; voices of one person are held out together

    @property
    def who(self) -> str:
        return self.person or self.name

    @property
    def name(self) -> str:
        return f"{self.engine}:{self.ident}"


@dataclass(frozen=True)
class Speaker:
    """A voice at one speaking rate and warp, with its TIMIT-style ID (e.g. FSLT4)."""

    id: str
    voice: Voice
    stretch: float
    warp: float


# espeak-ng's English accents (voice files gmw/<accent>) and the letter each gets in speaker IDs
ESPEAK_ACCENTS = {
    "en": "B", "en-US": "U", "en-US-nyc": "N", "en-GB-scotland": "S", "en-GB-x-rp": "R",
    "en-GB-x-gbclan": "L", "en-GB-x-gbcwmd": "W", "en-029": "C",
}
# espeak-ng's voice variants (voices/!v/<variant>): (sex, letter). The klatt ones are male.
ESPEAK_VARIANTS = {
    **{f"m{i}": ("M", "ABCDEFG"[i - 1]) for i in range(1, 8)},
    **{f"f{i}": ("F", "PQRST"[i - 1]) for i in range(1, 6)},
    "klatt": ("M", "K"), "klatt2": ("M", "X"), "klatt3": ("M", "Y"),
}

VOICES: tuple[Voice, ...] = (
    Voice("flite", "slt", "F", "SLT", 1, person="slt"),
    Voice("flite", "awb", "M", "AWB", 2, person="awb"),
    Voice("flite", "rms", "M", "RMS", 3, person="rms"),
    Voice("flite", "kal16", "M", "KAL", 4, person="kal"),
    Voice("festival", "kal_diphone", "M", "KDI", 5, person="kal"),
    Voice("festival", "ked_diphone", "M", "KED", 6, person="ked"),
    Voice("festival", "cmu_us_slt_arctic_hts", "F", "SLH", 7, person="slt"),
    *(
        Voice("espeak", f"{accent}+{variant}", sex, f"E{a}{v}", 8)
        for accent, a in ESPEAK_ACCENTS.items()
        for variant, (sex, v) in ESPEAK_VARIANTS.items()
    ),
)
_BY_NAME = {v.name: v for v in VOICES}
# By default each espeak accent speaks with two variants, one male and one female, which
# rotate over the accents: 16 espeak voices, not all 120, so that SA sentences stay few.
_DEFAULT_ESPEAK = tuple(
    f"espeak:{accent}+{variant}"
    for i, accent in enumerate(ESPEAK_ACCENTS)
    for variant in (f"m{i % 7 + 1}", f"f{i % 5 + 1}")
)
DEFAULT_VOICES = tuple(v.name for v in VOICES if v.engine != "espeak") + _DEFAULT_ESPEAK
# Held out by default (whole voices, every variant of an espeak accent): never in TRAIN.
TEST_VOICES = ("festival:ked_diphone", "espeak:en-GB-scotland")
DEV_VOICES = ("flite:awb", "espeak:en-029")


def _matches(name: str) -> list[Voice]:
    """Voices a name stands for: a voice, an engine (``flite``), or an espeak accent (``espeak:en-US``)."""
    return [v for v in VOICES if name in (v.name, v.engine) or v.name.startswith(name + "+")]


def select_voices(names: Sequence[str]) -> list[Voice]:
    """Voices by name; an engine name alone (``flite``) stands for all its voices, an espeak
    accent (``espeak:en-US``) for all its variants."""
    chosen: dict[str, Voice] = {}
    for name in names:
        matches = _matches(name)
        if not matches:
            raise UserError(
                f"unknown voice {name!r}: see --list-voices "
                f"(or name an engine: {', '.join(dict.fromkeys(v.engine for v in VOICES))})"
            )
        chosen.update((v.name, v) for v in matches)
    return list(chosen.values())


def held_out(voices: Sequence[Voice], test: Sequence[str], dev: Sequence[str]) -> dict[str, str]:
    """Which of `voices` are held out: voice name -> ``TEST`` or ``DEV``.

    A voice is held out if it is named in `test` or `dev` (as `select_voices`
    reads names) or is a recording of the same person as one that is; TEST wins.
    Unknown names are an error, names of voices not chosen are ignored.
    """
    split: dict[str, str] = {}
    for use, names in (("DEV", dev), ("TEST", test)):
        people = {v.who for v in select_voices(names)}
        split.update((v.name, use) for v in voices if v.who in people)
    return split


def speakers_of(voice: Voice) -> list[Speaker]:
    """The voice's grid of speakers, in ID order."""
    grid = itertools.product(STRETCHES, WARPS)
    return [
        Speaker(f"{voice.sex}{voice.letters}{i}", voice, stretch, warp)
        for i, (stretch, warp) in enumerate(grid)
    ]


def _check_ids() -> None:
    # A synthesized tree must never be mistaken for real TIMIT by its speaker IDs.
    ids = [s.id for v in VOICES for s in speakers_of(v)]
    assert len(set(ids)) == len(ids), "speaker IDs repeat"
    assert not set(ids) & STANDARD_SPEAKERS, "a synthesized speaker ID is a real TIMIT one"


_check_ids()
