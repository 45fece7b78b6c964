"""Synthesizer timings -> TIMIT labels: 61 phones, sample-exact segments that cover the audio.

TIMIT's conventions (Garofolo et al. 1993; Zue & Seneff's transcription
guide): an utterance begins and ends with ``h#``; inner silences are ``pau``;
a stop is a closure (``bcl``, ``dcl``, ...) followed by its release, and an
affricate a closure followed by its frication (``dcl jh``, ``tcl ch``).
Synthesizers label a stop as one segment (closure then burst), so
`split_closures` puts the boundary at the burst: the steepest rise of
high-frequency energy in the middle of the segment.

`check_utterance` states every rule a generated utterance must keep; the
generator runs it before writing and on the finished tree.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from asr.corpora.base import Segment
from asr.tokens import TIMIT_PHONES, normalize_speech_text

PAUSE = "pau"
EDGE = "h#"

# flite's and festival's English voices all use the "radio" phone set (festival's
# radio_phones.scm, flite's us_phoneset): ARPAbet, a subset of TIMIT's labels.
# A breath is silence to a recognizer.
ARPABET_TO_TIMIT: dict[str, str] = {
    **{p: p for p in (
        "aa ae ah ao aw ax axr ay b ch d dh dx eh el em en er ey f g hh hv ih iy jh "
        "k l m n nx ng ow oy p r s sh t th uh uw v w y z zh"
    ).split()},
    "pau": PAUSE, "h#": PAUSE, "brth": PAUSE,
}

CLOSURES = {"b": "bcl", "d": "dcl", "g": "gcl", "p": "pcl", "t": "tcl", "k": "kcl", "jh": "dcl", "ch": "tcl"}
# Where the burst may lie within a stop, as fractions of its segment, and the
# fraction used when the segment is too short to look inside.
BURST_WINDOW = (0.3, 0.9)
BURST_FALLBACK = 0.6
_FRAME = 32  # 2 ms at 16 kHz
_TIMIT_SET = frozenset(TIMIT_PHONES)


class CorpusError(Exception):
    """A generated utterance broke one of TIMIT's rules: a generator bug or a synthesizer quirk."""


def phone_segments(
    phones: Sequence[tuple[str, float]], scale: float, phone_map: dict[str, str], where: str
) -> list[Segment]:
    """The synthesizer's (label, end seconds) as TIMIT segments at `scale` samples per second.

    Labels are mapped through `phone_map`; segments shorter than a sample after
    rounding are dropped, neighbouring pauses merged, and the pauses at the ends
    become ``h#``.
    """
    segments: list[Segment] = []
    start = 0
    for label, end_seconds in phones:
        if label not in phone_map:
            raise CorpusError(f"{where}: the synthesizer's phone {label!r} has no TIMIT mapping")
        label, end = phone_map[label], round(end_seconds * scale)
        if end <= start:
            continue
        if segments and label == PAUSE and segments[-1].label == PAUSE:
            start = segments.pop().start
        segments.append(Segment(start, end, label))
        start = end
    if not segments or segments[0].label != PAUSE or segments[-1].label != PAUSE:
        raise CorpusError(f"{where}: the synthesizer's phones do not begin and end with a pause")
    segments[0] = Segment(0, segments[0].end, EDGE)
    segments[-1] = Segment(segments[-1].start, segments[-1].end, EDGE)
    return segments


def fit_to_audio(segments: list[Segment], n_samples: int, where: str) -> tuple[list[Segment], int]:
    """Make the labels and the audio end together: (segments, samples of silence to append).

    Audio that runs on past the labels extends the final ``h#``; labels that run
    past the audio (flite's kal16 voice stops ~0.1 s early) are met by appending
    silence, which is what the final ``h#`` stands for. Audio that ends before
    the final ``h#`` begins is an error.
    """
    last = segments[-1]
    if n_samples <= last.start:
        raise CorpusError(f"{where}: the audio ends at sample {n_samples}, before the final h# at {last.start}")
    end = max(n_samples, last.end)
    return segments[:-1] + [Segment(last.start, end, EDGE)], end - n_samples


def split_closures(segments: list[Segment], audio: np.ndarray) -> list[Segment]:
    """Each stop and affricate as closure + release, split at the burst."""
    result = []
    for seg in segments:
        closure = CLOSURES.get(seg.label)
        if closure is None or seg.end - seg.start < 2:
            result.append(seg)
            continue
        burst = burst_onset(audio, seg.start, seg.end)
        result += [Segment(seg.start, burst, closure), Segment(burst, seg.end, seg.label)]
    return result


def burst_onset(audio: np.ndarray, start: int, end: int) -> int:
    """The sample in (start, end) where the release begins: the steepest rise of
    high-passed energy (2 ms frames) within `BURST_WINDOW` of the segment."""
    length = end - start
    lo = start + int(BURST_WINDOW[0] * length)
    hi = start + int(BURST_WINDOW[1] * length)
    n_frames = (hi - lo) // _FRAME
    if n_frames < 2:
        return start + min(length - 1, max(1, round(BURST_FALLBACK * length)))
    # the first difference is a cheap high-pass: bursts are broadband, closures low or silent
    first = max(start, lo - _FRAME)
    high = np.diff(audio[first : lo + n_frames * _FRAME].astype(np.float64))
    split = len(high) - n_frames * _FRAME
    power = np.mean(high[split:].reshape(n_frames, _FRAME) ** 2, axis=1)
    # the stretch just before the window counts too, so a burst on its first frame is a rise
    before = np.mean(high[:split] ** 2) if split else power[0]
    energy = np.log(np.concatenate([[before], power]) + 1e-12)
    return lo + int(np.argmax(np.diff(energy))) * _FRAME


def word_segments(
    words: Sequence[tuple[int, float, float]], scale: float, text: str, where: str
) -> list[Segment]:
    """One segment per token of `text`, spanning the words the synthesizer said for it."""
    tokens = text.split()
    spans: dict[int, list[int]] = defaultdict(list)
    for token, start, end in words:
        start, end = round(start * scale), round(end * scale)
        if end > start:  # festival's "'s" is a word without segments
            spans[token] += [start, end]
    if sorted(spans) != list(range(len(tokens))):
        said = [tokens[i] for i in sorted(spans) if i < len(tokens)]
        raise CorpusError(f"{where}: the synthesizer's words {said} do not cover the text {text!r}")
    return [Segment(min(spans[i]), max(spans[i]), normalize_speech_text(t)) for i, t in enumerate(tokens)]


def check_utterance(
    n_samples: int, phones: Sequence[Segment], words: Sequence[Segment] | None, text: str, where: str
) -> None:
    """Raise `CorpusError` unless the labels are a valid TIMIT utterance of `n_samples` samples.

    Phones: TIMIT's 61 labels, ``h#`` first and last, contiguous from 0 to
    `n_samples`, none empty. Words: the normalised words of `text`, in order,
    inside the audio, not overlapping, starting and ending on phone boundaries
    (None: no word timings, nothing to check).
    """

    def fail(problem: str) -> None:
        raise CorpusError(f"{where}: {problem}")

    if not phones:
        fail("no phones")
    if phones[0].start != 0 or phones[-1].end != n_samples:
        fail(f"phones span {phones[0].start}-{phones[-1].end}, the audio 0-{n_samples}")
    if phones[0].label != EDGE or phones[-1].label != EDGE:
        fail("phones do not begin and end with h#")
    for before, seg in zip(phones, phones[1:]):
        if seg.start != before.end:
            fail(f"phones not contiguous at sample {before.end} ({before.label} -> {seg.label})")
    for seg in phones:
        if seg.end <= seg.start:
            fail(f"empty phone {seg}")
        if seg.label not in _TIMIT_SET:
            fail(f"phone {seg.label!r} is not one of TIMIT's 61")
    if words is None:
        return
    expected = normalize_speech_text(text).split()
    if [w.label for w in words] != expected:
        fail(f"words {[w.label for w in words]} do not match the text {expected}")
    boundaries = {s.start for s in phones} | {n_samples}
    previous_end = 0
    for w in words:
        if not previous_end <= w.start < w.end <= n_samples:
            fail(f"word {w} is outside the audio or overlaps the one before")
        if w.start not in boundaries or w.end not in boundaries:
            fail(f"word {w} does not start and end on phone boundaries")
        previous_end = w.end
