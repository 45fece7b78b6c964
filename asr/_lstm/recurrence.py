"""The time loop of the peephole LSTM family in plain torch ops, for any device.

Same contract as the C++ ops in recurrence.cpp (which asr.lstm prefers on CPU; there
``cell`` is the index of the cell in CELLS):

- ``forward(xg, bias, w_hh, peep, lengths, cell) -> [h, c, act]``: xg (B, T, dirs, G)
  holds W_x x_t for every frame, G = len(GATES[cell]) * H in the gate order of
  GATES[cell] (a subset of i, f, g, o, in that order), bias (dirs, G),
  w_hh (dirs, G, H), peep (dirs, P, H) with rows PEEPHOLES[cell]. h and c
  (B, T, dirs, H) are zero at padded frames; act (B, T, dirs, G) holds the gate
  activations (the C++ kernel writes them over xg).
- ``backward(grad_h, w_hh, peep, c, act, lengths, cell) -> dz`` (B, T, dirs, G): the
  error of every gate pre-activation (zero at padding), from Graves'
  backpropagation through time (thesis, sec. 4.6.2).

The cells (Greff et al. 2017, "LSTM: a search space odyssey", sec. 2 and 3), each
the peephole cell of asr/lstm.py with one change:

- ``peephole``: i, f, g, o; peepholes p_i, p_f (on c_{t-1}) and p_o (on c_t);
- ``cifg``: coupled input and forget gate, f_t = 1 - i_t (no f weights, no p_f);
- ``nfg``: no forget gate, f_t = 1 (c_t = c_{t-1} + i_t g_t: Hochreiter &
  Schmidhuber 1997; no f weights, no p_f);
- ``nog``: no output gate, o_t = 1 (h_t = tanh(c_t); no o weights, no p_o);
- ``noaf``: no output activation, h_t = o_t c_t.

Direction 0 reads each sequence forwards, direction 1 backwards from its own last
frame. Both directions advance in one batched matrix product per step. The frames
are first gathered into that processing order, (steps, dirs, B, ...); steps past a
sequence's end compute on zeros (their errors are zero too) and are dropped when
scattering back.
"""

from __future__ import annotations

import torch

GATES = {"peephole": "ifgo", "cifg": "igo", "nfg": "igo", "nog": "ifg", "noaf": "ifgo"}
PEEPHOLES = {cell: gates.replace("g", "") for cell, gates in GATES.items()}  # on i, f, o
CELLS = tuple(GATES)  # the cells this loop runs


def _frames(lengths: torch.Tensor, dirs: int, steps: int,
            limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each step s < steps, direction and sequence: the frame it reads, (steps, dirs, B),
    clamped into [0, limit), and whether s is inside the sequence, (steps, 1, B, 1).
    The map is its own inverse (s -> len-1-s), so it also takes frames back to steps."""
    s = torch.arange(steps, device=lengths.device)[:, None]
    frame = [s.expand(steps, lengths.numel()), lengths - 1 - s][:dirs]
    frame = torch.stack(frame, dim=1).clamp(0, limit - 1)
    inside = (s < lengths)[:, None, :, None]
    return frame, inside


def _to_steps(y: torch.Tensor, lengths: torch.Tensor, steps: int,
              masked: bool = True) -> torch.Tensor:
    """(B, T, dirs, K) by frame -> (steps, dirs, B, K) by processing step; zero past
    a sequence's end if `masked` (else whatever frame the clamped index reads)."""
    B, T, dirs, _ = y.shape
    frame, inside = _frames(lengths, dirs, steps, T)
    batch = torch.arange(B, device=y.device)
    direction = torch.arange(dirs, device=y.device)[:, None]
    gathered = y[batch, frame, direction]
    return gathered.where(inside, 0) if masked else gathered


def _to_frames(y: torch.Tensor, lengths: torch.Tensor, T: int) -> torch.Tensor:
    """(steps, dirs, B, K) by processing step -> (B, T, dirs, K) by frame, zero at padding."""
    steps, dirs, B, _ = y.shape
    step, inside = _frames(lengths, dirs, T, steps)  # step[t, d, b]: the step that wrote frame t
    batch = torch.arange(B, device=y.device)[:, None, None]
    direction = torch.arange(dirs, device=y.device)
    frames = y[step.permute(2, 0, 1), direction, batch].where(inside.permute(2, 0, 1, 3), 0)
    return frames.contiguous()


def _check_cell(cell: str) -> str:
    if cell not in GATES:
        raise ValueError(f"unknown cell {cell!r}: the torch loop runs {', '.join(CELLS)}")
    return GATES[cell]


def forward(xg: torch.Tensor, bias: torch.Tensor, w_hh: torch.Tensor, peep: torch.Tensor,
            lengths: torch.Tensor, cell: str = "peephole", state=None):
    gates = _check_cell(cell)
    B, T, dirs, G = xg.shape
    H = G // len(gates)
    lengths = lengths.to(xg.device)
    steps = int(lengths.max()) if B else 0
    x_steps = _to_steps(xg, lengths, steps).add_(bias[:, None, :])
    act = torch.empty(steps, dirs, B, G, dtype=xg.dtype, device=xg.device)
    c_all = torch.empty(steps, dirs, B, H, dtype=xg.dtype, device=xg.device)
    h_all = torch.empty_like(c_all)
    p = dict(zip(PEEPHOLES[cell], peep[:, :, None, :].unbind(1)))  # each (dirs, 1, H)
    w_t = w_hh.transpose(1, 2)
    # `state` (h, c), each (dirs, B, H): where a stream's previous chunk ended (asr.lstm's
    # forward_state); zero at a sequence's start.
    h, c = state if state is not None else (torch.zeros(dirs, B, H, dtype=xg.dtype, device=xg.device),) * 2
    for s in range(steps):
        z = dict(zip(gates, torch.baddbmm(x_steps[s], h, w_t).chunk(len(gates), dim=-1)))
        a = dict(zip(gates, act[s].chunk(len(gates), dim=-1)))
        i = torch.sigmoid(torch.addcmul(z["i"], p["i"], c), out=a["i"])
        g = torch.tanh(z["g"], out=a["g"])
        if "f" in gates:
            kept = torch.sigmoid(torch.addcmul(z["f"], p["f"], c), out=a["f"]) * c
        elif cell == "cifg":
            kept = (1 - i) * c
        else:  # nfg
            kept = c
        c = torch.addcmul(kept, i, g, out=c_all[s])
        out = c if cell == "noaf" else torch.tanh(c)
        if "o" in gates:
            out = torch.sigmoid(torch.addcmul(z["o"], p["o"], c), out=a["o"]) * out
        h = h_all[s].copy_(out)
    return [_to_frames(y, lengths, T) for y in (h_all, c_all, act)]


def backward(grad_h: torch.Tensor, w_hh: torch.Tensor, peep: torch.Tensor, c: torch.Tensor,
             act: torch.Tensor, lengths: torch.Tensor, cell: str = "peephole") -> torch.Tensor:
    gates = _check_cell(cell)
    B, T, dirs, H = c.shape
    lengths = lengths.to(c.device)
    steps = int(lengths.max()) if B else 0
    grad_steps = _to_steps(grad_h, lengths, steps)
    # past a sequence's end every error is zero, so c and act there need no masking
    c_steps, act_steps = (_to_steps(y, lengths, steps, masked=False) for y in (c, act))
    dz = torch.empty_like(act_steps)
    p = dict(zip(PEEPHOLES[cell], peep[:, :, None, :].unbind(1)))
    dh_next = dc = torch.zeros(dirs, B, H, dtype=c.dtype, device=c.device)
    for s in reversed(range(steps)):
        a = dict(zip(gates, act_steps[s].chunk(len(gates), dim=-1)))
        d = dict(zip(gates, dz[s].chunk(len(gates), dim=-1)))
        i, g = a["i"], a["g"]
        c_prev = c_steps[s - 1] if s > 0 else torch.zeros_like(dc)
        dh = grad_steps[s] + dh_next
        # h = o * out(c), out = tanh or (noaf) the identity
        out, d_out = ((c_steps[s], 1) if cell == "noaf"
                      else (t := torch.tanh(c_steps[s]), 1 - t * t))
        if "o" in gates:
            o = a["o"]
            torch.mul(dh * out, o * (1 - o), out=d["o"])
            dc = dc + dh * o * d_out + d["o"] * p["o"]
        else:
            dc = dc + dh * d_out
        if cell == "cifg":  # c = (1 - i) c_prev + i g
            torch.mul(dc * (g - c_prev), i * (1 - i), out=d["i"])
        else:
            torch.mul(dc * g, i * (1 - i), out=d["i"])
        torch.mul(dc * i, 1 - g * g, out=d["g"])
        if "f" in gates:
            f = a["f"]
            torch.mul(dc * c_prev, f * (1 - f), out=d["f"])
            dc = dc * f + d["i"] * p["i"] + d["f"] * p["f"]
        elif cell == "cifg":
            dc = dc * (1 - i) + d["i"] * p["i"]
        else:  # nfg
            dc = dc + d["i"] * p["i"]
        dh_next = torch.bmm(dz[s], w_hh)
    return _to_frames(dz, lengths, T)
