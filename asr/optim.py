"""The optimiser and learning-rate schedule a training config asks for.

SGD with momentum is Graves, Mohamed & Hinton (2013)'s choice (lr 1e-4,
momentum 0.9); Adam, weight decay and three schedules (constant, exponential
decay per epoch, decay on a dev-loss plateau) are what users add. The schedule
steps once per epoch, on the dev loss when it follows a plateau. Gradient clipping
(`clip_gradients`) rescales the whole gradient to a largest norm.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable

import torch

from asr.config import TrainConfig
from asr.errors import UserError

Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


def build_optimizer(parameters: Iterable[torch.nn.Parameter],
                    t: TrainConfig) -> tuple[torch.optim.Optimizer, Scheduler]:
    """A fresh optimiser over `parameters` and its schedule, as `t` says."""
    optimizer = _optimizer(parameters, t)
    return optimizer, _scheduler(optimizer, t)


def clip_gradients(parameters: Iterable[torch.nn.Parameter], max_norm: float) -> float:
    """Rescale the gradients to a norm of at most `max_norm`, as clip_grad_norm_ does, and
    return their norm before: inf or NaN if any gradient element is.

    A finite gradient whose norm overflows float32 (its sum of squares past 3.4e38, as an
    exploding recurrence gives: the noaf cell's, say) is still a direction, and is clipped
    too: its norm is taken of the gradient divided by its largest element (clip_grad_norm_
    would call it inf and zero it). Without clipping (max_norm inf) its norm stays inf, and
    training skips the step."""
    parameters = [p for p in parameters if p.grad is not None]
    grads = [p.grad for p in parameters]
    if not grads:
        return 0.0
    norm = float(torch.nn.utils.get_total_norm(grads))
    if math.isinf(norm) and math.isfinite(max_norm):
        largest = max(float(g.abs().max()) for g in grads)
        if math.isfinite(largest):  # every element finite: only the sum of squares overflowed
            norm = largest * float(torch.nn.utils.get_total_norm([g / largest for g in grads]))
    if math.isfinite(norm):
        torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, torch.tensor(norm))
    return norm


def _optimizer(parameters: Iterable[torch.nn.Parameter], t: TrainConfig) -> torch.optim.Optimizer:
    if t.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    if t.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=t.lr, weight_decay=t.weight_decay)
    raise UserError(f"train.optimizer={t.optimizer!r}: use sgd or adam")


def _scheduler(optimizer: torch.optim.Optimizer, t: TrainConfig) -> Scheduler:
    if t.lr_schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
    if t.lr_schedule == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=t.lr_decay)
    if t.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=t.lr_decay, patience=t.lr_patience)
    raise UserError(f"train.lr_schedule={t.lr_schedule!r}: use constant, exponential or plateau")


def step_scheduler(scheduler: Scheduler, dev_loss: float) -> None:
    """The end-of-epoch step: on the dev loss for a plateau schedule, else by epoch."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(dev_loss)
        return
    with warnings.catch_warnings():  # a run resumed at an epoch's end has no update before this one
        warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()`"))
        scheduler.step()
