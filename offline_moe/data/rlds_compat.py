"""Makes `import rlds` work on current TensorFlow without dm-reverb.

Why: rlds 0.1.8 imports `reverb` at the top of `rlds/transformations/pattern.py` for
`pattern_map` / `pattern_map_from_transform` alone, and no dm-reverb build exists for
TensorFlow >= 2.15. Everything else in rlds (`rlds.transformations.batch`, `episode_length`,
`map_steps`, `rlds.tfds.EpisodeWriter`, ...) is plain tf.data and works.

What: `import_rlds()` imports rlds. If the real `reverb` is importable it is used untouched.
If not, a placeholder module named `reverb` is put in `sys.modules` only for the duration of
the rlds import (rlds keeps its own reference), so that later `import reverb` elsewhere still
fails as it should. Any use of the placeholder (calling `pattern_map`, which calls
`reverb.PatternDataset`, or anything else reached through it) raises `ReverbUnavailableError`
with an explanation; merely touching attributes (rlds uses `reverb.structured_writer.Config`
in annotations at import time) is allowed.

Usage (always through this module, never `import rlds` directly)::

    from offline_moe.data.rlds_compat import import_rlds
    rlds = import_rlds()
    windows = rlds.transformations.batch(steps, size=5, shift=1, drop_remainder=True)
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types


class ReverbUnavailableError(ImportError):
    """A reverb-backed rlds feature (e.g. pattern_map) was used, but dm-reverb is missing."""


_MESSAGE = (
    "dm-reverb is not installed (no build exists for current TensorFlow), so reverb-backed "
    "rlds features such as rlds.transformations.pattern_map are unavailable; offline_moe "
    "does not use them. Use rlds.transformations.batch or plain tf.data instead."
)


class _Missing:
    """Stands for any object reached through the placeholder: attributes ok, use raises."""

    def __init__(self, path: str):
        self._path = path

    def __getattr__(self, name: str) -> _Missing:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Missing(f"{self._path}.{name}")

    def __call__(self, *args, **kwargs):
        raise ReverbUnavailableError(f"{self._path}: {_MESSAGE}")

    def __repr__(self) -> str:
        return f"<unavailable {self._path}>"


class _PlaceholderReverb(types.ModuleType):
    """Module object installed as `reverb` while rlds imports."""

    OFFLINE_MOE_PLACEHOLDER = True

    def __getattr__(self, name: str) -> _Missing:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Missing(f"reverb.{name}")


def reverb_available() -> bool:
    """True if the real dm-reverb can be imported."""
    module = sys.modules.get("reverb")
    if module is not None:
        return not getattr(module, "OFFLINE_MOE_PLACEHOLDER", False)
    return importlib.util.find_spec("reverb") is not None


def import_rlds() -> types.ModuleType:
    """Imports and returns the `rlds` module, with the reverb placeholder if needed."""
    if "rlds" in sys.modules:
        return sys.modules["rlds"]
    if reverb_available():
        return importlib.import_module("rlds")
    placeholder = _PlaceholderReverb("reverb", _MESSAGE)
    placeholder.__spec__ = importlib.machinery.ModuleSpec("reverb", loader=None)
    sys.modules["reverb"] = placeholder
    try:
        return importlib.import_module("rlds")
    finally:
        # rlds.transformations.pattern holds its own reference; nobody else should see it.
        if sys.modules.get("reverb") is placeholder:
            del sys.modules["reverb"]
