"""Ink made to look written and scanned: slant, tilt and elastic distortion, then paper.

The elastic distortion is that of Simard, Steinkraus & Platt 2003 ("Best
practices for convolutional neural networks applied to visual document
analysis"): a displacement field of Gaussian-smoothed uniform noise. Slant,
tilt and the field are applied in one resampling. The paper has a smooth
texture, pixel noise and a slight blur; the ink's darkness is the pen's.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image
from scipy import ndimage

from data.handwriting.plan import Pen


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-smoothed uniform noise scaled to a peak of 1, made on a grid `sigma/2`
    times coarser and resized up bilinearly (the same smoothness for a fraction of the cost)."""
    step = max(1, int(sigma // 2))
    coarse = rng.uniform(-1, 1, (shape[0] // step + 2, shape[1] // step + 2)).astype(np.float32)
    smooth = Image.fromarray(ndimage.gaussian_filter(coarse, sigma / step), mode="F")
    field = np.asarray(smooth.resize((shape[1], shape[0]), Image.BILINEAR))
    return field / max(float(np.abs(field).max()), 1e-6)


def distort(ink: np.ndarray, pen: Pen, rng: np.random.Generator) -> np.ndarray:
    """Slant, a slight tilt and an elastic distortion, in one resampling.

    Output pixel (y, x) reads the input at (y + tilt * x + dy, x + shear * (y - centre) + dx),
    where (dx, dy) is smoothed random noise scaled to a fraction of the x-height.
    """
    height, width = ink.shape
    shear = math.tan(math.radians(pen.slant + rng.normal(0, 2)))
    tilt = math.tan(math.radians(rng.normal(0, 0.7)))
    sigma, alpha = pen.x_height * rng.uniform(0.4, 0.8), pen.x_height * rng.uniform(0.0, 0.12)
    pad = int(abs(shear) * height) + 1
    ys, xs = np.mgrid[0:height, -pad : width + pad].astype(np.float32)
    fields = [alpha * smooth_noise(rng, ys.shape, sigma) for _ in range(2)]
    src_y = ys + tilt * (xs - width / 2) + fields[0]
    src_x = xs + shear * (ys - height / 2) + fields[1]
    return ndimage.map_coordinates(ink, [src_y, src_x], order=1, mode="constant", cval=0.0)


def on_paper(ink: np.ndarray, pen: Pen, rng: np.random.Generator) -> np.ndarray:
    """Crop the ink with a ragged margin and lay it on textured, noisy paper: uint8 grey."""
    rows, cols = np.nonzero(ink > 0.1)
    margins = rng.integers(3, 16, size=4)
    top, bottom = max(rows.min() - margins[0], 0), min(rows.max() + margins[1] + 1, ink.shape[0])
    left, right = max(cols.min() - margins[2], 0), min(cols.max() + margins[3] + 1, ink.shape[1])
    ink = ink[top:bottom, left:right]
    texture = rng.uniform(0, 0.04) * smooth_noise(rng, ink.shape, rng.uniform(3, 12))
    paper = pen.paper + texture + rng.normal(0, rng.uniform(0, 0.03), ink.shape)
    grey = paper - ink * pen.ink * rng.uniform(0.9, 1.0)
    grey = ndimage.gaussian_filter(grey, rng.uniform(0.2, 0.9))
    return (np.clip(grey, 0, 1) * 255 + 0.5).astype(np.uint8)
