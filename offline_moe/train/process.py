"""Process set-up shared by the trainer commands: compilation cache, quiet logs, monitoring.

JAX's persistent compilation cache (https://docs.jax.dev/en/latest/persistent_compilation_cache.html)
is on by default: compiled programs are stored under `default_cache_dir()` and a resumed or
repeated run with the same shapes loads them instead of recompiling. Programs that compile in
under `MIN_COMPILE_SECONDS` are not stored (cheap to redo, and they would crowd the cache).
"""

from __future__ import annotations

import os

MIN_COMPILE_SECONDS = 0.5


def default_cache_dir() -> str:
    """$JAX_COMPILATION_CACHE_DIR, else $XDG_CACHE_HOME/offline_moe/jax (~/.cache/...)."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return os.environ["JAX_COMPILATION_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "offline_moe", "jax")


def enable_compile_cache(cache_dir: str | None) -> str | None:
    """Turns JAX's persistent compilation cache on in `cache_dir` ('' = default), or off (None).

    Returns:
      The cache directory in use, or None when off.
    """
    import jax

    if cache_dir is None:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    cache_dir = os.path.abspath(os.path.expanduser(cache_dir or default_cache_dir()))
    os.makedirs(cache_dir, exist_ok=True)
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return cache_dir


def define_process_flags(fv=None) -> None:
    """Registers the trainer commands' process flags in `fv` (default: absl's global FLAGS).

    Called by the trainers' `define_flags`, so these flags show in the commands' own --help.
    """
    from absl import flags

    fv = flags.FLAGS if fv is None else fv
    flags.DEFINE_bool(
        "compile_cache",
        True,
        "Use JAX's persistent compilation cache, so a resumed or repeated run does not "
        "recompile (--nocompile_cache: off).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "compile_cache_dir",
        "",
        "Directory of the compilation cache ('' = $JAX_COMPILATION_CACHE_DIR, else "
        "$XDG_CACHE_HOME/offline_moe/jax, i.e. ~/.cache/offline_moe/jax).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "wandb_project",
        "",
        "Also log the run's scalars to this Weights & Biases project ('' = off; needs "
        "`pip install wandb`). TensorBoard event files are always written.",
        flag_values=fv,
    )


def setup_trainer_process() -> None:
    """What a trainer command does before its library call, from the flags above.

    Turns the compilation cache on (or off), sets the monitoring options, and, unless the user
    passed --verbosity, sets absl logging to WARNING (Orbax logs an INFO line per checkpoint).
    """
    from absl import flags, logging

    from offline_moe.train import monitor

    fl = flags.FLAGS
    if not fl["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    enable_compile_cache(fl.compile_cache_dir if fl.compile_cache else None)
    monitor.configure(wandb_project=fl.wandb_project or None)
