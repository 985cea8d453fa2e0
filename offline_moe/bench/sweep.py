"""Overhead of the Ray sweep backend against the local one, on the same grid.

    python -m offline_moe.bench sweep [--suite=smoke --agents=cql --torsos=baseline,soft_moe
        --num_seeds=2 --repeats=1 --scratch_dir=DIR]

Runs the grid as `python -m offline_moe.sweep ... --smoke` once per backend and repeat, in
alternating order, each time in a fresh runs root and with a fresh (empty) persistent
compilation cache, on data recorded beforehand (so neither pays for it). Both backends run one
trainer at a time here (local `--workers=1`; Ray `--cpus_per_run` = all CPUs of its local
instance), so the difference is the backend's own cost: starting Ray, scheduling the tasks,
the status actor and piping the trainers' output. Prints a JSON line per sweep and one with
the best times and their ratio (`"bench": "sweep"`), and the ratio on stderr.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import flags

from offline_moe.flags_common import define_data_dir, define_grid_flags, parse


def _sweep(backend: str, args, root: str, data_dir: str, cache: str) -> float:
    cmd = [
        sys.executable, "-m", "offline_moe.sweep", f"--suite={args.suite}",
        f"--agents={','.join(args.agents)}", f"--torsos={','.join(args.torsos)}",
        f"--num_seeds={args.num_seeds}", "--smoke", f"--data_dir={data_dir}",
        f"--runs_dir={root}", f"--backend={backend}",
    ]  # fmt: skip
    ncpu = os.cpu_count() or 1
    cmd += ["--workers=1"] if backend == "local" else [f"--cpus_per_run={ncpu}"]
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": cache}
    t0 = time.time()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - t0


def define_flags(fv: flags.FlagValues) -> None:
    """The benchmark's flags, in `fv`."""
    kw = dict(flag_values=fv)
    define_grid_flags(fv, torsos=["baseline", "soft_moe"], num_seeds=2)
    flags.DEFINE_integer("repeats", 1, "Sweeps per backend (bench sweep).", lower_bound=1, **kw)
    define_data_dir(fv)
    flags.DEFINE_string(
        "scratch_dir", None, "Scratch directory, kept (default: a temporary one, deleted).", **kw
    )


def main(argv: list[str]) -> None:
    args = parse(argv, define_flags, prog="bench sweep", doc=__doc__)
    scratch = args.scratch_dir or tempfile.mkdtemp(prefix="bench_sweep_")
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
            record = {"bench": "sweep", "backend": backend, "repeat": r, "wall_s": seconds}
            print(json.dumps(record), flush=True)
    local, ray_ = min(times["local"]), min(times["ray"])
    summary = {"bench": "sweep", "repeats": args.repeats, "local_wall_s": local}
    summary.update(ray_wall_s=ray_, overhead_s=ray_ - local, ratio=ray_ / local)
    print(json.dumps(summary), flush=True)
    print(
        f"[bench sweep] best of {args.repeats}: local {local:.1f} s, ray {ray_:.1f} s, "
        f"overhead {ray_ - local:+.1f} s ({ray_ / local:.3f}x)",
        file=sys.stderr,
    )
    if not args.scratch_dir:
        shutil.rmtree(scratch, ignore_errors=True)
