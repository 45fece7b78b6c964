"""Shared fixtures: tiny corpora the tests write themselves."""

from __future__ import annotations

import random

import numpy as np
import pytest
import soundfile as sf

PHONES = ["sh", "iy", "hh", "ae", "d", "s", "aa", "r", "k"]


def write_noise_utterance(folder, name, rng, seconds=0.6, rate=16000):
    """A TIMIT-layout utterance: coloured noise whose loudness follows random 'phones'."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = int(seconds * rate)
    phones = [rng.choice(PHONES) for _ in range(rng.randint(3, 6))]
    edges = [0, *sorted(rng.sample(range(800, samples - 800), len(phones) + 1)), samples]
    labels = ["h#", *phones, "h#"]
    signal = np.zeros(samples)
    for (start, end), label in zip(zip(edges, edges[1:]), labels):
        if label != "h#":
            frequency = 200 + 300 * PHONES.index(label)
            t = np.arange(end - start) / rate
            signal[start:end] = 0.3 * np.sin(2 * np.pi * frequency * t)
    signal += 0.01 * np.random.default_rng(rng.randint(0, 2**31)).standard_normal(samples)
    sf.write(folder / f"{name}.WAV", (signal * 32767).astype(np.int16), rate, format="NIST", subtype="PCM_16")
    (folder / f"{name}.PHN").write_text("".join(f"{s} {e} {p}\n" for (s, e), p in zip(zip(edges, edges[1:]), labels)))
    (folder / f"{name}.TXT").write_text(f"0 {samples} some words.\n")


def make_noise_timit(root, train_speakers=4, test_speakers=3, per_speaker=4, seed=0):
    rng = random.Random(seed)
    for part, count, prefix in (("TRAIN", train_speakers, "MTR"), ("TEST", test_speakers, "MTE")):
        for n in range(count):
            for k in range(per_speaker):
                write_noise_utterance(root / part / "DR1" / f"{prefix}{chr(65 + n)}0", f"SX{10 * n + k}", rng)
    return root


@pytest.fixture(scope="session")
def tiny_timit(tmp_path_factory):
    """A 16-utterance train / 12-utterance test TIMIT tree of tone-and-noise 'speech'."""
    return make_noise_timit(tmp_path_factory.mktemp("tiny-timit"))
