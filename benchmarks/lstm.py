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
    python benchmarks/lstm.py --device cuda --configs 3x250 3x512 --batch 1 16 64 [--ragged]

With --cell, "ours" is that cell (asr/lstm.py); the baseline is still nn.LSTM.

On CUDA, "ours" is the Triton loop with CUDA graphs (asr/_lstm/triton_loop.py), and two
more rows time the same model with graphs off (ASR_LSTM_CUDA_GRAPHS=0) and on the plain
torch loop (ASR_LSTM_KERNEL=torch); --variants chooses. Times there come from CUDA
events around each pass (which include the Python launching it). Both sides multiply float32 in
TF32 there by default, as torch's cuDNN LSTM does (PeepholeLSTM follows cuDNN's RNN switch,
asr.lstm.cudnn_rnn_uses_tf32); --fp32-precision ieee times both in full float32.

--precision bf16 times both under bf16 autocast (train.precision=bf16): ours multiplies its
large products in bf16 where the device has native bf16 and keeps the recurrence in float32;
nn.LSTM runs cuDNN's or oneDNN's bf16 LSTM (on a CPU oneDNN's needs AVX-512).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr._lstm.extension import CppKernel
from asr.lstm import CELLS, LOOP_CELLS, PeepholeLSTM, _kernel, cudnn_rnn_uses_tf32

CONFIGS = {  # name: (layers, hidden, bidirectional)
    "1x250": (1, 250, True),
    "3x250": (3, 250, True),
    "5x250": (5, 250, True),
    "3x421u": (3, 421, False),
    "3x512": (3, 512, True),
}
DEFAULT_CONFIGS = ["1x250", "3x250", "5x250", "3x421u"]
# name: the environment for "ours" (asr/lstm.py reads both variables at every call)
VARIANTS = {
    "ours": {},
    "ours-nographs": {"ASR_LSTM_CUDA_GRAPHS": "0"},
    "ours-torchloop": {"ASR_LSTM_KERNEL": "torch"},
}


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(run, device: torch.device) -> float:
    if device.type == "cuda":  # events on the stream: launch to completion of the pass
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000
    start_s = time.perf_counter()
    run()
    return time.perf_counter() - start_s


def _torch_runner(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor, ragged: bool):
    def run():
        if ragged:
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out = lstm(packed)[0]
            return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]
        return lstm(x)[0]
    return run


def _passes(model_run, x: torch.Tensor, env: dict[str, str] | None = None):
    """(forward without autograd, forward + backward) for one model, in environment `env`."""
    def forward():
        with torch.no_grad(), _environment(env or {}):
            model_run()

    def forward_backward():
        x.grad = None
        with _environment(env or {}):
            model_run().sum().backward()

    return forward, forward_backward


def bench(name: str, batch: int, args, device: torch.device) -> dict[str, dict[str, float]]:
    """{variant: figures} for each of args.variants, each against the same nn.LSTM runs."""
    layers, hidden, bidirectional = CONFIGS[name]
    torch.manual_seed(0)
    ours = PeepholeLSTM(123, hidden, layers, bidirectional, cell=args.cell).to(device)
    theirs = nn.LSTM(123, hidden, layers, bidirectional=bidirectional, batch_first=True).to(device)
    x = torch.randn(batch, args.frames, 123, device=device, requires_grad=True)
    if args.ragged:
        lengths = torch.randint(args.frames // 2, args.frames + 1, (batch,))
        lengths[0] = args.frames
    else:
        lengths = torch.full((batch,), args.frames)
    def in_precision(run):
        def run_in_precision():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
                return run()
        return run_in_precision

    runs = {variant: _passes(in_precision(lambda: ours(x, lengths)), x, VARIANTS[variant])
            for variant in args.variants}
    runs["nn.LSTM"] = _passes(in_precision(_torch_runner(theirs, x, lengths, args.ragged)), x)
    times = {(who, mode): [] for who in runs for mode in (0, 1)}
    for repeat in range(args.repeats + 1):  # the first round warms up (and captures graphs)
        for mode in (0, 1):
            for who, passes in runs.items():
                elapsed = _timed(passes[mode], device)
                if repeat:
                    times[who, mode].append(elapsed)
    results = {}
    for variant in args.variants:
        result = results[variant] = {}
        for mode, label in ((0, "fwd"), (1, "fwd+bwd")):
            ours_t, theirs_t = times[variant, mode], times["nn.LSTM", mode]
            result[f"{label} ours s"] = statistics.median(ours_t)
            result[f"{label} nn.LSTM s"] = statistics.median(theirs_t)
            result[f"{label} ratio"] = statistics.median(a / b for a, b in zip(ours_t, theirs_t))
            result[f"{label} best"] = min(ours_t) / min(theirs_t)
    return results


def _kernel_name(device: torch.device, cell: str) -> str:
    loop = _kernel(device)
    if cell not in LOOP_CELLS:
        return "torch's fused op"
    if isinstance(loop, CppKernel) and cell in loop.CELLS:
        return "C++"
    if getattr(loop, "__name__", "") == "asr._lstm.triton_loop":
        return "Triton" + (" + CUDA graphs" if loop.graphs_enabled(device) else "")
    return "torch ops"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, choices=list(CONFIGS))
    parser.add_argument("--frames", "-T", type=int, default=300)
    parser.add_argument("--batch", "-B", type=int, nargs="+", default=[16])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=None,
                        help="what 'ours' runs (default: ours; on CUDA all three)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--cell", default="peephole", choices=CELLS, help="the cell to time")
    parser.add_argument("--ragged", action="store_true",
                        help="unequal lengths in [T/2, T]; nn.LSTM then gets packed sequences")
    parser.add_argument("--fp32-precision", choices=["tf32", "ieee"],
                        help="CUDA: float32 products of both LSTMs in TF32 or full float32 "
                             "(torch.backends.cudnn.rnn.fp32_precision; default: torch's, TF32)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="bf16: both LSTMs under bf16 autocast (see above)")
    args = parser.parse_args(argv)
    if args.fp32_precision:
        torch.backends.cudnn.rnn.fp32_precision = args.fp32_precision
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.variants is None:
        args.variants = list(VARIANTS) if device.type == "cuda" and args.cell in LOOP_CELLS else ["ours"]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    if device.type == "cuda":
        where += ", float32 products in " + ("TF32" if cudnn_rnn_uses_tf32() else "full float32")
    print(f"torch {torch.__version__}, {device} ({where}), {args.precision}, cell {args.cell}, "
          f"ours = {_kernel_name(device, args.cell)}, T={args.frames}, "
          f"{'ragged' if args.ragged else 'equal lengths'}, "
          f"median of {args.repeats}, load average {os.getloadavg()[0]:.1f}")
    print("seconds are medians; ratio = median of the paired ratios ours / nn.LSTM; "
          "best = fastest ours / fastest nn.LSTM")
    header = f"{'ours s':>8} {'nn.LSTM s':>9} {'ratio':>6} {'best':>6}"
    print(f"{'':29} {'forward (no grad)':^32}   {'forward + backward':^32}")
    print(f"{'config':8} {'B':>4} {'ours':15} {header}   {header}")
    for name in args.configs:
        for batch in args.batch:
            for variant, r in bench(name, batch, args, device).items():
                cells = [f"{r[m + ' ours s']:8.4f} {r[m + ' nn.LSTM s']:9.4f} "
                         f"{r[m + ' ratio']:6.2f} {r[m + ' best']:6.2f}" for m in ("fwd", "fwd+bwd")]
                print(f"{name:8} {batch:4} {variant:15} {cells[0]}   {cells[1]}", flush=True)


if __name__ == "__main__":
    main()
