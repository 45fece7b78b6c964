"""Length-aware batching: utterances of similar length share a batch.

Sorting by length before cutting batches keeps padding (wasted LSTM steps) low;
shuffling the order of the batches each epoch keeps SGD stochastic. The order is
a pure function of (seed, epoch), so a resumed run sees exactly the batches it
would have seen. Distributed training cuts global batches (``batch_size *
world_size`` utterances) and deals each out to the ranks, so the ranks together
see the batches of a single-process run with the global batch size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


def length_batches(lengths: Sequence[int], batch_size: int, max_frames: int = 0) -> list[list[int]]:
    """Indices sorted by length, cut into batches of `batch_size` utterances
    or, with `max_frames`, of at most that many padded frames (longest x count)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        grown = len(current) + 1
        too_many = grown > batch_size if not max_frames else grown * lengths[index] > max_frames
        if current and too_many:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


class LengthBatchSampler:
    """Length-grouped batches in an order seeded by (seed, epoch).

    `set_epoch(epoch, start=k)` picks the epoch and skips its first k batches
    (to resume mid-epoch). Batches smaller than `min_size` are dropped (a
    distributed run needs at least one utterance per rank).
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, max_frames: int = 0, shuffle: bool = True,
                 seed: int = 0, min_size: int = 1):
        self.shuffle, self.seed = shuffle, seed
        self.batches = [b for b in length_batches(lengths, batch_size, max_frames) if len(b) >= min_size]
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def epoch_order(self) -> list[list[int]]:
        if not self.shuffle:
            return self.batches
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return [self.batches[i] for i in torch.randperm(len(self.batches), generator=generator).tolist()]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.epoch_order()[self.start:])

    def __len__(self) -> int:
        return len(self.batches) - self.start
