"""The Triton time loop (asr/_lstm/triton_loop.py) in Triton's interpreter, on CPU tensors.

Not collected by default (no test_ prefix): tests/test_triton_lstm.py runs this file in a
subprocess with TRITON_INTERPRET=1 and ASR_LSTM_KERNEL=triton, which must be set before
the kernels are defined, i.e. before asr._lstm.triton_loop is first imported. Run alone:

    TRITON_INTERPRET=1 ASR_LSTM_KERNEL=triton python3 -m pytest --noconftest tests/triton_interpreted.py

Sizes are tiny: every kernel launch is interpreted in numpy.
"""

from __future__ import annotations

import os

import pytest
import torch

if os.environ.get("TRITON_INTERPRET") != "1" or os.environ.get("ASR_LSTM_KERNEL") != "triton":
    pytest.skip("needs TRITON_INTERPRET=1 ASR_LSTM_KERNEL=triton (tests/test_triton_lstm.py sets them)",
                allow_module_level=True)

import asr.lstm  # noqa: E402
from asr._lstm import recurrence as torch_loop  # noqa: E402
from asr._lstm import triton_loop  # noqa: E402
from asr.lstm import PeepholeLSTM  # noqa: E402
from tests.lstm_reference import ROWS, reference  # noqa: E402

LOOP = list(torch_loop.CELLS)
EXACT = dict(rtol=0, atol=1e-12)


def random_loop_inputs(cell, B, T, dirs, H, dtype=torch.float64, seed=1):
    gates, peeps = ROWS[cell]
    G, P = len(gates) * H, len(peeps)
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0):
        return scale * torch.randn(*shape, generator=generator, dtype=dtype)

    return randn(B, T, dirs, G), randn(dirs, G), randn(dirs, G, H, scale=0.5), randn(dirs, P, H, scale=0.5)


def test_the_interpreted_loop_is_chosen():
    assert asr.lstm._kernel(torch.device("cpu")) is triton_loop
    assert not triton_loop.graphs_enabled(torch.device("cpu"))


@pytest.mark.parametrize("dirs", [2, 1])
@pytest.mark.parametrize("cell", LOOP)
def test_loop_matches_the_torch_loop(cell, dirs):
    """forward (h, c, act) and backward (dz), ragged lengths, float64."""
    xg, bias, w_hh, peep = random_loop_inputs(cell, B=3, T=6, dirs=dirs, H=4)
    lengths = torch.tensor([6, 2, 4])
    ours = triton_loop.forward(xg, bias, w_hh, peep, lengths, cell)
    theirs = torch_loop.forward(xg, bias, w_hh, peep, lengths, cell)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, **EXACT)
    grad_h = torch.randn(3, 6, dirs, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(triton_loop.backward(grad_h, w_hh, peep, ours[1], ours[2], lengths, cell),
                               torch_loop.backward(grad_h, w_hh, peep, *theirs[1:], lengths, cell), **EXACT)


def make_model(cell, D=3, H=3, layers=2, bidirectional=True):
    torch.manual_seed(0)
    model = PeepholeLSTM(D, H, layers, bidirectional, cell=cell).double()
    model.reset_parameters(0.5)  # large enough that the peepholes matter
    return model


@pytest.mark.parametrize("cell", LOOP)
def test_layers_match_the_equations(cell):
    for bidirectional in (True, False):
        model = make_model(cell, bidirectional=bidirectional)
        x, lengths = torch.randn(3, 5, 3, dtype=torch.float64), torch.tensor([5, 1, 3])
        torch.testing.assert_close(model(x, lengths), reference(model, x, lengths), **EXACT)


@pytest.mark.parametrize("cell", LOOP)
def test_gradients_match_finite_differences(cell):
    """fast_mode: finite differences along random directions, which any wrong gate error fails."""
    model = make_model(cell, D=2, H=2, layers=1)
    x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([3, 2])
    names = [name for name, _ in model.named_parameters()]

    def run(x, *parameters):
        return torch.func.functional_call(model, dict(zip(names, parameters)), (x, lengths))

    assert torch.autograd.gradcheck(run, (x, *model.parameters()), fast_mode=True)


class _ReplayedGraph:
    """Stands in for a captured CUDA graph: replaying runs the loop again."""

    def __init__(self, loop):
        self.replay = loop


def test_the_graph_cache_logic(monkeypatch):
    """The graph path without a GPU: the first call of a shape runs the loop and 'captures' it,
    later calls (other lengths in the same step bucket, other weights) replay it over refilled
    buffers, and the cache stays within its bounds. Only the capture itself needs CUDA."""
    def run_and_capture(self, loop):
        loop()
        return _ReplayedGraph(loop)

    monkeypatch.setattr(triton_loop, "graphs_enabled", lambda device: True)
    monkeypatch.setattr(triton_loop._Graphs, "_run_and_capture", run_and_capture)
    monkeypatch.setattr(triton_loop, "STEP_BUCKET", 4)
    monkeypatch.setattr(triton_loop, "GRAPH_CACHE", 2)
    monkeypatch.setattr(triton_loop, "_cache", type(triton_loop._cache)())
    for seed, lengths, cell in [(1, [5, 2, 4], "peephole"), (2, [6, 3, 1], "peephole"), (3, [5, 5, 5], "peephole"),
                                (4, [2, 1, 1], "peephole"), (5, [6, 2, 4], "cifg"), (6, [6, 2, 4], "peephole")]:
        xg, bias, w_hh, peep = random_loop_inputs(cell, B=3, T=6, dirs=2, H=4, seed=seed)
        lengths = torch.tensor(lengths)
        ours = triton_loop.forward(xg, bias, w_hh, peep, lengths, cell)
        theirs = torch_loop.forward(xg, bias, w_hh, peep, lengths, cell)
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, **EXACT)
        grad_h = torch.randn(3, 6, 2, 4, dtype=torch.float64)
        torch.testing.assert_close(triton_loop.backward(grad_h, w_hh, peep, ours[1], ours[2], lengths, cell),
                                   torch_loop.backward(grad_h, w_hh, peep, *theirs[1:], lengths, cell), **EXACT)
    # least recently used first; peephole with 8 steps came back after its eviction, 4 steps went
    assert [(key[6], key[3]) for key in triton_loop._cache] == [("cifg", 8), ("peephole", 8)]
    assert all(set(graphs.graphs) == {"forward_loop", "backward_loop"} for graphs in triton_loop._cache.values())
    # A graph keeps the matmul precision it was captured with: another precision, another graph.
    saved = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")
    try:
        triton_loop.forward(xg, bias, w_hh, peep, lengths, cell)
    finally:
        torch.set_float32_matmul_precision(saved)
    kept = [(key[6], key[3], key[-1]) for key in triton_loop._cache]
    assert kept == [("peephole", 8, saved), ("peephole", 8, "high")]
