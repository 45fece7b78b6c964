"""The front end: a file (or waveform) in, a feature sequence ``(T, D)`` out.

Audio goes through `asr.audio.load_audio` and `asr.features.FeatureExtractor`;
text-line images through `asr.image`. The feature config's ``kind`` says which
(``fbank``/``mfcc`` or ``image``), so a checkpoint knows what it expects and
refuses the other kind of file with a clear message.
"""

from __future__ import annotations

from pathlib import Path

import torch

from asr.errors import file_error

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".pbm", ".pgm", ".ppm", ".webp"}


def is_image_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


class Frontend:
    """File -> features for one feature config; `modality` is ``audio`` or ``image``."""

    def __init__(self, config, raw=None):
        self.config = config
        self.modality = "image" if config.kind == "image" else "audio"
        self.raw = raw
        if self.modality == "audio":
            from asr.features import FeatureExtractor  # noqa: PLC0415
            self.extractor = FeatureExtractor(config)

    @property
    def dim(self) -> int:
        return self.config.dim

    def check(self, path: str | Path) -> None:
        """Refuse a file of the wrong kind for this model (an image for a speech model, or back)."""
        if is_image_file(path) and self.modality == "audio":
            raise file_error(path, "is an image, but this model reads audio",
                             "Use a handwriting checkpoint for text-line images")
        if not is_image_file(path) and self.modality == "image":
            raise file_error(path, "is not an image, but this model reads text-line images",
                             "Give PNG/JPEG/TIFF files, or use a speech checkpoint for audio")

    def __call__(self, path: str | Path) -> torch.Tensor:
        self.check(path)
        if self.modality == "image":
            from asr.image import image_frames  # noqa: PLC0415
            return image_frames(path, self.config)
        from asr.audio import load_audio  # noqa: PLC0415
        return self.from_waveform(load_audio(path, self.config.sample_rate, raw=self.raw))

    def from_waveform(self, waveform: torch.Tensor) -> torch.Tensor:
        """Features of a 1-D waveform already at the config's sample rate."""
        with torch.no_grad():
            return self.extractor.extract(waveform)
