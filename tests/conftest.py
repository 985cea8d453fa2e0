"""Shared pytest set-up: CPU JAX, fast compiles, small thread pools, one compilation cache."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import jax  # noqa: E402

# Tests check values, not speed: skip most XLA optimisation passes to keep compiles short.
jax.config.update("jax_disable_most_optimizations", True)

COMPILE_CACHE_BYTES = 2 << 30  # the cache evicts least recently used programs beyond this


def pytest_configure(config):
    """JAX's persistent compilation cache in pytest's cache directory (.pytest_cache, not
    committed), shared by the xdist workers and by the commands tests start in subprocesses
    (through $JAX_COMPILATION_CACHE_DIR): a program that several tests build (the same smoke
    learner, the same trainer) compiles once. A cached program is the one XLA would compile
    (https://docs.jax.dev/en/latest/persistent_compilation_cache.html), so results are the same.
    """
    if os.environ.get("OFFLINE_MOE_TEST_NO_COMPILE_CACHE"):
        return
    cache_dir = os.environ.get("JAX_COMPILATION_CACHE_DIR") or str(
        config.cache.mkdir("jax_compilation_cache")
    )
    settings = {
        "jax_enable_compilation_cache": True,
        "jax_compilation_cache_dir": cache_dir,
        "jax_persistent_cache_min_compile_time_secs": 0.2,
    }
    try:  # a capped cache is also locked (filelock) while the workers read and write it
        import filelock  # noqa: F401

        settings["jax_compilation_cache_max_size"] = COMPILE_CACHE_BYTES
    except ImportError:
        pass
    for name, value in settings.items():
        jax.config.update(name, value)
        # The same settings for the commands tests start in subprocesses: a capped cache keeps
        # an access-time file beside each entry, and an entry written without one (by an
        # uncapped process) makes every later write of a capped one fail.
        os.environ[name.upper()] = str(value)
