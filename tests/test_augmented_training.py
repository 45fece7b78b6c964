"""Training with augmentation on (asr/augment.py wired into asr/dataset.py and asr/training.py)."""

import dataclasses

import pytest
import torch
from test_training import ROOT, quiet, run_cli, tiny_config

from asr import dataset as dataset_module
from asr.config import Config, load_config
from asr.dataset import _other, epoch_batches
from asr.errors import UserError
from asr.training import Trainer

SPEC = ["augment.freq_masks=2", "augment.freq_mask_width=5", "augment.time_masks=2", "augment.time_mask_width=10"]
# every waveform effect but the slow room simulation, babble included (it draws other training utterances)
WAVE = ["augment.speed_prob=1.0", "augment.vtlp_prob=0.5", "augment.reverb_prob=0.5", "augment.noise_prob=1.0",
        "augment.noise_kinds=[babble, pink]", "augment.telephone_prob=0.3", "augment.gain_prob=0.5",
        "augment.clip_prob=0.2"]


def trainer(tiny_timit, out, overrides, **train) -> Trainer:
    return Trainer(tiny_config(**train).override(overrides), tiny_timit, out, log=quiet)


@pytest.mark.parametrize("overrides", [SPEC, WAVE + SPEC], ids=["specaugment", "waveform+specaugment"])
def test_train_batches_are_augmented_per_epoch_and_reproducibly_and_dev_never(tiny_timit, tmp_path, overrides):
    run = trainer(tiny_timit, tmp_path, overrides, max_steps=1)
    train, indices = run.train_set, [0, 5, 9]
    clean = train.batch(indices)
    first, again, second = train.batch(indices, epoch=0), train.batch(indices, epoch=0), train.batch(indices, epoch=1)
    assert torch.equal(first.features, again.features) and torch.equal(first.lengths, again.lengths)
    assert not torch.equal(first.features, second.features)
    if first.features.shape == clean.features.shape:
        assert not torch.equal(first.features, clean.features)
    # the cached features stay clean: the normaliser's statistics and the dev set see no augmentation
    assert torch.equal(train.batch(indices).features, clean.features)
    assert run.dev_set.augmenter is None
    assert torch.equal(run.dev_set.batch([0, 1], epoch=0).features, run.dev_set.batch([0, 1]).features)


def test_batches_built_in_worker_processes_are_those_of_the_main_process(tiny_timit, tmp_path):
    train = trainer(tiny_timit, tmp_path, WAVE + SPEC, max_steps=1).train_set
    batches = [[0, 5, 9], [1, 2], [7]]
    here = list(epoch_batches(train, batches, epoch=2))
    in_workers = list(epoch_batches(train, batches, epoch=2, num_workers=2))
    assert len(in_workers) == len(batches)
    for mine, theirs in zip(here, in_workers):
        assert torch.equal(mine.features, theirs.features) and torch.equal(mine.targets, theirs.targets)
        assert torch.equal(mine.lengths, theirs.lengths)
    assert not torch.equal(here[0].features, next(epoch_batches(train, batches, epoch=3, num_workers=2)).features)


def test_an_augmented_run_trains_and_differs_from_a_clean_one(tiny_timit, tmp_path, one_thread):
    clean = trainer(tiny_timit, tmp_path / "clean", [], max_epochs=2).fit()
    augmented_run = trainer(tiny_timit, tmp_path / "augmented", WAVE + SPEC, max_epochs=2)
    augmented = augmented_run.fit()
    assert augmented.skipped_steps == 0 and augmented.history[-1]["dev_loss"] < float("inf")
    assert augmented.history[0]["train_loss"] != clean.history[0]["train_loss"]
    # the normalisation statistics are those of the clean training features in both runs
    normalizer = augmented_run.model.normalizer
    torch.testing.assert_close(normalizer.mean, torch.cat(augmented_run.train_set.features).mean(0),
                               rtol=1e-4, atol=1e-4)


def test_waveforms_re_read_from_disk_above_the_budget_give_the_same_batches(tiny_timit, tmp_path, monkeypatch):
    in_memory = trainer(tiny_timit, tmp_path / "memory", WAVE, max_steps=1)
    assert in_memory.train_set.sources is not None and "kept in memory" in in_memory.describe()
    monkeypatch.setattr(dataset_module, "WAVEFORM_BUDGET", 0)
    from_disk = trainer(tiny_timit, tmp_path / "disk", WAVE, max_steps=1)
    assert from_disk.train_set.sources is None and "re-read from disk" in from_disk.describe()
    for epoch in (0, 3):
        a, b = in_memory.train_set.batch([1, 2, 3], epoch), from_disk.train_set.batch([1, 2, 3], epoch)
        assert torch.equal(a.features, b.features)


def test_an_utterance_sped_up_below_ctcs_minimum_keeps_its_clean_features(tiny_timit, tmp_path):
    run = trainer(tiny_timit, tmp_path, ["augment.speed_prob=1.0", "augment.speed_factors=[1.1]"], max_steps=1)
    train = run.train_set
    sped_up = train.example(0, epoch=0)[0]
    assert sped_up.shape[0] < train.lengths[0]  # 1.1x faster: fewer frames
    # pretend the labels need every clean frame: the sped-up version cannot be aligned, so it goes clean
    train.targets[0] = torch.arange(1, train.lengths[0] + 1)
    assert torch.equal(train.example(0, epoch=0)[0], train.features[0])


def test_a_run_on_utterances_at_ctcs_limit_never_skips_a_step(tiny_timit, tmp_path):
    # 8x frame stacking leaves ~7 frames for up to 8 labels (some are set aside); 1.1x speed takes
    # some of the rest below CTC's minimum, where the loss would be infinite and the update skipped
    overrides = ["features.stack=8", "augment.speed_prob=1.0", "augment.speed_factors=[1.1]"]
    run = trainer(tiny_timit, tmp_path, overrides, max_epochs=1)
    train = run.train_set
    tight = [i for i in range(len(train)) if torch.equal(train.example(i, epoch=0)[0], train.features[i])]
    assert tight, f"no utterance was pushed below CTC's minimum (frames {train.lengths})"
    assert run.fit().skipped_steps == 0


@pytest.mark.parametrize("augment", [["augment.speed_prob=0.5"], ["augment.freq_masks=1"]])
def test_audio_augmentation_of_images_is_refused_at_start_in_one_line(tiny_timit, tmp_path, augment):
    config = Config.from_dict({"features": {"kind": "image", "height": 16}, "data": {"tokens": "chars"}})
    key = augment[0].removeprefix("augment.")
    with pytest.raises(UserError, match=rf"features.kind=image reads image, but {key} turn\(s\) on audio "
                                        r"augmentation; set them to 0") as caught:
        Trainer(config.override(augment), tiny_timit, tmp_path, log=quiet)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "last.pt").exists()


def test_image_augmentation_of_audio_is_refused_at_start_in_one_line(tiny_timit, tmp_path):
    with pytest.raises(UserError, match=r"features.kind=fbank reads audio, but image_blur_prob=0.5 turn\(s\) on "
                                        r"image augmentation") as caught:
        trainer(tiny_timit, tmp_path, ["augment.image_blur_prob=0.5"], max_steps=1)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "last.pt").exists()


def test_the_augmented_recipe_is_the_small_recipe_plus_an_augment_section():
    small, augmented = (load_config(ROOT / f"recipes/synth/{name}.yaml") for name in ("small", "augmented"))
    assert augmented.augment.waveform_enabled and augmented.augment.features_enabled
    assert dataclasses.replace(augmented, augment=small.augment) == small


def test_babble_talkers_are_other_utterances_drawn_with_the_utterances_generator():
    draws = [_other(3, 5, torch.Generator().manual_seed(seed)) for seed in range(200)]
    assert set(draws) == {0, 1, 2, 4}
    assert draws == [_other(3, 5, torch.Generator().manual_seed(seed)) for seed in range(200)]
    assert _other(0, 1, torch.Generator()) == 0  # alone: its own voice is the only babble there is


def test_the_cli_refuses_augmenting_images_in_one_line(tiny_timit, tmp_path):
    config = tmp_path / "image.yaml"
    config.write_text("features: {kind: image, height: 16}\ndata: {tokens: chars}\naugment: {noise_prob: 0.5}\n")
    result = run_cli("train.py", "--config", str(config), "--data", str(tiny_timit), "--out", str(tmp_path / "run"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("noise_prob=0.5 turn(s) on audio augmentation; set them to 0 "
                                          "(or remove them from the augment section)")
    assert len(result.stderr.strip().splitlines()) == 1
