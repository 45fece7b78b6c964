"""Checkpoints: bad files give one clear error, code never runs, damage is detected, old files still load."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from asr.checkpoint import load_checkpoint, load_model, model_payload, save_checkpoint
from asr.config import Config, load_config
from asr.errors import UserError
from asr.model import CTCModel
from asr.tokens import token_set

ROOT = Path(__file__).resolve().parents[1]
# the shipped model that predates checksums
SHIPPED = [ROOT / "checkpoints" / "synth-small" / "model.pt"]


def tiny_payload() -> dict:
    torch.manual_seed(0)
    config = Config.from_dict({"features": {"kind": "fbank", "n_mels": 20, "energy": True, "deltas": 1},
                               "model": {"hidden_size": 8, "num_layers": 1}, "data": {"tokens": "timit61"}})
    tokens = token_set("timit61", [])
    model = CTCModel(config.features.dim, len(tokens), config.model)
    return model_payload(model, config, tokens, epoch=3)


@pytest.fixture
def saved(tmp_path) -> Path:
    path = tmp_path / "last.pt"
    save_checkpoint(tiny_payload(), path)
    return path


def test_a_saved_checkpoint_loads_with_plain_torch_and_with_its_checksum(saved):
    raw = torch.load(saved, weights_only=True)
    assert raw["checksum"].startswith("sha256:")
    model, config, tokens = load_model(saved)
    assert config.model.hidden_size == 8 and len(tokens) == 62


@pytest.mark.parametrize("size", [0, 1000])
def test_empty_and_truncated_files_are_one_clear_error(saved, size):
    saved.write_bytes(saved.read_bytes()[:size])
    with pytest.raises(UserError, match="last.pt: is not a readable checkpoint"):
        load_checkpoint(saved)


def test_a_file_of_junk_is_unreadable_and_never_suggests_the_unsafe_load(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(UserError, match=r"junk.pt: is not a readable checkpoint \(unrecognised contents\)") as caught:
        load_checkpoint(tmp_path / "junk.pt")
    assert "weights_only" not in str(caught.value)


def test_a_changed_weight_is_detected_by_the_checksum(saved):
    payload = torch.load(saved, weights_only=True)
    payload["model"]["output.weight"].view(-1)[5] += 1e-6  # one value off, as from a flipped bit
    torch.save(payload, saved)
    with pytest.raises(UserError, match="last.pt: is corrupted: its contents do not match the checksum"):
        load_checkpoint(saved)


def test_a_changed_number_is_detected_by_the_checksum(saved):
    payload = torch.load(saved, weights_only=True)
    payload["epoch"] = 4
    torch.save(payload, saved)
    with pytest.raises(UserError, match="is corrupted"):
        load_checkpoint(saved)


def test_a_flipped_bit_in_the_file_never_loads_silently(saved):
    data = bytearray(saved.read_bytes())
    weights = torch.load(saved, weights_only=True)["model"]["output.weight"]
    # The output layer's bytes as stored: find them in the file and flip one bit inside.
    start = bytes(data).find(weights.numpy().tobytes())
    assert start > 0
    data[start + 17] ^= 0x10
    saved.write_bytes(bytes(data))
    with pytest.raises(UserError, match="last.pt: is (corrupted|not a readable checkpoint)"):
        load_checkpoint(saved)


@pytest.mark.parametrize("path", SHIPPED, ids=[p.parent.name for p in SHIPPED])
def test_shipped_checkpoints_without_a_checksum_still_load(path):
    assert "checksum" not in torch.load(path, weights_only=True)
    model, config, tokens = load_model(path)
    assert len(tokens) == model.output.out_features


@pytest.mark.parametrize("name", ["english", "handwriting-small"])
def test_the_shipped_models_carry_a_valid_checksum(name):
    path = ROOT / "checkpoints" / name / "model.pt"
    assert "checksum" in torch.load(path, weights_only=True)
    model, config, tokens = load_model(path)  # load_checkpoint verifies it
    assert len(tokens) == model.output.out_features


def test_a_checkpoint_without_its_config_is_one_clear_error(tmp_path):
    payload = tiny_payload()
    del payload["config"]
    save_checkpoint(payload, tmp_path / "model.pt")
    with pytest.raises(UserError, match=r"model.pt: is an incomplete checkpoint \(no config\)"):
        load_model(tmp_path / "model.pt")


def test_a_config_asking_for_huge_weights_is_refused_before_allocating(tmp_path):
    payload = tiny_payload()
    payload["config"]["model"]["hidden_size"] = 10_000_000  # petabytes, were it allocated
    save_checkpoint(payload, tmp_path / "model.pt")
    with pytest.raises(UserError, match="model.pt: the checkpoint's weights do not fit the config's model"):
        load_model(tmp_path / "model.pt")


def test_pickled_code_never_runs_and_the_unsafe_load_is_never_suggested(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "asr-checkpoint-1", "config": {}, "evil": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(UserError) as caught:
        load_checkpoint(tmp_path / "evil.pt")
    message = str(caught.value)
    assert "evil.pt: is not a checkpoint this toolkit wrote" in message
    assert "weights_only" not in message and "\n" not in message
    assert "pwned" not in capsys.readouterr().out


def test_python_yaml_tags_never_run(tmp_path):
    marker = tmp_path / "ran"
    config = tmp_path / "evil.yaml"
    config.write_text(f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(UserError, match="evil.yaml: is not valid YAML"):
        load_config(config)
    assert not marker.exists()


def test_only_plain_values_are_saved(tmp_path):
    payload = tiny_payload()
    payload["extra"] = object()
    with pytest.raises(TypeError, match="plain values only"):
        save_checkpoint(payload, tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []


def test_the_checksum_covers_a_deep_copy_equally(saved):
    payload = load_checkpoint(saved)
    save_checkpoint(copy.deepcopy({k: v for k, v in payload.items() if k not in ("format", "checksum")}), saved)
    assert load_checkpoint(saved)["checksum"] == payload["checksum"]


def test_enum_choices_are_saved_as_plain_strings_that_load_safely(tmp_path):
    from enum import StrEnum

    class Optimizer(StrEnum):
        adam = "adam"

    payload = tiny_payload()
    payload["config"]["train"]["optimizer"] = Optimizer.adam
    save_checkpoint(payload, tmp_path / "model.pt")
    loaded = load_checkpoint(tmp_path / "model.pt")  # weights_only=True would refuse an enum member
    assert type(loaded["config"]["train"]["optimizer"]) is str and loaded["config"]["train"]["optimizer"] == "adam"
