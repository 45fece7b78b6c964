"""PeepholeLSTM against the equations, finite differences, nn.LSTM and itself.

The reference below is the layer written the slow, obvious way: one sequence, one
direction, one frame at a time, the equations of Graves, Mohamed & Hinton 2013
(eqs. 3-7) transcribed literally, in float64.
"""

from __future__ import annotations

import functools
import os
import warnings

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import asr.lstm
from asr._lstm import extension
from asr._lstm import recurrence as torch_loop
from asr.errors import UserError
from asr.lstm import PeepholeLSTM
from tests.lstm_reference import reference, run_with_and_without_bf16_autocast

KERNELS = ["cpp", "torch"]


def kernel_required() -> bool:
    """In CI (CI=true) or with ASR_LSTM_KERNEL=cpp a missing C++ kernel is a failure, not a skip."""
    return os.environ.get("ASR_LSTM_KERNEL") == "cpp" or os.environ.get("CI", "").lower() in ("true", "1", "yes")


@functools.cache
def _built_kernel():
    """The C++ kernel (or None) and why it is missing, asked once per session."""
    extension.kernel.cache_clear()  # so that the reason is heard, whoever asked first
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chosen = extension.kernel()
    return chosen, "; ".join(str(w.message) for w in caught)


def cpp_kernel():
    """The C++ kernel; skips the test where it cannot be built, unless it is required."""
    if os.environ.get("ASR_LSTM_KERNEL") == "torch":
        pytest.skip("ASR_LSTM_KERNEL=torch: the plain-torch loop was chosen")
    chosen, why = _built_kernel()
    if chosen is None:
        if kernel_required():
            pytest.fail(f"the C++ kernel is required here (CI or ASR_LSTM_KERNEL=cpp) but unavailable: {why}")
        pytest.skip(f"the C++ kernel could not be built here: {why}")
    return chosen


@pytest.fixture(params=KERNELS)
def kernel(request, monkeypatch):
    """Runs the test once with the C++ time loop and once with the plain-torch one."""
    if request.param == "cpp":
        chosen = cpp_kernel()
    else:
        chosen = torch_loop
    monkeypatch.setattr(asr.lstm, "_kernel", lambda device: chosen)
    return request.param


def make_model(D=5, H=4, layers=2, bidirectional=True, peepholes=True, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    model = PeepholeLSTM(D, H, layers, bidirectional, peepholes).to(dtype)
    model.reset_parameters(0.5)  # large enough that the peepholes matter
    return model


@pytest.mark.parametrize("layers,bidirectional", [(1, True), (1, False), (3, True), (2, False)])
def test_matches_the_equations(kernel, layers, bidirectional):
    model = make_model(layers=layers, bidirectional=bidirectional)
    x = torch.randn(4, 9, 5, dtype=torch.float64)
    lengths = torch.tensor([6, 9, 1, 4])
    y = model(x, lengths)
    assert y.shape == (4, 9, model.num_directions * 4)
    torch.testing.assert_close(y, reference(model, x, lengths), rtol=0, atol=1e-12)


def test_float32_matches_the_equations(kernel):
    model = make_model(dtype=torch.float32)
    x = torch.randn(3, 8, 5)
    lengths = torch.tensor([8, 5, 2])
    torch.testing.assert_close(model(x, lengths).double(), reference(model, x, lengths),
                               rtol=0, atol=2e-6)


def test_saturated_gates_stay_finite(kernel):
    """Inputs large enough to overflow exp in a naive sigmoid."""
    model = make_model(D=4, H=20, dtype=torch.float32)
    x = (1e4 * torch.randn(3, 30, 4)).requires_grad_()
    lengths = torch.tensor([30, 20, 7])
    y = model(x, lengths)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    torch.testing.assert_close(y.double(), reference(model, x.detach(), lengths),
                               rtol=0, atol=1e-5)


def test_peepholes_change_the_output():
    """Guards the reference tests: zeroing the peepholes must make a difference."""
    model = make_model()
    x, lengths = torch.randn(2, 6, 5, dtype=torch.float64), torch.tensor([6, 4])
    y = model(x, lengths)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("peephole"):
                parameter.zero_()
    assert (model(x, lengths) - y).abs().max() > 1e-3


def test_plain_lstm_matches_the_equations_with_zero_peepholes():
    model = make_model(layers=2, peepholes=False)
    x = torch.randn(3, 7, 5, dtype=torch.float64)
    lengths = torch.tensor([7, 2, 5])
    torch.testing.assert_close(model(x, lengths), reference(model, x, lengths), rtol=0, atol=1e-12)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_gradients_match_finite_differences(kernel, bidirectional):
    model = make_model(D=3, H=2, layers=2, bidirectional=bidirectional)
    x = torch.randn(3, 4, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2, 3])
    names = [name for name, _ in model.named_parameters()]

    def run(x, *parameters):
        values = dict(zip(names, parameters))
        return torch.func.functional_call(model, values, (x, lengths))

    assert torch.autograd.gradcheck(run, (x, *model.parameters()))


def test_plain_lstm_gradients_match_finite_differences():
    model = make_model(D=2, H=2, layers=2, peepholes=False)
    x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([3, 2])
    names = [name for name, _ in model.named_parameters()]

    def run(x, *ps):
        return torch.func.functional_call(model, dict(zip(names, ps)), (x, lengths))

    assert torch.autograd.gradcheck(run, (x, *model.parameters()))


def _kernels_agree(cpp, B, T, dirs, H, dtype, tol):
    torch.manual_seed(1)
    xg, bias = torch.randn(B, T, dirs, 4 * H, dtype=dtype), torch.randn(dirs, 4 * H, dtype=dtype)
    w_hh = 0.3 * torch.randn(dirs, 4 * H, H, dtype=dtype)
    peep = 0.3 * torch.randn(dirs, 3, H, dtype=dtype)
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T
    theirs = torch_loop.forward(xg, bias, w_hh, peep, lengths)
    ours = cpp.forward(xg.clone(), bias, w_hh, peep, lengths)  # it overwrites its xg
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, **tol)
    grad_h = torch.randn(B, T, dirs, H, dtype=dtype)
    dz_ours = cpp.backward(grad_h, w_hh, peep, ours[1], ours[2], lengths)
    dz_theirs = torch_loop.backward(grad_h, w_hh, peep, theirs[1], theirs[2], lengths)
    torch.testing.assert_close(dz_ours, dz_theirs, **tol)


def test_kernels_agree_on_float32_forward_and_backward():
    cpp = cpp_kernel()
    _kernels_agree(cpp, B=5, T=11, dirs=2, H=7, dtype=torch.float32, tol=dict(rtol=1e-5, atol=1e-6))


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dirs", [1, 2])
def test_kernels_agree_however_the_work_is_shared_out(threads, dirs):
    """One thread; a thread per direction; and more threads than directions, where
    every step's hidden units (H = 45: three panels of 16 columns with AVX2, two of 32
    with AVX-512) are cut into chunks."""
    cpp = cpp_kernel()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _kernels_agree(cpp, B=13, T=6, dirs=dirs, H=45, dtype=torch.float64,
                       tol=dict(rtol=0, atol=1e-12))
    finally:
        torch.set_num_threads(before)


def test_output_does_not_depend_on_padding(kernel):
    model = make_model(layers=2)
    torch.manual_seed(3)
    seqs = [torch.randn(n, 5, dtype=torch.float64, requires_grad=True) for n in (5, 3, 7)]

    def batch(T):  # padding filled with junk, not zeros
        x = 100 * torch.randn(len(seqs), T, 5, dtype=torch.float64)
        return torch.stack([torch.cat([s, x[i, len(s):]]) for i, s in enumerate(seqs)])

    lengths = torch.tensor([len(s) for s in seqs])
    outputs = {}
    for T in (7, 12):
        y = model(batch(T), lengths)
        assert (y[0, 5:] == 0).all() and (y[1, 3:] == 0).all() and (y[2, 7:] == 0).all()
        grads = torch.autograd.grad((y[:, :7] * torch.arange(7.0).view(1, 7, 1)).sum(), seqs)
        outputs[T] = (y[:, :7], grads)
    for a, b in zip(outputs[7][0], outputs[12][0]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)
    for a, b in zip(outputs[7][1], outputs[12][1]):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)
    for i, s in enumerate(seqs):  # alone, unpadded, the same as in the batch
        alone = model(s[None], torch.tensor([len(s)]))[0]
        torch.testing.assert_close(alone, outputs[12][0][i, : len(s)], rtol=0, atol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch_first,bidirectional,layers", [(True, True, 2), (False, False, 3)])
def test_from_torch_matches_nn_lstm(kernel, dtype, batch_first, bidirectional, layers):
    torch.manual_seed(4)
    theirs = nn.LSTM(6, 5, layers, bidirectional=bidirectional, batch_first=batch_first).to(dtype)
    ours = PeepholeLSTM.from_torch(theirs)
    assert all(p.dtype == dtype for p in ours.parameters())
    x = torch.randn(4, 8, 6, dtype=dtype)
    lengths = torch.tensor([5, 8, 2, 6])
    weight = torch.randn(4, 8, ours.num_directions * 5, dtype=dtype)

    x_ours = x.clone().requires_grad_()
    y_ours = ours(x_ours, lengths)
    (y_ours * weight).sum().backward()

    x_theirs = x.clone().requires_grad_()
    fed = x_theirs if batch_first else x_theirs.transpose(0, 1)
    packed = pack_padded_sequence(fed, lengths, batch_first=batch_first, enforce_sorted=False)
    y_theirs = pad_packed_sequence(theirs(packed)[0], batch_first=True, total_length=8)[0]
    (y_theirs * weight).sum().backward()

    tol = dict(rtol=0, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(y_ours, y_theirs, **tol)
    torch.testing.assert_close(x_ours.grad, x_theirs.grad, **tol)
    for k in range(layers):
        for sfx in ours._suffixes:
            def mine(name, k=k, sfx=sfx):
                return getattr(ours, f"{name}_l{k}{sfx}").grad

            def other(name, k=k, sfx=sfx):
                return getattr(theirs, f"{name}_l{k}{sfx}").grad

            torch.testing.assert_close(mine("weight_ih"), other("weight_ih"), **tol)
            torch.testing.assert_close(mine("weight_hh"), other("weight_hh"), **tol)
            torch.testing.assert_close(mine("bias"), other("bias_ih"), **tol)
            torch.testing.assert_close(mine("bias"), other("bias_hh"), **tol)


def test_from_torch_without_bias_and_rejections():
    theirs = nn.LSTM(3, 2, bias=False, batch_first=True)
    ours = PeepholeLSTM.from_torch(theirs)
    x, lengths = torch.randn(2, 4, 3), torch.tensor([4, 4])
    torch.testing.assert_close(ours(x, lengths), theirs(x)[0])
    with pytest.raises(ValueError, match="proj_size"):
        PeepholeLSTM.from_torch(nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match="dropout"):
        PeepholeLSTM.from_torch(nn.LSTM(3, 4, num_layers=2, dropout=0.5))
    with pytest.raises(ValueError, match="nn.LSTM"):
        PeepholeLSTM.from_torch(nn.GRU(3, 4))


def test_parameter_names_shapes_and_count():
    model = PeepholeLSTM(123, 250, num_layers=3, bidirectional=True)
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    expected = {}
    for k in range(3):
        for sfx in ("", "_reverse"):
            expected |= {f"weight_ih_l{k}{sfx}": (1000, 123 if k == 0 else 500),
                         f"weight_hh_l{k}{sfx}": (1000, 250),
                         f"bias_l{k}{sfx}": (1000,),
                         f"peephole_l{k}{sfx}": (3, 250)}
    assert shapes == expected
    per_direction = [4 * 250 * (d_in + 250 + 1) + 3 * 250 for d_in in (123, 500, 500)]
    assert sum(p.numel() for p in model.parameters()) == 2 * sum(per_direction) == 3_756_500
    plain = PeepholeLSTM(123, 250, num_layers=3, bidirectional=True, peepholes=False)
    assert not [name for name, _ in plain.named_parameters() if "peephole" in name]
    assert sum(p.numel() for p in plain.parameters()) == 3_756_500 - 6 * 750
    uni = PeepholeLSTM(123, 421, num_layers=3, bidirectional=False)
    assert sorted(n for n, _ in uni.named_parameters() if n.endswith("l2")) == [
        "bias_l2", "peephole_l2", "weight_hh_l2", "weight_ih_l2"]


def test_reset_parameters_is_uniform_in_range():
    model = PeepholeLSTM(10, 20, num_layers=2)
    model.reset_parameters(0.1)
    values = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert values.abs().max() <= 0.1 and values.abs().max() > 0.09 and values.std() > 0.05


def test_bf16_autocast_runs_the_recurrence_in_float32():
    model = make_model(D=6, H=8, layers=2, dtype=torch.float32)
    x, lengths = torch.randn(3, 10, 6), torch.tensor([10, 7, 4])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x, lengths)
    assert y.dtype == torch.float32
    y.sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())
    torch.testing.assert_close(y, model(x, lengths), rtol=0, atol=0.05)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_autocast_multiplies_the_large_products_in_bf16_where_the_cpu_does_bf16(monkeypatch, native):
    """Under bf16 autocast the products over all frames run in bf16 on a CPU with native bf16
    (forced here either way, so that any machine checks both): every result then within bf16's
    rounding of the float32 one, and not equal to it; elsewhere the layer is float32 throughout."""
    monkeypatch.setattr(asr.lstm, "_cpu_has_native_bf16", lambda: native)
    model = make_model(D=6, H=8, layers=2, dtype=torch.float32)
    x, lengths = torch.randn(3, 10, 6), torch.tensor([10, 7, 4])
    exact, mixed = run_with_and_without_bf16_autocast(model, x, lengths)  # on the CPU
    for a, b in zip(exact, mixed):
        assert b.dtype == torch.float32
        if native:
            assert 0 < float((a - b).norm() / a.norm()) < 0.02
        else:
            torch.testing.assert_close(b, a, rtol=0, atol=0)


def test_bf16_products_only_under_bf16_autocast_on_float32(monkeypatch):
    monkeypatch.setattr(asr.lstm, "_cpu_has_native_bf16", lambda: True)
    x = torch.randn(2, 3)
    assert not asr.lstm._bf16_products(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert asr.lstm._bf16_products(x) and not asr.lstm._bf16_products(x.double())
    with torch.autocast("cpu", dtype=torch.float16):
        assert not asr.lstm._bf16_products(x)


def test_training_in_bf16_learns_what_float32_learns(monkeypatch):
    """Accuracy holds: the same seeded CTC training, float32 and with bf16 products, follows
    the same loss curve (until the two drift apart, as any two roundings do) to a loss far
    below where it started."""
    from asr.config import ModelConfig
    from asr.model import CTCModel

    monkeypatch.setattr(asr.lstm, "_cpu_has_native_bf16", lambda: True)
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(8, 40, 10, generator=generator)
    lengths = torch.tensor([40, 38, 35, 33, 30, 28, 25, 20])
    targets = torch.randint(1, 6, (8, 6), generator=generator)

    def train(precision: str) -> list[float]:
        torch.manual_seed(0)
        model = CTCModel(10, 6, ModelConfig(hidden_size=16, num_layers=2))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
        losses = []
        for _ in range(80):
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                log_probs = model(features, lengths)
            loss = torch.nn.functional.ctc_loss(log_probs.float().transpose(0, 1), targets, lengths,
                                                torch.full((8,), 6))
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses

    fp32, bf16 = train("fp32"), train("bf16")
    assert fp32 != bf16  # bf16 was used
    assert max(abs(a - b) / a for a, b in zip(fp32[:40], bf16[:40])) < 0.05
    assert fp32[-1] < 0.15 * fp32[0] and bf16[-1] < 0.15 * bf16[0]


def test_bad_lengths_are_rejected():
    model = make_model()
    x = torch.randn(2, 5, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="lengths"):
        model(x, torch.tensor([6, 5]))
    with pytest.raises(ValueError, match="lengths"):
        model(x, torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="lengths must have shape"):
        model(x, torch.tensor([5]))
    with pytest.raises(ValueError, match=r"\(B, T, 5\)"):
        model(torch.randn(2, 5, 4, dtype=torch.float64), torch.tensor([5, 5]))


def test_lengths_on_any_device_and_shorter_batches():
    """lengths as a list or tensor; a batch whose longest sequence is shorter than T."""
    model = make_model()
    x = torch.randn(2, 9, 5, dtype=torch.float64)
    y = model(x, [4, 6])
    assert y.shape == (2, 9, 8) and (y[:, 6:] == 0).all()
    torch.testing.assert_close(y, reference(model, x, [4, 6]), rtol=0, atol=1e-12)


def test_an_empty_batch():
    model = make_model()
    assert model(torch.zeros(0, 4, 5, dtype=torch.float64), torch.zeros(0)).shape == (0, 4, 8)


@pytest.mark.parametrize("compiler", ["no-such-compiler", "false"])  # missing; failing
def test_a_failed_build_falls_back_to_torch(monkeypatch, tmp_path, compiler):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", compiler)
    monkeypatch.setenv("ASR_LSTM_KERNEL", "auto")
    extension.kernel.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="plain torch loop"):
            assert extension.kernel() is None
        assert asr.lstm._kernel(torch.device("cpu")) is torch_loop
        assert not list(tmp_path.rglob("*.so"))  # nothing half-built left behind
    finally:
        extension.kernel.cache_clear()


def test_a_required_kernel_that_cannot_be_built_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "false")
    monkeypatch.setenv("ASR_LSTM_KERNEL", "cpp")
    extension.kernel.cache_clear()
    try:
        with pytest.raises(UserError, match="ASR_LSTM_KERNEL=cpp: the C.. LSTM kernel could not be built"):
            extension.kernel()
        monkeypatch.setenv("ASR_LSTM_KERNEL", "cuda")
        with pytest.raises(UserError, match="ASR_LSTM_KERNEL=cuda: choose one of auto, triton, cpp, torch"):
            extension.kernel()
        monkeypatch.setenv("ASR_LSTM_KERNEL", "torch")
        assert extension.kernel() is None
    finally:
        extension.kernel.cache_clear()


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dirs", [1, 2])
def test_mkl_product_agrees(threads, dirs):
    """MKL's packed GEMM as the per-step product (float32; ASR_LSTM_PRODUCT=mkl), including
    chunks of hidden units per thread (H = 70: five panels of 16 columns with AVX2, three of
    32 with AVX-512)."""
    cpp = cpp_kernel()
    if not cpp._ops.mkl_available():
        pytest.skip("this torch does not export MKL's packed GEMM")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _kernels_agree(extension.CppKernel(cpp._ops, "mkl"), B=13, T=9, dirs=dirs, H=70,
                       dtype=torch.float32, tol=dict(rtol=1e-5, atol=1e-6))
    finally:
        torch.set_num_threads(before)


def test_a_wrong_product_setting_is_an_error(monkeypatch):
    cpp_kernel()
    monkeypatch.setenv("ASR_LSTM_PRODUCT", "blas")
    extension.kernel.cache_clear()
    try:
        with pytest.raises(UserError, match="ASR_LSTM_PRODUCT=blas: choose one of auto, own, mkl"):
            extension.kernel()
    finally:
        extension.kernel.cache_clear()


def test_the_build_is_cached():
    cpp_kernel()
    assert extension.library_path().is_file()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    model = make_model(D=7, H=6, layers=3, dtype=torch.float32)
    x, lengths = torch.randn(4, 12, 7), torch.tensor([12, 5, 9, 1])
    y_cpu = model(x, lengths)
    y_cpu.sum().backward()
    grads_cpu = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.cuda()
    y = model(x.cuda(), lengths.cuda())
    y.sum().backward()
    torch.testing.assert_close(y.cpu(), y_cpu, rtol=1e-4, atol=1e-5)
    for p, g in zip(model.parameters(), grads_cpu):
        torch.testing.assert_close(p.grad.cpu(), g, rtol=1e-4, atol=1e-4)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        assert model(x.cuda(), lengths).dtype == torch.float32
