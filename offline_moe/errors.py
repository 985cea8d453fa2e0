"""The errors a command reports as one line (and a non-zero exit) instead of a traceback.

Each says what is wrong and what to do: the file, field or option, what was expected, the
valid choices. The commands catch them here: the trainers `USER_ERRORS`, `ingest` and `record`
`ValueError` (which `CacheError` and `IngestError` are) and `MissingExtraError`. They live in
one module so that the layers that raise them (replay caches, data readers, the run directory)
need not import one another to share them.
"""

from __future__ import annotations

import difflib
import os
import shutil
from collections.abc import Iterable

# Inputs: what a user typed.


class InputError(ValueError):
    """A name or value given on the command line (or in a config) is not a valid one: an
    unknown game, suite, agent, torso, torso keyword, config name or run directory. The
    message names it, the nearest valid value or the valid values, and the fix."""

    def with_prefix(self, where: str) -> InputError:
        """The same error, its message prefixed with where the value came from."""
        return type(self)(f"{where}: {self}")


def nearest(name: str, valid: Iterable[str]) -> str:
    """'did you mean 'Pong'?' for the closest valid values (case-insensitive), else ''."""
    valid = list(valid)
    by_lower = {v.lower(): v for v in valid}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=3, cutoff=0.6)
    return "did you mean " + " or ".join(repr(by_lower[c]) for c in close) + "?" if close else ""


def unknown(kind: str, name: str, valid: Iterable[str], fix: str = "") -> InputError:
    """The one-line error for a name that is not one of `valid`: what, nearest match or the
    valid values, and the fix, joined by '; '."""
    valid = list(valid)
    parts = [f"unknown {kind} {name!r}", nearest(name, valid)]
    if not parts[1] or len(valid) <= 12:
        parts.append(f"valid: {', '.join(valid)}")
    return InputError("; ".join(p for p in [*parts, fix] if p))


# Data: replay caches and the readers that make them.


class CacheError(ValueError):
    """A replay cache is missing, malformed, or from another format version."""


class CacheWriteError(CacheError):
    """Writing a cache file failed (e.g. the disk is full); the message names file and space."""

    def __init__(self, path: str, error: OSError, nbytes: int):
        self.path, self.error, self.nbytes = path, error, nbytes
        try:
            free = shutil.disk_usage(os.path.dirname(path)).free
            space = f"; {free:,} bytes free on its file system"
        except OSError:
            space = ""
        need = f" while writing {nbytes:,} bytes" if nbytes else ""
        super().__init__(f"cache write failed: {path}: {error.strerror or error}{need}{space}")


class IngestError(ValueError):
    """Bad ingest input: names the file, field or option and what was expected."""


class MissingExtraError(ImportError):
    """TensorFlow, tensorflow-datasets or rlds is needed but not installed."""


# Training runs: the run directory and the loop.


class RunDirError(ValueError):
    """This start is refused; the message says why and what to do (trainers exit non-zero)."""


class RunLockedError(RunDirError):
    """Another trainer holds the run directory."""


class ConfigMismatchError(RunDirError):
    """The given config differs from the run's config.json."""


class InputMismatchError(RunDirError):
    """An input the run was started on (e.g. its replay cache) has changed."""


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss is NaN/inf; the last good checkpoint is kept untouched."""


class CheckpointWriteError(OSError):
    """Saving a checkpoint failed; earlier checkpoints are intact."""


# What a trainer's command line reports as one line (and a non-zero exit), not a traceback:
# refused starts, NaN stops, failed checkpoint writes, and caches that fail their checks.
USER_ERRORS = (InputError, RunDirError, NonFiniteLossError, CheckpointWriteError, CacheError)
# Of those, the ones that stop a run that had started (exit 1); the others refuse what was
# asked before anything ran (exit 2, as a usage error).
RUN_FAILURES = (NonFiniteLossError, CheckpointWriteError)
