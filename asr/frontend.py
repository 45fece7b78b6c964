"""The front ends: one class per input kind, owning everything that differs between them.

`AudioFrontend` reads audio (`asr.audio`, `asr.features.FeatureExtractor`);
`ImageFrontend` reads text-line images (`asr.image`). Each knows its file
suffixes and refuses the other kind of file, turns a file into features
``(T, D)`` (audio in bounded chunks with context, so a long recording never sits
in memory whole; a line image in one piece), maps output frames to positions in
the input (seconds or pixel columns), and says how a plot shows its input.
`frontend_for` picks one from the feature config's ``kind`` (``fbank``/``mfcc``
or ``image``); nothing outside this module asks which kind of input it has, so a
third kind of input is one more class here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import torch

from asr.audio import RAW_SUFFIXES
from asr.errors import UserError, file_error

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".sph", ".nist", ".aiff", ".aif", ".au",
                            ".mp3"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".pbm", ".pgm", ".ppm",
                            ".webp"})


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


class Piece(NamedTuple):
    """Features of one stretch of an input, and which of the network's output frames to keep
    (the rest is context: seen by the network, decoded as part of a neighbouring piece)."""

    features: torch.Tensor  # (T, D)
    keep: slice


class Picture(NamedTuple):
    """How a plot draws an input: an array (rows, frames) and the words around it."""

    pixels: object  # numpy array (rows, frames)
    ylabel: str
    origin: str  # where row 0 goes: "lower" (spectrograms) or "upper" (images)
    cmap: str
    xlabel: str


class Frontend:
    """File -> features for one feature config. Subclasses set the class attributes."""

    modality = ""  # the kind of input by name: corpora say which kind they hold
    unit = ""  # what frame times are measured in
    # why this kind of input cannot be decoded as it arrives ('' where it can: audio)
    not_streamable = ""

    def __init__(self, config, raw=None):
        self.config = config
        self.raw = raw

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def suffixes(self) -> frozenset[str]:
        """File suffixes of the inputs this front end reads (to pick files out of folders)."""
        raise NotImplementedError

    def check(self, path: str | os.PathLike) -> None:
        """Refuse a file of the wrong kind for this model (an image for a speech model, or back)."""
        raise NotImplementedError

    def check_corpus(self, corpus_modality: str, source: str | os.PathLike) -> None:
        """Refuse a corpus that holds another kind of input than this front end reads."""
        if corpus_modality != self.modality:
            raise UserError(f"{source}: the corpus holds {corpus_modality} but features.kind={self.config.kind} "
                            f"reads {self.modality}; use a config for {corpus_modality}")

    def __call__(self, path: str | os.PathLike) -> torch.Tensor:
        """The whole file's features ``(T, D)``."""
        raise NotImplementedError

    def pieces(self, path: str | os.PathLike, chunk_seconds: float,
               context_seconds: float) -> tuple[Iterator[Piece], float]:
        """The file's features in pieces the network takes one at a time, and its duration in `unit`."""
        raise NotImplementedError

    def from_waveform(self, waveform: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        raise UserError(f"this model reads {self.modality}; give it files, not waveforms")

    def waveform(self, path: str | os.PathLike) -> torch.Tensor:
        """The file's 1-D waveform at the config's rate, as `from_waveform` takes it (training augmentation)."""
        raise UserError(f"this model reads {self.modality}; it has no waveforms")

    def source(self, path: str | os.PathLike) -> torch.Tensor:
        """What augmentation works on, decoded from the file: the waveform, or the ink image."""
        raise NotImplementedError

    def from_source(self, source: torch.Tensor) -> torch.Tensor:
        """The features ``(T, D)`` of a (possibly augmented) `source`."""
        raise NotImplementedError

    def source_bytes(self, path: str | os.PathLike, frames: int) -> int:
        """About how much memory the file's `source` takes, given its feature frames."""
        raise NotImplementedError

    def augmenter(self, augment):
        """The augmenter for `augment` (an AugmentConfig), or None when it turns nothing on; a
        UserError naming the keys when it turns on effects for the other kind of input."""
        raise NotImplementedError

    def _refuse(self, keys: list[str], kind: str) -> None:
        if keys:
            raise UserError(f"features.kind={self.config.kind} reads {self.modality}, but {', '.join(keys)} "
                            f"turn(s) on {kind} augmentation; set them to 0 (or remove them from the augment section)")

    @property
    def frame_step(self) -> int:
        """Input samples (audio) or pixel columns (images) between output frames."""
        raise NotImplementedError

    def frame_edge(self, frame: float) -> float:
        """Where output frame `frame`'s share of the input begins, in `unit`."""
        raise NotImplementedError

    def chunk_frames(self, chunk_seconds: float) -> int:
        """Output frames decoded at a time."""
        return sys.maxsize

    def seconds(self, frames: int) -> float | None:
        """Seconds of input behind `frames` output frames (None where the input has no duration)."""
        return None

    def picture(self, features: torch.Tensor) -> Picture:
        raise NotImplementedError

    def reference_segments(self, utterance) -> list[tuple[str, float, float]]:
        """The corpus's own (label, start, end) segments of `utterance` in `unit`, where it has them."""
        return []


class AudioFrontend(Frontend):
    """Audio files and waveforms -> filterbank or MFCC frames, times in seconds."""

    modality = "audio"
    unit = "s"

    def __init__(self, config, raw=None):
        super().__init__(config, raw)
        from asr.features import FeatureExtractor  # noqa: PLC0415 (torchaudio pieces only for audio)
        self.extractor = FeatureExtractor(config)

    @property
    def suffixes(self) -> frozenset[str]:
        return AUDIO_SUFFIXES | frozenset(RAW_SUFFIXES) if self.raw else AUDIO_SUFFIXES

    def check(self, path: str | os.PathLike) -> None:
        if is_image_file(path):
            raise file_error(path, "is an image, but this model reads audio",
                             "Use a handwriting checkpoint for text-line images")

    def __call__(self, path: str | os.PathLike) -> torch.Tensor:
        return self._features(self.waveform(path))

    def _features(self, waveform: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.extractor.extract(waveform)

    def waveform(self, path: str | os.PathLike) -> torch.Tensor:
        from asr.audio import load_audio  # noqa: PLC0415
        self.check(path)
        return load_audio(path, self.config.sample_rate, raw=self.raw)

    def source(self, path: str | os.PathLike) -> torch.Tensor:
        return self.waveform(path)

    def from_source(self, source: torch.Tensor) -> torch.Tensor:
        return self.from_waveform(source)

    def source_bytes(self, path: str | os.PathLike, frames: int) -> int:
        return frames * self.frame_step * 4  # float32 samples

    def augmenter(self, augment):
        self._refuse(augment.keys_on(image=True), "image")
        if not augment.enabled:
            return None
        from asr.augment import Augmenter  # noqa: PLC0415 (scipy and the effects only when asked for)
        return Augmenter.for_features(augment, self.config)

    def from_waveform(self, waveform: torch.Tensor, sample_rate: int | None = None) -> torch.Tensor:
        """Features of a 1-D waveform at `sample_rate` (default: the config's)."""
        import torchaudio.functional as AF  # noqa: PLC0415

        if waveform.dim() != 1:
            raise UserError(f"a waveform must be 1-D (samples), got shape {tuple(waveform.shape)}; "
                            "mix channels down first")
        waveform = waveform.float()
        if sample_rate and sample_rate != self.config.sample_rate:
            waveform = AF.resample(waveform, sample_rate, self.config.sample_rate)
        return self._features(waveform)

    def pieces(self, path, chunk_seconds, context_seconds):
        """Chunks of about `chunk_seconds`, each read with `context_seconds` on both sides: memory
        stays bounded whatever the length of the file."""
        from asr.audio import AudioReader  # noqa: PLC0415

        self.check(path)
        f = self.config
        reader = AudioReader(path, f.sample_rate, raw=self.raw)
        if reader.num_samples < f.frame_length:
            reader.audio.close()
            raise UserError(f"{path}: is {reader.seconds * 1000:.1f} ms long, shorter than one "
                            f"{f.win_ms:g} ms analysis frame. Give a longer recording")
        return self._chunks(reader, chunk_seconds, context_seconds), reader.seconds

    def _chunks(self, reader, chunk_seconds: float, context_seconds: float) -> Iterator[Piece]:
        f, step = self.config, self.frame_step
        chunk = self.chunk_frames(chunk_seconds) * step
        context = round(context_seconds * f.sample_rate / step) * step
        with reader:
            for start in range(0, reader.num_samples, chunk):
                begin = max(start - context, 0)  # a multiple of the frame step: frames stay on the file's grid
                waveform = reader.read(begin, start + chunk + context + f.frame_length)
                if len(waveform) < f.frame_length:
                    break
                first = (start - begin) // step
                yield Piece(self._features(waveform), slice(first, first + chunk // step))

    @property
    def frame_step(self) -> int:
        return self.config.frame_shift * self.config.stack

    def frame_edge(self, frame: float) -> float:
        f = self.config
        centre_offset = (f.frame_length - f.frame_shift) / 2  # a frame's centre is half a window in
        return (frame * self.frame_step + centre_offset) / f.sample_rate

    def chunk_frames(self, chunk_seconds: float) -> int:
        return max(1, round(chunk_seconds * self.config.sample_rate / self.frame_step))

    def seconds(self, frames: int) -> float:
        return frames * self.frame_step / self.config.sample_rate

    def picture(self, features: torch.Tensor) -> Picture:
        # The first mel channels (no deltas); MFCCs are drawn whole.
        rows = (self.config.n_mels if self.config.kind == "fbank" else 0) or features.shape[1]
        return Picture(features[:, :rows].T.numpy(), "mel channel" if self.config.kind == "fbank" else "coefficient",
                       "lower", "magma", "time (s)")

    def reference_segments(self, utterance) -> list[tuple[str, float, float]]:
        rate = self.config.sample_rate
        return [(p.label, p.start / rate, p.end / rate) for p in utterance.phones or ()]


class ImageFrontend(Frontend):
    """Text-line images -> columns of pixels, positions in pixel columns; a line goes in one piece."""

    modality = "image"
    unit = "columns"
    not_streamable = "streaming needs a speech model; this one reads text-line images"

    @property
    def suffixes(self) -> frozenset[str]:
        return IMAGE_SUFFIXES

    def check(self, path: str | os.PathLike) -> None:
        if not is_image_file(path):
            raise file_error(path, "is not an image, but this model reads text-line images",
                             "Give PNG/JPEG/TIFF files, or use a speech checkpoint for audio")

    def __call__(self, path: str | os.PathLike) -> torch.Tensor:
        from asr.image import image_frames  # noqa: PLC0415
        from asr.threads import one_thread  # noqa: PLC0415
        self.check(path)
        with one_thread():
            return image_frames(path, self.config)

    def source(self, path: str | os.PathLike) -> torch.Tensor:
        from asr.image import load_line_image  # noqa: PLC0415
        self.check(path)
        return load_line_image(path, self.config.ink)

    def from_source(self, source: torch.Tensor) -> torch.Tensor:
        from asr.image import line_frames  # noqa: PLC0415
        from asr.threads import one_thread  # noqa: PLC0415
        with one_thread():
            return line_frames(source, self.config)

    def source_bytes(self, path: str | os.PathLike, frames: int) -> int:
        from PIL import Image  # noqa: PLC0415
        with Image.open(path) as image:  # reads the header only
            return image.width * image.height * 4  # float32 pixels

    def augmenter(self, augment):
        self._refuse(augment.keys_on(image=False), "audio")
        if not augment.enabled:
            return None
        from asr.augment_image import ImageAugmenter  # noqa: PLC0415 (scipy and the effects only when asked for)
        return ImageAugmenter(augment)

    def pieces(self, path, chunk_seconds, context_seconds):
        features = self(path)
        return iter([Piece(features, slice(None))]), len(features) * self.frame_step

    @property
    def frame_step(self) -> int:
        return self.config.stride

    def frame_edge(self, frame: float) -> float:
        return frame * self.frame_step

    def picture(self, features: torch.Tensor) -> Picture:
        # A frame's first column of pixels: with window > 1 the rest repeats the next frames.
        rows = self.config.height or features.shape[1]
        return Picture(features[:, :rows].T.numpy(), "row", "upper", "gray_r", "column")


def frontend_for(config, raw=None) -> Frontend:
    """The front end for a feature config (`FeatureConfig` or `ImageConfig`); `raw` a `RawFormat`
    for headerless audio."""
    return ImageFrontend(config, raw) if config.kind == "image" else AudioFrontend(config, raw)
