"""A failed checkpoint write, said once: its reason, and Orbax's echoes of it silenced.

When a checkpoint write fails (e.g. the disk is full), Orbax logs the failure from each of its
writer threads and its other array writes fail later on an event loop it has closed; the
trainer reports one line instead (`offline_moe.errors.CheckpointWriteError`, whose reason is
`write_error_reason`). `RunDir.save_checkpoint` installs these filters.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys


def write_error_reason(error: BaseException) -> str:
    """The innermost OSError's text (e.g. 'No space left on device'), else the first line."""
    seen, e = set(), error
    found = None
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            found = e
        e = e.__cause__ or e.__context__
    number = found.errno if found is not None else None
    if number is None:  # tensorstore (Orbax's array writer) reports `[os_error_code='28']`
        match = re.search(r"os_error_code='?(\d+)|\[Errno (\d+)\]", str(error))
        number = int(match.group(1) or match.group(2)) if match else None
    if number is not None:
        return f"{os.strerror(number)} ({errno.errorcode.get(number, number)})"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def silence_failed_write_aftermath() -> None:
    """After a failed write, Orbax's other array writes finish on an event loop it has closed.

    Each then prints `RuntimeError: Event loop is closed` (through sys.unraisablehook) or
    asyncio's "Task exception was never retrieved", dozens of tracebacks after the one-line
    error. Installed once, at the first save; other unraisable errors and logs pass.
    """
    if getattr(sys.unraisablehook, "_offline_moe", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable):
        e = unraisable.exc_value
        if isinstance(e, RuntimeError) and str(e) == "Event loop is closed":
            return
        previous(unraisable)

    hook._offline_moe = True
    sys.unraisablehook = hook
    logging.getLogger("asyncio").addFilter(_DropUnretrievedWriteErrors())


class _DropUnretrievedWriteErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (
            "exception was never retrieved" in record.getMessage()
            and exc is not None
            and "orbax-checkpoint-tmp" in str(exc)
        )


class DropOrbaxErrors(logging.Filter):
    """Orbax logs a failed write from each of its threads; the raised error says it once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and f"{os.sep}orbax{os.sep}" in record.pathname)
