"""Transcripts a token set cannot train on (issue 9, defect 14): null, empty, characters
outside the set, phone tokens without phone labels. Each is refused or set aside and
reported (which utterance, which characters), never trained on silently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.config import Config
from asr.corpora.manifest import read_manifest
from asr.dataset import FeatureDataset
from asr.errors import UserError
from asr.tokens import characters_from_texts, speech_characters, timit_phones
from asr.training import Trainer


class FixedFrames:
    """A front end that gives every file 40 frames: these tests are about transcripts."""

    def __call__(self, path: Path) -> torch.Tensor:
        return torch.zeros(40, 3)


def write_manifest(folder: Path, name: str, texts: list, media: str = "audio") -> Path:
    lines = []
    for number, text in enumerate(texts):
        file = folder / f"{name}{number}.{'wav' if media == 'audio' else 'png'}"
        file.write_bytes(b"")  # the readers check existence only; FixedFrames never reads
        lines.append(json.dumps({media: file.name, "text": text}))
    manifest = folder / f"{name}.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


@pytest.mark.parametrize("value", [None, 42, ["a"]])
def test_a_text_that_is_not_a_string_names_its_line(tmp_path, value):
    manifest = write_manifest(tmp_path, "train", ["fine", value])
    with pytest.raises(UserError, match=r"train.jsonl line 2: \"text\" is .*, not a string"):
        read_manifest(manifest)


def test_manifest_utterances_know_their_line(tmp_path):
    manifest = write_manifest(tmp_path, "train", ["one", "two"])
    assert [u.where for u in read_manifest(manifest)] == [f"{manifest} line 1", f"{manifest} line 2"]


def test_speech_characters_name_what_normalisation_would_drop():
    tokens = speech_characters()
    assert tokens.unwritable("Café, it's 2 o'clock!") == ["2"]
    assert tokens.unwritable("Straße über") == ["ß"]
    assert tokens.unwritable("plain words, and punctuation.") == []


def test_empty_and_unwritable_texts_are_set_aside_and_reported(tmp_path):
    manifest = write_manifest(tmp_path, "train", ["hello there", "", "  ", "2 cats", "café au lait", "x ¾"])
    dataset = FeatureDataset(read_manifest(manifest), FixedFrames(), speech_characters())
    kept = [u.text for u in dataset.utterances]
    assert kept == ["hello there", "café au lait"]
    assert len(dataset.skipped) == 4
    assert dataset.skipped[0].startswith(f"{manifest} line 2: an empty transcript")
    assert dataset.skipped[2].startswith(f"{manifest} line 4: transcript has characters outside the token set: '2'")
    summary = dataset.summary()
    assert summary.startswith("4 set aside: 2 with empty transcripts, e.g. ")
    assert "2 with characters outside the token set" in summary and "'3', '4'" in summary


def test_an_unknown_character_in_one_dev_line_sets_that_line_aside(tmp_path):
    train = read_manifest(write_manifest(tmp_path, "train", ["abc", "cab"], media="image"))
    dev = read_manifest(write_manifest(tmp_path, "dev", ["bac", "abé", "cc"], media="image"))
    tokens = characters_from_texts(u.text for u in train)
    dataset = FeatureDataset(dev, FixedFrames(), tokens)
    assert [u.text for u in dataset.utterances] == ["bac", "cc"]
    assert dataset.skipped == [f"{tmp_path / 'dev.jsonl'} line 2: transcript has characters outside the token "
                               f"set: 'é'. Spell them with the token set's symbols ({tokens.describe()}), "
                               "e.g. numbers as words"]


def test_a_split_with_nothing_usable_says_why(tmp_path):
    manifest = write_manifest(tmp_path, "train", ["", "1984"])
    with pytest.raises(UserError, match="no usable utterances.*line 1: an empty transcript"):
        FeatureDataset(read_manifest(manifest), FixedFrames(), speech_characters())


def test_phone_tokens_on_a_text_only_manifest_are_refused(tmp_path):
    manifest = write_manifest(tmp_path, "train", ["hello", "world"])
    with pytest.raises(UserError, match=f"{manifest}: the phone token set .* data.tokens=speech-chars"):
        FeatureDataset(read_manifest(manifest), FixedFrames(), timit_phones())


def test_training_refuses_phone_tokens_on_a_text_only_manifest(tmp_path):
    for number in range(2):
        sf.write(tmp_path / f"a{number}.wav", np.zeros(8000, np.float32), 16000)
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps({"audio": f"a{n}.wav", "text": "hi"}) + "\n" for n in range(2)))
    config = Config.from_dict({"features": {"kind": "fbank", "n_mels": 20}, "data": {"tokens": "timit61"},
                               "model": {"hidden_size": 8, "num_layers": 1}})
    with pytest.raises(UserError, match="needs time-aligned phone labels"):
        Trainer(config, manifest, tmp_path / "out", log=lambda *a: None)



class RefusesOne(FixedFrames):
    """FixedFrames, but the second file is unreadable."""

    def __call__(self, path: Path) -> torch.Tensor:
        if path.name == "train1.wav":
            raise UserError(f"{path}: is not readable audio")
        return super().__call__(path)


def test_the_summary_counts_every_reason(tmp_path):
    manifest = write_manifest(tmp_path, "train", ["ok", "fine file", "", "a" * 41])
    dataset = FeatureDataset(read_manifest(manifest), RefusesOne(), speech_characters())
    assert [u.text for u in dataset.utterances] == ["ok"]
    assert list(dataset.set_aside) == ["with empty transcripts", "with unreadable files", "too short for their labels"]
    assert dataset.summary(examples=1) == (
        f"3 set aside: 1 with empty transcripts, e.g. {manifest} line 3: an empty transcript (''). Give its "
        f"transcript, or leave it out | 1 with unreadable files, e.g. {tmp_path / 'train1.wav'}: is not readable "
        f"audio | 1 too short for their labels, e.g. {manifest} line 4: 40 frames are too few for 41 labels under CTC")
