"""Overhead of the Ray sweep backend against the local one, on the same grid.

    python -m offline_moe.bench sweep [--suite=smoke --agents=cql --torsos=baseline,soft_moe
        --seeds=2 --repeats=1 --out=DIR]

Runs the grid as `python -m offline_moe.sweep ... --smoke` once per backend and repeat, in
alternating order, each time in a fresh runs root and with a fresh (empty) persistent
compilation cache, on data recorded beforehand (so neither pays for it). Both backends run one
trainer at a time here (local `--workers=1`; Ray `--cpus_per_run` = all CPUs of its local
instance), so the difference is the backend's own cost: starting Ray, scheduling the tasks,
the status actor and piping the trainers' output. Prints one line per sweep and the ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time


def _sweep(backend: str, args, root: str, data_dir: str, cache: str) -> float:
    cmd = [
        sys.executable, "-m", "offline_moe.sweep", f"--suite={args.suite}",
        f"--agents={args.agents}", f"--torsos={args.torsos}", f"--seeds={args.seeds}",
        "--smoke", f"--data_dir={data_dir}", f"--root={root}", f"--backend={backend}",
    ]  # fmt: skip
    ncpu = os.cpu_count() or 1
    cmd += ["--workers=1"] if backend == "local" else [f"--cpus_per_run={ncpu}"]
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": cache}
    t0 = time.time()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - t0


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="smoke", help="suite name or Game1,Game2")
    parser.add_argument("--agents", default="cql", help="comma-separated agents")
    parser.add_argument("--torsos", default="baseline,soft_moe", help="comma-separated torsos")
    parser.add_argument("--seeds", type=int, default=2, help="seeds per run")
    parser.add_argument("--repeats", type=int, default=1, help="sweeps per backend")
    parser.add_argument("--data_dir", default="data", help="recorded smoke data (reused)")
    parser.add_argument("--out", default=None, help="scratch directory (default: a temp dir)")
    args = parser.parse_args(argv[1:])
    scratch = args.out or tempfile.mkdtemp(prefix="bench_sweep_")
    data_dir = os.path.abspath(args.data_dir)
    from offline_moe.analysis import suites
    from offline_moe.data.local import ensure_local_cache

    for game in suites.get_suite(args.suite):  # the smoke data, made before either sweep
        ensure_local_cache(game, 3000, data_dir)
    times: dict[str, list[float]] = {"local": [], "ray": []}
    for r in range(args.repeats):
        order = ("local", "ray") if r % 2 == 0 else ("ray", "local")
        for backend in order:
            root = os.path.join(scratch, f"{backend}{r}")
            cache = os.path.join(scratch, f"jax_cache_{backend}{r}")
            for d in (root, cache):
                shutil.rmtree(d, ignore_errors=True)
            seconds = _sweep(backend, args, root, data_dir, cache)
            times[backend].append(seconds)
            print(f"{backend:<6} repeat {r}: {seconds:.1f} s", flush=True)
    local, ray_ = min(times["local"]), min(times["ray"])
    print(
        f"best of {args.repeats}: local {local:.1f} s, ray {ray_:.1f} s, "
        f"overhead {ray_ - local:+.1f} s ({ray_ / local:.3f}x)"
    )
    if not args.out:
        shutil.rmtree(scratch, ignore_errors=True)
