"""The handwriting front end: a text-line image becomes a sequence of column frames.

Graves et al. (2009, "A Novel Connectionist System for Unconstrained Handwriting
Recognition", IEEE TPAMI 31(5)) read an offline text line left to right as a
sequence of feature vectors, one per pixel column, through the same BLSTM-CTC
network that reads speech. This module makes that sequence:

1. `load_line_image`: any PNG/JPEG/TIFF (grey, colour, alpha, palette, 16-bit)
   becomes a float (H, W) image in [0, 1] with ink = 1 and paper = 0.
2. `line_frames`: contrast normalisation (or Otsu binarisation, Otsu 1979),
   crop to the ink, optional slant correction by the projection-profile method
   (Pastor, Toselli & Vidal 2004: the shear that maximises the variance of the
   vertical projection), height normalisation keeping the aspect ratio, then one
   frame per column or per sliding window of columns.

Everything is deterministic: the same image and config give the same frames.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from asr.errors import UserError, file_error

INK_POLARITIES = ("auto", "dark", "light")
Ink = StrEnum("Ink", {name: name for name in INK_POLARITIES})  # a choice, checked when a config is read


@dataclass
class ImageConfig:
    """How a line image becomes frames (plain values, so it round-trips through YAML).

    height: rows after height normalisation, margins included.
    binarize: Otsu-binarise the ink (True) or keep contrast-normalised grey (False).
    slant_correction: shear the line upright before height normalisation.
    window, stride: a frame is `window` adjacent columns, flattened column after
        column; consecutive frames start `stride` columns apart (1, 1 = one column
        per frame, as in Graves et al. 2009).
    margin: blank pixels kept around the ink on every side (inside `height`
        vertically, added left and right), so the first and last strokes are not
        cut by the crop.
    ink: ``auto`` detects the polarity (paper is the majority of pixels), ``dark``
        is dark ink on light paper, ``light`` is light ink on dark paper.
    kind: always ``image``; it tells a config's feature section (and so a
        checkpoint) that the model reads images rather than audio.
    """

    # metadata: the bounds asr/config.py checks a config file's values against
    kind: str = "image"
    height: int = field(default=48, metadata={"min": 2})
    binarize: bool = False
    slant_correction: bool = True
    window: int = field(default=1, metadata={"min": 1})
    stride: int = field(default=1, metadata={"min": 1})
    margin: int = field(default=2, metadata={"min": 0})
    ink: Ink = Ink.auto

    def __post_init__(self) -> None:
        if self.kind != "image":
            raise UserError(f"image config: kind must be 'image', not {self.kind!r}")
        if self.window < 1 or self.stride < 1:
            raise UserError(f"image config: window ({self.window}) and stride ({self.stride}) must be >= 1")
        if self.margin < 0 or self.height < 2 * self.margin + 2:
            raise UserError(
                f"image config: height ({self.height}) must exceed twice the margin ({self.margin}) by at least 2 rows"
            )
        if self.ink not in INK_POLARITIES:
            raise UserError(f"image config: ink must be one of {', '.join(INK_POLARITIES)}, not {self.ink!r}")

    @property
    def dim(self) -> int:
        """Values per frame: ``height * window`` (column t's rows, then column t+1's, ...)."""
        return self.height * self.window


# ---------------------------------------------------------------- loading

def load_line_image(path: str | os.PathLike, ink: str = "auto") -> torch.Tensor:
    """Read a line image as a float32 (H, W) tensor in [0, 1] with ink = 1, paper = 0.

    Colour is converted to luminance (ITU-R 601); transparent pixels count as white
    paper; 16-bit images keep their precision. With ``ink="auto"`` the paper is
    taken to be the majority of pixels: if the median pixel is brighter than the
    middle of its darkest and brightest values, the ink is dark and the image is
    inverted (the extremes, not percentiles, because ink may cover under 1% of a line).
    """
    grey = _read_grey(path)
    if ink == "auto":
        ink = "dark" if np.median(grey) >= (grey.min() + grey.max()) / 2 else "light"
    if ink == "dark":
        grey = 1.0 - grey
    elif ink != "light":
        raise UserError(f"ink must be one of {', '.join(INK_POLARITIES)}, not {ink!r}")
    return torch.from_numpy(np.ascontiguousarray(grey, dtype=np.float32))


def _read_grey(path: str | os.PathLike) -> np.ndarray:
    """The image at `path` as float64 luminance in [0, 1] (1 = white), or a UserError."""
    fix = "Give a PNG, JPEG or TIFF text-line image"
    if not os.path.exists(path):
        raise file_error(path, "no such image file",
                         "Check the path (manifest paths are relative to the manifest's folder)")
    if os.path.isdir(path):
        raise file_error(path, "is a folder, not an image file", fix)
    if os.path.getsize(path) == 0:
        raise file_error(path, "is empty (0 bytes)", "Re-copy or re-extract the image")
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            grey = _to_grey(image)
    except UnidentifiedImageError:
        raise file_error(path, "is not an image Pillow can read", fix) from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise file_error(path, f"cannot be decoded ({error}); the file is corrupt or truncated",
                         "Re-copy or re-extract the image") from None
    if grey.size == 0:
        raise file_error(path, "has no pixels", fix)
    return grey


def _to_grey(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit grey (PNG/TIFF): scale by the 16-bit range, not by 8 bits.
        return np.asarray(image, dtype=np.float64).clip(0, 65535) / 65535.0
    if image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        return values / max(float(values.max()), 1.0)
    if image.mode in ("L", "1"):
        return np.asarray(image.convert("L"), dtype=np.float64) / 255.0
    # Colour, alpha and palette images: composite onto white paper, then luminance.
    rgba = image.convert("RGBA")
    paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(paper, rgba).convert("L"), dtype=np.float64) / 255.0


# ---------------------------------------------------------------- frames

def image_frames(path: str | os.PathLike, config: ImageConfig) -> torch.Tensor:
    """`line_frames(load_line_image(path), config)`: (T, config.dim) float32."""
    return line_frames(load_line_image(path, config.ink), config)


def line_frames(image: torch.Tensor, config: ImageConfig) -> torch.Tensor:
    """Frames of a line image (H, W) with ink = 1: a (T, config.dim) float32 tensor.

    The ink is normalised to [0, 1] (or binarised), cropped, deslanted, scaled to
    ``config.height`` rows keeping the aspect ratio (a line of width W and ink
    height h gives about ``W * (height - 2*margin) / h`` columns), padded by the
    margin, and cut into frames of ``window`` columns every ``stride`` columns.
    """
    if image.dim() != 2:
        raise ValueError(f"line_frames expects an (H, W) image, got shape {tuple(image.shape)}")
    ink = normalize_ink(image.to(torch.float32), config.binarize)
    ink = crop_to_ink(ink)
    if config.slant_correction and ink.any():
        ink = crop_to_ink(deslant(ink, estimate_slant(ink)))
    columns = scale_to_height(ink, config.height - 2 * config.margin)
    columns = F.pad(columns, (config.margin,) * 4)
    return columns_to_frames(columns, config.window, config.stride)


def otsu_threshold(values: torch.Tensor, bins: int = 256) -> float:
    """Otsu's (1979) threshold: the cut maximising the between-class variance."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return high
    counts = torch.histc(values.flatten().double(), bins=bins, min=low, max=high)
    centres = low + (torch.arange(bins, dtype=torch.float64) + 0.5) * (high - low) / bins
    weight_below = counts.cumsum(0)
    mass_below = (counts * centres).cumsum(0)
    total, total_mass = weight_below[-1], mass_below[-1]
    weight_above = total - weight_below
    mean_below = mass_below / weight_below.clamp(min=1)
    mean_above = (total_mass - mass_below) / weight_above.clamp(min=1)
    between = weight_below * weight_above * (mean_below - mean_above) ** 2
    cut = int(between[:-1].argmax())
    return low + (cut + 1) * (high - low) / bins


def normalize_ink(image: torch.Tensor, binarize: bool = False) -> torch.Tensor:
    """Paper -> 0 and ink -> 1 whatever the scan's contrast and brightness.

    Paper level = the median pixel (paper is the majority); ink level = the 90th
    percentile of the pixels above Otsu's threshold (so a few dark specks do not
    set the scale). With `binarize`, pixels above Otsu's threshold are 1, the rest 0.
    A blank image (no contrast) gives zeros.
    """
    threshold = otsu_threshold(image)
    above = image[image > threshold]
    if above.numel() == 0:
        return torch.zeros_like(image)
    if binarize:
        return (image > threshold).to(torch.float32)
    paper = image.flatten().median()
    ink_level = torch.quantile(above.double(), 0.9).float()
    if ink_level <= paper:
        return torch.zeros_like(image)
    return ((image - paper) / (ink_level - paper)).clamp(0.0, 1.0)


def crop_to_ink(ink: torch.Tensor, level: float = 0.5) -> torch.Tensor:
    """The smallest box holding every pixel above `level` (the whole image if none is)."""
    rows = (ink > level).any(dim=1).nonzero()
    cols = (ink > level).any(dim=0).nonzero()
    if rows.numel() == 0:
        return ink
    return ink[int(rows[0]) : int(rows[-1]) + 1, int(cols[0]) : int(cols[-1]) + 1]


def _shear_offset(height: int, shear):
    """The smallest x' = x + shear * (y - centre row) over an image (float or tensor shear)."""
    return -abs(shear) * (height - 1) / 2


def projection_sharpness(ink: torch.Tensor, shears: torch.Tensor, level: float = 0.5) -> torch.Tensor:
    """For each shear (= tan angle), the sum of squares of the sheared vertical projection.

    Shearing moves pixel (y, x) to column x + shear * (y - centre row). The ink
    mass is the same for every shear, so the score is the projection's variance
    up to a constant: upright strokes pile into few columns and make it large
    (Pastor et al. 2004). Only pixels above `level` count (faint paper noise would
    flatten every projection alike), each with its ink value, split between its
    two nearest columns so the score varies smoothly with the shear.
    """
    height, width = ink.shape
    ys, xs = (ink > level).nonzero(as_tuple=True)
    weight = ink[ys, xs]
    shears = shears.to(torch.float32).unsqueeze(1)
    x = xs + shears * (ys - (height - 1) / 2) - _shear_offset(height, shears)  # (angles, pixels), >= 0
    span = width + int(math.ceil(float(shears.abs().max()) * (height - 1))) + 2
    left = x.floor()
    frac = x - left
    index = left.long() + span * torch.arange(len(shears)).unsqueeze(1)
    profile = torch.zeros(len(shears) * span, dtype=torch.float64)
    profile.index_add_(0, index.flatten(), (weight * (1 - frac)).flatten().double())
    profile.index_add_(0, (index + 1).flatten(), (weight * frac).flatten().double())
    return (profile.view(len(shears), span) ** 2).sum(dim=1)


def estimate_slant(ink: torch.Tensor, max_degrees: float = 45.0, step_degrees: float = 1.0) -> float:
    """The slant of the writing in degrees: positive when strokes lean right (like italics).

    Keeps the angle in [-max_degrees, max_degrees] whose deslanting shear gives the
    sharpest vertical projection: first on a grid 3 steps apart, then every
    `step_degrees` around the best of those (on 200 synthetic lines this found
    the same angle as trying every step, at a quarter of the cost).
    Angles do not change with isotropic scaling, so tall images are measured at 48 rows.
    """
    if ink.shape[0] > 48:
        ink = scale_to_height(ink, 48)

    def best(angles: torch.Tensor) -> float:
        angles = angles[angles.abs() <= max_degrees + 1e-9]
        return float(angles[int(projection_sharpness(ink, torch.tan(torch.deg2rad(angles))).argmax())])

    coarse = 3 * step_degrees
    steps = int(max_degrees // coarse)
    centre = best(torch.arange(-steps, steps + 1, dtype=torch.float64) * coarse)
    return best(centre + torch.arange(-2, 3, dtype=torch.float64) * step_degrees)


def deslant(ink: torch.Tensor, degrees: float) -> torch.Tensor:
    """Shear the image so strokes slanted by `degrees` become upright; width grows to fit.

    A stroke leaning right rises to the right (rows grow downwards), so each row
    moves by ``tan(degrees) * (row - centre row)``: the top left, the bottom right.
    """
    if degrees == 0:
        return ink
    height, width = ink.shape
    shear = math.tan(math.radians(degrees))
    extra = abs(shear) * (height - 1)
    out_width = int(math.ceil(width + extra))
    # Output column x' samples input column x = x' + offset - shear * (y - centre).
    offset = _shear_offset(height, shear)
    ys = torch.arange(height, dtype=torch.float64).unsqueeze(1) - (height - 1) / 2
    src_x = torch.arange(out_width, dtype=torch.float64).unsqueeze(0) + offset - shear * ys
    src_y = torch.arange(height, dtype=torch.float64).unsqueeze(1).expand(height, out_width)
    grid = torch.stack(
        (2 * src_x / max(width - 1, 1) - 1, 2 * src_y / max(height - 1, 1) - 1), dim=-1
    ).float()
    sheared = F.grid_sample(ink[None, None], grid[None], mode="bilinear", padding_mode="zeros", align_corners=True)
    return sheared[0, 0]


def scale_to_height(ink: torch.Tensor, height: int) -> torch.Tensor:
    """Resize to `height` rows, width scaled by the same factor (at least 1 column)."""
    rows, cols = ink.shape
    width = max(1, int(round(cols * height / rows)))
    resized = F.interpolate(ink[None, None], size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return resized[0, 0].clamp(0.0, 1.0)


def columns_to_frames(image: torch.Tensor, window: int = 1, stride: int = 1) -> torch.Tensor:
    """(H, W) -> (T, H * window): frame t holds columns [t*stride, t*stride + window).

    The right edge is padded with blank columns so every column is in a frame:
    T = ceil((W - window) / stride) + 1 (and 1 when W <= window).
    """
    height, width = image.shape
    count = max(0, math.ceil((width - window) / stride)) + 1
    padded = F.pad(image, (0, (count - 1) * stride + window - width))
    windows = padded.t().unfold(0, window, stride)  # (T, H, window)
    return windows.transpose(1, 2).reshape(count, height * window).contiguous()
