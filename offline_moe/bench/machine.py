"""The machine a benchmark ran on: package versions, the device, its memory.

Every result the accelerator check (`bench device`) writes starts with `environment()`, and
each measured section records `device_memory()` (the device's peak, or the process's peak RSS
where the device keeps no statistics).
"""

from __future__ import annotations

import os
import platform
import resource


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "ale-py"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    for plugin in ("jax-cuda12-plugin", "jax-cuda12-pjrt"):
        try:
            out[plugin] = md.version(plugin)
        except md.PackageNotFoundError:
            pass
    return out


def environment() -> dict:
    import jax

    dev = jax.devices()[0]
    return {
        "versions": versions(),
        "platform": jax.default_backend(),
        "device_kind": str(dev.device_kind),
        "device": str(dev),
        "device_count": jax.device_count(),
        "memory_stats_available": bool(_memory_stats()),
        "host_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
    }


def _memory_stats() -> dict | None:
    import jax

    try:
        return jax.devices()[0].memory_stats() or None
    except Exception:  # some backends raise instead of returning None
        return None


def device_memory() -> dict:
    """Peak / in-use / limit bytes of the device; on CPU (no stats) the process's peak RSS."""
    stats = _memory_stats()
    if stats:
        keys = ("peak_bytes_in_use", "bytes_in_use", "bytes_limit", "largest_alloc_size")
        return {"source": "device.memory_stats()", **{k: stats[k] for k in keys if k in stats}}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {"source": "host max RSS (no device memory stats)", "peak_bytes_in_use": rss}
