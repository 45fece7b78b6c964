"""Generate the whole corpus: plan it, render the lines in parallel, write the index files.

Rerunning with the same settings resumes: finished images are kept and only
their statistics are read back. Other settings into the same folder need
``overwrite`` (`tree.prepare_folder`). Every line draws from its own random
stream (`plan.LineSpec.seed`), so a seed gives byte-identical files whatever
``jobs`` is.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from asr.corpora.iam import line_image_path
from asr.errors import UserError
from data.handwriting.hands import installed_hands
from data.handwriting.plan import LineSpec, plan_corpus
from data.handwriting.render import render_line
from data.handwriting.text import SOURCES, sentence_pools
from data.handwriting.tree import Stats, line_stats, prepare_folder, write_index, write_png

GENERATOR_VERSION = 2  # 2: more fonts, stroke writers


def generate(
    out: str | os.PathLike,
    lines: int = 2000,
    seed: int = 0,
    jobs: int | None = None,
    sources: tuple[str, ...] = ("wordnet", "bible"),
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    overwrite: bool = False,
    progress: bool = True,
    stroke_writers: int = 24,
) -> list[LineSpec]:
    """Write a synthetic IAM-layout corpus of `lines` text lines into `out`; return its plan."""
    _check_arguments(lines, sources, dev_fraction, test_fraction)
    out = Path(out)
    hands = installed_hands(stroke_writers)
    pools = sentence_pools(tuple(sources), dev_fraction, test_fraction)
    specs = plan_corpus(pools, hands, lines, seed, dev_fraction, test_fraction)
    settings = {
        "version": GENERATOR_VERSION, "lines": lines, "seed": seed, "sources": list(sources),
        "dev_fraction": dev_fraction, "test_fraction": test_fraction, "stroke_writers": stroke_writers,
        "fonts": sorted(f for _, _, fonts in hands for f in fonts),
    }
    prepare_folder(out, settings, overwrite)
    work = [(spec, str(line_image_path(out, spec.id))) for spec in specs]
    # Workers even for --jobs 1: each runs torch on one thread, whatever the caller's setting.
    processes = max(1, jobs or os.cpu_count() or 1)
    with multiprocessing.get_context("fork").Pool(processes, initializer=_init_worker) as pool:
        results = pool.imap(write_line, work, chunksize=4)
        stats = list(tqdm(results, total=len(work), desc="writing lines", unit="line", disable=not progress))
    write_index(out, specs, stats, hands)
    return specs


def _check_arguments(lines: int, sources: tuple[str, ...], dev_fraction: float, test_fraction: float) -> None:
    if lines < 3 or not (0 < dev_fraction and 0 < test_fraction and dev_fraction + test_fraction < 1):
        raise UserError("need --lines >= 3 and dev and test fractions > 0 that leave lines for training")
    unknown = set(sources) - set(SOURCES)
    if unknown or not sources:
        raise UserError(f"unknown sentence source(s) {sorted(unknown)}: use {', '.join(SOURCES)}")


def write_line(job: tuple[LineSpec, str]) -> Stats:
    """Render one line to its PNG (kept if it exists: resuming) and return its stats."""
    spec, path = job
    if os.path.exists(path):
        grey = np.asarray(Image.open(path).convert("L"))
    else:
        grey = render_line(spec)
        write_png(path, grey)
    return line_stats(grey)


def _init_worker() -> None:
    torch.set_num_threads(1)  # the pool already uses every core
