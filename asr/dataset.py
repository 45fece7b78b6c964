"""Training and evaluation examples: utterances -> (features, label ids), and batches.

Features are computed once (in parallel worker processes if asked) and kept in
memory: on a corpus of TIMIT's size (1.1 M frames x 123 values) that is about
0.5 GB, and it removes the front end from every epoch after the first. An
utterance too short for its labels under CTC, whose file cannot be read, whose
transcript is empty or holds characters the token set cannot write (a digit
for speech characters, a dev line's character unseen in training) is set aside
with a counted warning naming it, instead of failing the run or training on a
mangled target. A phone token set on utterances without phone labels fails at
once: every target would be empty.

A training set can be augmented afresh every epoch (`FeatureDataset.augment_with`,
asr/augment.py for audio, asr/augment_image.py for line images): utterance i of
epoch e always gets the same augmentation, drawn from `utterance_generator(seed, e, i)`,
whatever the batch order or the process, so a resumed run sees exactly what an
uninterrupted one did. SpecAugment alone masks the cached features. Waveform and
image effects need the front end's input every epoch (`Frontend.source`: the
waveform, or the ink image): the training inputs are kept in memory up to
`WAVEFORM_BUDGET` bytes (TIMIT's 3.1 hours are 0.7 GB as float32), above it re-read
from disk each epoch, then augmented and turned into features by the front end,
then masked. An utterance that speed perturbation (or an image crop) makes too
short for its labels under CTC keeps its clean features
for that epoch (still masked) rather than giving the batch an infinite loss.
Batches are still formed on the clean lengths: with speed 0.9 and reverberation
tails a batch can hold up to about 11 % (plus a tail each) more frames than
train.max_frames.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from asr.corpora.base import Utterance
from asr.errors import UserError
from asr.frontend import Frontend
from asr.threads import one_thread
from asr.tokens import TokenSet

if TYPE_CHECKING:
    from asr.augment import Augmenter
    from asr.augment_image import ImageAugmenter


# Training inputs (waveforms, line images) kept in memory for their augmentation; above it they are re-read from disk
# every epoch (slower, but no corpus is refused for its size).
WAVEFORM_BUDGET = 2 * 1024**3


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


def phone_labels_check(utterances: Sequence[Utterance], tokens: TokenSet) -> None:
    """Refuse a phone model on utterances without phone labels (a text-only manifest).

    Every target would be empty: the run would train on nothing and score PER inf%.
    """
    if tokens.kind != "phones" or not utterances or any(u.phones for u in utterances):
        return
    listing = utterances[0].source.rsplit(" line ", 1)[0] or str(utterances[0].path.parent)
    raise UserError(f"{listing}: the phone token set (timit61) needs time-aligned phone labels, and none of its "
                    f"{len(utterances)} utterances has any. Train on its text with data.tokens=speech-chars "
                    "(or chars), or give a corpus with phone labels (a TIMIT tree)")


# Why utterances are set aside, as `FeatureDataset.set_aside` groups them.
UNWRITABLE, EMPTY, UNREADABLE, TOO_SHORT = ("with characters outside the token set", "with empty transcripts",
                                            "with unreadable files", "too short for their labels")


def label_ids(utterance: Utterance, tokens: TokenSet) -> tuple[list[int], str, str]:
    """The utterance's label ids, or [], the reason (UNWRITABLE or EMPTY) and a message naming it."""
    transcript = utterance.transcript(tokens.kind)
    unwritable = tokens.unwritable(transcript)
    if unwritable:
        shown = ", ".join(repr(c) for c in unwritable)
        return [], UNWRITABLE, (f"{utterance.where}: transcript has characters outside the token set: {shown}. "
                                f"Spell them with the token set's symbols ({tokens.describe()}), e.g. numbers as words")
    targets = tokens.encode_text(transcript, source=utterance.where)
    if not targets:
        what = "no phone labels" if tokens.kind == "phones" else f"an empty transcript ({transcript!r})"
        return [], EMPTY, f"{utterance.where}: {what}. Give its transcript, or leave it out"
    return targets, "", ""


class FeatureDataset(torch.utils.data.Dataset):
    """Utterances with cached features and label ids.

    `set_aside` maps each reason (UNWRITABLE, EMPTY, UNREADABLE, TOO_SHORT) to
    one message per utterance set aside for it (which utterance, which
    characters); `skipped` is all of them, `summary()` counts them for the log.
    Transcripts are checked before any features are computed.
    """

    def __init__(self, utterances: Sequence[Utterance], frontend: Frontend, tokens: TokenSet,
                 num_workers: int = 0, desc: str = "features"):
        phone_labels_check(utterances, tokens)
        self.set_aside: dict[str, list[str]] = {}
        labelled = []
        for utterance in utterances:
            targets, reason, message = label_ids(utterance, tokens)
            if reason:
                self.set_aside.setdefault(reason, []).append(message)
            else:
                labelled.append((utterance, targets))
        features, errors = compute_features([u for u, _ in labelled], frontend, num_workers, desc)
        if errors:
            self.set_aside[UNREADABLE] = errors
        self.utterances, self.features, self.targets = [], [], []
        for (utterance, targets), feats in zip(labelled, features):
            if feats is None:
                continue
            if feats.shape[0] < ctc_min_frames(targets):
                self.set_aside.setdefault(TOO_SHORT, []).append(
                    f"{utterance.where}: {feats.shape[0]} frames are too few for {len(targets)} labels under CTC")
                continue
            self.utterances.append(utterance)
            self.features.append(feats)
            self.targets.append(torch.tensor(targets, dtype=torch.long))
        self.frontend, self.augmenter, self.seed = frontend, None, 0
        self.sources: list[torch.Tensor] | None = None  # the training inputs, when kept in memory
        if not self.utterances:
            raise UserError(f"no usable utterances ({len(self.skipped)} set aside); first reason: "
                            f"{self.skipped[0] if self.skipped else 'the split is empty'}")

    @property
    def skipped(self) -> list[str]:
        """Every utterance set aside, one message each, grouped by reason."""
        return [message for messages in self.set_aside.values() for message in messages]

    def summary(self, examples: int = 3) -> str:
        """What was set aside, counted by reason with a few examples each ('' if nothing)."""
        parts = [f"{len(messages)} {reason}, e.g. " + "; ".join(messages[:examples])
                 for reason, messages in self.set_aside.items()]
        return f"{len(self.skipped)} set aside: " + " | ".join(parts) if parts else ""

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        return self.features[index], self.targets[index], index

    def augment_with(self, augmenter: Augmenter | ImageAugmenter, seed: int, budget: int | None = None) -> None:
        """Augment `batch(..., epoch=e)` from now on (the training split only; the cached features
        stay clean: the normalisation statistics are taken from them). The inputs (waveforms, line
        images) are kept in memory if they fit `budget` bytes (default `WAVEFORM_BUDGET`)."""
        self.augmenter, self.seed = augmenter, seed
        budget = WAVEFORM_BUDGET if budget is None else budget
        if augmenter.input_enabled and self.source_bytes() <= budget:
            self.sources = [self.frontend.source(u.path) for u in
                            tqdm(self.utterances, desc="train inputs", unit="utt", leave=False, mininterval=1.0)]

    def source_bytes(self) -> int:
        """About how much memory the training inputs take as float32."""
        return sum(self.frontend.source_bytes(u.path, len(f)) for u, f in zip(self.utterances, self.features))

    def source(self, index: int) -> torch.Tensor:
        if self.sources is not None:
            return self.sources[index]
        return self.frontend.source(self.utterances[index].path)

    def example(self, index: int, epoch: int | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Utterance `index` as in epoch `epoch` of training: augmented if `augment_with` was called."""
        if epoch is None or self.augmenter is None:
            return self[index]
        from asr.augment import utterance_generator  # noqa: PLC0415 (scipy and the effects only when augmenting)
        rng = utterance_generator(self.seed, epoch, index)
        features = self._augmented_input(index, rng) if self.augmenter.input_enabled else self.features[index]
        return self.augmenter.features(features, rng), self.targets[index], index

    def _augmented_input(self, index: int, rng: torch.Generator) -> torch.Tensor:
        """Features of the utterance's input through the input effects; babble talkers are
        other training utterances, drawn with the utterance's own generator."""
        source = self.augmenter.input(self.source(index), rng,
                                      others=lambda g: self.source(_other(index, len(self), g)))
        features = self.frontend.from_source(source)
        if features.shape[0] < ctc_min_frames(self.targets[index].tolist()):
            return self.features[index]  # sped up or cropped below CTC's minimum: this epoch it goes clean
        return features

    @property
    def lengths(self) -> list[int]:
        return [f.shape[0] for f in self.features]

    def num_frames(self) -> int:
        return sum(self.lengths)

    def batch(self, indices: Sequence[int], epoch: int | None = None) -> Batch:
        """The utterances at `indices`, augmented as in `epoch` if the set is augmented."""
        if epoch is None or self.augmenter is None:
            return collate([self[i] for i in indices])
        with one_thread():  # each utterance's work is small: see asr.threads
            return collate([self.example(i, epoch) for i in indices])


class _EpochBatches(torch.utils.data.Dataset):
    """One epoch's batches, as `FeatureDataset.batch` builds them, for worker processes."""

    def __init__(self, dataset: FeatureDataset, batches: Sequence[Sequence[int]], epoch: int):
        self.dataset, self.batches, self.epoch = dataset, batches, epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> Batch:
        return self.dataset.batch(self.batches[k], self.epoch)


def _batch_worker(worker: int) -> None:
    # Ctrl-C and a scheduler's SIGTERM reach the whole process group. The training process
    # saves last.pt and ends its workers itself; a worker that died of the signal first
    # would turn that orderly stop into a DataLoader error, and the save would not happen.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _one_thread(worker)


def epoch_batches(dataset: FeatureDataset, batches: Sequence[Sequence[int]], epoch: int,
                  num_workers: int = 0) -> Iterator[Batch]:
    """The training batches of `epoch`, in order. Input augmentation (the costly part: waveform
    or image effects, then features again) runs in `num_workers` processes when asked; each utterance's
    effects are drawn from its own (seed, epoch, index) generator, so the batches are the same
    whichever process builds them, and a resumed run still sees what it would have seen."""
    augmenter = dataset.augmenter
    if num_workers == 0 or augmenter is None or not augmenter.input_enabled:
        return (dataset.batch(indices, epoch) for indices in batches)
    loader = torch.utils.data.DataLoader(_EpochBatches(dataset, batches, epoch), batch_size=None,
                                         num_workers=num_workers, worker_init_fn=_batch_worker,
                                         prefetch_factor=4)
    return iter(loader)


def _other(index: int, count: int, rng: torch.Generator) -> int:
    """Another utterance than `index` out of `count`, uniformly (itself only if it is alone)."""
    if count == 1:
        return index
    other = int(torch.randint(count - 1, (), generator=rng))
    return other + (other >= index)


def collate(examples: Sequence[tuple[torch.Tensor, torch.Tensor, int]]) -> Batch:
    features, targets, indices = zip(*examples)
    return Batch(
        features=pad_sequence(features, batch_first=True),
        lengths=torch.tensor([f.shape[0] for f in features]),
        targets=pad_sequence(targets, batch_first=True),
        target_lengths=torch.tensor([len(t) for t in targets]),
        indices=list(indices),
    )
