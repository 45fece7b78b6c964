"""Inputs that are not plain readable files with ordinary rates (issue 9): raw settings
beside headered files, names that are not UTF-8, unreadable files, odd header rates,
pipes and FIFOs. Each gives the samples or one UserError, and never stops a list."""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import asr.audio
from asr.audio import RawFormat, audio_duration, load_audio
from asr.errors import UserError
from tests.test_audio import assert_spans_join_to_the_whole_file

ROOT = Path(__file__).resolve().parents[1]
RAW16 = RawFormat(16000, "PCM_16")


def tone(seconds: float = 0.5, rate: int = 16000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(tmp_path: Path, wave: np.ndarray, rate: int = 16000, **kwargs) -> bytes:
    path = tmp_path / "source.wav"
    sf.write(path, wave, rate, **kwargs)
    return path.read_bytes()


def finishes(function, seconds: float = 20.0):
    """`function()`'s result or exception, failing (not hanging) if it blocks: a hang guard, not a timing test.

    It only helps where the blocked call lets go of the GIL; libsndfile blocked
    on a FIFO does not, so `test_decode_cli_with_a_fifo_and_a_process_substitution`
    checks the same in a process of its own.
    """
    outcome = {}

    def call():
        try:
            outcome["value"] = function()
        except BaseException as error:  # handed to the test's thread, to be raised there
            outcome["error"] = error

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "the read blocked"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# --- raw settings apply to headerless files only (defect 3) ---------------------------------

@pytest.mark.parametrize("name,format", [("a.wav", "WAV"), ("a.flac", "FLAC"), ("a.sph", "NIST")])
def test_raw_settings_leave_files_with_a_header_alone(tmp_path, name, format):
    wave = tone()
    path = tmp_path / name
    sf.write(path, wave, 16000, format=format, subtype="PCM_16")
    torch.testing.assert_close(load_audio(path, raw=RAW16), load_audio(path))
    assert audio_duration(path, raw=RAW16) == pytest.approx(0.5)


def test_raw_settings_read_headerless_files_of_any_name(tmp_path):
    samples = np.round(tone() * 32767).astype("<i2")
    for name in ("a.raw", "a.pcm", "recording.bin", "recording"):
        (tmp_path / name).write_bytes(samples.tobytes())
        loaded = load_audio(tmp_path / name, raw=RAW16)
        torch.testing.assert_close(loaded, torch.from_numpy(samples / 32768.0).float())


def test_a_broken_wav_stays_an_error_with_raw_settings(tmp_path):
    (tmp_path / "broken.wav").write_bytes(b"RIFX" + bytes(400))
    with pytest.raises(UserError, match="broken.wav: is not readable audio"):
        load_audio(tmp_path / "broken.wav", raw=RAW16)


# --- names that are not UTF-8, files that cannot be read (defects 4, 5) -------------------

def non_utf8_name(tmp_path: Path, wave: np.ndarray) -> Path:
    path = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9.wav"))
    sf.write(tmp_path / "plain.wav", wave, 16000)
    try:
        os.rename(tmp_path / "plain.wav", path)
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    return path


def test_a_name_that_is_not_utf8_reads(tmp_path):
    wave = tone()
    path = non_utf8_name(tmp_path, wave)
    torch.testing.assert_close(load_audio(path), load_audio(tmp_path.parent / tmp_path.name / path.name))
    assert len(load_audio(path)) == len(wave)
    assert audio_duration(os.fsencode(path)) == pytest.approx(0.5)  # bytes paths too


def deny(monkeypatch, denied: Path) -> None:
    """Refuse reading `denied` as a file without read permission would (root reads anything)."""
    real_open = os.open

    def guarded(path, *args, **kwargs):
        if os.fsdecode(path) == str(denied):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)


def test_a_file_without_read_permission_is_a_user_error(tmp_path, monkeypatch):
    path = tmp_path / "locked.wav"
    sf.write(path, tone(), 16000)
    deny(monkeypatch, path)
    with pytest.raises(UserError, match="locked.wav: cannot be read: permission denied. Make it readable"):
        load_audio(path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files chmod 000")
def test_a_file_chmod_000_is_a_user_error(tmp_path):
    path = tmp_path / "locked.wav"
    sf.write(path, tone(), 16000)
    path.chmod(0)
    with pytest.raises(UserError, match="permission denied"):
        load_audio(path)


# --- odd sample rates in a header (defect 6) ---------------------------------------------

KERNEL_BOUND = 1 << 22  # values; torchaudio builds the kernel in float64 with a few temporaries


@pytest.fixture
def bounded_kernels(monkeypatch):
    """Fail instead of allocating gigabytes: the resampler's kernel holds about orig x new values."""
    real = asr.audio.torchaudio.transforms.Resample

    def checked(orig, new, *args, **kwargs):
        step = math.gcd(orig, new)
        assert (orig // step) * (new // step) <= KERNEL_BOUND, f"kernel for {orig} -> {new} Hz"
        return real(orig, new, *args, **kwargs)

    asr.audio._resampler.cache_clear()
    monkeypatch.setattr(asr.audio.torchaudio.transforms, "Resample", checked)
    yield
    asr.audio._resampler.cache_clear()


@pytest.mark.parametrize("rate", [16001, 44101, 47999, 767999])
def test_odd_rates_resample_in_bounded_memory_keeping_pitch(tmp_path, bounded_kernels, rate):
    path = tmp_path / "odd.wav"
    sf.write(path, tone(0.5, rate, 440.0), rate, subtype="FLOAT")
    wave = load_audio(path, 16000)
    assert len(wave) == pytest.approx(8000, abs=2)
    spectrum = torch.fft.rfft(wave * torch.hann_window(len(wave)))
    assert float(spectrum.abs().argmax()) * 16000 / len(wave) == pytest.approx(440.0, abs=4)


@pytest.mark.parametrize("rate", [16001, 44101])
def test_odd_rate_spans_joined_equal_the_whole_file(tmp_path, bounded_kernels, rate):
    rng = np.random.default_rng(2)
    path = tmp_path / "odd.wav"
    sf.write(path, (rng.standard_normal(rate * 2) * 0.1).astype(np.float32), rate, subtype="FLOAT")
    assert_spans_join_to_the_whole_file(path)


@pytest.mark.parametrize("rate", [999, 1000003])
def test_absurd_header_rates_are_user_errors(tmp_path, bounded_kernels, rate):
    path = tmp_path / "absurd.wav"
    sf.write(path, np.zeros(2000, np.float32), rate, subtype="FLOAT")
    with pytest.raises(UserError, match=f"absurd.wav: states a sample rate of {rate} Hz"):
        load_audio(path)


# --- pipes and FIFOs (defect 16) ------------------------------------------------------------

def write_later(target, data: bytes) -> threading.Thread:
    """Write `data` to a FIFO path or a pipe descriptor from another thread, then close it."""
    def write():
        fd = os.open(target, os.O_WRONLY) if isinstance(target, Path) else target
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("rate", [16000, 8000])
def test_a_wav_through_a_fifo_reads(tmp_path, rate):
    wave = tone(0.5, rate)
    fifo = tmp_path / "stream.wav"
    os.mkfifo(fifo)
    write_later(fifo, wav_bytes(tmp_path, wave, rate))
    loaded = finishes(lambda: load_audio(fifo, 16000))
    torch.testing.assert_close(loaded, load_audio(tmp_path / "source.wav", 16000))


def test_a_wav_through_process_substitution_reads(tmp_path):
    """``<(cat a.wav)`` is /dev/fd/N, a pipe that cannot seek."""
    wave = tone()
    data = wav_bytes(tmp_path, wave)
    read_end, write_end = os.pipe()
    write_later(write_end, data)
    try:
        loaded = finishes(lambda: load_audio(f"/dev/fd/{read_end}"))
    finally:
        os.close(read_end)
    torch.testing.assert_close(loaded, load_audio(tmp_path / "source.wav"))


def test_raw_pcm_through_a_pipe_reads(tmp_path):
    samples = np.round(tone() * 32767).astype("<i2")
    read_end, write_end = os.pipe()
    write_later(write_end, samples.tobytes())
    try:
        loaded = finishes(lambda: load_audio(f"/dev/fd/{read_end}", raw=RAW16))
    finally:
        os.close(read_end)
    torch.testing.assert_close(loaded, torch.from_numpy(samples / 32768.0).float())


def test_a_fifo_without_a_writer_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setattr(asr.audio, "STREAM_WAIT_SECONDS", 0.2, raising=False)
    fifo = tmp_path / "nobody.wav"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="nobody.wav: is a pipe or FIFO that gave no data for 0.2 s"):
        finishes(lambda: load_audio(fifo))


def test_a_stream_over_the_size_limit_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setattr(asr.audio, "MAX_STREAM_BYTES", 4096, raising=False)
    fifo = tmp_path / "big.wav"
    os.mkfifo(fifo)
    write_later(fifo, wav_bytes(tmp_path, tone(1.0)))
    with pytest.raises(UserError, match="big.wav: is a pipe or FIFO of more than"):
        finishes(lambda: load_audio(fifo))


def test_an_empty_fifo_is_empty(tmp_path):
    fifo = tmp_path / "empty.wav"
    os.mkfifo(fifo)
    write_later(fifo, b"")
    with pytest.raises(UserError, match="empty.wav: is empty"):
        finishes(lambda: load_audio(fifo))


# --- a list of files goes on past each of them ---------------------------------------------

def test_a_list_goes_on_past_every_kind_of_bad_input(tmp_path, monkeypatch):
    from asr.transcribe import Transcriber

    monkeypatch.setattr(asr.audio, "STREAM_WAIT_SECONDS", 0.2, raising=False)
    transcriber = Transcriber.from_checkpoint(str(ROOT / "checkpoints" / "synth-small"), raw=RAW16)
    good = tmp_path / "good.wav"
    sf.write(good, tone(1.0), 16000)
    (tmp_path / "good.raw").write_bytes(np.round(tone(1.0) * 32767).astype("<i2").tobytes())
    odd = tmp_path / "odd.wav"
    sf.write(odd, tone(1.0, 16001), 16001)
    fifo = tmp_path / "nobody.wav"
    os.mkfifo(fifo)
    locked = tmp_path / "locked.wav"
    sf.write(locked, tone(1.0), 16000)
    deny(monkeypatch, locked)
    named = non_utf8_name(tmp_path, tone(1.0))
    paths = [fifo, good, locked, tmp_path / "good.raw", odd, named]
    results = dict(finishes(lambda: list(transcriber.transcribe_files(paths)), 120))
    assert all(isinstance(results[str(p)], UserError) for p in (fifo, locked))
    texts = {str(p): results[str(p)] for p in (good, tmp_path / "good.raw", odd, named)}
    assert not any(isinstance(t, UserError) for t in texts.values()), texts
    assert texts[str(good)].text == texts[str(named)].text == texts[str(tmp_path / "good.raw")].text


def test_decode_cli_with_a_fifo_and_a_process_substitution(tmp_path):
    """`decode.py nobody.wav good.wav <(cat good.wav)`: the FIFO nobody writes to is one error, not a hang."""
    good = tmp_path / "good.wav"
    sf.write(good, tone(1.0), 16000)
    fifo = tmp_path / "nobody.wav"
    os.mkfifo(fifo)
    command = (f"{shlex.quote(sys.executable)} decode.py --checkpoint checkpoints/synth-small "
               f"{shlex.quote(str(fifo))} {shlex.quote(str(good))} <(cat {shlex.quote(str(good))})")
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=180)
    lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines][:1] == [str(good)] and len(lines) == 2, result.stderr
    assert lines[1].startswith("/dev/fd/") and lines[1].split("\t")[1] == lines[0].split("\t")[1]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "nobody.wav: is a pipe or FIFO that gave no data" in errors[0]
    assert result.returncode == 1 and "Traceback" not in result.stderr
