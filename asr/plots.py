"""Figures people would rather see than read: training curves, and (in decoding)
an utterance's spectrogram with its label posteriors and decoded segments."""

from __future__ import annotations

from pathlib import Path

import matplotlib

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


def plot_posteriors(transcriber, utterance, features, log_probs, hypothesis, path: str | Path) -> None:
    """An utterance's spectrogram (or line image), its per-frame label posteriors,
    and the decoded segments beneath, with the reference segments where the corpus has them."""
    import torch  # noqa: PLC0415

    from asr.evaluation import reference_text  # noqa: PLC0415 (evaluation imports this module lazily)

    tokens, config = transcriber.tokens, transcriber.config.features
    frames = len(log_probs)
    left, right = transcriber.frame_edge(0), transcriber.frame_edge(frames)
    unit = "columns" if transcriber.frontend.modality == "image" else "s"
    figure, (top, middle, bottom) = plt.subplots(3, 1, figsize=(max(8, min(24, frames / 25)), 7.5), sharex=True,
                                                 gridspec_kw={"height_ratios": [3, 2, 1.3]})
    # The first mel channels (no deltas), or a frame's first column of pixels (no window overlap).
    rows = {"fbank": getattr(config, "n_mels", 0), "image": getattr(config, "height", 0)}.get(config.kind)
    rows = rows or features.shape[1]
    picture = features[:, :rows].T.numpy()
    top.imshow(picture, aspect="auto", origin="lower" if unit == "s" else "upper", extent=(left, right, 0, rows),
               cmap="magma" if unit == "s" else "gray_r", interpolation="nearest")
    title = f"{utterance.id}\ndecoded: {tokens.to_text(hypothesis)}\nreference: {reference_text(tokens, utterance)}"
    top.set(ylabel="mel channel" if unit == "s" else "row")
    top.set_title(title, fontsize=9, loc="left")
    times = [transcriber.frame_edge(t + 0.5) for t in range(frames)]
    probabilities = log_probs.exp()
    middle.fill_between(times, probabilities[:, 0].numpy(), color="lightgray", label="blank", step="mid")
    for token in torch.nonzero(probabilities[:, 1:].max(0).values > 0.3).flatten().tolist():
        curve = probabilities[:, token + 1]
        middle.plot(times, curve.numpy(), linewidth=1)
        peak = int(curve.argmax())
        middle.text(times[peak], float(curve[peak]) + 0.03, tokens.symbols[token + 1], fontsize=7, ha="center")
    middle.set(ylabel="posterior", ylim=(0, 1.15))
    middle.legend(loc="upper right", fontsize=7)
    decoded = [(s.label if s.label != " " else "␣", s.start, s.end) for s in transcriber.segments(log_probs, hypothesis)]
    _segment_row(bottom, decoded, 1, "tab:blue")
    names = ["decoded"]
    if utterance.phones and unit == "s":
        rate = config.sample_rate
        _segment_row(bottom, [(p.label, p.start / rate, p.end / rate) for p in utterance.phones], 0, "tab:green")
        names = ["reference", "decoded"]
    bottom.set(yticks=range(2 - len(names), 2), yticklabels=names, ylim=(-0.6, 1.6), xlim=(left, right),
               xlabel=f"time ({unit})" if unit == "s" else "column")
    save_figure(figure, path)
