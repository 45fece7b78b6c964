"""Distributed data parallel through PyTorch's own engine (torchrun sets the environment).

`torchrun --nproc_per_node N train.py ...` starts N processes with RANK,
WORLD_SIZE and LOCAL_RANK set; each joins the process group (NCCL on GPUs,
gloo on CPUs). Without torchrun everything here is a no-op for one process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from asr.errors import UserError


def choose_device(name: str, option: str, cpu_option: str) -> torch.device:
    """The torch device `name` (auto, cpu, cuda, cuda:N) asks for; one this machine lacks is a one-line
    UserError, not a CUDA traceback. `option` spells the setting in messages (``--device cuda``,
    ``train.device=cuda``), `cpu_option` the fix (``--device cpu``)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"{option}: not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"{option}: not supported; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{option}: this machine has no usable CUDA GPU; use {cpu_option} or auto")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"{option}: this machine has {torch.cuda.device_count()} GPU(s), numbered from 0; "
                        "use cuda:0")
    return device


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def launched() -> bool:
    """True when started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device: torch.device) -> torch.device:
    """Join the process group if launched by torchrun; the device this rank uses."""
    if not launched() or dist.is_initialized():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any (e.g. a stop request)."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def from_main(value):
    """The main rank's `value`, on every rank (a decision such as early stopping)."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
