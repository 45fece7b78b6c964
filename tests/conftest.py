"""Shared fixtures: tiny corpora the tests write themselves, and a model trained on one.

Whatever trains here is seeded and runs on one thread, so that one machine gets the
same weights every time; other machines (AVX2 or AVX-512, another BLAS path) still
get slightly different weights, so no test asserts on more of this model than a
wide margin holds: test_the_tiny_model_learned_something asks for a PER under 50 %,
and the tiny model scores 20.4 % with AVX-512 and 24.1 % with AVX2 (each the same
with 1 or 2 threads).
"""

from __future__ import annotations

import contextlib
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

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


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state, whichever tests ran before it."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_timit(tmp_path_factory):
    """A 16-utterance train / 12-utterance test TIMIT tree of tone-and-noise 'speech'."""
    return make_noise_timit(tmp_path_factory.mktemp("tiny-timit"))


@pytest.fixture(name="one_thread")
def one_thread_fixture():
    """One intra-op thread for the test (reductions then add up in one order in every process)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_round_trips_as_plain_data(config) -> None:
    """`config.to_dict()` survives YAML and torch.load(weights_only=True) unchanged, with no Python tags."""
    import io

    import yaml

    from asr.config import Config

    data = config.to_dict()
    text = yaml.safe_dump(data, sort_keys=False)
    assert "!!python" not in text
    assert Config.from_dict(yaml.safe_load(text), "again.yaml") == config
    buffer = io.BytesIO()
    torch.save({"config": data}, buffer)
    buffer.seek(0)
    assert Config.from_dict(torch.load(buffer, weights_only=True)["config"], "checkpoint") == config


@contextlib.contextmanager
def one_thread(seed=0):
    """Seeded and single-threaded inside, the caller's thread count and RNG state restored after:
    intra-op threads split reductions differently, and so change the rounding of training."""
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def train_tiny(tiny_timit, out: Path, *, deltas: int, model: dict, max_epochs: int) -> Path:
    """A small phone model trained on `tiny_timit`, seeded and on one thread; its best.pt."""
    from asr.config import Config
    from asr.training import Trainer

    config = Config.from_dict({
        "features": {"kind": "fbank", "n_mels": 20, "energy": True, "deltas": deltas},
        "model": model,
        "data": {"tokens": "timit61", "test_split": "test"},
        "train": {"optimizer": "adam", "lr": 0.02, "batch_size": 4, "max_epochs": max_epochs, "patience": 0,
                  "checkpoint_every": 0, "seed": 0},
    })
    with one_thread():
        Trainer(config, tiny_timit, out, log=lambda *a: None).fit()
    return out / "best.pt"


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_timit, tmp_path_factory):
    """A small model trained for a few epochs on `tiny_timit` (it learns the tones)."""
    return train_tiny(tiny_timit, tmp_path_factory.mktemp("tiny-run"), deltas=1,
                      model={"hidden_size": 32, "num_layers": 1}, max_epochs=60)


@pytest.fixture(scope="session")
def synthesized_speech(tmp_path_factory):
    """Utterances that checkpoints/synth-small was not trained on (another seed), all seven voices:
    31 utterances, about 95 s of speech. Synthesis is deterministic (flite and festival, seeded)."""
    if shutil.which("festival") is None or shutil.which("flite") is None:
        pytest.skip("needs the Debian packages flite and festival (install.sh)")
    from asr.corpora.timit import read_timit
    from data import synth_timit

    out = tmp_path_factory.mktemp("fresh") / "synth-timit"
    assert synth_timit.main(["--out", str(out), "--utterances", "40", "--seed", "11", "--speakers-per-voice", "2",
                             "--no-sa", "--voices", "flite,festival", "--test-voices", "", "--dev-voices", ""]) == 0
    return read_timit(out, "train") + read_timit(out, "test")
