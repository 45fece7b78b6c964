"""Training and evaluation examples: utterances -> (features, label ids), and batches.

Features are computed once (in parallel worker processes if asked) and kept in
memory: on a corpus of TIMIT's size (1.1 M frames x 123 values) that is about
0.5 GB, and it removes the front end from every epoch after the first. An
utterance too short for its labels under CTC, or whose file cannot be read, is
set aside with a counted warning instead of failing the run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from asr.corpora.base import Utterance
from asr.errors import UserError
from asr.frontend import Frontend
from asr.tokens import TokenSet


def ctc_min_frames(targets: Sequence[int]) -> int:
    """Frames CTC needs for a label sequence: one per label, plus a blank between repeats."""
    repeats = sum(1 for a, b in zip(targets, targets[1:]) if a == b)
    return len(targets) + repeats


@dataclass
class Batch:
    features: torch.Tensor  # (B, T, D), zero-padded
    lengths: torch.Tensor  # (B,)
    targets: torch.Tensor  # (B, S), zero-padded label ids
    target_lengths: torch.Tensor  # (B,)
    indices: list[int]  # positions in the dataset

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.features.to(device, non_blocking=True), self.lengths, self.targets.to(device),
                     self.target_lengths, self.indices)


class _Featurize(torch.utils.data.Dataset):
    """One utterance's features, or the error text if its file is bad (for worker processes)."""

    def __init__(self, utterances: Sequence[Utterance], frontend: Frontend):
        self.utterances, self.frontend = utterances, frontend

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int):
        try:
            return index, self.frontend(self.utterances[index].path)
        except UserError as error:
            return index, str(error)


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)  # the workers are the parallelism; threads would oversubscribe


def compute_features(utterances: Sequence[Utterance], frontend: Frontend, num_workers: int = 0,
                     desc: str = "features") -> tuple[list[torch.Tensor | None], list[str]]:
    """Features of every utterance (None where its file is bad) and the error messages."""
    loader = torch.utils.data.DataLoader(_Featurize(utterances, frontend), batch_size=None,
                                         num_workers=num_workers, worker_init_fn=_one_thread)
    features: list[torch.Tensor | None] = [None] * len(utterances)
    errors = []
    for index, result in tqdm(loader, total=len(utterances), desc=desc, unit="utt", leave=False,
                              mininterval=1.0):
        if isinstance(result, str):
            errors.append(result)
        else:
            features[index] = result
    return features, errors


class FeatureDataset(torch.utils.data.Dataset):
    """Utterances with cached features and label ids; `skipped` lists what was set aside and why."""

    def __init__(self, utterances: Sequence[Utterance], frontend: Frontend, tokens: TokenSet,
                 num_workers: int = 0, desc: str = "features"):
        features, errors = compute_features(utterances, frontend, num_workers, desc)
        self.skipped: list[str] = list(errors)
        self.utterances, self.features, self.targets = [], [], []
        for utterance, feats in zip(utterances, features):
            if feats is None:
                continue
            targets = tokens.encode_text(utterance.transcript(tokens.kind), source=str(utterance.path))
            if feats.shape[0] < ctc_min_frames(targets):
                self.skipped.append(f"{utterance.path}: {feats.shape[0]} frames are too few for "
                                    f"{len(targets)} labels under CTC")
                continue
            self.utterances.append(utterance)
            self.features.append(feats)
            self.targets.append(torch.tensor(targets, dtype=torch.long))
        if not self.utterances:
            raise UserError(f"no usable utterances ({len(self.skipped)} set aside); first reason: "
                            f"{self.skipped[0] if self.skipped else 'the split is empty'}")

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.features[index], self.targets[index], index

    @property
    def lengths(self) -> list[int]:
        return [f.shape[0] for f in self.features]

    def num_frames(self) -> int:
        return sum(self.lengths)

    def batch(self, indices: Sequence[int]) -> Batch:
        return collate([self[i] for i in indices])


def collate(examples: Sequence[tuple[torch.Tensor, torch.Tensor, int]]) -> Batch:
    features, targets, indices = zip(*examples)
    return Batch(
        features=pad_sequence(features, batch_first=True),
        lengths=torch.tensor([f.shape[0] for f in features]),
        targets=pad_sequence(targets, batch_first=True),
        target_lengths=torch.tensor([len(t) for t in targets]),
        indices=list(indices),
    )
