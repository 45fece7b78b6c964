"""Audio in: every format round-trips, rates are converted, bad files give one clear UserError."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from asr.audio import RawFormat, audio_duration, load_audio, write_audio
from asr.errors import UserError

POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")
needs_pocketsphinx = pytest.mark.skipif(not POCKETSPHINX.is_dir(),
                                        reason="Debian pocketsphinx-testdata is not installed")


def speechlike(seconds: float = 0.5, rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A few harmonics under a syllable-rate envelope plus noise, peak 0.5."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(seed)
    wave = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((140, 280, 420, 1300), 1))
    wave = wave * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)) + 0.05 * rng.standard_normal(len(t))
    return (0.5 * wave / np.abs(wave).max()).astype(np.float32)


def as_int16(wave: np.ndarray) -> np.ndarray:
    return np.round(wave * 32767).astype(np.int16)


def assert_user_error(path: Path, *words: str, **kwargs) -> str:
    with pytest.raises(UserError) as caught:
        load_audio(path, **kwargs)
    message = str(caught.value)
    assert str(path) in message
    for word in words:
        assert word.lower() in message.lower(), message
    return message


# --- formats ---------------------------------------------------------------------------

@pytest.mark.parametrize("name,format,subtype", [
    ("a.wav", "WAV", "PCM_16"), ("a.wav", "WAV", "PCM_24"), ("a.wav", "WAV", "PCM_32"),
    ("a.wav", "WAV", "FLOAT"), ("a.flac", "FLAC", "PCM_16"), ("a.flac", "FLAC", "PCM_24"),
    ("a.aiff", "AIFF", "PCM_16"), ("a.au", "AU", "PCM_16"), ("a.sph", "NIST", "PCM_16"),
])
def test_lossless_formats_read_back_the_samples_written(tmp_path, name, format, subtype):
    wave = speechlike()
    path = tmp_path / name
    sf.write(path, wave, 16000, format=format, subtype=subtype)
    loaded = load_audio(path)
    assert loaded.dtype == torch.float32 and loaded.shape == (len(wave),)
    step = 2.0 ** -15 if subtype == "PCM_16" else 2.0 ** -23  # half a quantisation step, or less
    assert torch.allclose(loaded, torch.from_numpy(wave), atol=step, rtol=0)
    assert audio_duration(path) == pytest.approx(len(wave) / 16000)


def test_ogg_vorbis_reads_back_close_to_the_original(tmp_path):
    wave = speechlike(1.0)
    sf.write(tmp_path / "a.ogg", wave, 16000)
    loaded = load_audio(tmp_path / "a.ogg").numpy()
    assert len(loaded) == len(wave)
    snr_db = 10 * np.log10(np.sum(wave ** 2) / np.sum((loaded - wave) ** 2))
    assert snr_db > 15  # lossy, but the same signal


def test_timit_style_sphere_file_named_wav_is_bit_exact(tmp_path):
    """TIMIT's .WAV files are NIST SPHERE: a 1024-byte NIST_1A header, then 16-bit PCM."""
    samples = as_int16(speechlike())
    path = tmp_path / "SA1.WAV"
    write_audio(path, samples.astype(np.float32) / 32768, 16000, format="NIST", subtype="PCM_16")
    raw = path.read_bytes()
    assert raw.startswith(b"NIST_1A\n   1024\n") and b"sample_count -i %d" % len(samples) in raw[:1024]
    assert np.array_equal(np.frombuffer(raw[1024:], dtype="<i2"), samples)
    loaded = load_audio(path)
    assert np.array_equal(np.round(loaded.numpy() * 32768).astype(np.int16), samples)


def test_stereo_is_mixed_down_by_averaging(tmp_path):
    left, right = speechlike(seed=1), speechlike(seed=2) * 0.5
    sf.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    loaded = load_audio(tmp_path / "stereo.wav")
    assert torch.allclose(loaded, torch.from_numpy((left + right) / 2), atol=1e-7)


@pytest.mark.parametrize("rate", [44100, 8000, 22050])
def test_other_rates_are_resampled_keeping_pitch_and_duration(tmp_path, rate):
    seconds, tone = 0.5, 440.0
    wave = (0.5 * np.sin(2 * np.pi * tone * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    sf.write(tmp_path / "tone.wav", wave, rate, subtype="FLOAT")
    loaded = load_audio(tmp_path / "tone.wav", 16000)
    assert len(loaded) == math.ceil(len(wave) * 16000 / rate)
    expected = torchaudio.functional.resample(torch.from_numpy(wave), rate, 16000)
    assert torch.allclose(loaded, expected, atol=1e-4)  # cached vs rebuilt kernel: float32 rounding
    spectrum = np.abs(np.fft.rfft(loaded.numpy()))
    assert np.argmax(spectrum) * 16000 / len(loaded) == pytest.approx(tone, abs=2.0)


def test_mp3_is_read_when_libsndfile_supports_it(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile has no MP3")
    sf.write(tmp_path / "a.mp3", speechlike(1.0), 16000, format="MP3")
    assert abs(len(load_audio(tmp_path / "a.mp3")) - 16000) < 2000  # encoder padding


# --- headerless PCM ----------------------------------------------------------------------

@pytest.mark.parametrize("encoding,dtype,full_scale", [
    ("PCM_16", "<i2", 2 ** 15), ("PCM_32", "<i4", 2 ** 31), ("FLOAT", "<f4", 1)])
def test_raw_pcm_reads_with_the_stated_format(tmp_path, encoding, dtype, full_scale):
    wave = speechlike()
    stored = np.round(wave * (full_scale - 1)).astype(dtype) if full_scale > 1 else wave
    path = tmp_path / "a.raw"
    path.write_bytes(stored.tobytes())
    loaded = load_audio(path, raw=RawFormat(16000, encoding))
    assert torch.allclose(loaded.double(), torch.from_numpy(stored.astype(np.float64) / full_scale), atol=1e-7, rtol=0)
    assert audio_duration(path, raw=RawFormat(16000, encoding)) == pytest.approx(0.5)


def test_raw_pcm_byte_order_rate_and_channels(tmp_path):
    wave = as_int16(speechlike())
    path = tmp_path / "big.pcm"
    path.write_bytes(np.stack([wave, wave], axis=1).astype(">i2").tobytes())
    loaded = load_audio(path, 16000, raw=RawFormat(8000, "PCM_16", channels=2, endian="BIG"))
    expected = torchaudio.functional.resample(torch.from_numpy(wave / 32768).float(), 8000, 16000)
    assert torch.allclose(loaded, expected, atol=1e-4)


def test_raw_file_without_a_format_names_the_flags(tmp_path):
    path = tmp_path / "speech.raw"
    path.write_bytes(as_int16(speechlike()).tobytes())
    assert_user_error(path, "--raw-rate", "--raw-encoding")
    with pytest.raises(UserError, match="--raw-rate"):
        audio_duration(path)


def test_raw_file_size_must_fit_the_encoding(tmp_path):
    path = tmp_path / "odd.raw"
    path.write_bytes(b"\x00\x01\x02")
    assert_user_error(path, "3 bytes", "PCM_16", raw=RawFormat(16000, "PCM_16"))


def test_bad_raw_settings_are_user_errors():
    with pytest.raises(UserError, match="PCM_16"):
        RawFormat(16000, "PCM_12")
    with pytest.raises(UserError, match="LITTLE"):
        RawFormat(16000, endian="MIDDLE")
    with pytest.raises(UserError, match="positive"):
        RawFormat(0)
    with pytest.raises(UserError, match="raw PCM rate of 16 Hz .* check --raw-rate"):
        RawFormat(16)  # kHz for Hz


# --- files a user can get wrong ------------------------------------------------------------

@pytest.fixture
def good_wav(tmp_path) -> Path:
    path = tmp_path / "good.wav"
    sf.write(path, speechlike(1.0), 16000, subtype="PCM_16")
    return path


def test_missing_file_and_folder(tmp_path):
    assert_user_error(tmp_path / "nowhere.wav", "no such file")
    assert_user_error(tmp_path, "folder")


def test_empty_files(tmp_path):
    (tmp_path / "zero.wav").write_bytes(b"")
    assert_user_error(tmp_path / "zero.wav", "empty")
    sf.write(tmp_path / "nosamples.wav", np.zeros(0, np.float32), 16000)
    assert_user_error(tmp_path / "nosamples.wav", "no audio")


@pytest.mark.parametrize("suffix,format", [(".wav", "WAV"), (".WAV", "NIST"), (".ogg", "OGG"),
                                           (".flac", "FLAC")])
def test_truncated_files_are_caught(tmp_path, suffix, format):
    whole = tmp_path / f"whole{suffix}"
    sf.write(whole, speechlike(1.0), 16000, format=format)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    message = assert_user_error(cut, "truncated")
    if format in ("WAV", "NIST"):
        assert "1.00 s" in message  # what the header promised


def test_header_without_data_is_truncated(good_wav, tmp_path):
    path = tmp_path / "header_only.wav"
    path.write_bytes(good_wav.read_bytes()[:44])
    assert_user_error(path, "truncated", "16000 samples")


def test_streaming_placeholder_size_is_not_truncation(good_wav, tmp_path):
    """sox/ffmpeg writing to a pipe store 0xffffffff as the data size: read what is there."""
    data = bytearray(good_wav.read_bytes())
    data[40:44] = b"\xff\xff\xff\xff"
    path = tmp_path / "streamed.wav"
    path.write_bytes(bytes(data))
    assert len(load_audio(path)) == 16000


@pytest.mark.parametrize("content", [b"hello, this is a text file\n" * 20,
                                     b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
                                     b"RIFF\x24\x7d\x00\x00WAVEfmt "])  # corrupt header
def test_non_audio_renamed_wav(tmp_path, content):
    path = tmp_path / "fake.wav"
    path.write_bytes(content)
    message = assert_user_error(path, "not readable audio", "--raw-rate")
    assert "Traceback" not in message and "LibsndfileError" not in message


def test_non_finite_samples(tmp_path):
    wave = speechlike()
    wave[100:200] = np.nan
    sf.write(tmp_path / "nan.wav", wave, 16000, subtype="FLOAT")
    assert_user_error(tmp_path / "nan.wav", "100 NaN or infinite")
    sf.write(tmp_path / "inf.wav", np.full(1000, np.inf, np.float32), 16000, subtype="FLOAT")
    assert_user_error(tmp_path / "inf.wav", "1000 NaN or infinite")


def test_too_short_for_a_frame(tmp_path):
    sf.write(tmp_path / "click.wav", speechlike(0.01), 16000)
    assert_user_error(tmp_path / "click.wav", "0.010 s", "0.025 s", min_seconds=0.025)
    assert len(load_audio(tmp_path / "click.wav")) == 160


def test_compressed_sphere_is_named(tmp_path):
    header = (b"NIST_1A\n   1024\nsample_count -i 100\nsample_rate -i 16000\nchannel_count -i 1\n"
              b"sample_n_bytes -i 2\nsample_coding -s26 pcm,embedded-shorten-v2.00\nend_head\n")
    path = tmp_path / "si.wav"
    path.write_bytes(header.ljust(1024, b" ") + bytes(200))
    assert_user_error(path, "compressed NIST SPHERE", "shorten", "sph2pipe")


# --- writing ------------------------------------------------------------------------------

def test_write_audio_is_atomic_and_leaves_no_temp_files(tmp_path, good_wav):
    before = good_wav.read_bytes()
    with pytest.raises(ValueError):  # soundfile refuses the unknown subtype
        write_audio(good_wav, torch.zeros(100), 16000, subtype="NO_SUCH_SUBTYPE")
    assert good_wav.read_bytes() == before
    write_audio(good_wav, torch.full((2, 50), 0.25), 8000)
    assert sorted(os.listdir(tmp_path)) == ["good.wav"]
    data, rate = sf.read(good_wav)
    assert rate == 8000 and data.shape == (50, 2) and np.allclose(data, 0.25, atol=1e-4)


# --- real recordings (Debian pocketsphinx-testdata) ----------------------------------------

@needs_pocketsphinx
def test_real_wav_recordings_load():
    for path in sorted((POCKETSPHINX / "librivox").glob("*.wav")) + sorted((POCKETSPHINX / "cards").glob("*.wav")):
        wave = load_audio(path)
        assert len(wave) == sf.info(path).frames
        assert audio_duration(path) == pytest.approx(len(wave) / 16000)
        assert 0.01 < wave.abs().max() <= 1.0 and wave.std() > 1e-3


@needs_pocketsphinx
@pytest.mark.parametrize("name,seconds", [("goforward.raw", 2.78625), ("tidigits/dhd.2934z.raw", 2.4)])
def test_real_raw_recordings_load_as_little_endian_pcm16(name, seconds):
    path = POCKETSPHINX / name
    wave = load_audio(path, raw=RawFormat(16000, "PCM_16"))
    assert len(wave) / 16000 == pytest.approx(seconds)

    def smoothness(x):  # speech is low-pass: neighbouring samples correlate
        return float(torch.corrcoef(torch.stack([x[1:], x[:-1]]))[0, 1])

    wrong_order = load_audio(path, raw=RawFormat(16000, "PCM_16", endian="BIG"))
    assert smoothness(wave) > 0.5 > smoothness(wrong_order)
    downsampled = load_audio(path, 8000, raw=RawFormat(16000, "PCM_16"))
    assert len(downsampled) == len(wave) // 2


@pytest.mark.parametrize("file_rate", [16000, 44100, 22050, 8000])
def test_spans_joined_equal_the_whole_file(tmp_path, file_rate):
    rng = np.random.default_rng(1)
    path = tmp_path / "long.wav"
    sf.write(path, (rng.standard_normal(file_rate * 3) * 0.1).astype(np.float32), file_rate, subtype="FLOAT")
    assert_spans_join_to_the_whole_file(path)


def assert_spans_join_to_the_whole_file(path):
    """Spans of `path` read at 16 kHz through AudioReader, joined end to end, equal the whole
    file resampled at once (to float rounding)."""
    from asr.audio import AudioReader

    whole = load_audio(path, 16000)
    with AudioReader(path, 16000) as reader:
        assert reader.num_samples == len(whole)
        edges = sorted({0, 7001, 20000, 31234 % reader.num_samples, reader.num_samples})
        joined = torch.cat([reader.read(a, b) for a, b in zip(edges, edges[1:])])
    torch.testing.assert_close(joined, whole, atol=1e-5, rtol=0)
