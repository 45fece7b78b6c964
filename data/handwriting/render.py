"""One line of text in a pen: the words in ink on a canvas with room to distort, then on paper.

The font is sized so that its 'x' is the pen's x-height (fonts differ a lot at
the same point size). Words are placed one by one, with the pen's spacing and a
baseline that wanders (a slow wave plus a jitter per word), then thinned or
thickened for the pen's stroke weight; `data.handwriting.distortion` does the
rest.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from data.handwriting.distortion import distort, on_paper
from data.handwriting.plan import LineSpec, Pen
from data.handwriting.strokes import is_stroke_pen, render_stroke_ink
from data.handwriting.text import CHARACTERS


@functools.cache
def font_metrics(path: str) -> tuple[float, float, float]:
    """Per point of font size: the height of 'x', and how far any of our characters
    reach above and below the baseline (fonts differ a lot)."""
    font = ImageFont.truetype(path, 100)
    _, x_top, _, x_bottom = font.getbbox("x", anchor="ls")
    _, top, _, bottom = font.getbbox("".join(sorted(CHARACTERS)), anchor="ls")
    return max(x_bottom - x_top, 1) / 100, max(-top, 0) / 100, max(bottom, 0) / 100


@functools.lru_cache(maxsize=256)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def sized_font(path: str, x_height: float) -> ImageFont.FreeTypeFont:
    """The font at the size where its 'x' is about `x_height` pixels tall."""
    return _font(path, max(8, round(x_height / font_metrics(path)[0])))


def render_line(spec: LineSpec) -> np.ndarray:
    """The line image of `spec` (uint8 grey, dark ink on light paper); same spec, same pixels."""
    rng = np.random.default_rng(spec.seed)
    ink = render_stroke_ink if is_stroke_pen(spec.pen) else render_ink
    return on_paper(ink(spec.text, spec.pen, rng), spec.pen, rng)


def render_ink(text: str, pen: Pen, rng: np.random.Generator) -> np.ndarray:
    """The line's ink as a float image in [0, 1] (1 = ink), before paper and noise."""
    font = sized_font(pen.font, pen.x_height)
    size = font.size
    space = pen.x_height * pen.spacing  # not the font's space: some fonts barely have one
    words = text.split(" ")
    widths = [font.getlength(w) for w in words]
    width = int(sum(widths) + space * 1.5 * len(words) + 4 * size)
    # Room above and below the strokes for the wobble, the tilt and the elastic distortion.
    _, ascent, descent = font_metrics(pen.font)
    room = 0.5 * size + 0.03 * width
    baseline = ascent * size + room
    canvas = Image.new("L", (width, int(baseline + descent * size + room)), 0)
    _write_words(ImageDraw.Draw(canvas), words, widths, font, baseline, space, rng)
    ink = _stroke_weight(np.asarray(canvas, dtype=np.float32) / 255, pen.stroke)
    return distort(ink, pen, rng)


def _write_words(draw, words, widths, font, baseline: float, space: float, rng: np.random.Generator) -> None:
    """Draw the words left to right on a wandering baseline: a slow wave plus a jitter per word."""
    size = font.size
    amplitude = rng.uniform(0, 0.12) * size
    period, phase = rng.uniform(6, 20) * size, rng.uniform(0, 2 * math.pi)
    x = 2.0 * size
    for word, advance in zip(words, widths):
        y = baseline + amplitude * math.sin(2 * math.pi * x / period + phase) + rng.normal(0, 0.03) * size
        draw.text((x, y), word, font=font, fill=255, anchor="ls")
        x += advance + space * rng.uniform(0.75, 1.35)


def _stroke_weight(ink: np.ndarray, stroke: int) -> np.ndarray:
    """`ink` thinned (stroke < 0) or thickened (stroke > 0) by a pixel."""
    if stroke < 0:
        thinner = ndimage.grey_erosion(ink, size=(2, 2))
        return thinner if thinner.sum() > 0.5 * ink.sum() else ink  # thin fonts would break up
    if stroke > 0:
        return ndimage.grey_dilation(ink, size=(2, 2))
    return ink
