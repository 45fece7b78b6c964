"""Image augmentation (asr/augment_image.py): each effect keeps a 2-D image in [0, 1], is a function of
its generator, changes the line; the chain runs on training lines only, per (seed, epoch, line);
audio effects on an image model, and image effects on an audio one, are refused."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from asr import augment_image as I
from asr.augment import utterance_generator
from asr.config import AugmentConfig, Config, load_config
from asr.errors import UserError
from asr.frontend import frontend_for
from asr.image import ImageConfig, load_line_image
from asr.training import Trainer
from tests.conftest import assert_round_trips_as_plain_data

ROOT = Path(__file__).resolve().parents[1]

EFFECTS = ("crop", "shear", "elastic", "stroke", "blur", "texture", "jpeg")


def line_image(text: str = "Handwriting, read by columns!", size: int = 32) -> torch.Tensor:
    """A text line as the front end loads it: (H, W) float, ink 1 on paper 0."""
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right + 30, bottom + 20), 235)
    ImageDraw.Draw(image).text((15, 10), text, font=font, fill=25)
    return torch.from_numpy(1 - np.asarray(image, dtype=np.float32) / 255)


def only(effect: str, **settings) -> AugmentConfig:
    return AugmentConfig(**{f"image_{effect}_prob": 1.0, **settings})


def augment(config: AugmentConfig, image: torch.Tensor, epoch: int = 0, index: int = 0) -> torch.Tensor:
    return I.ImageAugmenter(config).input(image, utterance_generator(0, epoch, index))


@pytest.mark.parametrize("effect", EFFECTS)
def test_each_effect_changes_the_line_keeps_it_an_image_and_is_a_function_of_the_seed(effect):
    image = line_image()
    out = augment(only(effect), image)
    assert out.dim() == 2 and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    assert out.shape != image.shape or not torch.equal(out, image)
    assert torch.equal(out, augment(only(effect), image))
    others = [augment(only(effect), image, epoch) for epoch in range(1, 9)]  # stroke: 1 of 2 choices
    assert any(o.shape != out.shape or not torch.equal(o, out) for o in others)
    if effect in ("elastic", "stroke", "blur", "texture", "jpeg"):
        assert out.shape == image.shape
    if effect == "shear":
        assert out.shape[0] == image.shape[0] and out.shape[1] >= image.shape[1]
    if effect == "crop":
        assert out.shape[0] <= image.shape[0] and out.shape[1] <= image.shape[1]


def test_crop_cuts_at_most_the_asked_share_of_the_ink_height_into_the_ink():
    image = line_image()
    top, bottom, left, right = I.ink_box(image)
    height = bottom - top
    out = I.crop(image, 0.1, 0.1, 0.1, 0.1)
    assert out.shape == (bottom - top - 2 * int(0.1 * height), right - left - 2 * int(0.1 * height))
    assert torch.equal(I.crop(image, 0, 0, 0, 0), image[top:bottom, left:right])


def test_thicker_strokes_have_more_ink_and_thinner_ones_less():
    image = line_image(size=48)
    assert I.stroke_width(image, 1).sum() > image.sum() > I.stroke_width(image, -1).sum()
    hairline = torch.zeros(20, 50)
    hairline[10, 5:45] = 1.0
    assert torch.equal(I.stroke_width(hairline, -1), hairline)  # erosion would wipe it out: not done


def test_shear_moves_the_top_of_an_upright_bar_right():
    bar = torch.zeros(40, 40)
    bar[5:35, 18:21] = 1.0
    leaning = I.shear(bar, 20.0)
    top, bottom = leaning[6].argmax().item(), leaning[33].argmax().item()
    assert top > bottom


def test_a_jpeg_round_trip_at_low_quality_costs_more_than_at_high():
    image = line_image()
    low, high = (I.jpeg(image, q) - image for q in (10, 90))
    assert low.abs().mean() > high.abs().mean() > 0


def test_the_default_config_turns_no_image_effect_on_and_an_image_key_does():
    assert not AugmentConfig().image_enabled and not AugmentConfig().enabled
    assert only("blur").image_enabled and not only("blur").audio_enabled and only("blur").enabled


@pytest.mark.parametrize("values, words", [
    ({"image_crop_max": 0.5}, "augment.image_crop_max"),
    ({"image_stroke_max": 0}, "augment.image_stroke_max"),
    ({"image_jpeg_quality_min": 80, "image_jpeg_quality_max": 40}, "augment.image_jpeg_quality_min=80 must be at most"),
    ({"image_blur_prob": 1.5}, "augment.image_blur_prob"),
])
def test_a_bad_image_setting_is_refused_naming_the_key(values, words):
    with pytest.raises(UserError, match=words):
        Config.from_dict({"features": {"kind": "image"}, "augment": values})


def test_each_front_end_refuses_the_other_kinds_effects_naming_them():
    image, audio = frontend_for(ImageConfig()), frontend_for(Config().features)
    with pytest.raises(UserError, match=r"reads image, but speed_prob=1.0, freq_masks=2 turn\(s\) on audio"):
        image.augmenter(AugmentConfig(speed_prob=1.0, freq_masks=2))
    with pytest.raises(UserError, match=r"reads audio, but image_jpeg_prob=0.5 turn\(s\) on image"):
        audio.augmenter(AugmentConfig(image_jpeg_prob=0.5))
    assert isinstance(image.augmenter(only("jpeg")), I.ImageAugmenter)
    assert image.augmenter(AugmentConfig()) is None


@pytest.fixture(scope="module")
def tiny_lines(tmp_path_factory):
    """A manifest corpus of 12 training and 4 dev line images."""
    root = tmp_path_factory.mktemp("lines")
    words = ["ink", "paper", "quill", "line", "hand", "slant", "pen", "note"]
    for split, count in (("train", 12), ("dev", 4)):
        rows = []
        for k in range(count):
            text = f"{words[k % 8]} {words[(3 * k + 1) % 8]}"
            path = root / f"{split}{k}.png"
            Image.fromarray(((1 - line_image(text, 24)) * 255).byte().numpy(), mode="L").save(path)
            rows.append(json.dumps({"image": path.name, "text": text, "writer": "w"}) + "\n")
        (root / f"{split}.jsonl").write_text("".join(rows))
    return root


ALL = [f"augment.image_{effect}_prob=0.7" for effect in EFFECTS]


def image_run(root, out, overrides) -> Trainer:
    config = Config.from_dict({
        "features": {"kind": "image", "height": 16},
        "model": {"hidden_size": 8, "num_layers": 1},
        "data": {"tokens": "chars"},
        "train": {"batch_size": 4, "max_epochs": 1, "checkpoint_every": 0, "patience": 0},
    })
    return Trainer(config.override(overrides), root, out, log=lambda *a: None)


def test_training_lines_are_augmented_per_epoch_reproducibly_and_dev_lines_never(tiny_lines, tmp_path):
    run = image_run(tiny_lines, tmp_path, ALL)
    train, indices = run.train_set, [0, 3, 7]
    first, again, second = (train.batch(indices, epoch=e) for e in (0, 0, 1))
    assert torch.equal(first.features, again.features) and torch.equal(first.lengths, again.lengths)
    assert first.features.shape != second.features.shape or not torch.equal(first.features, second.features)
    assert train.sources is not None and "image effects; train inputs" in run.describe()
    assert torch.equal(train.batch(indices).features, torch.nn.utils.rnn.pad_sequence(
        [train.features[i] for i in indices], batch_first=True))  # the cached features stay clean
    assert run.dev_set.augmenter is None
    assert torch.equal(run.dev_set.batch([0, 1], epoch=0).features, run.dev_set.batch([0, 1]).features)
    assert run.fit().history[-1]["dev_loss"] < float("inf")


def test_the_sources_are_the_loaded_line_images(tiny_lines):
    frontend = frontend_for(ImageConfig(height=16))
    path = tiny_lines / "train0.png"
    assert torch.equal(frontend.source(path), load_line_image(path))
    assert torch.equal(frontend.from_source(frontend.source(path)), frontend(path))


def test_the_augmented_recipe_is_the_lines_recipe_plus_image_effects_and_round_trips():
    lines, augmented = (load_config(ROOT / f"recipes/handwriting/{name}.yaml") for name in ("lines", "augmented"))
    assert augmented.augment.image_enabled and not augmented.augment.audio_enabled
    assert replace(augmented, augment=lines.augment) == lines
    assert_round_trips_as_plain_data(augmented)
