"""The front ends: each input kind owns its suffixes, checks, frame times, chunking and picture."""

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image, ImageDraw

from asr.errors import UserError
from asr.features import FeatureConfig
from asr.frontend import AudioFrontend, ImageFrontend, frontend_for
from asr.image import ImageConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def audio():
    return frontend_for(FeatureConfig(kind="fbank", n_mels=20, deltas=2))


@pytest.fixture
def image():
    return frontend_for(ImageConfig(height=24, stride=2, window=2))


def line_image(path: Path) -> Path:
    picture = Image.new("L", (200, 40), 255)
    ImageDraw.Draw(picture).rectangle((20, 10, 180, 30), fill=0)
    picture.save(path)
    return path


def tone(path: Path, seconds: float, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    noise = 0.01 * np.random.default_rng(0).standard_normal(len(t))
    sf.write(path, 0.3 * np.sin(2 * np.pi * 440 * t * (1 + t)) + noise, rate)
    return path


def test_the_feature_kind_picks_the_front_end(audio, image):
    assert isinstance(audio, AudioFrontend) and (audio.modality, audio.unit) == ("audio", "s")
    assert isinstance(image, ImageFrontend) and (image.modality, image.unit) == ("image", "columns")
    assert isinstance(frontend_for(FeatureConfig(kind="mfcc", n_mels=26)), AudioFrontend)


def test_suffixes(audio, image):
    from asr.audio import RawFormat

    assert ".wav" in audio.suffixes and ".flac" in audio.suffixes and ".raw" not in audio.suffixes
    assert ".raw" in frontend_for(audio.config, raw=RawFormat(16000, "PCM_16")).suffixes
    assert ".png" in image.suffixes and not image.suffixes & audio.suffixes


def test_each_refuses_the_other_kind(audio, image, tmp_path):
    picture, recording = line_image(tmp_path / "line.png"), tone(tmp_path / "a.wav", 0.5)
    with pytest.raises(UserError, match="line.png: is an image, but this model reads audio"):
        audio(picture)
    with pytest.raises(UserError, match="a.wav: is not an image"):
        image(recording)
    with pytest.raises(UserError, match="reads image"):
        image.from_waveform(torch.zeros(16000))
    with pytest.raises(UserError, match="corpus holds image but features.kind=fbank reads audio"):
        audio.check_corpus("image", "lines/")
    image.check_corpus("image", "lines/")


def test_frame_times(audio, image):
    # 25 ms windows every 10 ms: frame t's share of the audio starts 7.5 ms (half a window less
    # half a step) after t * 10 ms.
    assert audio.frame_step == 160 and audio.frame_edge(0) == pytest.approx(0.0075)
    assert audio.frame_edge(100) == pytest.approx(1.0075)
    assert audio.seconds(100) == pytest.approx(1.0)
    assert image.frame_step == 2 and image.frame_edge(10) == 20 and image.seconds(10) is None
    stacked = frontend_for(FeatureConfig(stack=3))
    assert stacked.frame_step == 480 and stacked.chunk_frames(30.0) == 1000
    assert audio.chunk_frames(30.0) == 3000 and image.chunk_frames(30.0) > 10**9  # a line goes in one piece


def test_audio_pieces_are_bounded_and_add_up_to_the_whole_file(audio, tmp_path):
    path = tone(tmp_path / "long.wav", 5.0)
    whole = audio(path)
    pieces, duration = audio.pieces(path, chunk_seconds=1.0, context_seconds=0.5)
    pieces = list(pieces)
    assert duration == pytest.approx(5.0) and len(pieces) == 5
    assert max(len(p.features) for p in pieces) <= 201  # 1 s and 2 x 0.5 s of context
    torch.testing.assert_close(torch.cat([p.features[p.keep] for p in pieces]), whole, atol=1e-4, rtol=0)


def test_a_line_image_is_one_piece(image, tmp_path):
    path = line_image(tmp_path / "line.png")
    (piece,), duration = image.pieces(path, chunk_seconds=1.0, context_seconds=0.5)
    assert torch.equal(piece.features, image(path)) and piece.keep == slice(None)
    assert duration == len(piece.features) * 2


def test_pictures(audio, image, tmp_path):
    sound = audio.picture(audio(tone(tmp_path / "a.wav", 0.5)))
    assert sound.pixels.shape == (20, 48) and sound.origin == "lower" and sound.xlabel == "time (s)"
    line = image(line_image(tmp_path / "line.png"))
    assert image.picture(line).pixels.shape == (24, len(line)) and image.picture(line).origin == "upper"


def test_nothing_outside_the_front_ends_asks_which_kind_of_input_it_has():
    """Issue 9: the kinds once differed in 17 string comparisons over five files."""
    asks = re.compile(r"modality\s*[!=]=|[!=]=\s*\"image\"|kind\s*==\s*\"image\"|unit\s*==")
    files = ["asr/transcribe.py", "asr/plots.py", "asr/evaluation.py", "asr/training.py", "asr/commands/decode.py"]
    found = [f"{name}: {line.strip()}" for name in files for line in (ROOT / name).read_text().splitlines()
             if asks.search(line)]
    assert found == []
