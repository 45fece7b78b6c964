"""The synthesizers' voices, and the corpus' speakers made from them.

A speaker is a voice at one speaking rate (duration stretch) and one vocal
tract "warp": the audio is resampled as if the voice spoke `warp` times faster,
which raises pitch and formants together (the speed perturbation of Ko et al.,
"Audio augmentation for speech recognition", 2015), while the duration stretch
is multiplied by `warp` so that the speaking rate stays the stretch asked for.
Each voice gives a grid of `len(STRETCHES) * len(WARPS)` speakers.

Speaker IDs look like TIMIT's: the voice's sex (M/F), three letters naming the
voice, and the grid index as the digit (FSLT0 ... FSLT8). Every voice's
dialect-region folder is its own (DR1-DR7 for the flite and festival voices,
DR8 for espeak-ng), so results per region are results per voice.
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


VOICES: tuple[Voice, ...] = (
    Voice("flite", "slt", "F", "SLT", 1),
    Voice("flite", "awb", "M", "AWB", 2),
    Voice("flite", "rms", "M", "RMS", 3),
    Voice("flite", "kal16", "M", "KAL", 4),
    Voice("festival", "kal_diphone", "M", "KDI", 5),
    Voice("festival", "ked_diphone", "M", "KED", 6),
    Voice("festival", "cmu_us_slt_arctic_hts", "F", "SLH", 7),
)
DEFAULT_VOICES = tuple(v.name for v in VOICES)
_BY_NAME = {v.name: v for v in VOICES}


def select_voices(names: Sequence[str]) -> list[Voice]:
    """Voices by name; an engine name alone (``flite``) stands for all its voices."""
    chosen: dict[str, Voice] = {}
    for name in names:
        matches = [v for v in VOICES if name in (v.name, v.engine)]
        if not matches:
            raise UserError(
                f"unknown voice {name!r}: choose from {', '.join(_BY_NAME)} "
                f"(or an engine name: {', '.join(dict.fromkeys(v.engine for v in VOICES))})"
            )
        chosen.update((v.name, v) for v in matches)
    return list(chosen.values())


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
