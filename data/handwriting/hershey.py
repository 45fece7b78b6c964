"""Hershey's single-stroke glyphs: each character as the pen trajectories that draw it.

A. V. Hershey's vector fonts (U.S. National Bureau of Standards, 1967), in James
Hurt's ``.jhf`` format, as Debian's ``hershey-fonts-data`` ships them. A glyph
record is: a 5-character number, a 3-character count of coordinate pairs, then
the pairs, each two characters whose code minus ord('R') is the coordinate
(x right, y down); the first pair is the glyph's left and right edge and
" R" lifts the pen. A record longer than 72 characters goes on over the next
lines. The files used here hold the 95 printable ASCII characters in order, from
the space (32) to '~' (126).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from asr.errors import UserError

HERSHEY_DIR = Path("/usr/share/hershey-fonts")
HERSHEY_PACKAGE = "hershey-fonts-data"
# The single-stroke ("simplex") faces: two print hands and two cursive ones.
STROKE_FONTS = ("futural", "rowmans", "scripts", "cursive")

Stroke = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Glyph:
    """One character: its left and right edges and its strokes, in Hershey units (y down)."""

    left: float
    right: float
    strokes: tuple[Stroke, ...]


def parse_jhf(text: str) -> list[Glyph]:
    """The glyphs of a ``.jhf`` file, in file order."""
    glyphs, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        record = lines[i]
        i += 1
        if not record.strip():
            continue
        length = 8 + 2 * int(record[5:8])
        while len(record) < length and i < len(lines):  # a long record goes on over the next lines
            record += lines[i]
            i += 1
        glyphs.append(_glyph(record[8:length]))
    return glyphs


def _glyph(pairs: str) -> Glyph:
    """A glyph from its coordinate pairs (the first is its left and right edge)."""
    values = [ord(c) - ord("R") for c in pairs]
    strokes, current = [], []
    for k in range(2, len(values), 2):
        if pairs[k : k + 2] == " R":  # pen up
            if current:
                strokes.append(tuple(current))
            current = []
        else:
            current.append((float(values[k]), float(values[k + 1])))
    if current:
        strokes.append(tuple(current))
    return Glyph(float(values[0]), float(values[1]), tuple(strokes))


@functools.cache
def load_font(name: str) -> dict[str, Glyph]:
    """Font `name` (one of `STROKE_FONTS`) as {character: glyph}; a UserError if it is not installed."""
    path = HERSHEY_DIR / f"{name}.jhf"
    if not path.is_file():
        raise UserError(f"{path}: no Hershey stroke font here, which the stroke writers need. Install it with: "
                        f"apt-get install {HERSHEY_PACKAGE} (or use --stroke-writers 0)")
    glyphs = parse_jhf(path.read_text(encoding="ascii"))
    return {chr(32 + k): glyph for k, glyph in enumerate(glyphs[:95])}


@functools.cache
def x_metrics(name: str) -> tuple[float, float]:
    """The baseline and the x-height of font `name`, in its units: from the glyph 'x'."""
    ys = [y for stroke in load_font(name)["x"].strokes for _, y in stroke]
    return max(ys), max(ys) - min(ys)
