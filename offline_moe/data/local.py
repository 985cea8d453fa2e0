"""Locally recorded offline data: record real ALE episodes and ingest them into a replay cache.

    cache_dir = ensure_local_cache("Breakout", steps=3000, data_dir="data")
    python -m offline_moe.local_data --games=Pong,Breakout --steps=3000 --data_dir=data

Used by the default benchmark (`./run.sh`) and by `offline_moe.sweep --local_data_steps=N` for
the smoke suite, where the public DQN-Replay data is not at hand. Recording
(`offline_moe.record`, uniformly random policy, DQN-Replay protocol) and ingesting
(`offline_moe.ingest`, 100% of the episodes, rewards clipped) both run in subprocesses, so
TensorFlow never enters the calling (training) process. Existing datasets and caches are reused.
"""

from __future__ import annotations

import os
import subprocess
import sys

DATASET_NAME = "rlu_atari_local"


def _log(message: str) -> None:
    # Progress goes to stderr: stdout may carry a command list (`sweep --print`).
    print(message, file=sys.stderr, flush=True)


def record_dataset(game: str, steps: int, data_dir: str, seed: int = 0) -> str:
    """Records `steps` random-policy agent steps of `game` as an RLDS dataset (the recorder).

    Returns the TFDS source string for `offline_moe.ingest`. Skipped if the dataset exists.
    """
    source = f"tfds:{DATASET_NAME}/{game}_run_1"
    target = os.path.join(data_dir, DATASET_NAME, f"{game}_run_1")
    if os.path.isdir(target) and any(os.scandir(target)):
        _log(f"[local_data] dataset exists: {target}")
        return source
    cmd = [
        sys.executable,
        "-m",
        "offline_moe.record",
        f"--game={game}",
        f"--steps={steps}",
        "--checkpoints=1",
        f"--seed={seed}",
        f"--out={data_dir}",
        "--overwrite",
    ]
    _log(f"[local_data] recording: {' '.join(cmd[1:])}")
    subprocess.run(cmd, check=True)
    return source


def ingest_dataset(source: str, data_dir: str, cache_dir: str) -> str:
    """Ingests the recorded dataset (100% of it, rewards clipped) into a replay cache."""
    if os.path.exists(os.path.join(cache_dir, "meta.json")):
        _log(f"[local_data] cache exists: {cache_dir}")
        return cache_dir
    cmd = [
        sys.executable,
        "-m",
        "offline_moe.ingest",
        f"--source={source}",
        f"--data_dir={data_dir}",
        "--percent=100",
        f"--out={cache_dir}",
        "--overwrite",
    ]
    _log(f"[local_data] ingesting: {' '.join(cmd[1:])}")
    subprocess.run(cmd, check=True)
    return cache_dir


def local_cache_dir(game: str, steps: int, data_dir: str = "data") -> str:
    """Where `ensure_local_cache` puts the cache of `steps` recorded steps of `game`."""
    return os.path.join(data_dir, "cache", f"{game}_local_{steps}")


def ensure_local_cache(game: str, steps: int, data_dir: str = "data", seed: int = 0) -> str:
    """Records (if needed) and ingests (if needed) `steps` steps of `game`; returns the cache."""
    rlds_dir = os.path.join(data_dir, "rlds")
    source = record_dataset(game, steps, rlds_dir, seed=seed)
    return ingest_dataset(source, rlds_dir, local_cache_dir(game, steps, data_dir))
