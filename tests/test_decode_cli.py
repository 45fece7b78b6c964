"""decode.py as a user meets it: bad flags are one clear line and no traceback, output into a
closed pipe ends quietly, JSON output stays valid JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def decode_cli(*args):
    return subprocess.run([sys.executable, "decode.py", *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def assert_one_line_error(result, *words):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert all(word in lines[0] for word in words), lines[0]


@pytest.mark.parametrize("flags", [
    ["--chunk-seconds", "0"], ["--chunk-seconds", "-5"], ["--chunk-seconds", "nan"], ["--chunk-seconds", "inf"],
    ["--lm-weight", "nan"], ["--insertion-bonus", "inf"], ["--beam", "0"], ["--beam", "-3"],
    ["--device", "tpu"],
])
def test_bad_flags_are_one_line_errors(flags, tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    assert_one_line_error(decode_cli(*flags, tmp_path / "a.wav"), flags[0])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_a_gpu_is_a_one_line_error(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    assert_one_line_error(decode_cli("--device", "cuda", tmp_path / "a.wav"), "--device cuda", "--device cpu")


def test_negative_workers_is_a_one_line_error(tiny_timit, tmp_path):
    result = decode_cli("--test-set", tiny_timit, "--split", "test", "--workers", "-1", "--out", tmp_path / "out")
    assert_one_line_error(result, "--workers")


def test_out_naming_a_file_is_a_one_line_error(tiny_timit, tmp_path):
    (tmp_path / "taken").write_text("keep me")
    result = decode_cli("--test-set", tiny_timit, "--split", "test", "--out", tmp_path / "taken")
    assert_one_line_error(result, str(tmp_path / "taken"), "folder")
    assert (tmp_path / "taken").read_text() == "keep me"


def test_output_into_a_closed_pipe_ends_quietly(tiny_timit):
    """`decode.py ... | head -1`: the reader goes away; no BrokenPipeError traceback. The reading end
    is closed before anything is written, so the first line already meets a broken pipe."""
    folder = tiny_timit / "TEST"
    process = subprocess.Popen([sys.executable, "decode.py", folder], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 1
    assert stderr == ""


def test_main_takes_its_arguments(tiny_timit, capsys):
    from asr.commands import decode

    path = next((tiny_timit / "TEST").rglob("*.WAV"))
    assert decode.main([str(path)]) == 0
    assert capsys.readouterr().out.startswith(f"{path}\t")


def test_json_output_has_no_nan_or_infinity():
    """An absurd input can give a score of -inf or NaN; JSON has no such numbers, so they become null."""
    from asr.commands import decode
    from asr.transcribe import Segment, Transcript

    result = Transcript("a", ["a"], float("-inf"), [Segment("a", 0.0, 0.1, float("nan"))], 0.1)

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    record = json.loads(decode.format_result("x.wav", result, "json"), parse_constant=refuse)
    assert record["file"] == "x.wav" and record["score"] is None and record["segments"][0]["confidence"] is None
