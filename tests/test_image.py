"""The line-image front end: loading any image format, polarity, cropping, deslanting, frames."""

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from asr.errors import UserError
from asr.image import (
    ImageConfig,
    columns_to_frames,
    crop_to_ink,
    deslant,
    estimate_slant,
    image_frames,
    line_frames,
    load_line_image,
    normalize_ink,
    otsu_threshold,
    projection_sharpness,
)

TEXT = "Handwriting, read by columns!"


def text_line(text: str = TEXT, size: int = 40) -> Image.Image:
    """Dark text on light-grey paper, as a greyscale PIL image."""
    font = ImageFont.load_default(size=size)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right + 40, bottom + 30), 230)
    ImageDraw.Draw(image).text((20, 15), text, font=font, fill=20)
    return image


def sheared(image: Image.Image, degrees: float) -> Image.Image:
    """Lean the image right by `degrees` (the top moves right), widening it to fit."""
    t = math.tan(math.radians(degrees))
    width, height = image.size
    pad = int(abs(t) * height) + 2
    return image.transform(
        (width + 2 * pad, height), Image.AFFINE, (1, t, -pad - t * height / 2, 0, 1, 0),
        resample=Image.BICUBIC, fillcolor=image.getpixel((0, 0)),
    )


def no_slant(**overrides) -> ImageConfig:
    return ImageConfig(**{"slant_correction": False, **overrides})


# ---------------------------------------------------------------- shapes


def ink_box(height=100, width=400, rows=(20, 60), cols=(50, 250)) -> torch.Tensor:
    image = torch.zeros(height, width)
    image[rows[0] : rows[1], cols[0] : cols[1]] = 1.0
    return image


def test_frames_have_one_column_per_frame_after_height_normalisation():
    # The 40 x 200 ink box is cropped, scaled to 32 rows (factor 0.8): 160 columns.
    frames = line_frames(ink_box(), no_slant(height=32, margin=0))
    assert frames.shape == (160, 32)
    # With a 2-pixel margin the ink gets 28 rows: 200 * 28/40 = 140 columns + 2 * 2 margin.
    frames = line_frames(ink_box(), no_slant(height=32, margin=2))
    assert frames.shape == (144, 32)
    assert frames[:2].abs().sum() == 0 and frames[-2:].abs().sum() == 0
    assert frames[:, :2].abs().sum() == 0 and frames[:, -2:].abs().sum() == 0


def test_aspect_ratio_is_kept_whatever_the_resolution(tmp_path):
    line = text_line()
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    line.save(small)
    line.resize((line.width * 2, line.height * 2), Image.BICUBIC).save(large)
    config = ImageConfig(height=32)
    ink = crop_to_ink(normalize_ink(load_line_image(small)))
    expected = ink.shape[1] * (32 - 2 * config.margin) / ink.shape[0] + 2 * config.margin
    t_small, t_large = len(image_frames(small, config)), len(image_frames(large, config))
    assert abs(t_small - expected) <= 0.05 * expected
    assert abs(t_small - t_large) <= 0.05 * t_small


def test_sliding_windows_are_concatenated_columns():
    columns = torch.rand(5, 11)
    frames = columns_to_frames(columns, window=3, stride=2)
    assert frames.shape == (math.ceil((11 - 3) / 2) + 1, 15)
    padded = torch.cat([columns, torch.zeros(5, 1)], dim=1)  # 5 frames need 12 columns
    for t in range(len(frames)):
        expected = torch.cat([padded[:, 2 * t + k] for k in range(3)])
        assert torch.equal(frames[t], expected)
    assert columns_to_frames(columns[:, :2], window=3, stride=2).shape == (1, 15)


def test_dim_is_height_times_window():
    config = ImageConfig(height=40, window=3, stride=2)
    assert config.dim == 120
    assert line_frames(ink_box(), config).shape[1] == config.dim


@pytest.mark.parametrize("fields", [{"window": 0}, {"stride": 0}, {"height": 4, "margin": 2}, {"ink": "blue"}])
def test_bad_config_is_a_user_error(fields):
    with pytest.raises(UserError):
        ImageConfig(**fields)


def test_frames_are_deterministic(tmp_path):
    path = tmp_path / "line.png"
    sheared(text_line(), 15).save(path)
    assert torch.equal(image_frames(path, ImageConfig()), image_frames(path, ImageConfig()))


# ---------------------------------------------------------------- contrast, binarisation


def test_otsu_matches_brute_force_between_class_variance():
    rng = np.random.default_rng(0)
    values = torch.from_numpy(np.concatenate([rng.normal(0.2, 0.05, 3000), rng.normal(0.7, 0.1, 800)]))
    threshold = otsu_threshold(values)

    def between(cut):
        below, above = values[values <= cut], values[values > cut]
        return len(below) * len(above) * (below.mean() - above.mean()) ** 2

    candidates = torch.linspace(0.25, 0.65, 161)
    best = max(float(between(c)) for c in candidates)
    assert float(between(threshold)) >= 0.999 * best


def test_contrast_normalisation_maps_paper_to_zero_and_ink_to_one():
    image = ink_box() * 0.3 + 0.1  # faint ink 0.4 on grey paper 0.1
    ink = normalize_ink(image)
    assert ink.max() == 1.0 and ink.min() == 0.0
    assert torch.all(ink[20:60, 50:250] == 1.0) and ink[:20].abs().sum() == 0


def test_binarised_frames_are_zero_or_one(tmp_path):
    path = tmp_path / "line.png"
    text_line().save(path)
    frames = image_frames(path, ImageConfig(binarize=True, height=32, margin=0))
    values = set(frames.unique().tolist())
    # Bilinear height normalisation mixes binary pixels only at stroke edges.
    assert 0.0 in values and 1.0 in values
    assert ((frames == 0) | (frames == 1)).float().mean() > 0.7


def test_blank_image_gives_zero_frames():
    frames = line_frames(torch.full((30, 90), 0.5), ImageConfig(height=16))
    assert frames.shape[1] == 16 and len(frames) > 0 and frames.abs().sum() == 0


# ---------------------------------------------------------------- loading


def test_colour_palette_alpha_and_16_bit_images_match_greyscale(tmp_path):
    grey = text_line()
    variants = {
        "grey.png": grey,
        "rgb.png": grey.convert("RGB"),
        "palette.png": grey.convert("RGB").quantize(256, dither=Image.Dither.NONE),
        "grey.tif": grey,
        "rgb.tif": grey.convert("RGB"),
        "grey16.png": Image.fromarray((np.asarray(grey, dtype=np.uint16) * 257).astype(np.uint16)),
    }
    for name, image in variants.items():
        image.save(tmp_path / name)
    reference = load_line_image(tmp_path / "grey.png")
    for name in variants:
        loaded = load_line_image(tmp_path / name)
        assert loaded.shape == reference.shape, name
        assert torch.allclose(loaded, reference, atol=1.5 / 255), name
    # JPEG is lossy: its ringing may add a row to the ink box, which rescales the line a little.
    grey.convert("RGB").save(tmp_path / "rgb.jpg", quality=95)
    config = ImageConfig()
    jpeg, png = image_frames(tmp_path / "rgb.jpg", config), image_frames(tmp_path / "grey.png", config)
    assert abs(len(jpeg) - len(png)) <= 0.05 * len(png)


def test_transparent_background_counts_as_paper(tmp_path):
    grey = np.asarray(text_line())
    alpha = 255 - grey  # black ink whose opacity carries the strokes, on nothing
    rgba = np.stack([np.zeros_like(grey)] * 3 + [alpha], axis=-1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    loaded = load_line_image(tmp_path / "alpha.png")
    reference = torch.from_numpy(alpha.astype(np.float32) / 255)
    assert torch.allclose(loaded, reference, atol=1.5 / 255)


def test_dark_ink_on_light_paper_and_light_ink_on_dark_paper_give_the_same_frames(tmp_path):
    grey = text_line()
    grey.save(tmp_path / "dark_ink.png")
    Image.fromarray(255 - np.asarray(grey)).save(tmp_path / "light_ink.png")
    dark, light = load_line_image(tmp_path / "dark_ink.png"), load_line_image(tmp_path / "light_ink.png")
    assert dark.mean() < 0.5 and torch.allclose(dark, light, atol=1e-6)
    config = ImageConfig()
    assert torch.allclose(image_frames(tmp_path / "dark_ink.png", config),
                          image_frames(tmp_path / "light_ink.png", config), atol=1e-5)
    # Forcing the wrong polarity makes the paper the 'ink'.
    assert load_line_image(tmp_path / "dark_ink.png", ink="light").mean() > 0.5


def test_polarity_holds_for_sparse_ink(tmp_path):
    # One short word on a wide page: well under 1% of the pixels are ink.
    image = Image.new("L", (3000, 200), 250)
    ImageDraw.Draw(image).text((100, 80), "hi", font=ImageFont.load_default(size=20), fill=0)
    image.save(tmp_path / "sparse.png")
    loaded = load_line_image(tmp_path / "sparse.png")
    assert (loaded > 0.5).float().mean() < 0.01
    assert loaded.median() < 0.05


def test_bad_files_are_user_errors_naming_the_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not an image at all\n")
    text_line().save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "folder.png").mkdir()
    for name in ("missing.png", "empty.png", "notes.png", "truncated.png", "folder.png"):
        with pytest.raises(UserError, match=name):
            load_line_image(tmp_path / name)


# ---------------------------------------------------------------- slant


def test_vertical_bars_sheared_by_known_angles_are_measured():
    bars = torch.zeros(60, 200)
    bars[10:50, 20:180:20] = 1.0
    image = Image.fromarray((255 - bars.numpy() * 255).astype(np.uint8))
    for degrees in (-20, 0, 12, 30):
        leaning = torch.from_numpy(255 - np.asarray(sheared(image, degrees), dtype=np.float32)) / 255
        assert abs(estimate_slant(crop_to_ink(leaning)) - degrees) <= 1.0, degrees


def test_slant_correction_makes_a_sheared_line_upright(tmp_path):
    upright = text_line()
    sheared(upright, 20).save(tmp_path / "slanted.png")
    ink = crop_to_ink(normalize_ink(load_line_image(tmp_path / "slanted.png")))
    measured = estimate_slant(ink)
    assert abs(measured - 20) <= 3
    # Deslanting removes the overhang the shear added: the line gets its upright width back.
    upright_ink = torch.from_numpy(255 - np.asarray(upright, dtype=np.float32)) / 255
    upright_width = crop_to_ink(normalize_ink(upright_ink)).shape[1]
    assert crop_to_ink(deslant(ink, measured)).shape[1] == pytest.approx(upright_width, abs=2)
    assert ink.shape[1] > upright_width + 5

    def frames_image(slant_correction):
        frames = image_frames(tmp_path / "slanted.png", ImageConfig(height=48, slant_correction=slant_correction))
        return frames.t().contiguous()  # back to (height, width)

    corrected, uncorrected = frames_image(True), frames_image(False)
    assert abs(estimate_slant(corrected)) <= 3
    assert abs(estimate_slant(uncorrected) - 20) <= 3
    # The corrected line's vertical projection is sharper (per unit of ink mass squared).
    def sharpness(image):
        return float(projection_sharpness(image, torch.zeros(1))[0]) / float(image.sum()) ** 2
    assert sharpness(corrected) > 1.1 * sharpness(uncorrected)


def test_coarse_to_fine_search_finds_the_exhaustive_maximum():
    for degrees in (-12, 7, 23):
        leaning = sheared(text_line(), degrees)
        ink = crop_to_ink(normalize_ink(torch.from_numpy(255 - np.asarray(leaning, dtype=np.float32)) / 255))
        angles = torch.arange(-45, 46, dtype=torch.float64)
        exhaustive = float(angles[int(projection_sharpness(ink, torch.tan(torch.deg2rad(angles))).argmax())])
        assert estimate_slant(ink) == exhaustive, degrees
