"""Configs are checked when they are loaded: every choice, size and range, before any data is read."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asr.config import Config, load_config
from asr.errors import UserError
from asr.tokens import token_set
from tests.conftest import assert_round_trips_as_plain_data

ROOT = Path(__file__).resolve().parents[1]


def config_with(key: str, value, features: dict | None = None) -> Config:
    """`Config.from_dict` of the defaults with one dotted key set (source 'test.yaml')."""
    section, name = key.split(".")
    data = {"features": dict(features or {})}
    data.setdefault(section, {})[name] = value
    return Config.from_dict(data, "test.yaml")


def refused(key: str, value, features: dict | None = None) -> str:
    with pytest.raises(UserError) as caught:
        config_with(key, value, features)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("test.yaml: ") and key in message, message
    return message


IMAGE = {"kind": "image"}

# (key, a value refused, words the message must hold: the choices or the bound)
CHOICES = [
    ("train.optimizer", "adamw", ["sgd", "adam"]),
    ("train.lr_schedule", "cosine", ["constant", "plateau", "exponential"]),
    ("train.select_on", "wer", ["error", "loss"]),
    ("train.precision", "fp16", ["fp32", "bf16"]),
    ("train.precision", "fp8", ["fp32", "bf16"]),
    ("model.normalize", "speaker", ["global", "utterance", "none"]),
    ("data.tokens", "timit39", ["timit61", "speech-chars", "chars"]),
    ("features.window", "blackman", ["hamming", "povey", "hann"]),
]


@pytest.mark.parametrize("key,value,choices", CHOICES, ids=[f"{k}={v}" for k, v, _ in CHOICES])
def test_a_misspelt_choice_names_key_value_and_choices(key, value, choices):
    message = refused(key, value)
    assert f"{key}={value!r}" in message
    assert all(choice in message for choice in choices), message


def test_a_misspelt_image_setting_names_its_choices():
    message = refused("features.ink", "blue", IMAGE)
    assert "features.ink='blue'" in message and all(c in message for c in ("auto", "dark", "light"))


def test_a_misspelt_feature_kind_names_every_kind():
    with pytest.raises(UserError, match=r"test\.yaml: features\.kind='fbnak' is not one of: fbank, mfcc, image"):
        Config.from_dict({"features": {"kind": "fbnak"}}, "test.yaml")


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:0", "cuda:3"])
def test_device_forms_are_accepted(value):
    assert config_with("train.device", value).train.device == value


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "CPU", "cuda:0 ", "mps"])
def test_other_devices_are_refused(value):
    message = refused("train.device", value)
    assert "auto, cpu, cuda or cuda:N" in message


# (key, value, the bound the message states)
RANGES = [
    ("model.hidden_size", -5, "at least 1"),
    ("model.hidden_size", 0, "at least 1"),  # 0 crashed the C++ LSTM kernel
    ("model.num_layers", 0, "at least 1"),
    ("model.init_range", 0.0, "above 0"),
    ("train.batch_size", 0, "at least 1"),
    ("train.max_epochs", 0, "at least 1"),
    ("train.max_bad_steps", 0, "at least 1"),
    ("train.lr", 0.0, "above 0"),
    ("train.lr", -1e-3, "above 0"),
    ("train.momentum", 1.0, "below 1"),
    ("train.momentum", -0.1, "at least 0"),
    ("train.lr_decay", 0.0, "above 0"),
    ("train.lr_decay", 1.5, "at most 1"),
    ("train.max_frames", -1, "at least 0"),
    ("train.grad_clip", -1.0, "at least 0"),
    ("train.patience", -1, "at least 0"),
    ("train.lr_patience", -1, "at least 0"),
    ("train.max_steps", -1, "at least 0"),
    ("train.max_minutes", -1.0, "at least 0"),
    ("train.weight_noise", -0.1, "at least 0"),
    ("train.noise_std", -0.1, "at least 0"),
    ("train.weight_decay", -0.1, "at least 0"),
    ("train.checkpoint_every", -1, "at least 0"),
    ("train.seed", -1, "at least 0"),
    ("data.max_utterances", -1, "at least 0"),
    ("data.num_workers", -1, "at least 0"),
    ("features.n_mels", 0, "at least 1"),
    ("features.sample_rate", 0, "at least 1"),
    ("features.n_mfcc", 0, "at least 1"),
    ("features.win_ms", 0.0, "above 0"),
    ("features.preemphasis", 1.5, "at most 1"),
    ("features.lifter", -1.0, "at least 0"),
    ("features.dither", -1.0, "at least 0"),
]


@pytest.mark.parametrize("key,value,bound", RANGES, ids=[f"{k}={v}" for k, v, _ in RANGES])
def test_a_number_out_of_range_names_key_value_and_bound(key, value, bound):
    message = refused(key, value)
    assert f"{key}={value!r} must be {bound}" in message, message


@pytest.mark.parametrize("key,value", [("window", 0), ("stride", 0), ("margin", -1)])
def test_image_sizes_out_of_range_are_refused(key, value):
    refused(f"features.{key}", value, IMAGE)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "inf"])
@pytest.mark.parametrize("key", ["train.lr", "train.grad_clip", "features.dither", "features.high_freq"])
def test_floats_must_be_finite(key, value):
    message = refused(key, value)
    assert "finite" in message


@pytest.mark.parametrize("section,value", [("model", [1, 2]), ("train", 3), ("features", "fbank"), ("data", True),
                                           ("model", []), ("train", 0)])
def test_a_section_must_be_a_mapping(section, value):
    with pytest.raises(UserError, match=rf"test\.yaml: {section} must be a mapping"):
        Config.from_dict({section: value}, "test.yaml")


@pytest.mark.parametrize("text", ["model: [1, 2]\n", "train: 3\n"])
def test_a_config_file_with_a_section_that_is_no_mapping_is_named(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=f"{path}: (model|train) must be a mapping of key: value, not "):
        load_config(path)


def test_the_whole_config_must_be_a_mapping():
    with pytest.raises(UserError, match="test.yaml: must be a mapping"):
        Config.from_dict([1, 2], "test.yaml")


def test_an_empty_section_means_the_defaults():
    assert Config.from_dict({"model": None, "train": {}}, "test.yaml") == Config()


def test_overrides_are_checked_and_named():
    with pytest.raises(UserError, match=r"overrides: train\.batch_size=0 must be at least 1"):
        Config().override(["train.batch_size=0"])
    with pytest.raises(UserError, match=r"overrides: train\.precision='fp16' is not one of: fp32, bf16"):
        Config().override(["train.precision=fp16"])
    with pytest.raises(UserError, match=r"overrides: train\.lr=inf must be a finite number"):
        Config().override(["train.lr=.inf"])


def every_choice():
    cases = [("train.optimizer", value) for value in ("sgd", "adam")]
    cases += [("train.lr_schedule", value) for value in ("constant", "plateau", "exponential")]
    cases += [("train.select_on", value) for value in ("error", "loss")]
    cases += [("train.precision", value) for value in ("fp32", "bf16")]
    cases += [("model.normalize", value) for value in ("global", "utterance", "none")]
    cases += [("data.tokens", value) for value in ("", "timit61", "speech-chars", "chars")]
    cases += [("features.kind", value) for value in ("fbank", "mfcc")]
    cases += [("features.window", value) for value in ("hamming", "povey", "hann")]
    return cases


@pytest.mark.parametrize("key,value", every_choice())
def test_every_choice_is_accepted_and_saved_as_a_plain_string(key, value):
    config = config_with(key, value)
    section, name = key.split(".")
    assert getattr(getattr(config, section), name) == value
    saved = config.to_dict()[section][name]
    assert type(saved) is str and saved == value


@pytest.mark.parametrize("value", ["auto", "dark", "light"])
def test_every_ink_is_accepted_and_saved_as_a_plain_string(value):
    config = config_with("features.ink", value, IMAGE)
    assert config.features.ink == value and type(config.to_dict()["features"]["ink"]) is str


def test_the_choices_are_the_ones_the_code_knows():
    from asr.config import DataConfig, ModelConfig, TrainConfig, choices_of
    from asr.features import Normalizer
    assert choices_of(TrainConfig, "optimizer") == ["sgd", "adam"]
    assert choices_of(TrainConfig, "precision") == ["fp32", "bf16"]
    assert choices_of(DataConfig, "tokens")[0] == ""  # the corpus's default
    for name in choices_of(DataConfig, "tokens")[1:]:
        assert len(token_set(name, ["ab c"])) > 1
    for mode in choices_of(ModelConfig, "normalize"):
        assert Normalizer(3, mode).mode == mode


def test_choices_still_compare_as_strings():
    config = config_with("train.optimizer", "adam")
    assert config.train.optimizer == "adam" and f"{config.train.optimizer}" == "adam"
    assert config.data.tokens in ("", "chars") and not config.data.tokens


def plain(value) -> bool:
    if isinstance(value, dict):
        return all(type(k) is str and plain(v) for k, v in value.items())
    if isinstance(value, list):  # augment.speed_factors, augment.noise_kinds
        return all(plain(v) for v in value)
    return type(value) in (str, int, float, bool)


@pytest.mark.parametrize("features", [{"kind": "mfcc", "window": "hann"}, IMAGE])
def test_to_dict_is_plain_data_that_round_trips_through_yaml_and_torch(features):
    config = Config.from_dict({"features": features, "model": {"normalize": "utterance"},
                               "data": {"tokens": "speech-chars"},
                               "train": {"optimizer": "adam", "precision": "bf16", "select_on": "loss",
                                         "lr_schedule": "plateau", "device": "cuda:1"}}, "test.yaml")
    data = config.to_dict()
    assert plain(data)
    assert_round_trips_as_plain_data(config)


SHIPPED = sorted((ROOT / "recipes").rglob("*.yaml")) + sorted((ROOT / "checkpoints").glob("*/config.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_every_shipped_config_passes_the_checks(path):
    config = load_config(path)
    assert plain(config.to_dict())


@pytest.mark.parametrize("name", ["english", "synth-small", "handwriting-small"])
def test_the_shipped_checkpoints_configs_pass_the_checks(name):
    path = ROOT / "checkpoints" / name / "model.pt"
    payload = torch.load(path, map_location="cpu", weights_only=True)
    config = Config.from_dict(payload["config"], str(path))
    assert config.to_dict() == payload["config"]


def train_py(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("mode", [[], ["--dry-run"]], ids=["train", "dry-run"])
def test_train_py_reports_a_bad_config_before_the_data(tmp_path, mode):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {optimizer: adamw}\n")
    result = train_py("--config", str(bad), "--data", "/nonexistent", "--out", str(tmp_path / "run"), *mode)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert f"{bad}: train.optimizer='adamw' is not one of: sgd, adam" in result.stderr
    assert not (tmp_path / "run").exists()


def test_train_py_reports_a_bad_override_before_the_data(tmp_path):
    result = train_py("--config", "recipes/synth/small.yaml", "--data", "/nonexistent", "--out",
                      str(tmp_path / "run"), "model.hidden_size=0")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "model.hidden_size=0 must be at least 1" in result.stderr
