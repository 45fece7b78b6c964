"""Every line of the corpus, drawn from the seed: its form, writer, text and pen.

A form (page) is written by one writer with one pen (`Pen`: font variant, size,
slant, stroke weight, ink, paper, word spacing) and holds 4 to 10 lines. Each
line carries its own random stream (`LineSpec.seed`), so a line's pixels depend
on the plan alone, never on which process draws it: a seed gives the same
corpus whatever the number of processes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from asr.errors import UserError
from data.handwriting.text import ROLES


@dataclass(frozen=True)
class Pen:
    """How one form (page) is written: the same for all its lines."""

    font: str  # a font file, or a stroke writer (`strokes.pen_font`)
    x_height: float  # pixels
    slant: float  # degrees, positive leans right
    stroke: int  # -1 thinner, 0 as drawn, 1 bolder (fonts; a stroke writer has its own pen width)
    ink: float  # darkness of the ink, 0..1
    paper: float  # brightness of the paper, 0..1
    spacing: float  # gap between words, in x-heights


@dataclass(frozen=True)
class LineSpec:
    """One line to write: IAM id (``s03-012-04``), split, writer number, text, pen and random stream."""

    id: str
    split: str
    writer: str
    text: str
    pen: Pen
    seed: tuple[int, int]


def plan_corpus(
    pools: dict[str, list[str]], hands, lines: int, seed: int, dev_fraction: float, test_fraction: float
) -> list[LineSpec]:
    """Every line to write: its id, split, writer, text and pen, drawn from `seed`.

    `pools` holds each split's sentences (`text.sentence_pools`), `hands` the
    installed writers (`hands.installed_hands`); the fractions set how many
    lines dev and test get.
    """
    rng = np.random.default_rng(seed)
    counts = {"dev": max(1, round(lines * dev_fraction)), "test": max(1, round(lines * test_fraction))}
    counts["train"] = lines - counts["dev"] - counts["test"]
    specs: list[LineSpec] = []
    for role in ROLES:
        pool, writers = pools[role], [h for h in hands if h[1].role == role]
        if counts[role] and not pool:
            raise UserError(f"no sentences fall in the {role} split: use more sentence sources or a larger fraction")
        specs += _plan_split(role, pool, writers, counts[role], seed, len(specs), rng)
    return specs


def _plan_split(role: str, pool: list[str], writers, count: int, seed: int, first: int, rng) -> list[LineSpec]:
    """`count` lines of one split, its writers taking turns form by form; `first` numbers the line streams."""
    order = rng.permutation(len(pool)) if pool else []
    forms_written = {number: 0 for number, _, _ in writers}
    specs: list[LineSpec] = []
    while len(specs) < count:
        number, hand, fonts = writers[sum(forms_written.values()) % len(writers)]
        form = f"s{number:02d}-{forms_written[number]:03d}"
        forms_written[number] += 1
        pen = draw_pen(rng, fonts)
        if hand.style is not None:  # a stroke writer slants as it always does, give or take a little
            pen = replace(pen, slant=hand.style.slant + float(rng.normal(0, 2)))
        for k in range(min(int(rng.integers(4, 11)), count - len(specs))):
            sentence = pool[order[len(specs) % len(pool)]]
            if rng.random() < 0.5:
                sentence = sentence[0].upper() + sentence[1:]
            text = line_text(sentence, int(rng.integers(18, 70)), rng)
            specs.append(LineSpec(f"{form}-{k:02d}", role, f"{number:03d}", text, pen, (seed, first + len(specs))))
    return specs


def draw_pen(rng: np.random.Generator, fonts: tuple[str, ...]) -> Pen:
    """A pen for one form, in one of the writer's `fonts`."""
    return Pen(
        font=fonts[int(rng.integers(len(fonts)))],
        x_height=float(rng.uniform(14, 24)),
        slant=float(np.clip(rng.normal(4, 8), -15, 25)),
        stroke=int(rng.choice([-1, 0, 0, 1])),
        ink=float(rng.uniform(0.55, 0.95)),
        paper=float(rng.uniform(0.82, 1.0)),
        spacing=float(rng.uniform(0.6, 1.3)),
    )


def line_text(sentence: str, target: int, rng: np.random.Generator) -> str:
    """A line of about `target` characters: the sentence, or a run of its words."""
    words = sentence.split()
    if len(sentence) <= 1.3 * target:
        return sentence
    start = end = int(rng.integers(len(words)))
    while end < len(words) and len(" ".join(words[start:end])) < target:
        end += 1
    while start > 0 and len(" ".join(words[start:end])) < target:
        start -= 1
    return " ".join(words[start:end])
