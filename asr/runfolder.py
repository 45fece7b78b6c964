"""The run folder: one training process at a time, and an earlier run is never overwritten by accident.

A run folder holds one run's files (last.pt, best.pt, config.yaml, log.jsonl,
curves.png). Two processes writing into it would leave a mix of both runs, so
the first one takes an exclusive ``fcntl.flock`` on ``.lock`` in the folder
and holds it until it ends; the kernel releases the lock when the process dies,
even by kill -9, so a stale lock never blocks a resume. Under the lock, a new
run refuses a folder that already holds a run (unless told to overwrite it),
and temporary files left by killed writers are removed.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from asr.atomic import remove_stale_temporaries
from asr.errors import UserError, file_error

RUN_FILES = ("last.pt", "best.pt", "config.yaml", "log.jsonl", "curves.png")
# What a new run must not destroy. A config.yaml alone is a run killed before its first checkpoint:
# nothing to resume and nothing lost, so a new run may start there (as the recipes' train_or_resume does).
RESULTS = ("last.pt", "best.pt", "log.jsonl")
LOCK = ".lock"
# Fixed temporary names of the writers before asr/atomic.py (no PID in them): only a killed run leaves them.
OLD_TEMPORARIES = (*(f".{name}.tmp" for name in RUN_FILES), ".curves.tmp.png")


class RunFolder:
    """The locked run folder `path`; `release()` (or the process's end) unlocks it."""

    def __init__(self, path: str | os.PathLike, resume: bool, overwrite: bool = False):
        self.path = Path(path)
        self._handle = _lock(self.path)
        try:
            self._prepare(resume, overwrite)
        except BaseException:
            self.release()
            raise

    def _prepare(self, resume: bool, overwrite: bool) -> None:
        results = [name for name in RESULTS if (self.path / name).exists()]
        if results and not resume and not overwrite:
            raise file_error(self.path, f"already holds a run ({', '.join(results)})",
                             "Continue it with --resume, pick a new --out folder, or pass --overwrite to start over")
        if overwrite and not resume:
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
        remove_stale_temporaries(self.path)
        for name in OLD_TEMPORARIES:
            (self.path / name).unlink(missing_ok=True)

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file drops the flock
            self._handle = None


def _lock(folder: Path):
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = open(folder / LOCK, "a")  # held open for the run's lifetime: the lock lives as long
    except OSError as error:
        raise file_error(folder, f"cannot be used as a run folder ({error.strerror})",
                         "Pick a writable --out folder") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(f"{folder}: another training process is using this run folder; wait for it to end "
                        "(or stop it), or pick another --out folder") from None
    except OSError as error:  # a file system without locks
        handle.close()
        raise file_error(folder, f"cannot be locked for this run ({error.strerror})",
                         "Pick an --out folder on a local disk") from None
    return handle
