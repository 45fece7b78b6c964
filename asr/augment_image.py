"""Training-time augmentation of text-line images, on the fly and seeded, as asr/augment.py is for audio.

The image is the front end's ``(H, W)`` float ink image (ink = 1, paper = 0,
`asr.image.load_line_image`); every effect is a small pure function of it and
its drawn parameters and keeps it 2-D in [0, 1]. `ImageAugmenter` draws the
parameters from the utterance's generator (`asr.augment.utterance_generator`:
the same for a (seed, epoch, line) whatever ran before) and chains the effects an
`AugmentConfig`'s ``image_*`` keys turn on, in this order (the order a line goes
through from the writer's hand to the scanner and the segmenter):

- shear: the slant of the writing changes by an angle drawn in
  [-image_shear_max, image_shear_max] degrees (`asr.image.deslant`'s shear).
- elastic distortion (Simard, Steinkraus & Platt 2003, "Best practices for
  convolutional neural networks applied to visual document analysis"): every
  pixel moves by a field of uniform noise smoothed by a Gaussian of
  ``image_elastic_sigma`` ink heights, scaled to a peak of up to
  ``image_elastic_alpha`` ink heights. Like the generator's, the field is made on
  a coarse grid and resized up: the same smoothness for a fraction of the cost.
- stroke width: grey dilation (thicker pen) or erosion (thinner) by 1 to
  ``image_stroke_max`` pixels; an erosion that would remove half the ink is
  skipped (thin strokes would break up and letters vanish).
- blur: a Gaussian of sigma up to ``image_blur_max`` pixels (focus, a worn pen).
- texture: uneven ink (its darkness falls by up to ``image_texture_max`` in
  smooth patches) on stained, grainy paper (smooth stains and pixel noise).
- JPEG: a PIL JPEG round trip at a quality drawn in
  [image_jpeg_quality_min, image_jpeg_quality_max] (block artefacts, ringing).
- crop at the edges: each of the four sides is cut up to ``image_crop_max`` ink
  heights into the ink's bounding box (a line segmenter that clipped ascenders,
  descenders or a sliver of the first or last letter); last, so the other effects
  do not pad the cut back.

Lengths are in ink heights (the bounding box of the pixels above Otsu's threshold) so that a
setting means the same at any scan resolution. The front end's normalisation
(contrast, crop to the ink, deslant, height) runs after, as on clean lines.
Cost: ``benchmarks/augment_image.py``.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

from asr.augment import _happens, _integer, _uniform
from asr.config import AugmentConfig
from asr.image import deslant, otsu_threshold
from asr.threads import one_thread


def ink_box(image: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the ink, ends excluded; the whole image if there is none.

    Ink is what lies above Otsu's threshold, as the front end's normalisation has it: a fixed level
    would lose faint ink (a scan's ink can be 0.4 on paper at 0.1) and make the box too small."""
    ink = image > otsu_threshold(image)
    rows, cols = ink.any(dim=1).nonzero(), ink.any(dim=0).nonzero()
    if rows.numel() == 0:
        return 0, image.shape[0], 0, image.shape[1]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def ink_height(image: torch.Tensor) -> int:
    top, bottom, _, _ = ink_box(image)
    return bottom - top


def shear(image: torch.Tensor, degrees: float) -> torch.Tensor:
    """Strokes leaning `degrees` further right (left if negative); the width grows to fit."""
    return deslant(image, -degrees)


def smooth_field(shape: tuple[int, int], sigma: float, rng: torch.Generator) -> torch.Tensor:
    """Uniform noise smoothed by a Gaussian of `sigma` pixels, peak 1: made on a grid sigma/2 times
    coarser and resized up bilinearly."""
    step = max(1, int(sigma // 2))
    coarse = torch.rand(shape[0] // step + 2, shape[1] // step + 2, generator=rng) * 2 - 1
    smooth = torch.from_numpy(ndimage.gaussian_filter(coarse.numpy(), sigma / step))
    field = F.interpolate(smooth[None, None], size=shape, mode="bilinear", align_corners=False)[0, 0]
    return field / field.abs().max().clamp(min=1e-6)


def elastic(image: torch.Tensor, alpha: float, sigma: float, rng: torch.Generator) -> torch.Tensor:
    """Simard et al.'s elastic distortion: pixel (y, x) reads the image at (y + alpha dy, x + alpha dx),
    where dy, dx are `smooth_field`s of `sigma` pixels; alpha in pixels. Same shape."""
    height, width = image.shape
    dy, dx = (alpha * smooth_field((height, width), sigma, rng) for _ in range(2))
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    # grid_sample's coordinates run from -1 to 1 across the image
    grid = torch.stack((2 * (xs + dx) / max(width - 1, 1) - 1, 2 * (ys + dy) / max(height - 1, 1) - 1), dim=-1)
    return F.grid_sample(image[None, None], grid[None], mode="bilinear", padding_mode="zeros",
                         align_corners=True)[0, 0]


def stroke_width(image: torch.Tensor, pixels: int) -> torch.Tensor:
    """Grey dilation (pixels > 0: thicker strokes) or erosion (< 0: thinner) by |pixels|; same shape.
    An erosion that would take half the ink is not done (thin strokes break up)."""
    size = abs(pixels) + 1
    padded = F.pad(image[None, None], (size // 2, (size - 1) // 2) * 2, value=0.0)
    if pixels > 0:
        return F.max_pool2d(padded, size, stride=1)[0, 0]
    thinner = -F.max_pool2d(-padded, size, stride=1)[0, 0]
    return thinner if thinner.sum() > 0.5 * image.sum() else image


def blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.from_numpy(ndimage.gaussian_filter(image.numpy(), sigma))


def texture(image: torch.Tensor, strength: float, rng: torch.Generator, scale: float) -> torch.Tensor:
    """Uneven ink and stained, grainy paper: the ink loses up to `strength` of its darkness in smooth
    patches about `scale` pixels wide, the paper gets stains up to strength/2 and pixel noise."""
    fade = (smooth_field(image.shape, scale, rng) + 1) / 2  # 0..1
    stains = (smooth_field(image.shape, 2 * scale, rng) + 1) / 2
    grain = torch.randn(image.shape, generator=rng) * (0.15 * strength)
    return (image * (1 - strength * fade) + (1 - image) * (0.5 * strength * stains) + grain).clamp(0, 1)


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """A JPEG round trip at `quality` (PIL), of the image as dark ink on white paper."""
    grey = ((1 - image.clamp(0, 1)) * 255 + 0.5).to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(grey, mode="L").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    decoded = np.asarray(Image.open(buffer).convert("L"), dtype=np.float32)
    return torch.from_numpy(1 - decoded / 255)


def crop(image: torch.Tensor, top: float, bottom: float, left: float, right: float) -> torch.Tensor:
    """The image cut `top`, `bottom`, `left`, `right` ink heights into the ink's bounding box
    (the paper beyond it goes too), at least 2 x 2 pixels left."""
    height = ink_height(image)
    y0, y1, x0, x1 = ink_box(image)
    cut = [math.floor(f * height) for f in (top, bottom, left, right)]
    y0, y1 = y0 + cut[0], max(y1 - cut[1], y0 + cut[0] + 2)
    x0, x1 = x0 + cut[2], max(x1 - cut[3], x0 + cut[2] + 2)
    return image[y0:y1, x0:x1]


class ImageAugmenter:
    """An `AugmentConfig`'s image effects applied to line images, parameters drawn from each line's
    generator. Same interface as `asr.augment.Augmenter` for `asr.dataset`: `input` on what the
    front end reads (`Frontend.source`), `features` on its frames (nothing to do for images)."""

    input_enabled = True
    features_enabled = False
    description = "image effects"

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config

    def input(self, image: torch.Tensor, rng: torch.Generator, others=None) -> torch.Tensor:
        """One line's ``(H, W)`` ink image through the effects the config turns on."""
        with one_thread():  # small operations: see asr.threads
            return self._input(image, rng)

    def _input(self, image: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        c = self.config
        image = image.to(torch.float32)
        height = max(ink_height(image), 2)
        if _happens(rng, c.image_shear_prob):
            image = shear(image, _uniform(rng, -c.image_shear_max, c.image_shear_max))
        if _happens(rng, c.image_elastic_prob):
            alpha = _uniform(rng, 0, c.image_elastic_alpha) * height
            image = elastic(image, alpha, c.image_elastic_sigma * height, rng)
        if _happens(rng, c.image_stroke_prob):
            pixels = 1 + _integer(rng, c.image_stroke_max - 1)
            image = stroke_width(image, pixels if _happens(rng, 0.5) else -pixels)
        if _happens(rng, c.image_blur_prob):
            image = blur(image, _uniform(rng, 0.2, 1) * c.image_blur_max)
        if _happens(rng, c.image_texture_prob):
            image = texture(image, _uniform(rng, 0.3, 1) * c.image_texture_max, rng, 0.5 * height)
        if _happens(rng, c.image_jpeg_prob):
            image = jpeg(image, c.image_jpeg_quality_min + _integer(rng, c.image_jpeg_quality_max
                                                                    - c.image_jpeg_quality_min))
        if _happens(rng, c.image_crop_prob):
            image = crop(image, *(_uniform(rng, 0, c.image_crop_max) for _ in range(4)))
        return image

    def features(self, features: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        return features
