"""The Triton time loop (asr/_lstm/triton_loop.py): kernel choice, the kernels in Triton's
interpreter on CPU (tests/triton_interpreted.py, in a subprocess), and on a GPU against the
torch loop, with and without CUDA graphs."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import asr.lstm
from asr._lstm import extension
from asr._lstm import recurrence as torch_loop
from asr.errors import UserError
from asr.lstm import PeepholeLSTM
from tests.lstm_reference import ROWS, run_with_and_without_bf16_autocast

ROOT = Path(__file__).resolve().parent.parent
LOOP = list(torch_loop.CELLS)
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_triton_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv("ASR_LSTM_KERNEL", "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(UserError, match="ASR_LSTM_KERNEL=triton runs on CPU tensors only under TRITON_INTERPRET=1"):
        asr.lstm._kernel(torch.device("cpu"))
    monkeypatch.setenv("ASR_LSTM_KERNEL", "auto")
    assert getattr(asr.lstm._kernel(torch.device("cpu")), "__name__", "") != "asr._lstm.triton_loop"
    monkeypatch.setenv("ASR_LSTM_KERNEL", "torch")
    assert asr.lstm._kernel(torch.device("cuda")) is torch_loop


def test_importing_asr_lstm_does_not_import_triton():
    code = "import sys, asr.lstm, asr.model; assert 'triton' not in sys.modules, 'triton imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_the_kernels_in_the_interpreter():
    """tests/triton_interpreted.py: every cell's forward and backward against the torch loop,
    the equations and finite differences. A subprocess, since TRITON_INTERPRET must be set
    before the kernels are defined."""
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1", "ASR_LSTM_KERNEL": "triton"}
    done = subprocess.run([sys.executable, "-m", "pytest", "--noconftest", "-q", "-x", "-p", "no:cacheprovider",
                           "tests/triton_interpreted.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-2000:]


# On a GPU ----------------------------------------------------------------------------------


def _loop_inputs(cell, B, T, dirs, H, dtype, seed=0):
    gates, peeps = ROWS[cell]
    G = len(gates) * H
    torch.manual_seed(seed)
    return (torch.randn(B, T, dirs, G, dtype=dtype, device="cuda"),
            torch.randn(dirs, G, dtype=dtype, device="cuda"),
            torch.randn(dirs, G, H, dtype=dtype, device="cuda") * (0.5 / H ** 0.5),  # contracting
            0.5 * torch.randn(dirs, len(peeps), H, dtype=dtype, device="cuda"),
            torch.randint(T // 2, T + 1, (B,)).index_fill_(0, torch.tensor([0]), T))


def _both_loops(cell, B, T, dirs, H, dtype, tol):
    from asr._lstm import triton_loop

    xg, bias, w_hh, peep, lengths = _loop_inputs(cell, B, T, dirs, H, dtype)
    ours = triton_loop.forward(xg, bias, w_hh, peep, lengths, cell)
    theirs = torch_loop.forward(xg, bias, w_hh, peep, lengths, cell)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, **tol)
    grad_h = torch.randn(B, T, dirs, H, dtype=dtype, device="cuda")
    dz = triton_loop.backward(grad_h, w_hh, peep, ours[1], ours[2], lengths, cell)
    torch.testing.assert_close(dz, torch_loop.backward(grad_h, w_hh, peep, *theirs[1:], lengths, cell), **tol)
    return ours, dz


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("cell", LOOP)
def test_cuda_loop_matches_the_torch_loop_in_float64(cell):
    _both_loops(cell, B=7, T=50, dirs=2, H=33, dtype=torch.float64, tol=dict(rtol=0, atol=1e-11))
    _both_loops(cell, B=4, T=20, dirs=1, H=6, dtype=torch.float64, tol=dict(rtol=0, atol=1e-11))


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("B,H", [(1, 250), (16, 250), (64, 512)])
def test_cuda_loop_matches_the_torch_loop_in_float32(B, H):
    _both_loops("peephole", B=B, T=300, dirs=2, H=H, dtype=torch.float32, tol=dict(rtol=1e-3, atol=1e-3))


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("cell", ["peephole", "cifg"])
def test_cuda_graphs_change_nothing(cell, monkeypatch):
    """The same results with and without graphs; and a cached graph replayed on new inputs of
    another length in the same bucket (its static buffers refilled) still right."""
    from asr._lstm import triton_loop

    results = {}
    for graphs in ("1", "0"):
        monkeypatch.setenv("ASR_LSTM_CUDA_GRAPHS", graphs)
        assert triton_loop.graphs_enabled(torch.device("cuda")) == (graphs == "1")
        results[graphs] = [_both_loops(cell, B=5, T=T, dirs=2, H=40, dtype=torch.float64,
                                       tol=dict(rtol=0, atol=1e-11)) for T in (40, 37, 40)]
    for (h1, dz1), (h0, dz0) in zip(results["1"], results["0"]):
        for a, b in zip([*h1, dz1], [*h0, dz0]):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-13)


@contextlib.contextmanager
def rnn_fp32_precision(value: str):
    """torch.backends.cudnn.rnn.fp32_precision = value ("tf32" or "ieee") for the block."""
    rnn = torch.backends.cudnn.rnn
    saved = rnn.fp32_precision
    rnn.fp32_precision = value
    try:
        yield
    finally:
        rnn.fp32_precision = saved


def test_the_layer_multiplies_in_tf32_exactly_when_cudnns_lstm_would():
    """nn.LSTM's cuDNN kernels use TF32 for float32 by default, torch's matmuls do not: on CUDA
    the layer's products follow cuDNN's RNN switch, and the matmul switch is restored after."""
    before = torch.get_float32_matmul_precision()
    assert asr.lstm.cudnn_rnn_uses_tf32()  # torch's default
    for value, inside in (("tf32", "high"), ("ieee", "highest")):
        with rnn_fp32_precision(value):
            assert asr.lstm.cudnn_rnn_uses_tf32() == (value == "tf32")
            with asr.lstm._layer_precision(torch.device("cuda")):
                assert torch.get_float32_matmul_precision() == inside
                assert torch.backends.cuda.matmul.allow_tf32 == (value == "tf32")
            assert torch.get_float32_matmul_precision() == before
            with asr.lstm._layer_precision(torch.device("cpu")):  # the CPU's products are left alone
                assert torch.get_float32_matmul_precision() == before


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 2e-4)])
@pytest.mark.parametrize("cell", ["peephole", "nog"])
def test_cuda_layer_matches_cpu(cell, dtype, tol, monkeypatch):
    """A whole 3-layer PeepholeLSTM, forward and backward, on the GPU (Triton) and the CPU
    (the torch loop there, so that the GPU machine needs no C++ build); full float32 products
    (no TF32) for the tight tolerance."""
    with rnn_fp32_precision("ieee"):
        grads = _layer_on_both(cell, dtype, monkeypatch)
    for a, b in zip(grads["cuda"], grads["cpu"]):
        torch.testing.assert_close(a.cpu(), b, rtol=tol, atol=tol)


@pytest.mark.gpu
@cuda
def test_cuda_layer_in_tf32_by_default(monkeypatch):
    """With torch's defaults the GPU layer multiplies in TF32, as cuDNN's nn.LSTM does: close to
    the float32 result, and not equal to it (the switch took effect; a graph captured in one
    precision is not replayed in the other)."""
    with rnn_fp32_precision("tf32"):
        tf32 = _layer_on_both("peephole", torch.float32, monkeypatch)["cuda"]
    with rnn_fp32_precision("ieee"):
        ieee = _layer_on_both("peephole", torch.float32, monkeypatch)["cuda"]
    for a, b in zip(tf32, ieee):
        torch.testing.assert_close(a, b, rtol=5e-2, atol=5e-2)
    assert any(not torch.equal(a, b) for a, b in zip(tf32, ieee))


@pytest.mark.gpu
@cuda
def test_cuda_layer_multiplies_its_large_products_in_bf16_under_autocast(monkeypatch):
    """Under bf16 autocast the GPU layer's products over all frames run in bf16 (the loop in
    float32): every result within bf16's rounding of the float32 one, and not equal to it."""
    monkeypatch.setattr(extension, "kernel", lambda: None)
    torch.manual_seed(0)
    model = PeepholeLSTM(7, 24, 3).cuda()
    x, lengths = torch.randn(6, 45, 7, device="cuda"), torch.tensor([45, 12, 30, 1, 44, 9])
    with rnn_fp32_precision("ieee"):
        exact, mixed = run_with_and_without_bf16_autocast(model, x, lengths)
    for a, b in zip(exact, mixed):
        assert b.dtype == torch.float32 and 0 < float((a - b).norm() / a.norm()) < 0.02


def _layer_on_both(cell, dtype, monkeypatch) -> dict:
    monkeypatch.setattr(extension, "kernel", lambda: None)
    torch.manual_seed(0)
    model = PeepholeLSTM(7, 24, 3, cell=cell).to(dtype)
    model.reset_parameters(0.3)
    x, lengths = torch.randn(6, 45, 7, dtype=dtype), torch.tensor([45, 12, 30, 1, 44, 9])
    weight = torch.randn(6, 45, 48, dtype=dtype)
    grads = {}
    for device in ("cpu", "cuda"):
        model.zero_grad()
        model.to(device)
        xd = x.detach().to(device).requires_grad_()
        y = model(xd, lengths)
        (y * weight.to(device)).sum().backward()
        grads[device] = [y, xd.grad, *(p.grad.clone() for p in model.parameters())]
    assert asr.lstm._kernel(torch.device("cuda")).__name__ == "asr._lstm.triton_loop"
    with torch.autocast("cuda", dtype=torch.bfloat16):  # the loop stays in the parameters' precision
        assert model(x.cuda(), lengths).dtype == dtype
    return grads
