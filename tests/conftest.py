"""Shared pytest set-up: CPU JAX, fast compiles, small thread pools."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import jax  # noqa: E402

# Tests check values, not speed: skip most XLA optimisation passes to keep compiles short.
jax.config.update("jax_disable_most_optimizations", True)
