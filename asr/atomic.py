"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the toolkit writes (checkpoints, configs, logs, plots, audio, ARPA
models, corpus files) goes through `atomic_path`: the content is written to a
temporary file beside the target, flushed to disk, then renamed over it
(``os.replace`` is atomic on POSIX). The temporary name is unique per process
and call and carries the target's suffix (PIL, matplotlib and soundfile choose
the format from it). If writing fails, the temporary file is removed, so a full
disk is not filled further, and the earlier file stays intact; a full disk
becomes one `UserError` naming the file and the fix.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from asr.errors import UserError, file_error

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# torch.save reports a short write as a RuntimeError from its zip writer, not an OSError.
_TORCH_SHORT_WRITE = re.compile(r"unexpected pos|file write failed|PytorchStreamWriter failed")


# '.last.1234.x8f2.tmp.pt' as written here, and '.last.pt.tmp1234' as written before this module.
_TEMPORARY = re.compile(r"^\..*?\.(\d+)\.[^.]*\.tmp|^\..+\.tmp(\d+)$")


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


# mkstemp creates its file 0600; the renamed file should get the mode a plain open() would give.
_FILE_MODE = 0o666 & ~_umask()


def _temporary_name(path: Path) -> str:
    return f".{path.stem}.{os.getpid()}."


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path to write to; renamed onto `path` when the block ends without error.

    The parent folder is created if missing. On any error the temporary file is
    removed and `path` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=_temporary_name(path), suffix=f".tmp{path.suffix}")
    except OSError as error:
        if is_disk_full(error):
            raise disk_full(path) from None
        raise file_error(path, f"cannot write here ({error.strerror})",
                         "Check that its folder is a writable folder") from None
    os.fchmod(handle, _FILE_MODE)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        _fsync(temporary)
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if is_disk_full(error):
            raise disk_full(path) from None
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` says the file system ran out of space (or quota)."""
    if isinstance(error, OSError):
        return error.errno in _DISK_FULL
    return isinstance(error, RuntimeError) and bool(_TORCH_SHORT_WRITE.search(str(error)))


def disk_full(path: str | os.PathLike) -> UserError:
    return file_error(path, "could not be written: the disk is full",
                      "Free some space (the earlier file, if any, is intact), then run the command again "
                      "(training: add --resume)")


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files left in `folder` by processes that no longer run (killed mid-write).

    Returns the files removed. Temporaries of live processes are left alone.
    """
    removed = []
    for candidate in Path(folder).glob(".*.tmp*"):
        match = _TEMPORARY.match(candidate.name)
        if match and not _process_alive(int(match.group(1) or match.group(2))):
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())
