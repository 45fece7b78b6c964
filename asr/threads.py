"""torch on one CPU thread for a stretch of small operations, then as before.

Per-line and per-utterance work (a text line's frames, its augmentation) is made of
small tensor operations. On a busy 2-core machine a second OpenMP thread made them
13-40x slower, not faster (`asr.image.line_frames`: 15 ms a line on one thread,
195-605 ms on two at load average 8), and training pays that for every line of
every augmented epoch. Switching the thread count costs little, but not nothing
(the pool is rebuilt), so a batch is built inside one switch, not each line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
