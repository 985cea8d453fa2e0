"""Second-start compile time of a trainer, with and without JAX's persistent compilation cache.

    python -m offline_moe.bench compile [--agent=cql] [--torso=soft_moe] [--data_dir=D]
        [--scratch_dir=D]

Starts the smoke config of a trainer three times, each in a fresh run directory, in a
subprocess (as a resumed or repeated run would): (1) with an empty persistent cache (cold),
(2) again with the cache it filled, (3) with the cache off. For each start it reports the
process wall time and the first training block's time (metrics.jsonl `time_s` of the first
line: compiling the fused update step plus one block), against a later block's time.
Offline agents train on a small locally recorded cache (`offline_moe.data.local`). The torso
defaults to soft_moe (the figures in docs/results were measured with it), not the configs' baseline.
`--cpu_unroll=1,20` repeats the three starts for each value of the offline config's
`cpu_unroll` (updates per jitted call on CPU). Each start prints a JSON line on stdout
({"bench": "compile", ...}) and a table row on stderr.
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

from offline_moe.configs import agents as agent_table
from offline_moe.flags_common import check_items, define_data_dir, parse, positive_int


def _start(
    agent: str,
    torso: str,
    workdir: str,
    cache_args: list[str],
    cache_dir_data: str | None,
    overrides: list[str] = (),
) -> dict:
    row = agent_table.get(agent)
    cmd = [
        sys.executable,
        "-m",
        row.trainer_module,
        f"--config={row.config_file}:smoke,game=Pong,torso={torso}",
        f"--workdir={workdir}",
        *cache_args,
        *overrides,
    ]
    if cache_dir_data:
        cmd += [f"--config.data.cache_dir={cache_dir_data}", "--config.num_iterations=1"]
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    t0 = time.time()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.time() - t0
    lines = [json.loads(x) for x in open(os.path.join(workdir, "metrics.jsonl"))]
    out = {"wall_s": wall}
    if "time_s" in lines[0]:
        out["first_block_s"] = lines[0]["time_s"]
        if len(lines) > 1:
            out["later_block_s"] = lines[1]["time_s"] - lines[0]["time_s"]
    return out


def define_flags(fv: flags.FlagValues) -> None:
    """The benchmark's flags, in `fv`."""
    kw = dict(flag_values=fv)
    flags.DEFINE_string("agent", "cql", "Agent: cql | cql_c51 | der | drq_eps.", **kw)
    flags.DEFINE_string("torso", "soft_moe", "Torso: a registered name or 'module:Name'.", **kw)
    define_data_dir(fv)
    flags.DEFINE_string(
        "scratch_dir", None, "Scratch directory, kept (default: a temporary one, deleted).", **kw
    )
    flags.DEFINE_list(
        "cpu_unroll",
        [],
        "Offline agents: config.cpu_unroll values to compare, comma-separated (updates per "
        "jitted call on CPU; empty = the config's default).",
        **kw,
    )
    check_items(fv, "cpu_unroll", positive_int, "positive integers, e.g. 1,20")


def main(argv: list[str]) -> None:
    args = parse(argv, define_flags, prog="bench compile", doc=__doc__)
    scratch = args.scratch_dir or tempfile.mkdtemp(prefix="bench_compile_")
    data_cache = None
    if args.agent in agent_table.OFFLINE_AGENTS:
        from offline_moe.data.local import ensure_local_cache

        data_cache = os.path.abspath(ensure_local_cache("Pong", 1000, args.data_dir))
    print(
        f"{'start':<26} {'wall s':>8} {'first block s':>14} {'later block s':>14}", file=sys.stderr
    )
    for unroll in args.cpu_unroll or [""]:
        overrides = [f"--config.cpu_unroll={unroll}"] if unroll else []
        cache = os.path.join(scratch, f"jax_cache{unroll}")
        shutil.rmtree(cache, ignore_errors=True)
        starts = [
            ("cold (empty cache)", ["--compile_cache", f"--compile_cache_dir={cache}"]),
            ("second start, cache on", ["--compile_cache", f"--compile_cache_dir={cache}"]),
            ("second start, cache off", ["--nocompile_cache"]),
        ]
        for i, (name, cache_flags) in enumerate(starts):
            workdir = os.path.join(scratch, f"run{unroll}_{i}")
            shutil.rmtree(workdir, ignore_errors=True)
            r = _start(args.agent, args.torso, workdir, cache_flags, data_cache, overrides)
            label = f"{name}{f' u={unroll}' if unroll else ''}"
            print(
                f"{label:<26} {r['wall_s']:>8.1f} {r.get('first_block_s', float('nan')):>14.2f} "
                f"{r.get('later_block_s', float('nan')):>14.2f}",
                file=sys.stderr,
                flush=True,
            )
            record = {"bench": "compile", "agent": args.agent, "torso": args.torso}
            record.update(start=name, cpu_unroll=int(unroll) if unroll else None, **r)
            print(json.dumps(record), flush=True)
    if not args.scratch_dir:
        shutil.rmtree(scratch, ignore_errors=True)
