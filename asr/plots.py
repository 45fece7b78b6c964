"""Figures people would rather see than read: training curves, and (in decoding)
an utterance's spectrogram with its label posteriors and decoded segments."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: training runs on machines without a display
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(figure, path: str | Path) -> None:
    """Save atomically, so a viewer never opens a half-written PNG."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp{path.suffix}")
    figure.savefig(temporary, dpi=110, bbox_inches="tight")
    plt.close(figure)
    os.replace(temporary, path)


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
