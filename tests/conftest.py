"""Shared pytest set-up: CPU JAX, fast compiles, small thread pools, one compilation cache."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# Tests check values, not speed: skip most XLA optimisation passes to keep compiles short, here
# and in the commands tests start in subprocesses (which read it from the environment).
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

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


@pytest.fixture
def xla_optimized():
    """XLA's optimisation passes back on for one test: for long learning runs, where running
    the optimised program saves more than compiling it costs (DER on Catch, 1,000 agent steps:
    67 CPU-s against 108 with the passes off). The numbers are then those of a command run
    outside the tests (`python -m offline_moe.bench learning` keeps the passes on). The flag is
    not part of jit's in-memory cache key, so the caches are cleared on the way in and out: a
    program compiled under the other setting is never reused (the persistent cache's key holds
    the compile options, so it keeps the two apart)."""
    jax.clear_caches()
    jax.config.update("jax_disable_most_optimizations", False)
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "0"
    try:
        yield
    finally:
        jax.clear_caches()
        jax.config.update("jax_disable_most_optimizations", True)
        os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
