"""A language model stored with the model (lm.arpa + decoding.yaml): used by default, turned off on request,
settings that round-trip and refuse bad values in one line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asr.checkpoint import model_payload, save_checkpoint
from asr.config import Config
from asr.errors import UserError
from asr.fusion import DecodingSettings, read_decoding_settings, save_decoding_settings
from asr.lm import train_ngram
from asr.model import CTCModel
from asr.tokens import timit_phones
from asr.transcribe import Transcriber

ROOT = Path(__file__).resolve().parents[1]


def untrained_checkpoint(folder: Path) -> Path:
    """A small phone model with random weights: enough where the posteriors are replaced or only the
    decoder's set-up is checked, and much faster than training one."""
    config = Config.from_dict({"features": {"kind": "fbank", "n_mels": 20, "energy": True, "deltas": 1},
                               "model": {"hidden_size": 8, "num_layers": 1},
                               "data": {"tokens": "timit61", "test_split": "test"}})
    tokens = timit_phones()
    torch.manual_seed(0)
    model = CTCModel(config.features.dim, len(tokens), config.model)
    save_checkpoint(model_payload(model, config, tokens), folder / "model.pt")
    return folder / "model.pt"


def phone_bigram(path: Path) -> Path:
    """A bigram that knows "aa" is followed by "b", never by "k"."""
    phones = timit_phones()
    train_ngram([["aa", "b"] * 3] * 30 + [["k"]], order=2, vocabulary=phones.symbols[1:]).write_arpa(path)
    return path


@pytest.fixture
def model_folder(tmp_path):
    """A model folder that stores a phone bigram with its settings (as --save-lm-settings leaves it)."""
    folder = tmp_path / "run"
    folder.mkdir()
    untrained_checkpoint(folder)
    save_decoding_settings(folder, phone_bigram(tmp_path / "phones.arpa"), lm_weight=1.0, insertion_bonus=0.0,
                           beam_size=8)
    return folder


class FixedPosteriors(torch.nn.Module):
    """A stand-in network whose every frame pattern says "aa, then b or k": k by a hair."""

    def __init__(self, tokens):
        super().__init__()
        aa, b, k = (tokens.symbols.index(p) for p in ("aa", "b", "k"))
        rows = torch.full((4, len(tokens)), 1e-4)
        rows[0, aa] = rows[1, 0] = rows[3, 0] = 0.95
        rows[2, b], rows[2, k] = 0.47, 0.49
        self.pattern = (rows / rows.sum(1, keepdim=True)).log()

    def forward(self, features, lengths):
        repeats = -(-features.shape[1] // 4)
        return self.pattern.repeat(repeats, 1)[: features.shape[1]].expand(len(features), -1, -1)


def transcribe_fixed(transcriber) -> list[str]:
    transcriber.model = FixedPosteriors(transcriber.tokens)
    return transcriber.transcribe(torch.zeros(16000), sample_rate=16000).labels


def test_the_stored_lm_is_used_by_default_and_wins_where_the_acoustics_barely_decide(model_folder):
    stored = Transcriber.from_checkpoint(model_folder)
    assert stored.lm is not None and stored.lm_path == model_folder / "lm.arpa"
    assert (stored.beam_size, stored.lm_weight, stored.insertion_bonus) == (8, 1.0, 0.0)
    with_lm = transcribe_fixed(stored)
    best_path = transcribe_fixed(Transcriber.from_checkpoint(model_folder / "model.pt", use_lm=False))
    assert set(best_path) == {"aa", "k"} and set(with_lm) == {"aa", "b"}
    assert len(with_lm) == len(best_path) > 10
    assert transcribe_fixed(Transcriber.from_checkpoint(model_folder, lm_path=False)) == best_path


def test_options_given_win_over_the_stored_ones_and_an_explicit_lm_replaces_the_stored_one(model_folder, tmp_path):
    transcriber = Transcriber.from_checkpoint(model_folder, beam_size=2, insertion_bonus=0.5)
    assert (transcriber.beam_size, transcriber.lm_weight, transcriber.insertion_bonus) == (2, 1.0, 0.5)
    other = phone_bigram(tmp_path / "other.arpa")
    explicit = Transcriber.from_checkpoint(model_folder, lm_path=other)
    assert explicit.lm_path == other and (explicit.beam_size, explicit.lm_weight) == (1, 0.0)  # no stored values


def test_a_folder_without_settings_decodes_without_an_lm(tmp_path):
    (tmp_path / "lm.arpa").write_text("an LM without decoding.yaml is not used: its weight is unknown")
    transcriber = Transcriber.from_checkpoint(untrained_checkpoint(tmp_path))
    assert transcriber.lm is None and transcriber.lm_path is None and transcriber.beam_size == 1


def test_settings_round_trip_and_the_lm_is_copied_in(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    lm = train_ngram([["a", "b"]], order=2)
    lm.write_arpa(tmp_path / "words.arpa.gz")
    path = save_decoding_settings(folder, tmp_path / "words.arpa.gz", 0.75, -1.5, 12)
    assert path == folder / "decoding.yaml"
    assert (folder / "lm.arpa.gz").read_bytes() == (tmp_path / "words.arpa.gz").read_bytes()
    assert read_decoding_settings(folder) == DecodingSettings("lm.arpa.gz", 0.75, -1.5, 12)
    # An LM already in the folder is named, not copied; saving again replaces the settings whole.
    lm.write_arpa(folder / "tuned.arpa")
    save_decoding_settings(folder, folder / "tuned.arpa", 0.5, 0.0, 4)
    assert read_decoding_settings(folder) == DecodingSettings("tuned.arpa", 0.5, 0.0, 4)
    assert not (folder / "lm.arpa").exists()
    assert sorted(p.name for p in folder.iterdir()) == ["decoding.yaml", "lm.arpa.gz", "tuned.arpa"]  # no temporaries
    assert read_decoding_settings(tmp_path) is None


@pytest.mark.parametrize("text,problem", [
    ("lm: lm.arpa\nlm_weight: .nan\ninsertion_bonus: 0\n", "lm_weight: nan must be a finite number"),
    ("lm: lm.arpa\nlm_weight: -1\ninsertion_bonus: 0\n", "lm_weight: -1 must be 0 or more"),
    ("lm: lm.arpa\nlm_weight: high\ninsertion_bonus: 0\n", "lm_weight: 'high' must be a finite number"),
    ("lm: lm.arpa\nlm_weight: 1\ninsertion_bonus: .inf\n", "insertion_bonus: inf must be a finite number"),
    ("lm: lm.arpa\nlm_weight: 1\ninsertion_bonus: 0\nbeam_size: 0\n", "beam_size: 0 must be a whole number"),
    ("lm: lm.arpa\nlm_weight: 1\ninsertion_bonus: 0\nbeam_size: true\n", "beam_size: True must be a whole"),
    ("lm: lm.arpa\nlm_weight: 1\ninsertion_bonus: 0\nbeam_size: 2.5\n", "beam_size: 2.5 must be a whole"),
    ("lm: ../lm.arpa\nlm_weight: 1\ninsertion_bonus: 0\n", "must be the name of an ARPA file in the model folder"),
    ("lm: other.arpa\nlm_weight: 1\ninsertion_bonus: 0\n", "names the LM 'other.arpa', which is not in"),
    ("lm: lm.arpa\nlm_weight: 1\ninsertion_bonus: 0\nlm_wieght: 2\n", "unknown keys ['lm_wieght']"),
    ("lm: lm.arpa\nlm_weight: 1\n", "missing keys ['insertion_bonus']"),
    ("- lm.arpa\n", "must be a mapping"),
    ("lm: [unclosed\n", "cannot be read as YAML"),
])
def test_bad_settings_are_one_line_errors_naming_the_file(tmp_path, text, problem):
    (tmp_path / "lm.arpa").write_text("")
    (tmp_path / "decoding.yaml").write_text(text)
    with pytest.raises(UserError) as error:
        read_decoding_settings(tmp_path)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'decoding.yaml'}: ")
    assert problem in message and "--save-lm-settings" in message


def test_a_bad_settings_file_stops_the_transcriber_rather_than_being_ignored(model_folder):
    (model_folder / "decoding.yaml").write_text("lm: lm.arpa\nlm_weight: nan\ninsertion_bonus: 0\n")
    with pytest.raises(UserError, match="decoding.yaml: lm_weight"):
        Transcriber.from_checkpoint(model_folder)
    assert Transcriber.from_checkpoint(model_folder, use_lm=False).lm is None  # --no-lm still decodes


def test_saving_refuses_values_the_decoder_could_not_use(tmp_path):
    with pytest.raises(UserError, match="beam_size"):
        save_decoding_settings(tmp_path, phone_bigram(tmp_path / "lm.arpa"), 1.0, 0.0, 0)
    assert not (tmp_path / "decoding.yaml").exists()


# ---------------------------------------------------------------- decode.py


def decode_cli(*args):
    return subprocess.run([sys.executable, "decode.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_decode_py_tunes_stores_and_then_uses_the_lm_unless_told_not_to(tiny_timit, tmp_path, capsys):
    import decode  # in this process: four fresh interpreters would spend most of their time importing torch
    from asr.lm import main as build_lm
    folder = tmp_path / "run"
    folder.mkdir()
    untrained_checkpoint(folder)
    lm = tmp_path / "phones.arpa.gz"
    build_lm(["--data", str(tiny_timit), "--order", "2", "--prune", "0", "1", "--out", str(lm)])
    test_set = ["--checkpoint", str(folder), "--test-set", str(tiny_timit), "--split", "test"]
    capsys.readouterr()
    assert decode.main([*test_set, "--lm", str(lm), "--tune-lm", "--save-lm-settings", "--beam", "2"]) == 0
    tuned = capsys.readouterr().out
    settings = read_decoding_settings(folder)
    assert settings.lm == "lm.arpa.gz" and settings.beam_size == 2
    assert f"--lm-weight {settings.lm_weight:g} --insertion-bonus {settings.insertion_bonus:g}" in tuned

    assert decode.main([*test_set, "--out", str(tmp_path / "a")]) == 0
    assert f"with beam 2 + LM {folder / 'lm.arpa.gz'} (weight {settings.lm_weight:g}" in capsys.readouterr().out
    assert decode.main([*test_set, "--out", str(tmp_path / "b"), "--no-lm"]) == 0
    assert "with best path" in capsys.readouterr().out
    summaries = [json.loads((tmp_path / name / "summary.json").read_text()) for name in ("a", "b")]
    assert [(s["lm"], s["lm_weight"], s["insertion_bonus"], s["beam_size"]) for s in summaries] == [
        (str(folder / "lm.arpa.gz"), settings.lm_weight, settings.insertion_bonus, 2), (None, None, None, 1)]


@pytest.mark.parametrize("flags,words", [
    (["--lm", "x.arpa", "--no-lm"], ["--lm", "--no-lm"]),
    (["--save-lm-settings"], ["--save-lm-settings", "--tune-lm"]),
])
def test_contradictory_lm_flags_are_one_line_errors(flags, words, tmp_path):
    result = decode_cli(*flags, tmp_path / "a.wav")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line, = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and all(word in line for word in words)


def test_tuning_without_an_lm_is_a_one_line_error(tiny_timit, tmp_path):
    untrained_checkpoint(tmp_path)
    result = decode_cli("--checkpoint", tmp_path, "--test-set", tiny_timit, "--split", "test", "--tune-lm")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no language model to tune" in result.stderr
