"""The errors a command reports as one line (and a non-zero exit) instead of a traceback.

Each says what is wrong and what to do: the file, field or option, what was expected, the
valid choices. The commands catch them here: the trainers `USER_ERRORS`, `ingest` and `record`
`ValueError` (which `CacheError` and `IngestError` are) and `MissingExtraError`. They live in
one module so that the layers that raise them (replay caches, data readers, the run directory)
need not import one another to share them.
"""

from __future__ import annotations

import os
import shutil

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
USER_ERRORS = (RunDirError, NonFiniteLossError, CheckpointWriteError, CacheError)
