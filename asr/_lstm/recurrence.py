"""The time loop of the peephole LSTM in plain torch ops, for any device.

Same contract as the C++ ops in recurrence.cpp (which asr.lstm prefers on CPU):

- ``forward(xg, bias, w_hh, peep, lengths) -> [h, c, act]``: xg (B, T, dirs, 4H)
  holds W_x x_t for every frame (gate order i, f, g, o), bias (dirs, 4H),
  w_hh (dirs, 4H, H), peep (dirs, 3, H) rows p_i, p_f, p_o. h and c (B, T, dirs, H)
  are zero at padded frames; act (B, T, dirs, 4H) holds the gate activations
  i, f, g, o (the C++ kernel writes them over xg).
- ``backward(grad_h, w_hh, peep, c, act, lengths) -> dz`` (B, T, dirs, 4H): the error
  of every gate pre-activation (zero at padding), from Graves' backpropagation
  through time (thesis, sec. 4.6.2).

Direction 0 reads each sequence forwards, direction 1 backwards from its own last
frame. Both directions advance in one batched matrix product per step. The frames
are first gathered into that processing order, (steps, dirs, B, ...); steps past a
sequence's end compute on zeros (their errors are zero too) and are dropped when
scattering back.
"""

from __future__ import annotations

import torch


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


def forward(xg: torch.Tensor, bias: torch.Tensor, w_hh: torch.Tensor, peep: torch.Tensor,
            lengths: torch.Tensor):
    B, T, dirs, G = xg.shape
    H = G // 4
    lengths = lengths.to(xg.device)
    steps = int(lengths.max()) if B else 0
    x_steps = _to_steps(xg, lengths, steps).add_(bias[:, None, :])
    act = torch.empty(steps, dirs, B, G, dtype=xg.dtype, device=xg.device)
    c_all = torch.empty(steps, dirs, B, H, dtype=xg.dtype, device=xg.device)
    h_all = torch.empty_like(c_all)
    p_i, p_f, p_o = peep[:, :, None, :].unbind(1)  # each (dirs, 1, H)
    w_t = w_hh.transpose(1, 2)
    h = c = torch.zeros(dirs, B, H, dtype=xg.dtype, device=xg.device)
    for s in range(steps):
        z = torch.baddbmm(x_steps[s], h, w_t)
        z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)
        i, f, g, o = act[s].chunk(4, dim=-1)
        torch.sigmoid(torch.addcmul(z_i, p_i, c), out=i)
        torch.sigmoid(torch.addcmul(z_f, p_f, c), out=f)
        torch.tanh(z_g, out=g)
        c = torch.addcmul(f * c, i, g, out=c_all[s])
        torch.sigmoid(torch.addcmul(z_o, p_o, c), out=o)
        h = torch.mul(o, torch.tanh(c), out=h_all[s])
    return [_to_frames(y, lengths, T) for y in (h_all, c_all, act)]


def backward(grad_h: torch.Tensor, w_hh: torch.Tensor, peep: torch.Tensor, c: torch.Tensor,
             act: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    B, T, dirs, H = c.shape
    lengths = lengths.to(c.device)
    steps = int(lengths.max()) if B else 0
    grad_steps = _to_steps(grad_h, lengths, steps)
    # past a sequence's end every error is zero, so c and act there need no masking
    c_steps, act_steps = (_to_steps(y, lengths, steps, masked=False) for y in (c, act))
    dz = torch.empty_like(act_steps)
    p_i, p_f, p_o = peep[:, :, None, :].unbind(1)
    dh_next = dc = torch.zeros(dirs, B, H, dtype=c.dtype, device=c.device)
    for s in reversed(range(steps)):
        i, f, g, o = act_steps[s].chunk(4, dim=-1)
        dz_i, dz_f, dz_g, dz_o = dz[s].chunk(4, dim=-1)
        c_prev = c_steps[s - 1] if s > 0 else torch.zeros_like(dc)
        dh = grad_steps[s] + dh_next
        tanh_c = torch.tanh(c_steps[s])
        torch.mul(dh * tanh_c, o * (1 - o), out=dz_o)
        dc = dc + dh * o * (1 - tanh_c * tanh_c) + dz_o * p_o
        torch.mul(dc * g, i * (1 - i), out=dz_i)
        torch.mul(dc * c_prev, f * (1 - f), out=dz_f)
        torch.mul(dc * i, 1 - g * g, out=dz_g)
        dc = dc * f + dz_i * p_i + dz_f * p_f
        dh_next = torch.bmm(dz[s], w_hh)
    return _to_frames(dz, lengths, T)
