"""What the command-line entry points share: user errors as one line, no traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from asr.errors import UserError


def run(main: Callable[[], int | None]) -> None:
    """Run `main`; a `UserError` prints 'error: ...' on stderr and exits 2, Ctrl-C exits 130."""
    try:
        code = main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
