"""The cells of issue 12 (asr/lstm.py's docstring): each against its own equations,
written out here one frame at a time in float64, and gradcheck for every parameter."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import asr.lstm
from asr._lstm import recurrence as torch_loop
from asr.checkpoint import build_model, load_checkpoint
from asr.config import Cell, Config, ModelConfig
from asr.errors import UserError
from asr.lstm import CELLS, PeepholeLSTM
from asr.model import CTCModel
from tests.lstm_reference import ROWS, reference
from tests.test_lstm import cpp_kernel

LOOP = ["peephole", "cifg", "nfg", "nog", "noaf"]
def make_model(cell, D=5, H=4, layers=2, bidirectional=True, seed=0):
    torch.manual_seed(seed)
    model = PeepholeLSTM(D, H, layers, bidirectional, cell=cell).double()
    model.reset_parameters(0.5)  # large enough that the peepholes matter
    return model


def test_every_cell_is_tested():
    assert set(CELLS) == set(ROWS) == {c.value for c in Cell}


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("cell", CELLS)
def test_cell_matches_its_equations(cell, bidirectional):
    model = make_model(cell, bidirectional=bidirectional)
    x = torch.randn(4, 9, 5, dtype=torch.float64)
    lengths = torch.tensor([6, 9, 1, 4])
    y = model(x, lengths)
    assert y.shape == (4, 9, model.num_directions * 4)
    torch.testing.assert_close(y, reference(model, x, lengths), rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", LOOP)
def test_cells_differ_from_the_peephole_cell(cell):
    """Guards the reference: the one change each cell makes must change the output."""
    if cell == "peephole":
        return
    x, lengths = torch.randn(2, 6, 5, dtype=torch.float64), torch.tensor([6, 4])
    ours, full = make_model(cell), make_model("peephole")
    gates, peeps = ROWS[cell]
    with torch.no_grad():  # give the full cell the variant's parameters, and what it lacks
        for name, p in ours.named_parameters():
            q = getattr(full, name)
            if name.startswith("peephole"):
                q.zero_()[["ifo".index(r) for r in peeps]] = p
            elif name.startswith(("weight", "bias")):
                rows = q.view(4, -1, *q.shape[1:])
                rows.zero_()[["ifgo".index(r) for r in gates]] = p.view(len(gates), -1, *p.shape[1:])
    assert (ours(x, lengths) - full(x, lengths)).abs().max() > 1e-3


@pytest.mark.parametrize("cell", CELLS)
def test_cell_gradients_match_finite_differences(cell):
    model = make_model(cell, D=3, H=2, layers=2)
    x = torch.randn(3, 4, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([4, 2, 3])
    names = [name for name, _ in model.named_parameters()]

    def run(x, *parameters):
        return torch.func.functional_call(model, dict(zip(names, parameters)), (x, lengths))

    assert torch.autograd.gradcheck(run, (x, *model.parameters()))


@pytest.mark.parametrize("cell", CELLS)
def test_parameters_are_only_those_the_cell_uses(cell):
    D, H = 123, 250
    model = PeepholeLSTM(D, H, num_layers=3, bidirectional=True, cell=cell)
    gates, peeps = ROWS[cell]
    G, P = len(gates), len(peeps)
    per_direction = [G * H * (d + H + 1) + P * H + (H if cell == "gru" else 0) for d in (D, 2 * H, 2 * H)]
    assert sum(p.numel() for p in model.parameters()) == 2 * sum(per_direction)
    assert model.weight_hh_l1_reverse.shape == (G * H, H)
    assert hasattr(model, "peephole_l0") == bool(peeps)


def _loops_agree(cpp, cell, B, T, dirs, H, dtype, tol):
    gates, peeps = ROWS[cell]
    G, P = len(gates), len(peeps)
    torch.manual_seed(1)
    xg, bias = torch.randn(B, T, dirs, G * H, dtype=dtype), torch.randn(dirs, G * H, dtype=dtype)
    w_hh = 0.3 * torch.randn(dirs, G * H, H, dtype=dtype)
    peep = 0.3 * torch.randn(dirs, P, H, dtype=dtype)
    lengths = torch.randint(1, T + 1, (B,))
    lengths[0] = T
    theirs = torch_loop.forward(xg, bias, w_hh, peep, lengths, cell)
    ours = cpp.forward(xg.clone(), bias, w_hh, peep, lengths, cell)  # it overwrites its xg
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, **tol)
    grad_h = torch.randn(B, T, dirs, H, dtype=dtype)
    dz_ours = cpp.backward(grad_h, w_hh, peep, ours[1], ours[2], lengths, cell)
    dz_theirs = torch_loop.backward(grad_h, w_hh, peep, theirs[1], theirs[2], lengths, cell)
    torch.testing.assert_close(dz_ours, dz_theirs, **tol)


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("cell", LOOP)
def test_cpp_and_torch_loops_agree_for_every_cell(cell, threads):
    """float64 and float32; one thread, and more threads than directions (H = 45: three
    panels cut into chunks)."""
    cpp = cpp_kernel()
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        _loops_agree(cpp, cell, B=13, T=6, dirs=2, H=45, dtype=torch.float64,
                     tol=dict(rtol=0, atol=1e-12))
        _loops_agree(cpp, cell, B=5, T=11, dirs=1, H=7, dtype=torch.float32,
                     tol=dict(rtol=1e-5, atol=1e-6))
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("loop", ["cpp", "torch"])
@pytest.mark.parametrize("cell", LOOP)
def test_each_loop_matches_the_equations_and_finite_differences(cell, loop, monkeypatch):
    chosen = cpp_kernel() if loop == "cpp" else torch_loop
    monkeypatch.setattr(asr.lstm, "_kernel", lambda device: chosen)
    model = make_model(cell)
    x, lengths = torch.randn(3, 7, 5, dtype=torch.float64), torch.tensor([7, 2, 5])
    torch.testing.assert_close(model(x, lengths), reference(model, x, lengths), rtol=0, atol=1e-12)
    model = make_model(cell, D=3, H=2, layers=1)
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    names = [name for name, _ in model.named_parameters()]

    def run(x, *parameters):
        return torch.func.functional_call(model, dict(zip(names, parameters)), (x, torch.tensor([4, 2])))

    assert torch.autograd.gradcheck(run, (x, *model.parameters()))


@pytest.mark.parametrize("cell", LOOP)
def test_float32_torch_loop_matches_float64(cell):
    model = make_model(cell)
    x, lengths = torch.randn(3, 8, 5, dtype=torch.float64), torch.tensor([8, 5, 2])
    expected = model(x, lengths)
    torch.testing.assert_close(model.float()(x.float(), lengths).double(), expected, rtol=0, atol=2e-6)


def test_peepholes_false_is_the_vanilla_cell():
    assert PeepholeLSTM(3, 2, peepholes=False).cell == "vanilla"
    assert PeepholeLSTM(3, 2, peepholes=False, cell="gru").cell == "gru"
    with pytest.raises(ValueError, match="contradicts"):
        PeepholeLSTM(3, 2, peepholes=False, cell="cifg")
    with pytest.raises(ValueError, match="unknown cell"):
        PeepholeLSTM(3, 2, cell="lstm")
    assert ModelConfig(peepholes=False).cell == "vanilla"
    assert ModelConfig().cell == "peephole"
    with pytest.raises(UserError, match="model.peepholes=false contradicts model.cell=nog"):
        ModelConfig(peepholes=False, cell=Cell.nog)


def test_config_cell_is_checked_and_round_trips():
    config = Config.from_dict({"model": {"cell": "cifg"}})
    assert config.model.cell == "cifg"
    assert config.to_dict()["model"]["cell"] == "cifg"
    assert "cell" not in Config.from_dict({}).to_dict()["model"]  # written as before cells
    assert Config.from_dict(config.to_dict()).model == config.model
    assert config.override(["model.cell=gru"]).model.cell == "gru"
    with pytest.raises(UserError, match="is not one of"):
        Config.from_dict({"model": {"cell": "lstm"}})
    old = Config.from_dict({"model": {"peepholes": False}})  # a config from before `cell`
    assert old.model.cell == "vanilla"
    assert Config.from_dict(old.to_dict()).model == old.model


@pytest.mark.parametrize("cell", CELLS)
def test_summary_counts_the_cells_parameters(cell):
    model = CTCModel(13, 10, ModelConfig(hidden_size=8, num_layers=2, cell=Cell(cell)))
    summary = model.summary()
    assert cell in summary.splitlines()[0]
    n = sum(p.numel() for p in model.parameters())
    assert f"parameters: {n} " in summary


@pytest.mark.parametrize("name", ["english", "synth-small", "handwriting-small"])
def test_shipped_checkpoints_without_cell_still_load(name):
    payload = load_checkpoint(f"checkpoints/{name}/model.pt")
    assert "cell" not in payload["config"]["model"]
    model, config, _ = build_model(payload, name)
    assert model.lstm.cell == config.model.cell == ("peephole" if config.model.peepholes else "vanilla")


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_trains_under_bf16_autocast(cell):
    """On a CPU every cell runs in its parameters' precision under autocast: the time loop, and
    the fused ops too (oneDNN's bf16 LSTM needs AVX-512: on an AVX2 CPU it fails)."""
    torch.manual_seed(0)
    model = PeepholeLSTM(5, 4, 2, cell=cell)
    x = torch.randn(3, 6, 5, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x, torch.tensor([6, 3, 4]))
    assert y.dtype == torch.float32
    y.sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


FUSED = ["vanilla", "gru", "rnn"]
TORCH_RNNS = {"vanilla": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}


def packed_reference(model, x, lengths):
    """torch's nn.LSTM / nn.GRU / nn.RNN on packed sequences, run on `model`'s own
    parameters (so that gradients reach them): bias_ih = bias, and bias_hh zero but for
    the GRU's b_hn."""
    H = model.hidden_size
    torch_rnn = TORCH_RNNS[model.cell](model.input_size, H, model.num_layers, batch_first=True,
                                       bidirectional=model.bidirectional).double()
    weights = {}
    for k in range(model.num_layers):
        for sfx in model._suffixes:
            def ours(name, k=k, sfx=sfx):
                return getattr(model, f"{name}_l{k}{sfx}")

            bias_hh = torch.zeros_like(ours("bias"))
            if model.cell == "gru":
                bias_hh = torch.cat([bias_hh[:2 * H], ours("bias_hn")])
            weights |= {f"weight_ih_l{k}{sfx}": ours("weight_ih"), f"weight_hh_l{k}{sfx}": ours("weight_hh"),
                        f"bias_ih_l{k}{sfx}": ours("bias"), f"bias_hh_l{k}{sfx}": bias_hh}
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    out = torch.func.functional_call(torch_rnn, weights, (packed,))[0]
    return pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


def _outputs_and_gradients(run, model, x, lengths, seed=3):
    y = run(x, lengths)
    grad_y = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(seed))
    return y, torch.autograd.grad((y * grad_y).sum(), [x, *model.parameters()])


@pytest.mark.parametrize("lengths", [[6, 9, 1, 4], [1, 3], [5], [9], [7, 7, 7]],
                         ids=["ragged", "length-1", "one-short", "one-full", "equal-short"])
@pytest.mark.parametrize("bidirectional", [True, False], ids=["bi", "uni"])
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", FUSED)
def test_fused_cells_equal_torch_on_packed_sequences(cell, layers, bidirectional, lengths):
    """The fused cells run on padded batches on CPU (asr/lstm.py, _padded_forward): outputs
    and the gradients of the input and of every parameter are those of the packed
    computation. Padding holds NaN, which must not leak in."""
    model = make_model(cell, layers=layers, bidirectional=bidirectional)
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), 9, 5, dtype=torch.float64)
    for b, n in enumerate(lengths):
        x[b, n:] = float("nan")
    x.requires_grad_()
    y, grads = _outputs_and_gradients(model, model, x, lengths)
    y_ref, grads_ref = _outputs_and_gradients(lambda x, lengths: packed_reference(model, x, lengths),
                                              model, x, lengths)
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-10)
    assert (y[torch.arange(9) >= lengths[:, None]] == 0).all()
    names = ["input", *(name for name, _ in model.named_parameters())]
    assert len(grads) == len(names) == 1 + layers * model.num_directions * (4 if cell == "gru" else 3)
    for name, g, g_ref in zip(names, grads, grads_ref):
        torch.testing.assert_close(g, g_ref, rtol=0, atol=1e-10, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("cell", FUSED)
def test_fused_cells_do_not_pack_on_cpu(cell, monkeypatch):
    """Packed sequences of unequal lengths take torch's slow generic CPU loop."""
    def refuse(*args, **kwargs):
        raise AssertionError("packed on CPU")

    monkeypatch.setattr(asr.lstm, "pack_padded_sequence", refuse)
    model = make_model(cell)
    model(torch.randn(3, 6, 5, dtype=torch.float64), torch.tensor([6, 2, 4])).sum().backward()


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_takes_an_empty_batch(cell):
    """(torch cannot pack an empty batch; the fused cells used to try.)"""
    y = PeepholeLSTM(3, 2, cell=cell)(torch.zeros(0, 5, 3), torch.zeros(0, dtype=torch.long))
    assert y.shape == (0, 5, 4)
