"""Streaming pieces: features computed incrementally, and greedy CTC decoding whose words settle.

`Transcriber.stream` (asr/transcribe.py) joins them with the unidirectional network's
carried state (`PeepholeLSTM.forward_state`): audio chunks of any size in, partial
results out, the same posteriors and the same best-path transcript as decoding the
whole recording at once.

Features (`StreamingFeatures`): every analysis frame is a function of its own samples,
so it is computed once its last sample has arrived. Deltas look `delta_window` frames
back and ahead per order, so a frame's full feature vector is final once
``delta_window * deltas`` frames after it exist; they are computed on a window that
reaches that far back (so the window's own left edge never reaches them), and at the
end of the stream the last frames get the whole-file rule (the last frame replicated).
Stacking groups the final frames k at a time; the last, partial stack repeats its last frame.

Settling (`GreedySettler`): with a unidirectional model a frame's posteriors never
change once computed, so neither does its best-path label; a label, once emitted, stays.
A word (a run of characters) settles when the space after it is emitted, because until
then more characters may join it; a phone model's label settles when the next label
starts (that fixes its end time). Times follow `Transcriber.segments`: a label's span
runs from the middle of the blank gap before its spike to the middle of the gap after it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import torch

from asr.errors import UserError
from asr.features import FeatureExtractor, deltas


class StreamingFeatures:
    """Waveform chunks in, the frames `FeatureExtractor.extract` gives the whole waveform out."""

    def __init__(self, extractor: FeatureExtractor):
        self.extractor, cfg = extractor, extractor.config
        self.length, self.shift, self.stack = cfg.frame_length, cfg.frame_shift, cfg.stack
        self.margin = cfg.delta_window * cfg.deltas  # frames ahead (and back) a frame's deltas reach
        self.samples = torch.zeros(0)  # from sample `sample_base` on, not yet all framed
        self.sample_base = 0
        self.statics = torch.zeros(0, cfg.static_dim)  # analysis frames from `static_base` on
        self.static_base = 0
        self.done = 0  # analysis frames whose full features were given out
        self.unstacked: list[torch.Tensor] = []  # final frames waiting for a full stack

    @property
    def frames(self) -> int:
        """Analysis frames computed so far."""
        return self.static_base + len(self.statics)

    @torch.no_grad()
    def push(self, chunk: torch.Tensor) -> torch.Tensor:
        """Add samples; return the output frames ``(t, D)`` that became final (t may be 0)."""
        self.samples = torch.cat([self.samples, chunk.float().flatten()])
        start = self.frames * self.shift - self.sample_base  # first sample of the next frame
        count = max(0, (len(self.samples) - start - self.length) // self.shift + 1)
        if count:
            frames = self.samples[start:start + (count - 1) * self.shift + self.length].unfold(0, self.length,
                                                                                              self.shift)
            new = self.extractor._frame_features(frames[None].to(self.extractor.mel_banks.dtype))[0]
            self.statics = torch.cat([self.statics, new])
            keep = self.frames * self.shift - self.sample_base  # samples before the next frame are done
            self.samples, self.sample_base = self.samples[keep:], self.sample_base + keep
        return self._release(self.frames - self.margin, last=False)

    @torch.no_grad()
    def finish(self) -> torch.Tensor:
        """The frames still held back, computed as the whole-file features end (the last frame replicated)."""
        return self._release(self.frames, last=True)

    def _release(self, until: int, last: bool) -> torch.Tensor:
        if until > self.done:
            begin = max(0, self.done - self.margin)  # enough look-back that the window's edge stays out of reach
            window = self.statics[begin - self.static_base:]
            full = self._with_deltas(window)[self.done - begin: until - begin]
            self.unstacked += list(full)
            self.done = until
            drop = max(0, self.done - self.margin) - self.static_base
            self.statics, self.static_base = self.statics[drop:], self.static_base + drop
        return self._stacked(last)

    def _with_deltas(self, statics: torch.Tensor) -> torch.Tensor:
        parts, lengths = [statics], torch.tensor([len(statics)])
        for _ in range(self.extractor.config.deltas):
            parts.append(deltas(parts[-1][None], lengths, self.extractor.config.delta_window)[0])
        return torch.cat(parts, dim=-1)

    def _stacked(self, last: bool) -> torch.Tensor:
        rows = []
        while len(self.unstacked) >= self.stack or (last and self.unstacked):
            group = self.unstacked[:self.stack]
            group += [group[-1]] * (self.stack - len(group))  # stack_frames repeats the last frame
            rows.append(torch.cat(group))
            self.unstacked = self.unstacked[self.stack:]
        return torch.stack(rows) if rows else torch.zeros(0, self.extractor.config.dim)


@dataclass
class Run:
    """A run of frames whose best label is one non-blank label (a CTC spike)."""

    label: int
    start: int  # first frame
    end: int  # one past the last frame
    probability_sum: float  # of the label's posterior over the run (its mean is the confidence)

    @property
    def confidence(self) -> float:
        return self.probability_sum / (self.end - self.start)


@dataclass
class SettledWord:
    word: str
    start: float
    end: float
    confidence: float
    settled_frames: int  # output frames seen when it settled


class GreedySettler:
    """Best-path decoding of a growing posterior stream; words come out once they can no longer change.

    `frame_edge` maps an output frame to a time (`Frontend.frame_edge`); `separators` are the
    label ids that end a word (the space for a character model; None: every label is a word)."""

    def __init__(self, symbols: list[str], frame_edge, separators: set[int] | None):
        self.symbols, self.frame_edge, self.separators = symbols, frame_edge, separators
        self.runs: list[Run] = []  # non-blank runs from the first unsettled one on (plus the one before)
        self.first = 0  # index in `runs` of the first unsettled run
        self.previous = 0  # best label of the last frame seen (0: blank, or nothing yet)
        self.frames = 0
        self.ids: list[int] = []  # every label emitted so far (the best path)

    def push(self, log_probs: torch.Tensor) -> list[SettledWord]:
        """Add posteriors ``(t, V)``; return the words that settled."""
        best, labels = log_probs.max(dim=-1)
        for label, probability in zip(labels.tolist(), best.exp().tolist()):
            if label and label == self.previous:
                self.runs[-1].end += 1
                self.runs[-1].probability_sum += probability
            elif label:
                self.runs.append(Run(label, self.frames, self.frames + 1, probability))
                self.ids.append(label)
            self.previous = label
            self.frames += 1
        return self._settle(final=False)

    def finish(self) -> list[SettledWord]:
        """The words still open at the end of the stream."""
        return self._settle(final=True)

    def tentative(self) -> str:
        """The unsettled labels' text (a word in progress)."""
        return "".join(self.symbols[run.label] for run in self.runs[self.first:]).strip()

    def _settle(self, final: bool) -> list[SettledWord]:
        settled = []
        while True:
            end = self._word_end(final)
            if end is None:
                break
            if end > self.first:
                settled.append(self._word(self.first, end))
            self.first = end + 1 if self.separators is not None else end
            self.first = min(self.first, len(self.runs))
        # One run before the first unsettled one stays: the next word's start time needs it.
        drop = max(0, self.first - 1)
        self.runs, self.first = self.runs[drop:], self.first - drop
        return settled

    def _word_end(self, final: bool) -> int | None:
        """Index in `runs` one past the next settled word's last run (its separator's index), or None."""
        open_runs = range(self.first, len(self.runs))
        if self.separators is None:  # a label settles when the next one has started
            return self.first + 1 if len(open_runs) > 1 or (final and open_runs) else None
        for index in open_runs:
            if self.runs[index].label in self.separators:
                return index
        return len(self.runs) if final and open_runs else None

    def _word(self, first: int, end: int) -> SettledWord:
        """The word of runs[first:end], timed as `Transcriber.segments` times its labels."""
        runs = self.runs[first:end]
        before = self.runs[first - 1] if first > 0 else None
        after = self.runs[end] if end < len(self.runs) else None
        start = (before.end + runs[0].start) / 2 if before is not None else runs[0].start
        stop = (runs[-1].end + after.start) / 2 if after is not None else runs[-1].end
        text = "".join(self.symbols[run.label] for run in runs)
        return SettledWord(text, self.frame_edge(start), self.frame_edge(stop),
                           math.prod(run.confidence for run in runs), self.frames)


@dataclass
class Partial:
    """One step of a stream: the settled text, the tentative rest, and the words that settled in this step."""

    final: str
    tentative: str
    new_words: list[SettledWord]
    seconds: float  # audio received so far
    done: bool = False  # the last item of the stream: everything has settled
    transcript: object = None  # on the last item: the `Transcript` of the whole stream
    words: list[SettledWord] = field(default_factory=list)  # every settled word so far

    @property
    def text(self) -> str:
        return " ".join(part for part in (self.final, self.tentative) if part)


# ---- audio as it arrives (decode.py --stream) ------------------------------------------------------

RAW_DTYPES = {"PCM_16": ("<i2", 32768.0), "PCM_32": ("<i4", 2147483648.0), "FLOAT": ("<f4", 1.0)}


def file_chunks(waveform: torch.Tensor, rate: int, chunk_ms: float, realtime: bool = False,
                clock=time.monotonic, sleep=time.sleep) -> Iterator[torch.Tensor]:
    """A waveform played in `chunk_ms` pieces; with `realtime` each piece comes when its last sample
    would have been recorded (a microphone's pace)."""
    size = max(1, round(chunk_ms * rate / 1000))
    started = clock()
    for start in range(0, len(waveform), size):
        piece = waveform[start:start + size]
        if realtime:
            sleep(max(0.0, started + (start + len(piece)) / rate - clock()))
        yield piece


def stdin_chunks(stream: BinaryIO, rate: int, chunk_ms: float, raw_rate: int | None,
                 raw_encoding: str = "PCM_16", channels: int = 1) -> Iterator[torch.Tensor]:
    """Audio read from a byte stream as it arrives: a WAV header (16-bit PCM) or headerless PCM
    (`raw_rate` and `raw_encoding`), at the model's `rate`, mixed down to one channel."""
    head = stream.read(4)
    if head == b"RIFF":
        raw_rate, raw_encoding, channels = read_wav_header(stream)
    elif raw_rate is None:
        raise UserError("--stream -: standard input has no WAV header; give headerless PCM's --raw-rate "
                        "(and --raw-encoding), e.g. arecord -f S16_LE -r 16000 -c 1 -t raw | "
                        "decode.py --stream - --raw-rate 16000")
    if raw_rate != rate:
        raise UserError(f"--stream -: the audio is at {raw_rate} Hz but the model reads {rate} Hz; record at "
                        f"{rate} Hz (arecord -r {rate})")
    if raw_encoding not in RAW_DTYPES:
        raise UserError(f"--stream -: {raw_encoding} audio; standard input takes {', '.join(RAW_DTYPES)}")
    dtype, scale = RAW_DTYPES[raw_encoding]
    frame_bytes = np.dtype(dtype).itemsize * channels
    size = max(1, round(chunk_ms * rate / 1000)) * frame_bytes
    pending = b"" if head == b"RIFF" else head
    read = getattr(stream, "read1", stream.read)  # read1: returns what has arrived
    while True:
        data = read(max(1, size - len(pending)))
        pending += data
        whole = len(pending) - len(pending) % frame_bytes
        if whole and (len(pending) >= size or not data):
            samples = np.frombuffer(pending[:whole], dtype=dtype).astype(np.float32) / scale
            pending = pending[whole:]
            yield torch.from_numpy(samples.reshape(-1, channels).mean(axis=1))
        if not data:
            return


def read_wav_header(stream: BinaryIO) -> tuple[int, str, int]:
    """(rate, encoding, channels) from a WAV stream whose first 4 bytes ("RIFF") were read; stops at
    the start of its samples. A recorder's header may state any length: the samples run to the end."""
    stream.read(8)  # size, "WAVE"
    rate, encoding, channels = None, None, 1
    while True:
        chunk = stream.read(8)
        if len(chunk) < 8:
            raise UserError("--stream -: the WAV header ends before its samples begin")
        name, size = chunk[:4], int.from_bytes(chunk[4:], "little")
        if name == b"data":
            if rate is None:
                raise UserError("--stream -: the WAV stream has no fmt chunk before its samples")
            return rate, encoding, channels
        body = stream.read(size + size % 2)
        if name == b"fmt ":
            tag, channels, rate = (int.from_bytes(body[a:b], "little") for a, b in ((0, 2), (2, 4), (4, 8)))
            bits = int.from_bytes(body[14:16], "little")
            encoding = {(1, 16): "PCM_16", (1, 32): "PCM_32", (3, 32): "FLOAT"}.get((tag, bits), f"{bits}-bit")
