"""One lexicon for every engine: espeak-ng's audio labelled with the CMU lexicon's phones.

flite and festival label a word from the CMU pronouncing dictionary; espeak-ng from its own
rules and accents ("dog": flite ``d ao g``, espeak-ng ``d aa g``; "over": ``ow v er`` against
``ow v axr``), so a model trained on both learns two answers for one sound
(``checkpoints/synth-small/README.md``, "One lexicon", measured that this costs little: the
network tells the engines apart by ear).
With ``--lexicon cmu`` the generator labels each espeak-ng word with the phones flite gives
the same sentence (its CMU lexicon, letter-to-sound rules and post-lexical rules), spread
over espeak-ng's span for that word in proportion to flite's own durations; the pauses
between words stay where espeak-ng put them. CTC training reads only the phone sequence, so
timings inside a word matter little; the word boundaries are espeak-ng's and exact. Where
espeak-ng says two tokens as one word ("for a"), that word gets both tokens' phones.

The labels then say what the CMU lexicon says, not what the accent does: a Scottish voice's
"car" stays ``k aa r``, as TIMIT labels every dialect region with one phone set. A sentence
whose words do not line up (a token flite gives no phones, say) keeps espeak-ng's own labels.
"""

from __future__ import annotations

from collections.abc import Sequence

from data.synth import flite
from data.synth.labels import ARPABET_TO_TIMIT, PAUSE
from data.synth.synthesis import Synthesis

CHOICES = ("engine", "cmu")  # each engine's own labels (the default), or the CMU lexicon for all
REFERENCE_VOICE = "kal16"  # any flite voice: all read the same lexicon; kal16 is the fastest
PHONE_MAP = ARPABET_TO_TIMIT


def cmu_labels(spoken: Sequence[Synthesis], texts: Sequence[str]) -> list[Synthesis | None]:
    """Each of `spoken` (which said `texts`) relabelled from the CMU lexicon, or None where
    its words do not line up with flite's."""
    reference = flite.synthesize_batch(REFERENCE_VOICE, [(text, 1.0, 0, 1.0) for text in texts])
    return [relabel(s, r) for s, r in zip(spoken, reference)]


def relabel(spoken: Synthesis, reference: Synthesis) -> Synthesis | None:
    """`spoken` with `reference`'s phones word by word, timed within `spoken`'s words (module
    docstring). A word `spoken` said for two tokens gets both tokens' phones. None when the
    words do not line up: a token `reference` has no phones for, or overlapping words."""
    said = spoken.said if spoken.said is not None else spoken.words
    if not said or reference.words is None:
        return None
    spans, reference_spans = _token_spans(said), _token_spans(reference.words)
    firsts = sorted(spans)
    if firsts[0] != 0 or not set(firsts) <= reference_spans.keys():
        return None
    phones: list[tuple[str, float]] = []
    cursor = 0.0
    for first, following in zip(firsts, firsts[1:] + [max(reference_spans) + 1]):
        start, end = spans[first]
        if start < cursor or start == 0:  # overlapping words, or no pause to begin with
            return None
        group = [reference_spans[t] for t in range(first, following) if t in reference_spans]
        word = _phones_within(reference.phones, group[0][0], group[-1][1])
        if not word:
            return None
        if start > cursor:
            phones.append((PAUSE, start))
        phones += _stretched(word, start, end)
        cursor = end
    audio_end = spoken.phones[-1][1]
    if audio_end <= cursor:
        return None
    phones.append((PAUSE, audio_end))
    return Synthesis(spoken.audio, spoken.sample_rate, phones, spoken.words, spoken.said)


def _token_spans(words: Sequence[tuple[int, float, float]]) -> dict[int, tuple[float, float]]:
    """Each token's span: from its first word's start to its last word's end (words without
    duration, festival's "'s", left aside)."""
    spans: dict[int, tuple[float, float]] = {}
    for token, start, end in words:
        if end > start:
            first, last = spans.get(token, (start, end))
            spans[token] = (min(first, start), max(last, end))
    return spans


def _phones_within(phones: Sequence[tuple[str, float]], start: float, end: float) -> list[tuple[str, float, float]]:
    """The non-pause (label, start, end) of `phones` (label, end) that lie inside [start, end]."""
    tolerance = 1e-4  # flite's word times are float32, its phone times too, read separately
    inside, previous_end = [], 0.0
    for label, phone_end in phones:
        if PHONE_MAP.get(label) != PAUSE and previous_end >= start - tolerance and phone_end <= end + tolerance:
            inside.append((label, previous_end, phone_end))
        previous_end = phone_end
    return inside


def _stretched(word: Sequence[tuple[str, float, float]], start: float, end: float) -> list[tuple[str, float]]:
    """`word`'s phones as (label, end) over [start, end], each keeping its share of the duration."""
    first, last = word[0][1], word[-1][2]
    scale = (end - start) / (last - first)
    stretched = [(label, start + (phone_end - first) * scale) for label, _, phone_end in word]
    stretched[-1] = (stretched[-1][0], end)  # exact, so that the word ends on a phone boundary
    return stretched
