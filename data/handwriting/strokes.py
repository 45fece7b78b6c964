"""Stroke writers: lines drawn as pen trajectories (Hershey's glyphs), each writer with a hand of its own.

Fonts give one writer each; a stroke writer is a seed. Its `StrokeStyle`
(drawn from the seed alone, so a writer is the same on every form and in every
corpus) picks a Hershey face (print or cursive) and the writer's habits: slant,
letter width, letter and word spacing, how far the baseline drifts, pen width
and how much the pressure varies, and how much each letter wanders from the
model (size, tilt, position, a smooth wobble of the pen). Every line also draws
its own variation from its random stream, so no two lines are alike.

The trajectories are drawn with PIL at `SUPERSAMPLE` times the size and shrunk
(anti-aliased lines), each segment with the width and darkness of the pressure
along the stroke, round at the joints; the ink then goes through the same
distortion and paper as the fonts' (`data.handwriting.distortion`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from data.handwriting.distortion import distort
from data.handwriting.hershey import STROKE_FONTS, Glyph, load_font, x_metrics
from data.handwriting.plan import Pen

PREFIX = "strokes:"  # a pen's `font` for stroke writer k is "strokes:k"
SUPERSAMPLE = 4
STYLE_SALT = 0x5EED5  # keeps writer seeds' streams apart from the corpus seeds'


@dataclass(frozen=True)
class StrokeStyle:
    """A stroke writer's hand; lengths in x-heights."""

    font: str  # one of hershey.STROKE_FONTS
    slant: float  # degrees, positive leans right
    width: float  # horizontal scale of the letters
    letter_gap: float  # added between letters (cursive faces keep it small, or letters come apart)
    word_gap: float
    drift: float  # amplitude of the baseline's slow wave
    pen: float  # pen width
    pressure: float  # how much pen width and darkness vary along a stroke, 0..1
    jitter: float  # per-letter variation in size, tilt and position, 0..1
    wobble: float  # amplitude of the smooth wobble of the pen


def pen_font(seed: int) -> str:
    return f"{PREFIX}{seed}"


def is_stroke_pen(pen: Pen) -> bool:
    return pen.font.startswith(PREFIX)


@functools.cache
def stroke_style(seed: int) -> StrokeStyle:
    """Writer `seed`'s hand, a function of the seed alone."""
    rng = np.random.default_rng([STYLE_SALT, seed])
    font = STROKE_FONTS[int(rng.integers(len(STROKE_FONTS)))]
    cursive = font in ("scripts", "cursive")
    return StrokeStyle(
        font=font,
        slant=float(np.clip(rng.normal(6, 9), -12, 28)),
        width=float(rng.uniform(0.8, 1.25)),
        letter_gap=float(rng.uniform(-0.03, 0.03) if cursive else rng.uniform(0.0, 0.12)),
        word_gap=float(rng.uniform(0.5, 1.2)),
        drift=float(rng.uniform(0.0, 0.2)),
        pen=float(rng.uniform(0.07, 0.16)),
        pressure=float(rng.uniform(0.0, 0.6)),
        jitter=float(rng.uniform(0.0, 1.0)),
        wobble=float(rng.uniform(0.01, 0.08)),
    )


def render_stroke_ink(text: str, pen: Pen, rng: np.random.Generator) -> np.ndarray:
    """The line's ink as a float image in [0, 1] (1 = ink), before paper and noise, like
    `render.render_ink` for fonts: the writer is the pen's stroke writer."""
    style = stroke_style(int(pen.font[len(PREFIX):]))
    strokes = layout(text, style, pen.x_height, rng)
    width = int(max(x for s in strokes for x, _ in s) + 4 * pen.x_height)
    room = 1.2 * pen.x_height + 0.03 * width  # for the wobble, the tilt and the elastic distortion
    height = int(3.2 * pen.x_height + 2 * room)
    offset = (2 * pen.x_height, room + 1.6 * pen.x_height)  # baseline under ascenders and capitals
    ink = draw(strokes, (width, height), offset, style.pen * pen.x_height, style.pressure, rng)
    return distort(ink, pen, rng)


def layout(text: str, style: StrokeStyle, x_height: float, rng: np.random.Generator) -> list[np.ndarray]:
    """The line's strokes as (n, 2) arrays of pixel points, baseline at y = 0 (y down), from x = 0."""
    glyphs = load_font(style.font)
    baseline, font_x = x_metrics(style.font)
    scale = x_height / font_x
    amplitude, period = style.drift * x_height * rng.uniform(0.3, 1), x_height * rng.uniform(8, 25)
    phase = rng.uniform(0, 2 * math.pi)
    strokes, x = [], 0.0
    for char in text:
        if char == " ":
            x += style.word_gap * x_height * rng.uniform(0.75, 1.35)
            continue
        glyph = glyphs[char]
        size = scale * (1 + 0.1 * style.jitter * rng.standard_normal())
        y = amplitude * math.sin(2 * math.pi * x / period + phase) + 0.08 * style.jitter * x_height * rng.normal()
        strokes += _letter(glyph, x, y, size, style, baseline, rng)
        x += ((glyph.right - glyph.left) * style.width + rng.normal(0, 0.5) * style.jitter) * size
        x += style.letter_gap * x_height
    return _wobble(strokes, style.wobble * x_height, x_height, rng)


def _letter(glyph: Glyph, x: float, y: float, size: float, style: StrokeStyle, baseline: float,
            rng: np.random.Generator) -> list[np.ndarray]:
    """One letter's strokes in pixels: scaled, widened, tilted a little about its foot, placed at (x, y)."""
    tilt = math.radians(5 * style.jitter * rng.standard_normal())
    rotation = np.array([[math.cos(tilt), -math.sin(tilt)], [math.sin(tilt), math.cos(tilt)]])
    placed = []
    for stroke in glyph.strokes:
        points = (np.array(stroke) - (glyph.left, baseline)) * (style.width * size, size)
        placed.append(points @ rotation.T + (x, y))
    return placed


def _wobble(strokes: list[np.ndarray], amplitude: float, x_height: float,
            rng: np.random.Generator) -> list[np.ndarray]:
    """Every point moved by a smooth field (a few random plane waves a couple of x-heights long):
    the hand's tremor, the same for strokes that touch, so joins stay joined."""
    if amplitude <= 0:
        return strokes
    waves = [(rng.normal(0, 1, 2) / (x_height * rng.uniform(1, 3)), rng.uniform(0, 2 * math.pi)) for _ in range(6)]

    def field(points: np.ndarray, axis: int) -> np.ndarray:
        return sum(np.sin(points @ k + phase + axis) for k, phase in waves[axis::2]) / 3

    return [s + amplitude * np.stack([field(s, 0), field(s, 1)], axis=1) for s in strokes]


def draw(strokes: list[np.ndarray], size: tuple[int, int], offset: tuple[float, float], pen_width: float,
         pressure: float, rng: np.random.Generator) -> np.ndarray:
    """The strokes drawn at `SUPERSAMPLE` times and shrunk: a float image in [0, 1] of `size` (w, h)."""
    big = Image.new("L", (size[0] * SUPERSAMPLE, size[1] * SUPERSAMPLE), 0)
    canvas = ImageDraw.Draw(big)
    for stroke in strokes:
        points = (stroke + offset) * SUPERSAMPLE
        # the pressure: a slow random wave along the stroke, thinning and lightening the line together
        t = np.arange(len(points))
        force = 1 - pressure * 0.5 * (1 + np.sin(t * rng.uniform(0.1, 0.6) + rng.uniform(0, 2 * math.pi)))
        for k in range(len(points)):
            radius = max(0.5, pen_width * SUPERSAMPLE * (0.55 + 0.45 * force[k]) / 2)
            shade = int(255 * (0.6 + 0.4 * force[k]))
            (x0, y0) = points[k]
            canvas.ellipse((x0 - radius, y0 - radius, x0 + radius, y0 + radius), fill=shade)  # round joints
            if k + 1 < len(points):
                canvas.line([tuple(points[k]), tuple(points[k + 1])], fill=shade, width=max(1, round(2 * radius)))
    small = big.resize(size, Image.BOX)  # the mean of each SUPERSAMPLE^2 block: anti-aliased edges
    return np.asarray(small, dtype=np.float32) / 255
