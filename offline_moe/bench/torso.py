"""Forward+backward time of each torso: `python -m offline_moe.bench torso [--flags]`.

For every (torso, encoder) it jits `value_and_grad` of a scalar of the features (sum of
features + aux_loss) with respect to the torso parameters, times the compile, runs `--warmup`
calls, then reports the median of `--repeats` timed calls (each ended by `block_until_ready`).
One JSON line per (torso, encoder):

    {"torso": "soft_moe", "encoder": "impala", "num_experts": 8, "width": null, "batch": 32,
     "params": 368336, "compile_s": 1.9, "fwd_bwd_ms": 123.4, "fwd_bwd_ms_min": 120.1, ...}

By default: baseline (width 1), the scaled baseline (width n), soft_moe and top1_moe, both
encoders, n = 8, batch 32, on the default JAX device.
"""

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

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
        "torso": name,
        "encoder": kwargs.get("encoder"),
        "num_experts": kwargs.get("num_experts"),
        "width": kwargs.get("width"),
        "batch": batch,
        "params": count_params(params),
        "compile_s": round(compile_s, 3),
        "fwd_bwd_ms": round(statistics.median(times), 2),
        "fwd_bwd_ms_min": round(min(times), 2),
        "repeats": repeats,
        "device": str(jax.devices()[0].device_kind),
        "backend": jax.default_backend(),
    }


def main(argv) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__.split("\n\n")[0])
    parser.add_argument("--torsos", default="baseline,soft_moe,top1_moe", help="comma-separated")
    parser.add_argument("--encoders", default=",".join(ENCODERS), help="comma-separated")
    parser.add_argument("--num_experts", type=int, default=8)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--no_scaled_baseline",
        action="store_true",
        help="skip the baseline scaled to width num_experts",
    )
    args = parser.parse_args(argv[1:])

    torsos = args.torsos.split(",")
    for name in torsos:
        if name not in list_torsos() and ":" not in name:
            parser.error(f"unknown torso {name!r}; valid: {', '.join(list_torsos())}")
    n = args.num_experts
    for encoder in args.encoders.split(","):
        for name in torsos:
            block = {"encoder": encoder, "num_experts": n, "width": 1}
            variants = [filter_torso_kwargs(name, block)]
            if name == "baseline" and not args.no_scaled_baseline and n != 1:
                variants.append(filter_torso_kwargs(name, {**block, "width": n}))
            for kwargs in variants:
                record = bench_one(
                    name, kwargs, batch=args.batch, warmup=args.warmup, repeats=args.repeats
                )
                print(json.dumps(record), flush=True)
