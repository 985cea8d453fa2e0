"""Tests of offline_moe.networks (tests/ mirrors the package)."""

import functools

import jax


def jit_init(module, key, *arrays, **static):
    """`module.init(key, *arrays, **static)` as one jitted program: the same parameters as
    op-by-op init (threefry is bit-exact under jit), in one compile instead of one per
    operation (Impala + 8 experts: 5 s against 18 s on 2 CPU cores)."""
    return jax.jit(functools.partial(module.init, **static))(key, *arrays)
