"""The cell study's grid: one hidden size per cell so that every network has the same number of
weights (within 2 %), and one config per (cell, seed) built from a recipe's config.

Greff et al. (2017) compared their variants at matched sizes; here the budget is the
weights of the recipe's own network (its cell, normally peephole, at its hidden size).
A cell with fewer gates gets a wider layer: a 3-gate cell (cifg, nfg, nog, gru) about
15 % wider than a 4-gate LSTM, the 1-gate rnn about twice as wide.

    python -m recipes.variants.sizes --config recipes/synth/small.yaml --data CORPUS \\
        --out ROOT/synth --seeds 1 2 3 [section.key=value ...]

writes ROOT/synth/CELL/seedN/study.yaml for every cell and seed, and ROOT/synth/sizes.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from asr._lstm.recurrence import GATES, PEEPHOLES
from asr.atomic import write_text
from asr.config import Config, ModelConfig, load_config, save_config
from asr.lstm import CELLS, FUSED_CELLS

TOLERANCE = 0.02  # the study's promise: every cell's weights within 2 % of the budget


def gates(cell: str) -> int:
    return len(GATES[cell]) if cell in GATES else FUSED_CELLS[cell][1]


def layer_weights(cell: str, inputs: int, hidden: int) -> int:
    """One direction of one layer, as asr/lstm.py allocates it: W_x, W_h and bias per gate,
    a peephole vector per sigmoid gate of the loop cells, and the GRU's extra b_hn."""
    count = gates(cell) * hidden * (inputs + hidden + 1)
    count += len(PEEPHOLES.get(cell, "")) * hidden
    return count + (hidden if cell == "gru" else 0)


def count_weights(model: ModelConfig, inputs: int, outputs: int, cell: str | None = None,
                  hidden: int | None = None) -> int:
    """The trainable weights of CTCModel(inputs, outputs, model), with `cell` / `hidden` swapped in."""
    cell, hidden = cell or model.cell, hidden or model.hidden_size
    directions = 2 if model.bidirectional else 1
    total = 0
    for layer in range(model.num_layers):
        layer_inputs = inputs if layer == 0 else directions * hidden
        total += directions * layer_weights(cell, layer_inputs, hidden)
    return total + (directions * hidden + 1) * outputs  # the linear output layer


def matched_hidden(model: ModelConfig, inputs: int, outputs: int, cell: str) -> int:
    """The hidden size whose weight count for `cell` lies nearest the budget (`model` as it is)."""
    budget = count_weights(model, inputs, outputs)
    hidden = 1
    # The count grows with the hidden size: walk up to the first size past the budget.
    while count_weights(model, inputs, outputs, cell, hidden + 1) <= budget:
        hidden += 1
    above = hidden + 1
    if abs(count_weights(model, inputs, outputs, cell, above) - budget) < abs(
            count_weights(model, inputs, outputs, cell, hidden) - budget):
        return above
    return hidden


def matched_sizes(model: ModelConfig, inputs: int, outputs: int, cells=CELLS) -> dict[str, dict]:
    """{cell: {"hidden_size", "weights", "ratio"}}: the ratio is the weights over the budget."""
    budget = count_weights(model, inputs, outputs)
    sizes = {}
    for cell in cells:
        hidden = matched_hidden(model, inputs, outputs, cell)
        weights = count_weights(model, inputs, outputs, cell, hidden)
        sizes[cell] = {"hidden_size": hidden, "weights": weights, "ratio": weights / budget}
    return sizes


def dimensions(config: Config, data: str) -> tuple[int, int]:
    """Input features and output labels (blank included) of the recipe's model on corpus `data`:
    a character set is the training texts' own, so the corpus is read (its texts, not its audio)."""
    from asr.corpora import open_corpus
    from asr.tokens import token_set

    name, texts = config.data.tokens, []
    if name in ("", "chars"):
        corpus = open_corpus(data)
        name = name or corpus.default_tokens
        texts = [u.text for u in corpus.read(config.data.train_split)]
    return config.features.dim, len(token_set(name, texts))


def write_grid(config: Config, data: str, out: Path, cells, seeds) -> dict[str, dict]:
    """One study.yaml per (cell, seed) under `out`, and out/sizes.json; the sizes."""
    inputs, outputs = dimensions(config, data)
    sizes = matched_sizes(config.model, inputs, outputs, cells)
    for cell, size in sizes.items():
        for seed in seeds:
            run = config.override([f"model.cell={cell}", f"model.hidden_size={size['hidden_size']}",
                                   f"train.seed={seed}"])
            save_config(run, out / cell / f"seed{seed}" / "study.yaml")
    # Merged with what an earlier pass wrote, so a study grown by more cells keeps the others' sizes.
    known = json.loads((out / "sizes.json").read_text())["cells"] if (out / "sizes.json").exists() else {}
    record = {"inputs": inputs, "outputs": outputs, "budget": count_weights(config.model, inputs, outputs),
              "cells": {**known, **sizes}}
    write_text(out / "sizes.json", json.dumps(record, indent=2) + "\n")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the recipe's config: its model sets the budget")
    parser.add_argument("--data", required=True, help="the corpus (its character set sizes the output layer)")
    parser.add_argument("--out", required=True, help="the task's folder in the study")
    parser.add_argument("--cells", nargs="+", default=list(CELLS), choices=CELLS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("overrides", nargs="*", metavar="section.key=value", help="applied before sizing")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.overrides)
    sizes = write_grid(config, args.data, Path(args.out), args.cells, args.seeds)
    for cell, size in sizes.items():
        print(f"{cell:9} hidden {size['hidden_size']:4d}  {size['weights']:9,d} weights ({size['ratio']:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
