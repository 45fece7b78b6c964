"""Atomic writes: the old file or the new, never half; no temporary left behind; a full disk is one clear error."""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from asr.atomic import atomic_path, remove_stale_temporaries, write_text
from asr.errors import UserError


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "log.jsonl"
    write_text(path, "old\n")
    with pytest.raises(ValueError):
        with atomic_path(path) as temporary:
            temporary.write_text("half")
            raise ValueError("interrupted")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["log.jsonl"]


def test_the_temporary_keeps_the_suffix_and_is_unique(tmp_path):
    with atomic_path(tmp_path / "curves.png") as first, atomic_path(tmp_path / "curves.png") as second:
        assert first.suffix == ".png" and first != second and first.name.startswith(".")
        first.write_bytes(b"1")
        second.write_bytes(b"2")
    assert (tmp_path / "curves.png").read_bytes() in (b"1", b"2")
    assert os.listdir(tmp_path) == ["curves.png"]


def test_a_full_disk_is_one_clear_error_and_removes_the_partial_file(tmp_path):
    path = tmp_path / "last.pt"
    write_text(path, "earlier checkpoint")
    with pytest.raises(UserError, match="last.pt: could not be written: the disk is full"):
        with atomic_path(path) as temporary:
            temporary.write_bytes(b"x" * 100)
            raise OSError(errno.ENOSPC, "No space left on device")
    assert path.read_text() == "earlier checkpoint"
    assert os.listdir(tmp_path) == ["last.pt"]


def test_torchs_short_write_counts_as_a_full_disk(tmp_path):
    with pytest.raises(UserError, match="the disk is full"):
        with atomic_path(tmp_path / "last.pt"):
            raise RuntimeError("[enforce fail at inline_container.cc:783] . unexpected pos 64 vs 16")


def test_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".last.{int(dead.stdout)}.abc123.tmp.pt"
    live = tmp_path / f".last.{os.getpid()}.def456.tmp.pt"
    kept = tmp_path / "last.pt"
    for path in (stale, live, kept):
        path.write_text("")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, kept.name])


def test_written_files_get_the_mode_a_plain_open_would_give(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    write_text(tmp_path / "config.yaml", "a: 1\n")
    assert (tmp_path / "config.yaml").stat().st_mode & 0o777 == 0o666 & ~mask
