"""User-facing errors and the wrapper every command runs in: one clear line and an exit code,
never a traceback; SIGINT/SIGTERM stop cleanly; process settings that change speed only."""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import re
import signal
import sys
from typing import Callable


class UserError(Exception):
    """A problem the user can fix; the message says what is wrong and what to do."""

    exit_code = 1


class ParamsError(UserError):
    exit_code = 2


class DataError(UserError):
    pass


def os_error_line(e: OSError, doing: str) -> str:
    """'no space left on device writing models/x.pt' and the like, with advice that fits."""
    what = e.strerror or type(e).__name__
    advice = {errno.ENOSPC: "free some space and run it again",
              errno.EDQUOT: "free some space and run it again",
              errno.EACCES: "make the folder writable and run it again",
              errno.EPERM: "make the folder writable and run it again",
              errno.EROFS: "the file system is read-only; run it where it can write"}
    return f"{what.lower()} {doing}; {advice.get(e.errno, 'fix that and run it again')}"


ON, OFF = ("1", "true", "on", "yes"), ("0", "false", "off", "no")


def env_switch(name: str, default: bool) -> bool:
    """An on/off environment switch, read where it is used: 1/0, true/false, on/off, yes/no
    (any case); unset or empty is the default; anything else is one line."""
    text = os.environ.get(name, "").strip().lower()
    if not text:
        return default
    if text in ON or text in OFF:
        return text in ON
    raise UserError(f"{name} = {os.environ[name]!r}: must be one of {', '.join(ON)} (on) or "
                    f"{', '.join(OFF)} (off)")


def env_seconds(name: str, default: float) -> float:
    """A duration in seconds from the environment: a finite number > 0, else one line."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise UserError(f"{name} = {os.environ[name]!r}: must be a number of seconds > 0")
    return value


def env_count(name: str, what: str) -> int | None:
    """$name as a whole number >= 1 (ASCII digits only: '²' and '٣' are digits to Python too),
    None when unset, else one line saying what it must be."""
    env = os.environ.get(name, "").strip()
    if not env:
        return None
    if not re.fullmatch(r"[0-9]{1,6}", env) or int(env) < 1:
        raise UserError(f"{name} = {env!r}: must be a whole number of {what} >= 1")
    return int(env)


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
KEEP_FREED = 1 << 30  # bytes


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory (up to 1 GiB) instead of returning it to the
    kernel: a training step frees and re-allocates the same multi-MB buffers every batch, and
    faulting their pages in again is a measurable share of a CPU step (docs/evidence.md, "Speed").
    Changes speed only. False where malloc is not glibc's."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, KEEP_FREED)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_FREED))


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


PERSISTENT = ("train", "screen")  # stages whose outputs dvc.yaml marks `persist: true`


def unchanged_note() -> str:
    """What a command that stops before writing can truthfully say of the previous outputs:
    as they were, except under `dvc repro` (DVC_STAGE set) of a stage whose outputs DVC removes
    before it runs the command. The training stages' outputs persist, and the seeds they
    finished are kept (.seeds/) for the next run."""
    stage = os.environ.get("DVC_STAGE")
    kind = (stage or "").rpartition(":")[2].partition("@")[0]
    if not stage or kind in PERSISTENT:
        kept = "; the seeds that finished are kept in .seeds/, so running it again trains " \
               "only the others" if kind in PERSISTENT else ""
        return f"nothing was changed; the previous outputs are as they were{kept}"
    return (f"stage {stage} wrote nothing, but DVC had removed its previous outputs before it "
            f"started: `dvc repro {stage}` writes them again, and the committed ones come back "
            "with `git checkout -- models reports search` (files in Git) or `dvc checkout` "
            "(cached ones)")


def interrupted_message() -> str:
    return f"interrupted: {unchanged_note()}"


def command(main: Callable[..., None]) -> Callable[..., None]:
    """Wrap a command's main: UserError -> 'error: ...' on stderr and its exit code; SIGINT and
    SIGTERM stop it (outputs are written all at once at the end, so nothing partial is left), and
    so does a closed output pipe, with one line."""

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
            print(interrupted_message(), file=sys.stderr)
            sys.exit(130)
        except BrokenPipeError:  # `... | head -1`: the reader went away; no traceback at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            print(f"stopped: the program reading this command's output closed it "
                  f"({unchanged_note()})", file=sys.stderr)
            sys.exit(1)

    return wrapper
