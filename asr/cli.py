"""What the command-line entry points share: user errors as one line, no traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from asr.errors import UserError


def run(main: Callable[[], int | None]) -> None:
    """Run `main`; a `UserError` prints 'error: ...' on stderr and exits 2, Ctrl-C exits 130,
    a closed output pipe exits 1 quietly."""
    try:
        code = main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        # Whoever read the output stopped early (``decode.py ... | head``). As the Python docs
        # advise (signal module, "Note on SIGPIPE"): point stdout at /dev/null, so that flushing
        # it at exit raises no second BrokenPipeError, and exit 1.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    sys.exit(code or 0)
