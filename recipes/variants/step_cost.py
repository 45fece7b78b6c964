"""What one training step costs per cell at the study's matched weights, against the peephole cell:
forward + backward of the recipe's network on a batch of 16 x ~300 frames, the best of 3.

    python -m recipes.variants.step_cost [--threads 1] [--equal-lengths]

Real batches hold utterances of unequal lengths (grouped by length, not equal), which is the
default here (lengths 280-300 frames). The fused cells (vanilla, gru, rnn) ran torch's ops on
packed sequences then, several times slower on a CPU; they now run on padded batches
(asr/lstm.py, _fused_forward). The README's estimate of the study's time uses this.
"""

from __future__ import annotations

import argparse
import time

import torch

from asr.config import load_config
from asr.model import CTCModel
from recipes.variants.sizes import matched_sizes


def step_seconds(model: CTCModel, x: torch.Tensor, lengths: torch.Tensor, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        model(x, lengths).sum().backward()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="recipes/synth/small.yaml")
    parser.add_argument("--inputs", type=int, default=123)
    parser.add_argument("--outputs", type=int, default=62)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--equal-lengths", action="store_true", help="all 300 frames (no packing effect)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = load_config(args.config).model
    x = torch.randn(16, 300, args.inputs)
    lengths = torch.full((16,), 300) if args.equal_lengths else torch.randint(280, 301, (16,))
    lengths[0] = 300
    seconds = {}
    for cell, size in matched_sizes(base, args.inputs, args.outputs).items():
        config = base.__class__(**{**base.__dict__, "cell": cell, "hidden_size": size["hidden_size"]})
        seconds[cell] = step_seconds(CTCModel(args.inputs, args.outputs, config), x, lengths, args.repeats)
        print(f"{cell:9} hidden {size['hidden_size']:4d}  {seconds[cell]:.3f} s  "
              f"{seconds[cell] / seconds['peephole']:.2f}x peephole", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
