"""Data-path benchmark: ingest rate, cache bytes per transition, DeviceReplay sampling rate.

    python -m offline_moe.bench data                      # record, ingest, sample (CPU)
    python -m offline_moe.bench data --cache_dir=DIR         # sampling + bytes of an existing cache
    python -m offline_moe.bench data --source=tfds:rlu_atari_checkpoints_ordered/Pong_run_1 \\
        --tfds_dir=~/tensorflow_datasets --percent=5     # ingest rate on the public data

Without --source it first records `--steps` real ALE steps of `--game` with the recorder,
then writes a benchmark RLDS dataset of `--splits` checkpoint splits that each hold a copy of
those episodes (PNG frames, RLU layout), so the timed ingest reads `steps * splits`
transitions through the same TFDS path as the public data (fixed per-split costs amortised
as they are on 1M-transition checkpoints).

Prints one JSON object per line on stdout ({"bench": "data", "measure": ..., figures}):
  ingest           `transitions_per_s` (wall clock) and `transitions_per_cpu_s` = transitions
                   divided by the process's CPU seconds (user + system, all threads), which is
                   the per-core rate (target >= 10,000). Once for the TFDS source, and
                   (without --source/--cache_dir) once for the same rows written as DQN-Replay
                   logs (gzip level 1).
  cache            `bytes_per_transition`: bytes of all cache files / transitions (target
                   <= 7,100).
  replay_sampling  `transitions_per_s` of DeviceReplay.sample inside one jitted lax.scan at
                   `--batch_size`, compile excluded, best of 3, per n-step.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import time

from absl import flags

from offline_moe.flags_common import check_items, parse, positive_int


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def _cache_bytes(cache_dir: str) -> int:
    return sum(
        os.path.getsize(os.path.join(cache_dir, f))
        for f in os.listdir(cache_dir)
        if os.path.isfile(os.path.join(cache_dir, f))
    )


def build_bench_dataset(workdir: str, game: str, steps: int, splits: int, seed: int) -> str:
    """Records `steps` ALE steps, then writes `splits` copies as checkpoint splits."""
    import numpy as np
    import tensorflow_datasets as tfds

    from offline_moe.data import rlu_format
    from offline_moe.data.record import record

    rec_dir = os.path.join(workdir, "recorded")
    summary = record(game, steps, rec_dir, seed=seed, progress=True)
    builder = tfds.builder_from_directory(summary["dataset_dir"])
    episodes = list(tfds.as_numpy(builder.as_dataset(split="checkpoint_00")))
    bench_dir = os.path.join(workdir, "bench")
    with rlu_format.RLDSWriter(
        bench_dir, game=game, run=1, splits=list(range(splits)), name="rlu_atari_bench"
    ) as writer:
        for c in range(splits):
            for i, ep in enumerate(episodes):
                rows = list(ep["steps"])
                steps_np = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
                t = len(rows) - 1
                writer.add_episode(
                    c,
                    rlu_format.make_episode(
                        steps_np["observation"],
                        steps_np["action"][:t],
                        steps_np["reward"][:t],
                        terminated=bool(steps_np["is_terminal"][-1]),
                        checkpoint_id=c,
                        episode_id=i,
                    ),
                )
    return bench_dir


def bench_ingest(source: str, data_dir: str | None, out: str, percent: float) -> dict:
    from offline_moe.data import tfds_source
    from offline_moe.data.ingest import ingest

    if not source.startswith("dqn_replay:"):
        tfds_source._tfds()  # import TF before timing: a one-off cost, not a rate
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    meta = ingest(source, out, data_dir=data_dir, percent=percent, overwrite=True, progress=True)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    n = meta["num_transitions"]
    return {
        "bench": "data",
        "measure": "ingest",
        "transitions_per_s": round(n / wall, 1),
        "transitions_per_cpu_s": round(n / cpu, 1),
        "target_per_core": 10_000,
        "transitions": n,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "source": source,
        "percent": percent,
        "host_cpus": os.cpu_count(),
    }


def build_dqn_replay_logs(cache_dir: str, replay_dir: str, checkpoints: int) -> None:
    """Writes the cache's rows as `checkpoints` DQN-Replay checkpoints ($store$_*_ckpt.N.gz)."""
    import gzip

    import numpy as np

    from offline_moe.replay.cache import load_cache

    arrays, _ = load_cache(cache_dir)
    os.makedirs(replay_dir, exist_ok=True)
    rows = len(arrays["action"])
    bounds = np.linspace(0, rows, checkpoints + 1).astype(int)
    fields = {"observation": "observation", "action": "action", "reward": "reward"}
    for c in range(checkpoints):
        lo, hi = bounds[c], bounds[c + 1]
        data = {f: np.asarray(arrays[a][lo:hi]) for f, a in fields.items()}
        data["terminal"] = np.asarray(arrays["terminal"][lo:hi]).astype(np.uint8)
        data["add_count"] = np.array(hi - lo, np.int64)
        for name, array in data.items():
            prefix = "" if name == "add_count" else "$store$_"
            path = os.path.join(replay_dir, f"{prefix}{name}_ckpt.{c}.gz")
            # Dopamine writes with gzip's default level (9); level 1 keeps set-up short and
            # barely changes decompression speed.
            with gzip.open(path, "wb", compresslevel=1) as fh:
                np.save(fh, array, allow_pickle=False)


def bench_cache(cache_dir: str) -> dict:
    from offline_moe.replay.cache import read_meta

    meta = read_meta(cache_dir)
    total = _cache_bytes(cache_dir)
    return {
        "bench": "data",
        "measure": "cache",
        "bytes_per_transition": round(total / meta["num_transitions"], 1),
        "target": 7_100,
        "cache_bytes": total,
        "transitions": meta["num_transitions"],
        "rows": meta["num_rows"],
    }


def bench_replay(cache_dir: str, batch_size: int, iters: int, n_steps: list[int]) -> list[dict]:
    import jax

    from offline_moe.replay.device import DeviceReplay, benchmark_sampling

    out = []
    for n in n_steps:
        replay = DeviceReplay.load(cache_dir, stack=4, n_step=n, gamma=0.99)
        rate = benchmark_sampling(replay, batch_size=batch_size, iters=iters)
        out.append(
            {
                "bench": "data",
                "measure": "replay_sampling",
                "transitions_per_s": round(rate, 1),
                "us_per_batch": round(1e6 * batch_size / rate, 2),
                "batch_size": batch_size,
                "stack": 4,
                "n_step": n,
                "iters": iters,
                "num_valid": int(replay.num_valid),
                "device": str(jax.devices()[0].device_kind),
                "platform": jax.default_backend(),
            }
        )
    return out


def define_flags(fv: flags.FlagValues) -> None:
    """The benchmark's flags, in `fv`."""
    kw = dict(flag_values=fv)
    flags.DEFINE_string("game", "Pong", "Game to record (without --source).", **kw)
    flags.DEFINE_integer("steps", 5000, "Agent steps to record.", lower_bound=1, **kw)
    flags.DEFINE_integer(
        "splits", 4, "Checkpoint splits of copies of the recording.", lower_bound=1, **kw
    )
    flags.DEFINE_integer("seed", 0, "Seed (bench data: of the recorder).", lower_bound=0, **kw)
    flags.DEFINE_string("source", None, "Ingest this source instead of a recording.", **kw)
    flags.DEFINE_string(
        "tfds_dir",
        None,
        "TFDS data directory of a tfds: source (read; ~/tensorflow_datasets).",
        **kw,
    )
    flags.DEFINE_float(
        "percent",
        100.0,
        "Percent of each checkpoint to ingest.",
        lower_bound=0.0,
        upper_bound=100.0,
        **kw,
    )
    flags.DEFINE_string(
        "cache_dir", None, "Existing replay cache (bench data: skip the ingest and time it).", **kw
    )
    flags.DEFINE_string(
        "scratch_dir", None, "Scratch directory, kept (default: a temporary one, deleted).", **kw
    )
    flags.DEFINE_integer("batch_size", 32, "Transitions per batch.", lower_bound=1, **kw)
    flags.DEFINE_integer("iters", 500, "Batches per timed call.", lower_bound=1, **kw)
    flags.DEFINE_list("n_steps", ["1", "3"], "n-step horizons to sample, comma-separated.", **kw)
    check_items(fv, "n_steps", positive_int, "positive integers, e.g. 1,3")
    flags.DEFINE_boolean("replay", True, "Time DeviceReplay sampling (--noreplay: no).", **kw)
    flags.DEFINE_boolean(
        "dqn_replay", True, "Time the DQN-Replay log ingest too (--nodqn_replay: no).", **kw
    )


def main(argv: list[str]) -> None:
    args = parse(argv, define_flags, prog="bench data", doc=__doc__)
    own_workdir = args.scratch_dir is None
    workdir = args.scratch_dir or tempfile.mkdtemp(prefix="bench_data-")
    try:
        cache_dir = args.cache_dir
        if cache_dir is None:
            source, data_dir = args.source, args.tfds_dir
            if source is None:
                print("[bench data] recording and writing the benchmark dataset", file=sys.stderr)
                bench_dir = build_bench_dataset(
                    workdir, args.game, args.steps, args.splits, args.seed
                )
                source = f"tfds:rlu_atari_bench/{args.game}_run_1"
                data_dir = bench_dir
            cache_dir = os.path.join(workdir, "cache")
            _emit(bench_ingest(source, data_dir, cache_dir, args.percent))
            if args.dqn_replay:
                replay_dir = os.path.join(workdir, "dqn", args.game, "1", "replay_logs")
                build_dqn_replay_logs(cache_dir, replay_dir, args.splits)
                dqn_cache = os.path.join(workdir, "dqn_cache")
                _emit(bench_ingest(f"dqn_replay:{replay_dir}", None, dqn_cache, args.percent))
                shutil.rmtree(dqn_cache, ignore_errors=True)
        _emit(bench_cache(cache_dir))
        if args.replay:
            n_steps = [int(n) for n in args.n_steps]
            for record in bench_replay(cache_dir, args.batch_size, args.iters, n_steps):
                _emit(record)
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv)
