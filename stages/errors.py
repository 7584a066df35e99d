"""User-facing errors: one clear line and an exit code, never a traceback."""
from __future__ import annotations

import functools
import signal
import sys
from typing import Callable

from stages.runtime import keep_freed_memory


class UserError(Exception):
    """A problem the user can fix; the message says what is wrong and what is allowed."""

    exit_code = 1


class ParamsError(UserError):
    exit_code = 2


class DataError(UserError):
    pass


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def cli(main: Callable[..., None]) -> Callable[..., None]:
    """Wrap a stage's main: UserError -> 'error: ...' on stderr and its exit code; SIGINT and
    SIGTERM stop it cleanly (outputs are written atomically, so nothing partial is left); the
    process runs with runtime's settings."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        signal.signal(signal.SIGTERM, _raise_interrupt)
        keep_freed_memory()
        try:
            return main(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            print("interrupted: no output was written; run it again to start over",
                  file=sys.stderr)
            sys.exit(130)

    return wrapper
