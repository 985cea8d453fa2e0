"""Forward+backward time of each torso: `python -m offline_moe.bench torso [--flags]`.

For every (torso, encoder) it jits `value_and_grad` of a scalar of the features (sum of
features + aux_loss) with respect to the torso parameters, times the compile, runs `--warmup`
calls, then reports the median of `--repeats` timed calls (each ended by `block_until_ready`).
One JSON line per (torso, encoder):

    {"bench": "torso", "torso": "soft_moe", "encoder": "impala", "num_experts": 8, "width": null,
     "batch_size": 32,
     "params": 368336, "compile_s": 1.9, "fwd_bwd_ms": 123.4, "fwd_bwd_ms_min": 120.1, ...}

By default: baseline (width 1), the scaled baseline (width n), soft_moe and top1_moe, both
encoders, n = 8, batch 32, on the default JAX device.
"""

import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from offline_moe.flags_common import fail, parse
from offline_moe.networks import (
    ENCODERS,
    count_params,
    filter_torso_kwargs,
    list_torsos,
    make_torso,
    preprocess_obs,
)


def bench_one(name, kwargs, *, batch, warmup, repeats, seed=0) -> dict:
    """Times one torso's jitted forward+backward; returns the JSON record."""
    torso = make_torso(name, **kwargs)
    frames = np.random.default_rng(seed).integers(0, 256, (batch, 84, 84, 4), dtype=np.uint8)
    x = jax.device_put(preprocess_obs(frames))
    params = jax.jit(lambda k, x: torso.init(k, x, train=False))(jax.random.key(seed), x)

    def scalar(p, x):
        features, aux = torso.apply(p, x, train=True)
        return jnp.sum(features) + aux["aux_loss"]

    fwd_bwd = jax.jit(jax.value_and_grad(scalar))
    start = time.perf_counter()
    compiled = fwd_bwd.lower(params, x).compile()
    compile_s = time.perf_counter() - start

    for _ in range(warmup):
        jax.block_until_ready(compiled(params, x))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(params, x))
        times.append((time.perf_counter() - start) * 1e3)
    return {
        "bench": "torso",
        "torso": name,
        "encoder": kwargs.get("encoder"),
        "num_experts": kwargs.get("num_experts"),
        "width": kwargs.get("width"),
        "batch_size": batch,
        "params": count_params(params),
        "compile_s": round(compile_s, 3),
        "fwd_bwd_ms": round(statistics.median(times), 2),
        "fwd_bwd_ms_min": round(min(times), 2),
        "repeats": repeats,
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.default_backend(),
    }


def define_flags(fv: flags.FlagValues) -> None:
    """The benchmark's flags, in `fv`."""
    kw = dict(flag_values=fv)
    flags.DEFINE_list(
        "torsos", ["baseline", "soft_moe", "top1_moe"], "Torsos, comma-separated.", **kw
    )
    flags.DEFINE_list("encoders", list(ENCODERS), "Encoders, comma-separated.", **kw)
    flags.DEFINE_integer(
        "num_experts", 8, "Number of experts n of the MoE torsos.", lower_bound=1, **kw
    )
    flags.DEFINE_integer("batch_size", 32, "Transitions per batch.", lower_bound=1, **kw)
    flags.DEFINE_integer("warmup", 2, "Untimed calls after the compile.", lower_bound=0, **kw)
    flags.DEFINE_integer(
        "repeats", 10, "Timed repeats (bench torso: the median is kept).", lower_bound=1, **kw
    )
    flags.DEFINE_boolean(
        "scaled_baseline", True, "Also time the baseline scaled to width --num_experts.", **kw
    )


def main(argv) -> None:
    args = parse(argv, define_flags, prog="bench torso", doc=__doc__)
    torsos = args.torsos
    for name in torsos:
        if name not in list_torsos() and ":" not in name:
            fail("bench torso", f"unknown torso {name!r}; valid: {', '.join(list_torsos())}")
    n = args.num_experts
    for encoder in args.encoders:
        for name in torsos:
            block = {"encoder": encoder, "num_experts": n, "width": 1}
            variants = [filter_torso_kwargs(name, block)]
            if name == "baseline" and args.scaled_baseline and n != 1:
                variants.append(filter_torso_kwargs(name, {**block, "width": n}))
            for kwargs in variants:
                record = bench_one(
                    name, kwargs, batch=args.batch_size, warmup=args.warmup, repeats=args.repeats
                )
                print(json.dumps(record), flush=True)
