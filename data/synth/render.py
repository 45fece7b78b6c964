"""One synthesized sentence -> one TIMIT utterance: 16 kHz audio and its checked labels.

The audio is resampled from the synthesizer's rate, as if spoken `warp` times
faster (see `data.synth.voices`), by polyphase filtering
(`scipy.signal.resample_poly`); every label time is mapped with the same
ratio, so labels stay on the samples they describe. A faint white noise floor
(default -60 dBFS, seeded per utterance) stands in for the recording noise of
real corpora and keeps silences from being digital zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from asr.corpora.base import Segment
from data.synth import labels
from data.synth.synthesis import Synthesis

SAMPLE_RATE = 16000
PEAK = 0.95  # full scale is 1.0; louder utterances are scaled down to this peak


@dataclass(frozen=True)
class RenderSettings:
    closures: bool = True
    noise_db: float | None = -60.0


@dataclass
class Utterance:
    audio: np.ndarray  # int16 at SAMPLE_RATE
    phones: list[Segment]
    words: list[Segment] | None  # None: the synthesizer gave no word timings (no WRD file)


def resampling_ratio(rate: int, warp: float) -> Fraction:
    """Output samples per input sample, a small fraction for polyphase filtering."""
    return (Fraction(SAMPLE_RATE) / (rate * Fraction(str(warp)))).limit_denominator(1000)


def render(
    synthesis: Synthesis,
    text: str,
    warp: float,
    phone_map: dict[str, str],
    settings: RenderSettings,
    seed: int,
    where: str,
) -> Utterance:
    """The utterance of `synthesis` (which spoke `text`), checked by `labels.check_utterance`."""
    ratio = resampling_ratio(synthesis.sample_rate, warp)
    audio = synthesis.audio.astype(np.float64) / 32768.0
    if ratio != 1:
        audio = resample_poly(audio, ratio.numerator, ratio.denominator)
    scale = synthesis.sample_rate * float(ratio)  # output samples per second of synthesis

    phones = labels.phone_segments(synthesis.phones, scale, phone_map, where)
    phones, padding = labels.fit_to_audio(phones, len(audio), where)
    audio = np.concatenate([audio, np.zeros(padding)])
    if settings.closures:
        phones = labels.split_closures(phones, audio)
    words = None if synthesis.words is None else labels.word_segments(synthesis.words, scale, text, where)

    peak = np.max(np.abs(audio))
    if peak > PEAK:
        audio *= PEAK / peak
    if settings.noise_db is not None:
        noise = np.random.default_rng(seed).standard_normal(len(audio))
        audio += noise * 10 ** (settings.noise_db / 20)
    pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype(np.int16)
    labels.check_utterance(len(pcm), phones, words, text, where)
    return Utterance(pcm, phones, words)
