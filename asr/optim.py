"""The optimiser and learning-rate schedule a training config asks for.

SGD with momentum is Graves, Mohamed & Hinton (2013)'s choice (lr 1e-4,
momentum 0.9); Adam, weight decay and three schedules (constant, exponential
decay per epoch, decay on a dev-loss plateau) are what users add. The schedule
steps once per epoch, on the dev loss when it follows a plateau.
"""

from __future__ import annotations

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
