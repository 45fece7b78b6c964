"""PeepholeLSTM against nn.LSTM: forward and forward+backward time, as ratios.

Same shapes, same run, interleaved (ours, theirs, ours, theirs ...), medians of the
repeats. nn.LSTM runs on oneDNN (CPU) or cuDNN (GPU) over the padded batch when all
lengths are equal (the default), or over packed sequences with --ragged. Shapes are
Graves, Mohamed & Hinton 2013 (123 inputs): 1x250, 3x250, 5x250 bidirectional and
3x421 unidirectional.

    python benchmarks/lstm.py                      # CPU, T=300, B=16
    python benchmarks/lstm.py --device cuda --repeats 20
    python benchmarks/lstm.py --configs 3x250 --ragged --threads 2
    ASR_LSTM_KERNEL=torch python benchmarks/lstm.py   # the plain-torch time loop
    python benchmarks/lstm.py --configs 3x250 --threads 1 --cell cifg   # another cell

With --cell, "ours" is that cell (asr/lstm.py); the baseline is still nn.LSTM.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr._lstm.extension import CppKernel
from asr.lstm import CELLS, LOOP_CELLS, PeepholeLSTM, _kernel

CONFIGS = {  # name: (layers, hidden, bidirectional)
    "1x250": (1, 250, True),
    "3x250": (3, 250, True),
    "5x250": (5, 250, True),
    "3x421u": (3, 421, False),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(run, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    run()
    _sync(device)
    return time.perf_counter() - start


def _torch_runner(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor, ragged: bool):
    def run():
        if ragged:
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out = lstm(packed)[0]
            return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]
        return lstm(x)[0]
    return run


def _passes(model_run, x: torch.Tensor):
    """(forward without autograd, forward + backward) for one model."""
    def forward():
        with torch.no_grad():
            model_run()

    def forward_backward():
        x.grad = None
        model_run().sum().backward()

    return forward, forward_backward


def bench(name: str, args, device: torch.device) -> dict[str, float]:
    layers, hidden, bidirectional = CONFIGS[name]
    torch.manual_seed(0)
    ours = PeepholeLSTM(123, hidden, layers, bidirectional, cell=args.cell).to(device)
    theirs = nn.LSTM(123, hidden, layers, bidirectional=bidirectional, batch_first=True).to(device)
    x = torch.randn(args.batch, args.frames, 123, device=device, requires_grad=True)
    if args.ragged:
        lengths = torch.randint(args.frames // 2, args.frames + 1, (args.batch,))
        lengths[0] = args.frames
    else:
        lengths = torch.full((args.batch,), args.frames)
    runs = {
        "ours": _passes(lambda: ours(x, lengths), x),
        "nn.LSTM": _passes(_torch_runner(theirs, x, lengths, args.ragged), x),
    }
    times = {(who, mode): [] for who in runs for mode in (0, 1)}
    for repeat in range(args.repeats + 1):  # the first round warms up
        for mode in (0, 1):
            for who, passes in runs.items():
                elapsed = _timed(passes[mode], device)
                if repeat:
                    times[who, mode].append(elapsed)
    result = {}
    for mode, label in ((0, "fwd"), (1, "fwd+bwd")):
        ours_t, theirs_t = times["ours", mode], times["nn.LSTM", mode]
        result[f"{label} ours s"] = statistics.median(ours_t)
        result[f"{label} nn.LSTM s"] = statistics.median(theirs_t)
        result[f"{label} ratio"] = statistics.median(a / b for a, b in zip(ours_t, theirs_t))
        result[f"{label} best"] = min(ours_t) / min(theirs_t)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--frames", "-T", type=int, default=300)
    parser.add_argument("--batch", "-B", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--cell", default="peephole", choices=CELLS, help="the cell to time")
    parser.add_argument("--ragged", action="store_true",
                        help="unequal lengths in [T/2, T]; nn.LSTM then gets packed sequences")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    loop = _kernel(device)
    if args.cell not in LOOP_CELLS:
        kernel = "torch's fused op"
    elif isinstance(loop, CppKernel) and args.cell in loop.CELLS:
        kernel = "C++"
    else:
        kernel = "torch ops"
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, "
          f"cell {args.cell}, kernel {kernel}, "
          f"T={args.frames} B={args.batch} {'ragged' if args.ragged else 'equal lengths'}, "
          f"median of {args.repeats}, load average {os.getloadavg()[0]:.1f}")
    print("seconds are medians; ratio = median of the paired ratios ours / nn.LSTM; "
          "best = fastest ours / fastest nn.LSTM")
    header = f"{'ours s':>8} {'nn.LSTM s':>9} {'ratio':>6} {'best':>6}"
    print(f"{'':8} {'forward (no grad)':^32}   {'forward + backward':^32}")
    print(f"{'config':8} {header}   {header}")
    for name in args.configs:
        r = bench(name, args, device)
        cells = [f"{r[m + ' ours s']:8.3f} {r[m + ' nn.LSTM s']:9.3f} "
                 f"{r[m + ' ratio']:6.2f} {r[m + ' best']:6.2f}" for m in ("fwd", "fwd+bwd")]
        print(f"{name:8} {cells[0]}   {cells[1]}", flush=True)


if __name__ == "__main__":
    main()
