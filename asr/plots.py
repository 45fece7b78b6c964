"""Figures people would rather see than read: training curves, and (in decoding)
an utterance's spectrogram with its label posteriors and decoded segments.

The functions take plain data (arrays, (label, start, end) triples, strings), so
they need neither a model nor the evaluation code that computes what they show.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np

from asr.atomic import atomic_path

matplotlib.use("Agg")  # files only: training runs on machines without a display
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(figure, path: str | Path) -> None:
    """Save atomically, so a viewer never opens a half-written PNG."""
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=110, bbox_inches="tight")
    finally:
        plt.close(figure)


def plot_training_curves(history: list[dict], metric: str, path: str | Path) -> None:
    """Loss (train and dev) and the dev error rate per epoch; phase-2 epochs shaded."""
    epochs = [h["epoch"] for h in history]
    figure, (loss_axis, error_axis) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axis.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    if any(h.get("dev_loss") is not None for h in history):
        loss_axis.plot(epochs, [h.get("dev_loss") for h in history], "s-", label="dev")
    loss_axis.set(xlabel="epoch", ylabel="CTC loss per utterance (nats)", title="loss")
    loss_axis.set_yscale("log")
    loss_axis.legend()
    key = f"dev_{metric}"
    if any(h.get(key) is not None for h in history):
        error_axis.plot(epochs, [100 * h[key] if h.get(key) is not None else None for h in history], "o-",
                        color="tab:red")
        best = min(h[key] for h in history if h.get(key) is not None)
        error_axis.axhline(100 * best, color="gray", linestyle=":", label=f"best {100 * best:.1f}%")
        error_axis.legend()
    error_axis.set(xlabel="epoch", ylabel=f"dev {metric.upper()} (%)", title=f"dev {metric.upper()} (greedy)")
    for axis in (loss_axis, error_axis):
        noisy = [h["epoch"] for h in history if h.get("phase") == 2]
        if noisy:
            axis.axvspan(min(noisy) - 0.5, max(noisy) + 0.5, color="tab:orange", alpha=0.1, label="weight noise")
        axis.grid(alpha=0.3)
    save_figure(figure, path)


def _segment_row(axis, segments, y: float, colour: str) -> None:
    """Labelled boxes for (label, start, end) triples on row `y`."""
    for label, start, end in segments:
        axis.add_patch(plt.Rectangle((start, y - 0.4), end - start, 0.8, facecolor=colour, edgecolor="white",
                                     alpha=0.35))
        axis.text((start + end) / 2, y, label, ha="center", va="center", fontsize=7, clip_on=True)


def plot_posteriors(path: str | Path, *, title: str, picture: tuple, edges: np.ndarray, posteriors: np.ndarray,
                    symbols: Sequence[str], decoded: Sequence[tuple], reference: Sequence[tuple] = ()) -> None:
    """An input's picture (spectrogram or line image), its per-frame label posteriors, and
    the decoded segments beneath, with the reference segments where the corpus has them.

    picture: (pixels (rows, T), y label, origin of row 0 "lower"/"upper", colour map, x label).
    edges: the T + 1 frame edges in the input's unit (frame t spans edges[t] to edges[t + 1]).
    posteriors: (T, V) label probabilities, blank first; symbols: the V label names.
    decoded, reference: (label, start, end) triples in the input's unit.
    """
    pixels, ylabel, origin, cmap, xlabel = picture
    frames = len(posteriors)
    left, right = float(edges[0]), float(edges[-1])
    times = (np.asarray(edges[:-1]) + np.asarray(edges[1:])) / 2
    figure, (top, middle, bottom) = plt.subplots(3, 1, figsize=(max(8, min(24, frames / 25)), 7.5), sharex=True,
                                                 gridspec_kw={"height_ratios": [3, 2, 1.3]})
    top.imshow(pixels, aspect="auto", origin=origin, extent=(left, right, 0, len(pixels)), cmap=cmap,
               interpolation="nearest")
    top.set(ylabel=ylabel)
    top.set_title(title, fontsize=9, loc="left")
    middle.fill_between(times, posteriors[:, 0], color="lightgray", label="blank", step="mid")
    for token in np.flatnonzero(posteriors[:, 1:].max(0) > 0.3) + 1:
        curve = posteriors[:, token]
        middle.plot(times, curve, linewidth=1)
        peak = int(curve.argmax())
        middle.text(times[peak], float(curve[peak]) + 0.03, symbols[token], fontsize=7, ha="center")
    middle.set(ylabel="posterior", ylim=(0, 1.15))
    middle.legend(loc="upper right", fontsize=7)
    _segment_row(bottom, [(label if label != " " else "␣", start, end) for label, start, end in decoded], 1,
                 "tab:blue")
    names = ["decoded"]
    if reference:
        _segment_row(bottom, reference, 0, "tab:green")
        names = ["reference", "decoded"]
    bottom.set(yticks=range(2 - len(names), 2), yticklabels=names, ylim=(-0.6, 1.6), xlim=(left, right),
               xlabel=xlabel)
    save_figure(figure, path)


def plot_reliability(bins: list[dict], path: str | Path, title: str = "word confidence") -> None:
    """A reliability diagram (Guo et al. 2017, fig. 1): accuracy against confidence per bin of
    `asr.metrics.reliability_bins`, the diagonal for perfect calibration, and the counts beneath."""
    figure, (axis, counts) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = bins[0]["high"] - bins[0]["low"] if bins else 0.1
    filled = [row for row in bins if row["count"]]
    axis.bar([row["low"] for row in filled], [row["accuracy"] for row in filled], width=width, align="edge",
             edgecolor="black", alpha=0.7, label="accuracy")
    axis.plot([row["confidence"] for row in filled], [row["accuracy"] for row in filled], "o", color="tab:red",
              label="(mean confidence, accuracy)")
    axis.plot([0, 1], [0, 1], ":", color="gray", label="perfect calibration")
    axis.set(ylabel="share of words correct", title=title, xlim=(0, 1), ylim=(0, 1))
    axis.legend(loc="upper left")
    counts.bar([row["low"] for row in bins], [row["count"] for row in bins], width=width, align="edge",
               edgecolor="black", color="gray")
    counts.set(xlabel="confidence", ylabel="words")
    save_figure(figure, path)
