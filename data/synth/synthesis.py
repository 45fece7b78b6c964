"""What every synthesizer back end returns: audio with its own phone and word timings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Synthesis:
    """One sentence as a synthesizer spoke it, timings in seconds of `audio`.

    ``phones``: (label in the synthesizer's own phone set, end time), in order; the
    first starts at 0. ``words``: (index of the token in ``text.split()``, start,
    end) for each word the synthesizer said; a token may yield several words
    ("John's" -> "john" + "'s") and a word may have no duration (festival's "'s").
    ``words`` is None when the synthesizer gave no word timings for the sentence
    (espeak-ng when it says two tokens as one word). ``said``: the words as spoken where
    the engine can say two tokens as one (espeak-ng), each merged word under its first token;
    None where ``words`` are all there is.
    """

    audio: np.ndarray
    sample_rate: int
    phones: list[tuple[str, float]]
    words: list[tuple[int, float, float]] | None
    said: list[tuple[int, float, float]] | None = None
