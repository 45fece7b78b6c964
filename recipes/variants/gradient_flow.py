"""The gradient flow, seen: how strongly a trained model's output at one frame still depends on the
input k frames earlier, for k up to hundreds of frames, one curve per model on one log-scale plot.

    python -m recipes.variants.gradient_flow --checkpoint ROOT/synth/rnn/seed1 \\
        --checkpoint ROOT/synth/nfg/seed1 --checkpoint ROOT/synth/peephole/seed1 \\
        --checkpoint ROOT/synth/gru/seed1 --data ROOT/corpora/synth-timit --out gradient-flow.png
    python -m recipes.variants.gradient_flow --checkpoint RUN --data CORPUS --out RUN/gradient-flow.json
    python -m recipes.variants.gradient_flow --curves A/gradient-flow.json B/gradient-flow.json --out both.png

An --out ending in .json writes only the curves (run.sh keeps one per run, in git, so that the
plot can be drawn again without the weights); --curves draws stored curves.

What is measured. For an utterance of T frames, s = the sum of the output log-probabilities
(all labels, blank included) at its last frame, t = T - 1; the curve at lag k is the norm of
ds / dx_{t-k}, the gradient with respect to the input features k frames back, averaged (the
arithmetic mean) over the longest utterances of the split that reach that far back.

Why that scalar and not the CTC loss: the CTC loss sums over every output frame, so its
gradient at x_{t-k} mixes all distances; one output frame makes k a distance. Why the sum of
log-probabilities: it needs no label (so no alignment) and is one backward pass per utterance.

Bidirectional models: this is the forward direction's view. Output frame t reaches back to
input t - k only through k forward steps of recurrence (in the first layer's forward
direction, or in a later layer's after the first layer's backward direction); the backward
directions look at frames after t. So the curve shows how far back the model remembers, which
is what vanishing gradients (Hochreiter 1991; Bengio et al. 1994) limit and the constant error
carousel of the LSTM cell (Hochreiter & Schmidhuber 1997) is for.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from asr.atomic import write_text
from asr.plots import plt, save_figure


def title(what: str = "the longest test utterances") -> str:
    return f"gradient flow: the output's dependence on earlier inputs ({what})"


def gradient_by_lag(model: torch.nn.Module, features: list[torch.Tensor], max_lag: int) -> np.ndarray:
    """Mean over `features` (each (T, D)) of ||ds/dx_{T-1-k}|| for k = 0..max_lag, s the sum of the
    log-probabilities at the last frame; NaN at lags no utterance reaches."""
    model.train()  # torch's fused RNN and GRU backward only in training mode; the model has no dropout
    sums, counts = np.zeros(max_lag + 1), np.zeros(max_lag + 1)
    for feats in features:
        x = feats[None].detach().clone().requires_grad_(True)
        frames = x.shape[1]
        log_probs = model(x, torch.tensor([frames]))
        log_probs[0, frames - 1].sum().backward()
        by_lag = x.grad[0].norm(dim=1).flip(0)[: max_lag + 1].double().numpy()  # lag k = frame T - 1 - k
        sums[: len(by_lag)] += by_lag
        counts[: len(by_lag)] += 1
    with np.errstate(invalid="ignore"):
        return sums / counts


def longest_features(config, data: str, split: str, count: int) -> list[torch.Tensor]:
    """The features (as the checkpoint's front end computes them) of the `count` longest
    utterances of the split: the long ones are those that reach hundreds of frames back."""
    from asr.corpora import open_corpus
    from asr.dataset import compute_features
    from asr.frontend import frontend_for

    utterances = open_corpus(data).read(split)
    features, _ = compute_features(utterances, frontend_for(config.features), desc=f"{split} features")
    features = sorted((f for f in features if f is not None and len(f)), key=len, reverse=True)
    return features[:count]


def label(path: str, config) -> str:
    return f"{config.model.cell} ({Path(path).name if Path(path).is_file() else Path(path).as_posix()})"


def plot_curves(curves: dict[str, np.ndarray], path: Path, title: str) -> None:
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        axis.semilogy(np.arange(len(curve)), curve, label=name)
    axis.set(xlabel="k: frames back from the output frame t (the last one)",
             ylabel=r"mean $\|\partial s_t / \partial x_{t-k}\|$", title=title)
    axis.grid(alpha=0.3, which="both")  # a curve ends where float32 underflows to 0 (about 1e-38)
    axis.legend(fontsize=8)
    save_figure(figure, path)


def measure(checkpoints: list[str], data: str, split: str, utterances: int, max_lag: int) -> dict[str, np.ndarray]:
    from asr.checkpoint import load_model

    torch.manual_seed(0)
    curves = {}
    for path in checkpoints:
        model, config, _ = load_model(path)
        curve = gradient_by_lag(model, longest_features(config, data, split, utterances), max_lag)
        curves[label(path, config)] = curve
        print(f"{label(path, config)}: lag 0 {curve[0]:.3g}, lag 100 {curve[min(100, max_lag)]:.3g}, "
              f"lag {max_lag} {curve[-1]:.3g}")
    return curves


def read_curves(paths: list[Path]) -> dict[str, np.ndarray]:
    """Curves stored by --out X.json (JSON null, a lag no utterance reached, back to NaN)."""
    curves = {}
    for path in paths:
        for name, values in json.loads(Path(path).read_text()).items():
            curves[name] = np.array([np.nan if v is None else v for v in values], dtype=float)
    return curves


def write_curves(curves: dict[str, np.ndarray], path: Path) -> None:
    data = {name: [None if np.isnan(v) else float(v) for v in curve] for name, curve in curves.items()}
    write_text(path, json.dumps(data) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", action="append", help="a run folder or checkpoint; repeat")
    source.add_argument("--curves", nargs="+", type=Path, help="curves stored by an earlier --out X.json: draw them")
    parser.add_argument("--data", help="the corpus the models read (with --checkpoint)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--utterances", type=int, default=50, help="the split's longest N (default 50)")
    parser.add_argument("--max-lag", type=int, default=400, help="frames back (default 400)")
    parser.add_argument("--out", type=Path, required=True,
                        help="the plot (PNG; the curves go beside it as JSON), or X.json: the curves alone")
    args = parser.parse_args(argv)
    if args.checkpoint and not args.data:
        parser.error("--checkpoint needs --data, the corpus the models read")
    if args.curves:
        curves = read_curves(args.curves)
    else:
        curves = measure(args.checkpoint, args.data, args.split, args.utterances, args.max_lag)
    write_curves(curves, args.out.with_suffix(".json"))
    if args.out.suffix != ".json":
        plot_curves(curves, args.out, title() if args.curves else title(f"{args.split}, {args.utterances} longest"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
