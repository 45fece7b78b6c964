"""Audio in: read any recording into a float32 mono waveform at the model's rate.

Everything libsndfile reads goes through `soundfile`: WAV, FLAC, OGG/Vorbis,
MP3, NIST SPHERE (TIMIT's ``.WAV`` files: a 1024-byte ``NIST_1A`` header before
16-bit PCM), AIFF, AU, ... Headerless PCM (``.raw``/``.pcm``) carries no rate or
sample format, so the caller states them with `RawFormat` (on the command line:
``--raw-rate RATE --raw-encoding PCM_16``). The stated format applies to
headerless files only: ``.raw``/``.pcm``, and files whose header libsndfile
does not recognise unless their suffix names a format with a header (so a pipe
or ``rec.bin`` reads as raw, while a WAV or MP3 in the same list keeps its own
header and a broken ``.wav`` stays an error).

We open files ourselves and hand libsndfile the descriptor: names that are not
valid UTF-8 read like any other, and a file we may not read is one clear
error. Pipes, FIFOs and ``<(...)`` cannot seek, so they are read into memory
(at most `MAX_STREAM_BYTES`), waiting at most `STREAM_WAIT_SECONDS` for a writer.

Multichannel audio is mixed down by averaging the channels; other rates are
resampled with torchaudio's windowed-sinc resampler (one cached kernel per rate
ratio). A header rate outside 1-768 kHz is refused as corrupt; an odd rate
whose exact ratio would need a kernel of gigabytes (16001 Hz) is resampled with
the nearest ratio whose kernel is small (`_rate_steps`). Integer PCM maps full
scale to [-1, 1); float files pass through as stored.

Every way a user's file can be unusable (missing, empty, truncated, corrupt
header, not audio at all, NaN samples, headerless without a stated format,
shorter than one analysis frame) raises one `asr.errors.UserError` that names
the file and the fix, never a libsndfile traceback.
"""

from __future__ import annotations

import fractions
import functools
import io
import math
import os
import re
import select
import stat
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
# Suffixes whose format soundfile names differently.
_SUFFIX_FORMATS = {"sph": "NIST", "nist": "NIST", "aif": "AIFF", "oga": "OGG", "opus": "OGG"}
# Sample rates a header may state: below, no speech band survives; above, the
# header is corrupt (768 kHz is the highest rate audio interfaces offer).
MIN_RATE, MAX_RATE = 1000, 768000
# The resampling kernel holds about (file step x model step) values, the two
# sides of the reduced rate ratio: 16001 -> 16000 Hz would need 16001 x 16000.
# Past this product the ratio is approximated (see `_rate_steps`).
MAX_KERNEL_STEPS = 1 << 20
# Pipes and FIFOs are read whole into memory (libsndfile seeks): how much, and
# how long to wait for a writer before giving up on one.
MAX_STREAM_BYTES = 1 << 30
STREAM_WAIT_SECONDS = 5.0


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
        if not MIN_RATE <= self.sample_rate <= MAX_RATE:
            raise UserError(f"a raw PCM rate of {self.sample_rate} Hz is outside the {MIN_RATE}-{MAX_RATE} Hz "
                            "of real recordings; check --raw-rate (in Hz, e.g. 16000)")


def load_audio(path: str | bytes | os.PathLike, sample_rate: int = 16000, *,
               raw: RawFormat | None = None, min_seconds: float = 0.0) -> torch.Tensor:
    """Read `path` as a float32 1-D mono waveform at `sample_rate` Hz.

    `raw` reads the file as headerless PCM (required for ``.raw``/``.pcm``).
    `min_seconds` rejects recordings too short to use, e.g. shorter than one
    analysis frame (``FeatureConfig.win_ms / 1000``).
    """
    path = _as_path(path)
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

    def __init__(self, path: str | bytes | os.PathLike, sample_rate: int = 16000, *, raw: RawFormat | None = None):
        self.path, self.sample_rate = _as_path(path), sample_rate
        self.audio = _open(path, raw)
        self.file_rate = self.audio.samplerate
        if self.audio.frames == 0:
            self.audio.close()
            raise file_error(path, "holds no audio (0 samples)",
                             "Re-record or re-export it, or leave it out of the list")
        self.file_step, self.model_step = _rate_steps(self.file_rate, sample_rate)
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
        resampled = _resampler(self.file_step, self.model_step)(native)
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


def audio_duration(path: str | bytes | os.PathLike, *, raw: RawFormat | None = None) -> float:
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


def _rate_steps(file_rate: int, model_rate: int) -> tuple[int, int]:
    """The rate ratio file:model in lowest terms, approximated where its kernel would be huge.

    torchaudio's kernel depends on the ratio only, and holds about file step x
    model step values. An odd rate (16001 Hz) makes both sides large; the
    nearest ratio with a kernel under `MAX_KERNEL_STEPS` then stands for it
    (16001:16000 becomes 1:1, a pitch error of 0.006%).
    """
    ratio = fractions.Fraction(file_rate, model_rate)
    if ratio.numerator * ratio.denominator > MAX_KERNEL_STEPS:
        ratio = ratio.limit_denominator(max(1, math.isqrt(int(MAX_KERNEL_STEPS / ratio))))
    return ratio.numerator, ratio.denominator


@functools.lru_cache(maxsize=16)
def _resampler(file_step: int, model_step: int) -> torchaudio.transforms.Resample:
    # Building the sinc kernel costs as much as resampling a few seconds of audio.
    return torchaudio.transforms.Resample(file_step, model_step)


def _format_from_suffix(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    format = _SUFFIX_FORMATS.get(suffix, suffix.upper())
    if format not in sf.available_formats():
        raise file_error(path, f"cannot tell the audio format from the suffix {path.suffix!r}",
                         "Name the file .wav/.flac/.ogg/.sph or pass format=")
    return format


def _as_path(path: str | bytes | os.PathLike) -> Path:
    """A Path for str and bytes names alike (bytes that are not UTF-8 keep their bytes, as surrogates)."""
    return Path(os.fsdecode(path))


def _open(path: str | os.PathLike, raw: RawFormat | None) -> sf.SoundFile:
    """Open `path` for reading after the checks libsndfile does not make.

    `raw` applies to headerless files only: the ``.raw``/``.pcm`` suffixes, and
    files libsndfile cannot identify by their header whose suffix does not name
    a format with a header (a pipe, ``/dev/fd/63``, ``rec.bin``). A WAV or MP3 in
    the same list keeps its own header; a ``.wav`` that cannot be read stays an error.
    """
    path = _as_path(path)
    if not path.exists():
        raise file_error(path, "no such file", "Check the path")
    if path.is_dir():
        raise file_error(path, "is a folder, not an audio file", "Give the path of a recording")
    headerless = path.suffix.lower() in RAW_SUFFIXES
    if headerless and raw is None:
        raise file_error(path, "is headerless PCM, so its sample rate and sample format are unknown",
                         f"Give them: {RAW_FLAGS}; in Python, raw=RawFormat(16000, 'PCM_16')")
    source = _open_source(path)
    try:
        audio = _open_source_audio(path, source, raw, headerless)
        if not MIN_RATE <= audio.samplerate <= MAX_RATE:
            audio.close()
            raise file_error(path, f"states a sample rate of {audio.samplerate} Hz, outside the "
                                   f"{MIN_RATE}-{MAX_RATE} Hz of real recordings, so its header is corrupt",
                             "Re-export it from its source")
    except BaseException:
        _close(source)
        raise
    if isinstance(source, int):
        audio._owned_fd = source  # closed with the SoundFile from here on
    return audio


def _open_source_audio(path: Path, source: int | io.BytesIO, raw: RawFormat | None,
                       headerless: bool) -> _OwnedSoundFile:
    """The SoundFile of an opened source (the caller still owns the source)."""
    if headerless:
        return _open_raw(path, source, raw)
    head = _read_head(source)
    if not head:
        raise file_error(path, "is empty (0 bytes)", f"Give {READABLE}")
    sphere = _sphere_fields(head)
    coding = sphere.get("sample_coding", "pcm")
    if "shorten" in coding or "wavpack" in coding:
        raise file_error(path, f"is a compressed NIST SPHERE file ({coding}), which libsndfile "
                               "cannot decode", "Decompress it first: sph2pipe -f wav IN OUT.wav")
    try:
        audio = _soundfile(source)
    except sf.LibsndfileError as err:
        if raw is not None and not _names_header_format(path):
            return _open_raw(path, source, raw)
        raise _unreadable(path, err) from None
    try:
        _check_complete(path, audio, sphere)
    except UserError:
        audio.close()
        raise
    return audio


class _OwnedSoundFile(sf.SoundFile):
    """A SoundFile that closes the descriptor it reads when it closes (libsndfile's
    own closefd would also close it when opening fails, and we may try twice)."""

    _owned_fd: int | None = None

    def close(self) -> None:
        super().close()
        fd, self._owned_fd = self._owned_fd, None
        if fd is not None:
            os.close(fd)


def _soundfile(source: int | io.BytesIO, **raw_settings) -> _OwnedSoundFile:
    if isinstance(source, io.BytesIO):
        source.seek(0)
        return _OwnedSoundFile(source, **raw_settings)
    os.lseek(source, 0, os.SEEK_SET)  # libsndfile takes the offset as the file's start
    return _OwnedSoundFile(source, closefd=False, **raw_settings)


def _names_header_format(path: Path) -> bool:
    """Whether the suffix names a format that carries a header (.wav, .mp3, .flac, ...)."""
    suffix = path.suffix.lower().lstrip(".")
    return bool(suffix) and suffix != "raw" and (suffix.upper() in sf.available_formats() or suffix in _SUFFIX_FORMATS)


def _open_raw(path: Path, source: int | io.BytesIO, raw: RawFormat) -> _OwnedSoundFile:
    size = os.fstat(source).st_size if isinstance(source, int) else len(source.getbuffer())
    frame_bytes = _RAW_SAMPLE_BYTES.get(raw.encoding, 0) * raw.channels
    if frame_bytes and size % frame_bytes:
        raise file_error(path, f"has {size} bytes, not a whole number of {raw.channels}-channel "
                               f"{raw.encoding} frames ({frame_bytes} bytes each)",
                         "Check --raw-encoding and the channel count, or the file is truncated")
    try:
        return _soundfile(source, format="RAW", samplerate=raw.sample_rate,
                          channels=raw.channels, subtype=raw.encoding, endian=raw.endian)
    except sf.LibsndfileError as err:
        raise _unreadable(path, err) from None


def _read_head(source: int | io.BytesIO) -> bytes:
    if isinstance(source, io.BytesIO):
        return source.getvalue()[:1024]
    return os.pread(source, 1024, 0)


def _close(source: int | io.BytesIO) -> None:
    if isinstance(source, int):
        os.close(source)


def _open_source(path: Path) -> int | io.BytesIO:
    """A descriptor of a regular file, or the whole of a pipe/FIFO/device read into memory.

    We open the file ourselves, so libsndfile never sees the name (a name that
    is not valid UTF-8 reads like any other). libsndfile needs to seek, which a
    pipe cannot: ``<(sox ...)`` and FIFOs are read into memory, up to
    `MAX_STREAM_BYTES`. A FIFO is opened without blocking, so one that nobody
    writes to gives an error after `STREAM_WAIT_SECONDS` instead of hanging the list.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except PermissionError:
        raise file_error(path, "cannot be read: permission denied",
                         "Make it readable (chmod a+r) or run as a user who may read it") from None
    except OSError as err:
        raise file_error(path, f"cannot be opened ({err.strerror})", "Check the path and the disk") from None
    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.set_blocking(fd, True)
        return fd
    try:
        return io.BytesIO(_read_stream(path, fd))
    finally:
        os.close(fd)


def _read_stream(path: Path, fd: int) -> bytes:
    """All bytes of a non-blocking pipe, waiting at most `STREAM_WAIT_SECONDS` for each piece."""
    chunks, size = [], 0
    waiting = select.poll()  # not select.select: it fails on descriptors past 1023
    waiting.register(fd, select.POLLIN)
    while True:
        if not waiting.poll(STREAM_WAIT_SECONDS * 1000):
            raise file_error(path, f"is a pipe or FIFO that gave no data for {STREAM_WAIT_SECONDS:g} s",
                             "Start the program that writes to it first, or give a regular file")
        try:
            chunk = os.read(fd, 1 << 20)
        except BlockingIOError:
            continue
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_STREAM_BYTES:
            raise file_error(path, f"is a pipe or FIFO of more than {MAX_STREAM_BYTES >> 20} MiB, which is "
                                   "read into memory", "Write it to a regular file first and give that")
        chunks.append(chunk)


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
