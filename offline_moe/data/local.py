"""Locally recorded offline data: record real ALE episodes and ingest them into a replay cache.

    cache_dir = ensure_local_cache("Breakout", steps=3000, data_dir="data")
    python -m offline_moe.local_data --games=Pong,Breakout --steps=3000 --data_dir=data

Used by the default benchmark (`./run.sh`) and by `offline_moe.sweep --local_data_steps=N` for
the smoke suite, where the public DQN-Replay data is not at hand. Recording
(`offline_moe.record`, uniformly random policy, DQN-Replay protocol) and ingesting
(`offline_moe.ingest`, 100% of the episodes, rewards clipped) both run in subprocesses, so
TensorFlow never enters the calling (training) process.

Other behaviour policies (`policy=`, `eps=`; e.g. 'scripted' with eps 0.25, a medium-quality
Pong dataset) are recorded the same way, under names that state them ('scripted_0.25').

Where things go, named by what made them (`recording_identity`):
DATA_DIR/rlds/{Game}_random_{steps}steps_seed{seed}/rlu_atari_local/{Game}_run_1/ (the RLDS
dataset) and DATA_DIR/cache/{Game}_random_{steps}steps_seed{seed} (its cache; the path
convention of `offline_moe.replay.identity.cache_dir_for`). An existing dataset or cache is
reused only when the identity it records (the recorder's description, the cache's meta.json)
matches the one asked for; otherwise it is refused with both values named.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from offline_moe.errors import CacheError
from offline_moe.replay.cache import read_meta
from offline_moe.replay.identity import (
    LOCAL_DATASET,
    LOCAL_RUN,
    cache_dir_for,
    cache_identity,
    check_identity,
    recording_identity,
)

POLICY = "random"  # the default behaviour policy of local data


def _log(message: str) -> None:
    # Progress goes to stderr: stdout may carry a command list (`sweep --print`).
    print(message, file=sys.stderr, flush=True)


def local_dataset_dir(
    game: str, steps: int, data_dir: str = "data", seed: int = 0, **policy
) -> str:
    """The TFDS data dir of the recording (the dataset sits below it, in the RLU layout);
    `policy`: `recording_identity`'s policy and eps."""
    name = os.path.basename(cache_dir_for(recording_identity(game, steps, seed, **policy)))
    return os.path.join(data_dir, "rlds", name)


def local_cache_dir(game: str, steps: int, data_dir: str = "data", seed: int = 0, **policy) -> str:
    """Where `ensure_local_cache` puts the cache of `steps` recorded steps of `game`."""
    return cache_dir_for(recording_identity(game, steps, seed, **policy), data_dir)


def recorded_identity(dataset_dir: str) -> dict:
    """The identity a recorded dataset states (the recorder's description in dataset_info.json).

    Raises:
      CacheError: no readable dataset_info.json, or no recorder description in it.
    """
    from offline_moe.replay.identity import description_identity  # no TensorFlow

    path = os.path.join(dataset_dir, "dataset_info.json")
    try:
        with open(path) as f:
            description = json.load(f).get("description", "")
    except (OSError, ValueError) as e:
        raise CacheError(f"{path}: unreadable ({e}); remove {dataset_dir} to record again") from e
    identity = description_identity(description)
    if identity is None:
        raise CacheError(f"{path}: not written by offline_moe.record (no recorder description)")
    return identity


def record_dataset(
    game: str, steps: int, data_dir: str, seed: int = 0, *, policy: str = POLICY, eps=None
) -> str:
    """Records `steps` agent steps of `game` by `policy` as an RLDS dataset under `data_dir`.

    Returns the TFDS source string for `offline_moe.ingest`. An existing dataset is reused
    when it states the same identity, and refused (CacheError naming both) otherwise.
    """
    from offline_moe.data.rlu_format import dataset_dir  # no TensorFlow at import

    wanted = {**recording_identity(game, steps, seed, policy=policy, eps=eps), "percent": None}
    target = dataset_dir(data_dir, game, LOCAL_RUN, LOCAL_DATASET)
    if os.path.isdir(target) and any(os.scandir(target)):
        check_identity(f"recorded dataset {target}", wanted, recorded_identity(target))
        _log(f"[local_data] dataset exists: {target}")
        return wanted["source"]
    cmd = [
        sys.executable,
        "-m",
        "offline_moe.record",
        f"--game={game}",
        f"--steps={steps}",
        "--num_checkpoints=1",
        f"--run={LOCAL_RUN}",
        f"--policy={policy}",
        *([f"--epsilon={eps}"] if eps is not None else []),
        f"--seed={seed}",
        f"--dataset_dir={data_dir}",
        "--overwrite",
    ]
    _log(f"[local_data] recording: {' '.join(cmd[1:])}")
    subprocess.run(cmd, check=True)
    return wanted["source"]


def _reusable(cache_dir: str, wanted: dict) -> bool:
    """Whether a cache is already at `cache_dir`; it must state the `wanted` identity
    (CacheError naming both values otherwise)."""
    if not os.path.exists(os.path.join(cache_dir, "meta.json")):
        return False
    check_identity(f"replay cache {cache_dir}", wanted, cache_identity(read_meta(cache_dir)))
    _log(f"[local_data] cache exists: {cache_dir}")
    return True


def ingest_dataset(source: str, data_dir: str, cache_dir: str, wanted: dict) -> str:
    """Ingests the recorded dataset (100% of it, rewards clipped) into a replay cache.

    An existing cache is reused when its meta.json states the `wanted` identity, and refused
    (CacheError naming both) otherwise.
    """
    if _reusable(cache_dir, wanted):
        return cache_dir
    cmd = [
        sys.executable,
        "-m",
        "offline_moe.ingest",
        f"--source={source}",
        f"--tfds_dir={data_dir}",
        "--percent=100",
        f"--cache_dir={cache_dir}",
        "--overwrite",
    ]
    _log(f"[local_data] ingesting: {' '.join(cmd[1:])}")
    subprocess.run(cmd, check=True)
    return cache_dir


def record_cache_direct(
    game: str, steps: int, cache_dir: str, wanted: dict, seed: int = 0, *, policy=POLICY, eps=None
) -> str:
    """Records straight into the cache (`data.record.record_cache`: no RLDS, no TensorFlow),
    in this process; an existing cache is reused or refused as by `ingest_dataset`."""
    from offline_moe.data.record import record_cache

    if _reusable(cache_dir, wanted):
        return cache_dir
    _log(f"[local_data] recording {steps:,} steps of {game} straight into {cache_dir}")
    kwargs = {"eps": eps} if eps is not None else {}
    record_cache(
        game, steps, cache_dir, policy=policy, run=LOCAL_RUN, seed=seed, overwrite=True, **kwargs
    )
    return cache_dir


VIAS = ("auto", "rlds", "direct")


def ensure_local_cache(
    game: str,
    steps: int,
    data_dir: str = "data",
    seed: int = 0,
    *,
    policy: str = POLICY,
    eps: float | None = None,
    via: str = "direct",
) -> str:
    """Records (if needed) and ingests (if needed) `steps` steps of `game` by `policy` (and its
    `eps`); returns the cache.

    `via`: 'direct' (the default) records straight into the cache in this process: no
    TensorFlow, no dataset left beside the cache, and the same cache as the RLDS path (checked
    by tests/data/test_record.py), in a fraction of its time (TensorFlow's import alone costs
    each of its two subprocesses about 10 CPU-seconds); 'rlds' records an RLDS dataset in
    RL Unplugged's layout and ingests it (both in subprocesses, TensorFlow kept out of this
    process), for when the dataset itself is wanted, e.g. to share; 'auto': 'rlds' where
    tensorflow-datasets is installed, else 'direct'.

    Holds an exclusive lock (flock on `DATA_DIR/.locks/<cache>.lock`) meanwhile, so that
    several processes that need the same cache, e.g. the sweep's Ray tasks on nodes sharing
    DATA_DIR, make it once: the others wait, then find it made.
    """
    import fcntl
    import importlib.util

    if via not in VIAS:
        raise ValueError(f"via: expected one of {', '.join(VIAS)}, got {via!r}")
    if via == "auto":
        via = "rlds" if importlib.util.find_spec("tensorflow_datasets") else "direct"
    who = {"policy": policy, "eps": eps}
    wanted = recording_identity(game, steps, seed, **who)
    rlds_dir = local_dataset_dir(game, steps, data_dir, seed, **who)
    cache_dir = local_cache_dir(game, steps, data_dir, seed, **who)
    locks = os.path.join(data_dir, ".locks")
    os.makedirs(locks, exist_ok=True)
    with open(os.path.join(locks, os.path.basename(cache_dir) + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed (or we die)
        if via == "direct":
            return record_cache_direct(game, steps, cache_dir, wanted, seed, **who)
        source = record_dataset(game, steps, rlds_dir, seed=seed, **who)
        return ingest_dataset(source, rlds_dir, cache_dir, wanted)
