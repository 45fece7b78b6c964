"""The LSTM cells' equations written out one frame at a time in float64, independently of
asr/lstm.py: the reference that tests/test_lstm.py and tests/test_cells.py compare against."""

from __future__ import annotations

import torch

from asr.lstm import PeepholeLSTM

# The documented layout, spelt out independently of the library: gate rows, peephole rows.
ROWS = {"peephole": ("ifgo", "ifo"), "cifg": ("igo", "io"), "nfg": ("igo", "io"),
        "nog": ("ifg", "if"), "noaf": ("ifgo", "ifo"), "vanilla": ("ifgo", ""),
        "gru": ("rzn", ""), "rnn": ("a", "")}


def step(cell, w, x, h, c):
    """One frame of `cell`: w maps gate letters to (W_x, W_h, b) and "p"+letter to peepholes."""
    def pre(gate):
        W_x, W_h, b = w[gate]
        return W_x @ x + W_h @ h + b

    if cell == "rnn":
        h = torch.tanh(pre("a"))
        return h, c
    if cell == "gru":
        r, z = torch.sigmoid(pre("r")), torch.sigmoid(pre("z"))
        W_x, W_h, b = w["n"]
        n = torch.tanh(W_x @ x + b + r * (W_h @ h + w["b_hn"]))
        return (1 - z) * n + z * h, c
    p = {gate: w.get("p" + gate, torch.zeros_like(c)) for gate in "ifo"}
    i = torch.sigmoid(pre("i") + p["i"] * c)
    g = torch.tanh(pre("g"))
    if cell == "cifg":
        f = 1 - i
    elif cell == "nfg":
        f = torch.ones_like(c)
    else:
        f = torch.sigmoid(pre("f") + p["f"] * c)
    c = f * c + i * g
    o = torch.ones_like(c) if cell == "nog" else torch.sigmoid(pre("o") + p["o"] * c)
    h = o * (c if cell == "noaf" else torch.tanh(c))
    return h, c


def reference(model: PeepholeLSTM, x: torch.Tensor, lengths) -> torch.Tensor:
    B, T, _ = x.shape
    H, dirs, cell = model.hidden_size, model.num_directions, model.cell
    gates, peeps = ROWS[cell]
    out = torch.zeros(B, T, dirs * H, dtype=torch.float64)
    for b in range(B):
        layer_input = x[b, : int(lengths[b])].double()
        for k in range(model.num_layers):
            outputs = []
            for sfx in model._suffixes:
                def param(name, k=k, sfx=sfx):
                    return getattr(model, f"{name}_l{k}{sfx}").detach().double()

                w = {gate: parts for gate, parts in zip(gates, zip(
                    *(param(name).chunk(len(gates)) for name in ("weight_ih", "weight_hh", "bias"))))}
                if peeps:
                    w.update(zip(("p" + gate for gate in peeps), param("peephole")))
                if cell == "gru":
                    w["b_hn"] = param("bias_hn")
                frames = range(len(layer_input))
                if sfx == "_reverse":
                    frames = reversed(frames)
                h = c = torch.zeros(H, dtype=torch.float64)
                result = torch.zeros(len(layer_input), H, dtype=torch.float64)
                for t in frames:
                    h, c = step(cell, w, layer_input[t], h, c)
                    result[t] = h
                outputs.append(result)
            layer_input = torch.cat(outputs, dim=1)
        out[b, : len(layer_input)] = layer_input
    return out


def run_with_and_without_bf16_autocast(model, x, lengths):
    """[y, dx, every parameter's gradient] for a weighted sum of the outputs, in float32 and
    under bf16 autocast, on x's device."""
    weight = torch.randn(*x.shape[:2], model.num_directions * model.hidden_size,
                         generator=torch.Generator().manual_seed(1)).to(x.device)
    results = []
    for autocast in (False, True):
        model.zero_grad()
        x = x.detach().requires_grad_()
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            y = model(x, lengths)
        (y * weight).sum().backward()
        results.append([y.detach(), x.grad, *(p.grad.clone() for p in model.parameters())])
    return results
