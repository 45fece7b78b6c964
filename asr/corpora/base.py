"""What every corpus reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Segment:
    """A time-aligned label: samples [start, end) of the audio (TIMIT's .PHN/.WRD lines)."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class Utterance:
    """One recording (or one text-line image) with its transcript.

    ``text`` is the word transcript; ``phones`` and ``words`` are time-aligned
    labels where the corpus has them (TIMIT), else empty. A phone model's
    transcript is ``" ".join(s.label for s in phones)``; `transcript(kind)` picks.
    """

    id: str
    path: Path
    text: str
    speaker: str = ""
    phones: tuple[Segment, ...] = field(default=(), repr=False)
    words: tuple[Segment, ...] = field(default=(), repr=False)
    # Where the utterance is listed ("train.jsonl line 7"), for reports; "" where the path says it.
    source: str = field(default="", repr=False, compare=False)
    # What evaluation breaks results down by, where the corpus says it: the synthesized voice that
    # spoke it, and the TIMIT dialect region folder (DR1..DR8) its speaker sits in; "" elsewhere.
    voice: str = field(default="", repr=False, compare=False)
    region: str = field(default="", repr=False, compare=False)

    @property
    def where(self) -> str:
        """How messages name this utterance: its listing line if it has one, else its file."""
        return self.source or str(self.path)

    def transcript(self, kind: str) -> str:
        """The transcript a token set of `kind` (``phones`` or ``chars``) reads."""
        if kind == "phones":
            return " ".join(s.label for s in self.phones)
        return self.text
