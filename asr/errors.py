"""The one exception type for errors a user can cause and fix.

A bad file, a missing corpus folder, a checkpoint that does not fit: these raise
`UserError` with a message that names the file and the fix. The command-line
entry points print the message alone (no traceback) and exit non-zero; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os


class UserError(Exception):
    """An error the user can fix; the message says what and how."""


def file_error(path: str | os.PathLike, problem: str, fix: str = "") -> UserError:
    """`UserError` in the house style: '<path>: <problem>. <fix>'."""
    message = f"{os.fspath(path)}: {problem}"
    if fix:
        message += f". {fix}"
    return UserError(message)
