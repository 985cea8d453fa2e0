"""Data-path benchmark: ingest rate, cache bytes per transition, DeviceReplay sampling rate.

    python -m offline_moe.bench data                      # record, ingest, sample (CPU)
    python -m offline_moe.bench data --cache=DIR          # sampling + bytes of an existing cache
    python -m offline_moe.bench data --source=tfds:rlu_atari_checkpoints_ordered/Pong_run_1 \\
        --data_dir=~/tensorflow_datasets --percent=5     # ingest rate on the public data

Without --source it first records `--steps` real ALE steps of `--game` with the recorder,
then writes a benchmark RLDS dataset of `--splits` checkpoint splits that each hold a copy of
those episodes (PNG frames, RLU layout), so the timed ingest reads `steps * splits`
transitions through the same TFDS path as the public data (fixed per-split costs amortised
as they are on 1M-transition checkpoints).

Prints one JSON object per line on stdout:
  ingest_transitions_per_s    wall-clock rate, plus `per_cpu_second` = transitions divided
                              by the process's CPU seconds (user + system, all threads),
                              which is the per-core rate (target >= 10,000). Once for the
                              TFDS source, and (without --source/--cache) once for the same
                              rows written as DQN-Replay logs (gzip level 1).
  cache_bytes_per_transition  bytes of all cache files / transitions (target <= 7,100).
  replay_sampled_transitions_per_s  DeviceReplay.sample inside one jitted lax.scan at
                              `--batch_size`, compile excluded, best of 3, per n-step.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time


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
        "metric": "ingest_transitions_per_s",
        "value": round(n / wall, 1),
        "per_cpu_second": round(n / cpu, 1),
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
        "metric": "cache_bytes_per_transition",
        "value": round(total / meta["num_transitions"], 1),
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
                "metric": "replay_sampled_transitions_per_s",
                "value": round(rate, 1),
                "us_per_batch": round(1e6 * batch_size / rate, 2),
                "batch_size": batch_size,
                "stack": 4,
                "n_step": n,
                "iters": iters,
                "num_valid": int(replay.num_valid),
                "device": str(jax.devices()[0]),
            }
        )
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=argv[0], description=__doc__.split("\n")[0])
    parser.add_argument("--game", default="Pong", help="game to record (no --source)")
    parser.add_argument("--steps", type=int, default=5000, help="ALE steps to record")
    parser.add_argument("--splits", type=int, default=4, help="checkpoint splits of copies")
    parser.add_argument("--seed", type=int, default=0, help="recorder seed")
    parser.add_argument("--source", default=None, help="ingest this source instead")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir for --source=tfds:")
    parser.add_argument("--percent", type=float, default=100.0, help="ingest percent")
    parser.add_argument("--cache", default=None, help="existing cache: skip ingest")
    parser.add_argument("--workdir", default=None, help="scratch dir (default: a temp dir)")
    parser.add_argument("--batch_size", type=int, default=32, help="DeviceReplay batch")
    parser.add_argument("--iters", type=int, default=500, help="batches per timed call")
    parser.add_argument("--n_steps", default="1,3", help="n-step horizons to sample")
    parser.add_argument("--skip_replay", action="store_true", help="no DeviceReplay timing")
    parser.add_argument(
        "--skip_dqn_replay", action="store_true", help="no DQN-Replay log ingest timing"
    )
    args = parser.parse_args(argv[1:])

    own_workdir = args.workdir is None
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_data-")
    try:
        cache_dir = args.cache
        if cache_dir is None:
            source, data_dir = args.source, args.data_dir
            if source is None:
                print("[bench data] recording and writing the benchmark dataset", file=sys.stderr)
                bench_dir = build_bench_dataset(
                    workdir, args.game, args.steps, args.splits, args.seed
                )
                source = f"tfds:rlu_atari_bench/{args.game}_run_1"
                data_dir = bench_dir
            cache_dir = os.path.join(workdir, "cache")
            _emit(bench_ingest(source, data_dir, cache_dir, args.percent))
            if not args.skip_dqn_replay:
                replay_dir = os.path.join(workdir, "dqn", args.game, "1", "replay_logs")
                build_dqn_replay_logs(cache_dir, replay_dir, args.splits)
                dqn_cache = os.path.join(workdir, "dqn_cache")
                _emit(bench_ingest(f"dqn_replay:{replay_dir}", None, dqn_cache, args.percent))
                shutil.rmtree(dqn_cache, ignore_errors=True)
        _emit(bench_cache(cache_dir))
        if not args.skip_replay:
            n_steps = [int(n) for n in args.n_steps.split(",") if n]
            for record in bench_replay(cache_dir, args.batch_size, args.iters, n_steps):
                _emit(record)
    finally:
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv)
