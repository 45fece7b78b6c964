"""Audio in: read any recording into a float32 mono waveform at the model's rate.

Everything libsndfile reads goes through `soundfile`: WAV, FLAC, OGG/Vorbis,
MP3, NIST SPHERE (TIMIT's ``.WAV`` files: a 1024-byte ``NIST_1A`` header before
16-bit PCM), AIFF, AU, ... Headerless PCM (``.raw``/``.pcm``) carries no rate or
sample format, so the caller states them with `RawFormat` (on the command line:
``--raw-rate RATE --raw-encoding PCM_16``).

Multichannel audio is mixed down by averaging the channels; other rates are
resampled with torchaudio's windowed-sinc resampler (one cached kernel per rate
pair). Integer PCM maps full scale to [-1, 1); float files pass through as
stored.

Every way a user's file can be unusable (missing, empty, truncated, corrupt
header, not audio at all, NaN samples, headerless without a stated format,
shorter than one analysis frame) raises one `asr.errors.UserError` that names
the file and the fix, never a libsndfile traceback.
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from asr.atomic import atomic_path
from asr.errors import UserError, file_error

RAW_SUFFIXES = (".raw", ".pcm")
RAW_FLAGS = "--raw-rate RATE --raw-encoding ENCODING (e.g. --raw-rate 16000 --raw-encoding PCM_16)"
READABLE = "a WAV, FLAC, OGG, MP3 or NIST SPHERE file"
# Bytes per sample of the headerless encodings whose size we can check.
_RAW_SAMPLE_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "ULAW": 1, "ALAW": 1, "PCM_16": 2,
                     "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}
# A WAV data size of 0x7fffffff or 0xffffffff is the streaming writers'
# "length unknown" placeholder (sox, ffmpeg to a pipe), not a promise.
_WAV_SIZE_PLACEHOLDERS = (0x7FFFFFFF, 0xFFFFFFFF)
_NIST_HEADER = b"NIST_1A"


@dataclass(frozen=True)
class RawFormat:
    """How to read headerless PCM: what a header would have said.

    ``encoding`` is a libsndfile RAW subtype: PCM_16, PCM_24, PCM_32, PCM_S8,
    PCM_U8, FLOAT, DOUBLE, ULAW, ALAW, ... ``endian`` is LITTLE, BIG or CPU.
    """

    sample_rate: int
    encoding: str = "PCM_16"
    channels: int = 1
    endian: str = "LITTLE"

    def __post_init__(self) -> None:
        encodings = sf.available_subtypes("RAW")
        if self.encoding not in encodings:
            raise UserError(f"unknown raw PCM encoding {self.encoding!r}; "
                            f"choose one of {', '.join(sorted(encodings))}")
        if self.endian not in ("LITTLE", "BIG", "CPU"):
            raise UserError(f"unknown raw PCM byte order {self.endian!r}; choose LITTLE, BIG or CPU")
        if self.sample_rate <= 0 or self.channels <= 0:
            raise UserError(f"raw PCM needs a positive sample rate and channel count, "
                            f"got {self.sample_rate} Hz and {self.channels} channels")


def load_audio(path: str | os.PathLike, sample_rate: int = 16000, *,
               raw: RawFormat | None = None, min_seconds: float = 0.0) -> torch.Tensor:
    """Read `path` as a float32 1-D mono waveform at `sample_rate` Hz.

    `raw` reads the file as headerless PCM (required for ``.raw``/``.pcm``).
    `min_seconds` rejects recordings too short to use, e.g. shorter than one
    analysis frame (``FeatureConfig.win_ms / 1000``).
    """
    with AudioReader(path, sample_rate, raw=raw) as reader:
        waveform = reader.read(0, reader.num_samples)
    if len(waveform) < min_seconds * sample_rate:
        raise file_error(path, f"is {len(waveform) / sample_rate:.3f} s long, shorter than "
                               f"the {min_seconds:.3f} s the features need",
                         "Give a longer recording or leave it out")
    return waveform


class AudioReader:
    """Spans of a recording, mono at `sample_rate`, decoded only where asked.

    Long recordings are transcribed in chunks through this, so memory does not
    grow with the file. A span is resampled with a margin of its neighbours, so
    spans joined end to end equal the whole file resampled at once (to float
    rounding). ``num_samples`` counts samples at `sample_rate`.
    """

    MARGIN = 256  # samples at the model rate; the resampling filter reaches ~6 input samples

    def __init__(self, path: str | os.PathLike, sample_rate: int = 16000, *, raw: RawFormat | None = None):
        self.path, self.sample_rate = path, sample_rate
        self.audio = _open(path, raw)
        self.file_rate = self.audio.samplerate
        if self.audio.frames == 0:
            self.audio.close()
            raise file_error(path, "holds no audio (0 samples)", "Re-record or re-export it, or leave it out of the list")
        step = math.gcd(self.file_rate, sample_rate)
        self.file_step, self.model_step = self.file_rate // step, sample_rate // step
        self.num_samples = -(-self.audio.frames * self.model_step // self.file_step)

    def __enter__(self) -> "AudioReader":
        return self

    def __exit__(self, *exc) -> None:
        self.audio.close()

    @property
    def seconds(self) -> float:
        return self.num_samples / self.sample_rate

    def read(self, start: int, stop: int) -> torch.Tensor:
        """Samples [start, stop) at the model rate (clipped to the recording)."""
        start, stop = max(start, 0), min(stop, self.num_samples)
        if self.file_rate == self.sample_rate:
            return self._read_file(start, stop)
        # Read whole resampling periods around the span, so sample k of the block is
        # sample first + k of the whole file resampled.
        first = max(start - self.MARGIN, 0) // self.model_step * self.model_step
        last = -(-(stop + self.MARGIN) // self.model_step) * self.model_step
        native = self._read_file(first // self.model_step * self.file_step, last // self.model_step * self.file_step)
        resampled = _resampler(self.file_rate, self.sample_rate)(native)
        return resampled[start - first: stop - first]

    def _read_file(self, start: int, stop: int) -> torch.Tensor:
        audio = self.audio
        audio.seek(min(start, audio.frames))
        wanted = max(min(stop, audio.frames) - start, 0)
        try:
            samples = audio.read(wanted, dtype="float32", always_2d=True)
        except sf.LibsndfileError as err:
            raise _unreadable(self.path, err) from None
        if len(samples) < wanted:
            raise _truncated(self.path, audio.frames, start + len(samples), audio.samplerate)
        finite = np.isfinite(samples)
        if not finite.all():
            raise file_error(self.path, f"has {samples.size - int(finite.sum())} NaN or infinite samples "
                                        f"in {samples.size} read", "Re-export it from its source")
        return torch.from_numpy(samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0].copy())


def audio_duration(path: str | os.PathLike, *, raw: RawFormat | None = None) -> float:
    """Length of `path` in seconds, read from its header (no samples decoded)."""
    with _open(path, raw) as audio:
        return audio.frames / audio.samplerate


def write_audio(path: str | os.PathLike, waveform: torch.Tensor | np.ndarray, sample_rate: int,
                *, format: str | None = None, subtype: str | None = None) -> None:
    """Write a (N,) or (channels, N) waveform atomically (temp file, then rename).

    `format`/`subtype` are soundfile's (``format="NIST", subtype="PCM_16"`` for a
    TIMIT-style SPHERE file); by default they follow the file name's suffix.
    """
    path = Path(path)
    data = waveform.detach().cpu().numpy() if torch.is_tensor(waveform) else np.asarray(waveform)
    if data.ndim == 2:
        data = data.T  # soundfile wants (frames, channels)
    format = format or _format_from_suffix(path)
    with atomic_path(path) as temporary:
        sf.write(temporary, data, sample_rate, format=format, subtype=subtype)


@functools.lru_cache(maxsize=16)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    # Building the sinc kernel costs as much as resampling a few seconds of audio.
    return torchaudio.transforms.Resample(orig, new)


def _format_from_suffix(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    named = {"sph": "NIST", "nist": "NIST", "aif": "AIFF", "oga": "OGG", "opus": "OGG"}
    format = named.get(suffix, suffix.upper())
    if format not in sf.available_formats():
        raise file_error(path, f"cannot tell the audio format from the suffix {path.suffix!r}",
                         "Name the file .wav/.flac/.ogg/.sph or pass format=")
    return format


def _open(path: str | os.PathLike, raw: RawFormat | None) -> sf.SoundFile:
    """Open `path` for reading after the checks libsndfile does not make."""
    path = Path(path)
    if not path.exists():
        raise file_error(path, "no such file", "Check the path")
    if path.is_dir():
        raise file_error(path, "is a folder, not an audio file", "Give the path of a recording")
    if raw is not None:
        return _open_raw(path, raw)
    if path.suffix.lower() in RAW_SUFFIXES:
        raise file_error(path, "is headerless PCM, so its sample rate and sample format are unknown",
                         f"Give them: {RAW_FLAGS}; in Python, raw=RawFormat(16000, 'PCM_16')")
    head = _read_head(path)
    if not head:
        raise file_error(path, "is empty (0 bytes)", f"Give {READABLE}")
    sphere = _sphere_fields(head)
    coding = sphere.get("sample_coding", "pcm")
    if "shorten" in coding or "wavpack" in coding:
        raise file_error(path, f"is a compressed NIST SPHERE file ({coding}), which libsndfile "
                               "cannot decode", "Decompress it first: sph2pipe -f wav IN OUT.wav")
    try:
        audio = sf.SoundFile(path)
    except sf.LibsndfileError as err:
        raise _unreadable(path, err) from None
    try:
        _check_complete(path, audio, sphere)
    except UserError:
        audio.close()
        raise
    return audio


def _open_raw(path: Path, raw: RawFormat) -> sf.SoundFile:
    size = path.stat().st_size
    frame_bytes = _RAW_SAMPLE_BYTES.get(raw.encoding, 0) * raw.channels
    if frame_bytes and size % frame_bytes:
        raise file_error(path, f"has {size} bytes, not a whole number of {raw.channels}-channel "
                               f"{raw.encoding} frames ({frame_bytes} bytes each)",
                         "Check --raw-encoding and the channel count, or the file is truncated")
    try:
        return sf.SoundFile(path, format="RAW", samplerate=raw.sample_rate,
                            channels=raw.channels, subtype=raw.encoding, endian=raw.endian)
    except sf.LibsndfileError as err:
        raise _unreadable(path, err) from None


def _read_head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(1024)


def _sphere_fields(head: bytes) -> dict[str, str]:
    """The NIST SPHERE header's fields (``sample_count -i 16000`` lines); {} for other files."""
    if not head.startswith(_NIST_HEADER):
        return {}
    return {key.decode(): value.decode(errors="replace")
            for key, value in re.findall(rb"^(\w+) -\w+ (\S+)", head, re.MULTILINE)}


def _check_complete(path: Path, audio: sf.SoundFile, sphere: dict[str, str]) -> None:
    """Reject files whose header promises more audio than the file holds.

    libsndfile quietly shortens such files to what is there; a transfer cut
    short would then train on half an utterance against its whole transcript.
    """
    count = sphere.get("sample_count", "")
    promised = int(count) if count.isdigit() else 0
    log = audio.extra_info
    data = re.search(r"^data\s*:\s*(\d+) \(should be (\d+)\)", log, re.MULTILINE)
    if data and not sphere:
        promised_bytes, present_bytes = int(data.group(1)), int(data.group(2))
        if promised_bytes > present_bytes and promised_bytes not in _WAV_SIZE_PLACEHOLDERS:
            bytes_per_frame = max(1, audio.channels * _RAW_SAMPLE_BYTES.get(audio.subtype, 1))
            promised = promised_bytes // bytes_per_frame
    if promised > audio.frames:
        raise _truncated(path, promised, audio.frames, audio.samplerate)
    if "ended unexpectedly" in log:
        raise file_error(path, "is truncated: the stream ends without its end marker",
                         "Copy or export the file again")


def _truncated(path: str | os.PathLike, promised: int, present: int, rate: int) -> UserError:
    return file_error(path, f"is truncated: its header promises {promised} samples "
                            f"({promised / rate:.2f} s) but the file holds {present} "
                            f"({present / rate:.2f} s)", "Copy or export the file again")


def _unreadable(path: str | os.PathLike, err: sf.LibsndfileError) -> UserError:
    reason = re.sub(r"^Error opening .*?: |^Error : ", "", str(err)).strip().rstrip(".")
    return file_error(path, f"is not readable audio, or is corrupt or truncated ({reason})",
                      f"Give {READABLE}; for headerless PCM give {RAW_FLAGS}")
