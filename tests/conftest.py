"""Shared fixtures: tiny corpora the tests write themselves."""

from __future__ import annotations

import random

import numpy as np
import pytest
import soundfile as sf

PHONES = ["sh", "iy", "hh", "ae", "d", "s", "aa", "r", "k"]


def write_noise_utterance(folder, name, rng, rate=16000):
    """A TIMIT-layout utterance: one tone per 'phone' (60-120 ms each) in light noise, h# around."""
    folder.mkdir(parents=True, exist_ok=True)
    phones = [rng.choice(PHONES) for _ in range(rng.randint(3, 6))]
    labels = ["h#", *phones, "h#"]
    durations = [int(rate * rng.uniform(0.06, 0.12)) for _ in labels]
    edges = [0, *np.cumsum(durations).tolist()]
    samples = edges[-1]
    signal = np.zeros(samples)
    for (start, end), label in zip(zip(edges, edges[1:]), labels):
        if label != "h#":
            frequency = 200 + 300 * PHONES.index(label)
            signal[start:end] = 0.3 * np.sin(2 * np.pi * frequency * np.arange(end - start) / rate)
    signal += 0.01 * np.random.default_rng(rng.randint(0, 2**31)).standard_normal(samples)
    sf.write(folder / f"{name}.WAV", (signal * 32767).astype(np.int16), rate, format="NIST", subtype="PCM_16")
    (folder / f"{name}.PHN").write_text("".join(f"{s} {e} {p}\n" for (s, e), p in zip(zip(edges, edges[1:]), labels)))
    (folder / f"{name}.TXT").write_text(f"0 {samples} some words.\n")


def make_noise_timit(root, train_speakers=4, test_speakers=3, per_speaker=4, seed=0):
    rng = random.Random(seed)
    for part, count, prefix in (("TRAIN", train_speakers, "MZR"), ("TEST", test_speakers, "MZT")):
        for n in range(count):
            for k in range(per_speaker):
                write_noise_utterance(root / part / "DR1" / f"{prefix}{chr(65 + n)}0", f"SX{10 * n + k}", rng)
    return root


@pytest.fixture(scope="session")
def tiny_timit(tmp_path_factory):
    """A 16-utterance train / 12-utterance test TIMIT tree of tone-and-noise 'speech'."""
    return make_noise_timit(tmp_path_factory.mktemp("tiny-timit"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_timit, tmp_path_factory):
    """A small model trained for a few epochs on `tiny_timit` (it learns the tones)."""
    from asr.config import Config
    from asr.training import Trainer

    config = Config.from_dict({
        "features": {"kind": "fbank", "n_mels": 20, "energy": True, "deltas": 1},
        "model": {"hidden_size": 32, "num_layers": 1},
        "data": {"tokens": "timit61", "test_split": "test"},
        "train": {"optimizer": "adam", "lr": 0.02, "batch_size": 4, "max_epochs": 60, "patience": 0,
                  "checkpoint_every": 0},
    })
    out = tmp_path_factory.mktemp("tiny-run")
    Trainer(config, tiny_timit, out, log=lambda *a: None).fit()
    return out / "best.pt"
