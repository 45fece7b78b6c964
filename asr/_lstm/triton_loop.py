"""The time loop of the peephole LSTM family on CUDA: cuBLAS for the recurrent product,
one fused Triton kernel for everything else in a step, replayed as a CUDA graph.

Same contract as asr/_lstm/recurrence.py (its docstring): ``forward(xg, bias, w_hh,
peep, lengths, cell) -> [h, c, act]`` and ``backward(grad_h, w_hh, peep, c, act,
lengths, cell) -> dz``, for all five of its cells, in float32 and float64. The input
projections and the weight gradients stay outside, as large GEMMs in asr/lstm.py.

Per step, both directions at once (dirs is the batch dimension of the products):

- forward: ONE ``baddbmm_`` adds W_h h_{t-1} to x_t + b in ``act[s]``, giving the
  pre-activations of every gate; ONE Triton kernel then reads them with c_{t-1}, adds the
  peepholes, applies the nonlinearities and writes the gate activations (over the
  pre-activations, in place), c_t and h_t;
- backward: ONE ``baddbmm`` gives dh = grad_h + dz_{next} W_h; ONE Triton kernel
  turns dh, the carried dc, c_t, c_{t-1} and the saved activations into dz for all
  gates and the new dc.

That is two launches per step where the plain torch loop has a dozen or more, and the
GEMM stays on cuBLAS (a persistent kernel holding W_h on chip might beat it at small
batches, at the price of much more code). Two launches per step are still launch-bound
at small batches, so the whole loop is captured once in a CUDA graph per shape (see
`_Graphs`) and replayed: a 300-step layer becomes one graph launch.

The frames are gathered into processing order with recurrence.py's own
`_to_steps`/`_to_frames`. With graphs, the number of steps is rounded up to a multiple of
`STEP_BUCKET` so that batches of slightly different lengths share one graph; as in the
torch loop, steps past a sequence's end compute on zero inputs, get zero errors, and
are dropped when scattering back, so the extra steps change nothing.

``ASR_LSTM_CUDA_GRAPHS=0`` runs the same steps without graphs (benchmarks/lstm.py
measures both). Under ``TRITON_INTERPRET=1`` the kernels run in Triton's interpreter,
also on CPU tensors: that is how tests/test_triton_lstm.py checks them without a GPU.
This module imports triton at the top; asr.lstm imports it only when it is chosen.
"""

from __future__ import annotations

import collections
import os

import torch
import triton
import triton.language as tl

from asr._lstm.recurrence import CELLS, GATES, PEEPHOLES, _check_cell, _to_frames, _to_steps

BLOCK = 256  # elements of (dirs, B, H) per program
STEP_BUCKET = 32  # steps are rounded up to a multiple of this (shares graphs between batches)
SIZES = ["n", "B", "H"]  # one compiled kernel for all sizes, rather than one per size class
# Shapes whose buffers and graphs are kept, least recently used dropped first: at most this
# many, of at most this many bytes of buffers in all (the newest is always kept). Many small
# shapes fit (batch 1: ~25 step buckets for TIMIT's lengths, ~20 MB each at H = 250).
GRAPH_CACHE = 32
GRAPH_CACHE_BYTES = 2 << 30


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def graphs_enabled(device: torch.device) -> bool:
    return (device.type == "cuda" and not interpreted()
            and os.environ.get("ASR_LSTM_CUDA_GRAPHS", "1") != "0"
            and not torch.cuda.is_current_stream_capturing())  # a caller's own capture: run plainly


@triton.jit
def _sigmoid(x):
    e = tl.exp(-tl.abs(x))  # never overflows
    return tl.where(x >= 0, 1 / (1 + e), e / (1 + e))


@triton.jit
def _tanh(x):
    e = tl.exp(-2 * tl.abs(x))
    t = (1 - e) / (1 + e)
    return tl.where(x >= 0, t, -t)


@triton.jit(do_not_specialize=SIZES)
def _cell_forward(act, c_prev, c_out, h_out, peep, n, B, H,
                  HAS_F: tl.constexpr, CIFG: tl.constexpr, HAS_O: tl.constexpr, NOAF: tl.constexpr,
                  NG: tl.constexpr, NP: tl.constexpr, G_SLOT: tl.constexpr, O_SLOT: tl.constexpr,
                  PO_SLOT: tl.constexpr, BLOCK: tl.constexpr):
    """One step for n = dirs * B * H units. act (dirs, B, NG * H) holds the pre-activations
    (bias and W_h h_{t-1} included) and gets the activations; c_prev, c_out, h_out (dirs, B, H);
    peep (dirs, NP, H). Gate slots: i, [f], g, [o]; peephole slots: i, [f], [o]."""
    k = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = k < n
    j = k % H
    row = k // H  # d * B + b
    z = row * (NG * H) + j  # gate slot q of this unit: z + q * H
    p = (row // B) * (NP * H) + j  # peephole slot q: p + q * H
    c0 = tl.load(c_prev + k, mask=mask)
    i = _sigmoid(tl.load(act + z, mask=mask) + tl.load(peep + p, mask=mask) * c0)
    tl.store(act + z, i, mask=mask)
    g = _tanh(tl.load(act + z + G_SLOT * H, mask=mask))
    tl.store(act + z + G_SLOT * H, g, mask=mask)
    if HAS_F:
        f = _sigmoid(tl.load(act + z + H, mask=mask) + tl.load(peep + p + H, mask=mask) * c0)
        tl.store(act + z + H, f, mask=mask)
        kept = f * c0
    elif CIFG:
        kept = (1 - i) * c0
    else:  # nfg
        kept = c0
    c = kept + i * g
    tl.store(c_out + k, c, mask=mask)
    if NOAF:
        out = c
    else:
        out = _tanh(c)
    if HAS_O:
        o = _sigmoid(tl.load(act + z + O_SLOT * H, mask=mask)
                     + tl.load(peep + p + PO_SLOT * H, mask=mask) * c)
        tl.store(act + z + O_SLOT * H, o, mask=mask)
        out = o * out
    tl.store(h_out + k, out, mask=mask)


@triton.jit(do_not_specialize=SIZES)
def _cell_backward(dh, dc, c, c_prev, act, dz, peep, n, B, H,
                   HAS_F: tl.constexpr, CIFG: tl.constexpr, HAS_O: tl.constexpr, NOAF: tl.constexpr,
                   NG: tl.constexpr, NP: tl.constexpr, G_SLOT: tl.constexpr, O_SLOT: tl.constexpr,
                   PO_SLOT: tl.constexpr, BLOCK: tl.constexpr):
    """One step backwards: dh (dh_t, the output's error plus the next step's), dc (carried,
    updated in place), c, c_prev (dirs, B, H); act, dz (dirs, B, NG * H); as recurrence.backward."""
    k = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = k < n
    j = k % H
    row = k // H
    z = row * (NG * H) + j
    p = (row // B) * (NP * H) + j
    d_h = tl.load(dh + k, mask=mask)
    d_c = tl.load(dc + k, mask=mask)
    c_t = tl.load(c + k, mask=mask)
    c0 = tl.load(c_prev + k, mask=mask)
    i = tl.load(act + z, mask=mask)
    g = tl.load(act + z + G_SLOT * H, mask=mask)
    p_i = tl.load(peep + p, mask=mask)
    if NOAF:  # h = o * out(c)
        out = c_t
        d_out = 1.0
    else:
        out = _tanh(c_t)
        d_out = 1 - out * out
    if HAS_O:
        o = tl.load(act + z + O_SLOT * H, mask=mask)
        d_o = d_h * out * o * (1 - o)
        tl.store(dz + z + O_SLOT * H, d_o, mask=mask)
        d_c = d_c + d_h * o * d_out + d_o * tl.load(peep + p + PO_SLOT * H, mask=mask)
    else:
        d_c = d_c + d_h * d_out
    if CIFG:  # c = (1 - i) c_prev + i g
        d_i = d_c * (g - c0) * i * (1 - i)
    else:
        d_i = d_c * g * i * (1 - i)
    tl.store(dz + z, d_i, mask=mask)
    tl.store(dz + z + G_SLOT * H, d_c * i * (1 - g * g), mask=mask)
    if HAS_F:
        f = tl.load(act + z + H, mask=mask)
        d_f = d_c * c0 * f * (1 - f)
        tl.store(dz + z + H, d_f, mask=mask)
        d_c = d_c * f + d_i * p_i + d_f * tl.load(peep + p + H, mask=mask)
    elif CIFG:
        d_c = d_c * (1 - i) + d_i * p_i
    else:  # nfg
        d_c = d_c + d_i * p_i
    tl.store(dc + k, d_c, mask=mask)


def _flags(cell: str) -> dict:
    """The kernels' compile-time arguments: which gates the cell has and where their rows are
    (an absent gate's slot is unused)."""
    gates, peeps = _check_cell(cell), PEEPHOLES[cell]
    return dict(HAS_F="f" in gates, CIFG=cell == "cifg", HAS_O="o" in gates, NOAF=cell == "noaf",
                NG=len(gates), NP=len(peeps), G_SLOT=gates.index("g"), O_SLOT=gates.find("o"),
                PO_SLOT=peeps.find("o"), BLOCK=BLOCK)


class _Loop:
    """The static buffers of one shape and the two step loops over them. Step s reads slot s
    of h and c and writes slot s + 1 (slot 0 stays zero: the state before the first frame);
    dz has one zero slot past the last step, the error from after the end."""

    def __init__(self, dirs, B, H, steps, dtype, device, cell):
        self.cell, self.flags, self.device = cell, _flags(cell), device
        G = self.flags["NG"] * H
        self.n, self.B, self.H, self.steps = dirs * B * H, B, H, steps
        self.grid = (triton.cdiv(self.n, BLOCK),)

        def zeros(*shape):
            return torch.zeros(*shape, dtype=dtype, device=device)

        self.w_t, self.w = zeros(dirs, H, G), zeros(dirs, G, H)  # W_h^T (forward), W_h (backward)
        self.peep = zeros(dirs, self.flags["NP"], H)
        self.act = zeros(steps, dirs, B, G)  # forward: x_t + b, then the pre-activations, then gates
        self.h, self.c = zeros(steps + 1, dirs, B, H), zeros(steps + 1, dirs, B, H)
        self.grad, self.dz = zeros(steps, dirs, B, H), zeros(steps + 1, dirs, B, G)
        self.dh, self.dc = zeros(dirs, B, H), zeros(dirs, B, H)
        self.bytes = sum(t.numel() * t.element_size() for t in vars(self).values() if torch.is_tensor(t))

    def forward_step(self, s):
        self.act[s].baddbmm_(self.h[s], self.w_t)
        _cell_forward[self.grid](self.act[s], self.c[s], self.c[s + 1], self.h[s + 1], self.peep,
                                 self.n, self.B, self.H, **self.flags)

    def backward_step(self, s):
        torch.baddbmm(self.grad[s], self.dz[s + 1], self.w, out=self.dh)
        _cell_backward[self.grid](self.dh, self.dc, self.c[s + 1], self.c[s], self.act[s], self.dz[s],
                                  self.peep, self.n, self.B, self.H, **self.flags)

    def forward_loop(self):
        for s in range(self.steps):
            self.forward_step(s)

    def backward_loop(self):
        self.dc.zero_()
        for s in reversed(range(self.steps)):
            self.backward_step(s)


class _Graphs:
    """The loops of one _Loop captured as CUDA graphs. The first time, a loop runs uncaptured,
    on a side stream as torch asks, and its results are the call's; then it is captured (a
    capture runs nothing) for the calls after. That first run has Triton compile every
    specialisation it needs (one per alignment of the steps' slices) and sets cuBLAS up, so
    the capture sees launches only. Replays must not depend on what the first run leaves in
    the buffers: the forward loop overwrites its pre-activations (act) with the gates."""

    def __init__(self, loop: _Loop):
        self.loop, self.graphs = loop, {}

    def run(self, name: str):
        if name in self.graphs:
            self.graphs[name].replay()
        else:
            self.graphs[name] = self._run_and_capture(getattr(self.loop, name))

    def _run_and_capture(self, loop) -> torch.cuda.CUDAGraph:
        with torch.cuda.device(self.loop.device):  # streams and graph on the tensors' GPU
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                loop()
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # thread_local: the backward pass captures on autograd's device thread
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                loop()
        return graph


_cache: collections.OrderedDict = collections.OrderedDict()  # key -> _Graphs, least recent first


def _loop(dirs, B, H, steps, dtype, device, cell) -> tuple[_Loop, _Graphs | None]:
    """A fresh _Loop, or with graphs the cached one of this shape."""
    if not graphs_enabled(device):
        return _Loop(dirs, B, H, steps, dtype, device, cell), None
    shape = (dirs, B, H, steps, dtype, device, cell)
    key = (*shape, torch.get_float32_matmul_precision())  # a graph keeps the precision it was captured with
    if key not in _cache:
        with torch.inference_mode(False):  # buffers that later calls, in any mode, may update
            _cache[key] = _Graphs(_Loop(*shape))
    _cache.move_to_end(key)
    while len(_cache) > 1 and (len(_cache) > GRAPH_CACHE
                               or sum(g.loop.bytes for g in _cache.values()) > GRAPH_CACHE_BYTES):
        _cache.popitem(last=False)
    return _cache[key].loop, _cache[key]


def _steps(lengths: torch.Tensor, device: torch.device) -> int:
    """The longest length, rounded up to a multiple of STEP_BUCKET where graphs are cached."""
    steps = int(lengths.max()) if lengths.numel() else 0
    bucket = STEP_BUCKET if graphs_enabled(device) else 1
    return -(-steps // bucket) * bucket


def forward(xg: torch.Tensor, bias: torch.Tensor, w_hh: torch.Tensor, peep: torch.Tensor,
            lengths: torch.Tensor, cell: str = "peephole"):
    _check_cell(cell)
    B, T, dirs, G = xg.shape
    H = w_hh.shape[2]
    lengths = lengths.to(xg.device)
    steps = _steps(lengths, lengths.device)
    if steps == 0:
        zeros = xg.new_zeros(B, T, dirs, H)
        return [zeros, zeros.clone(), xg.new_zeros(B, T, dirs, G)]
    loop, graphs = _loop(dirs, B, H, steps, xg.dtype, xg.device, cell)
    torch.add(_to_steps(xg, lengths, steps), bias[:, None, :], out=loop.act)
    loop.w_t.copy_(w_hh.transpose(1, 2))
    loop.peep.copy_(peep)
    if graphs is None:
        loop.forward_loop()
    else:
        graphs.run("forward_loop")
    # _to_frames gathers into new tensors, so the static buffers may be reused at once
    return [_to_frames(y, lengths, T) for y in (loop.h[1:], loop.c[1:], loop.act)]


def backward(grad_h: torch.Tensor, w_hh: torch.Tensor, peep: torch.Tensor, c: torch.Tensor,
             act: torch.Tensor, lengths: torch.Tensor, cell: str = "peephole") -> torch.Tensor:
    _check_cell(cell)
    B, T, dirs, H = c.shape
    lengths = lengths.to(c.device)
    steps = _steps(lengths, lengths.device)
    if steps == 0:
        return act.new_zeros(act.shape)
    loop, graphs = _loop(dirs, B, H, steps, c.dtype, c.device, cell)
    loop.grad.copy_(_to_steps(grad_h, lengths, steps))
    # past a sequence's end every error is zero, so c and act there need no masking
    loop.c[1:].copy_(_to_steps(c, lengths, steps, masked=False))
    loop.act.copy_(_to_steps(act, lengths, steps, masked=False))
    loop.w.copy_(w_hh)
    loop.peep.copy_(peep)
    if graphs is None:
        loop.backward_loop()
    else:
        graphs.run("backward_loop")
    return _to_frames(loop.dz[:steps], lengths, T)


__all__ = ["CELLS", "GATES", "PEEPHOLES", "forward", "backward", "graphs_enabled"]
