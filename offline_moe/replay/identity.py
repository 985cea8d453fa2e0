"""Data identity: what made a replay cache or a recorded dataset, in one set of fields.

A cache is reused, or trained on, only when its identity matches what is asked for, and its
conventional directory is derived from it (`cache_dir_for`). Three places state an identity:

* a cache's meta.json (`cache_identity`), written by ingest and by the direct recorder;
* a local recording's dataset description (`description_identity`), written by
  `offline_moe.record` (`offline_moe.data.record`) as JSON that names the recorder;
* a request for local data (`recording_identity`: game, steps, seed, behaviour policy), by
  `offline_moe.data.local` and the sweep.

Fields (`IDENTITY_FIELDS`): source (the ingest source string, 'tfds:NAME/Game_run_R',
'dqn_replay:DIR'), game, run, checkpoints, percent (of each checkpoint), sample and sample_seed
(how the percent was drawn), and for local recordings the recorder's policy ('random',
'scripted_0.25': `policy_identity`), steps and seed (None for public data).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from offline_moe.errors import CacheError

IDENTITY_FIELDS = (
    "source",
    "game",
    "run",
    "checkpoints",
    "percent",
    "sample",  # how percent was drawn: prefix | random (offline_moe.data.ingest)
    "sample_seed",
    "policy",
    "steps",
    "seed",
)
# `source` strings start with the reader that made them (offline_moe.data.ingest); rlds_dir
# sources hold the same RL Unplugged data as tfds ones.
_KIND_OF_PREFIX = {"tfds": "tfds", "rlds_dir": "tfds", "dqn_replay": "dqn_replay"}
CACHE_ROOT = "cache"
# The names `cache_dir_for` gives: {Game}_run{run}_{percent}pct for a fraction of DQN-Replay,
# {Game}_{policy}_{steps}steps_seed{seed} for a local recording (all of it).
CACHE_NAME_RE = re.compile(
    r"[A-Z][A-Za-z0-9]*_(run\d+_\d+(\.\d+)?pct(_random\d+)?|[a-z][a-z0-9_.]*_\d+steps_seed\d+(_\d+(\.\d+)?pct)?)"
)


def cache_identity(meta: Mapping[str, Any]) -> dict:
    """The identity fields of a cache's (or recorded dataset's) meta; None where not recorded.

    source: the ingest source string ('tfds:rlu_atari_checkpoints_ordered/Pong_run_1', ...);
    game, run, checkpoints (list of ints), percent (of each checkpoint); policy, steps, seed:
    the recorder's (`offline_moe.data.record`), None for public data.
    """
    out = {k: meta.get(k) for k in IDENTITY_FIELDS}
    if out["checkpoints"] is not None:
        out["checkpoints"] = [int(c) for c in out["checkpoints"]]
    return out


def source_kind(identity: Mapping[str, Any]) -> str | None:
    """'record' (recorded locally: the recorder's policy is known), 'tfds', 'dqn_replay', or
    the source string itself for anything else; None when no source is recorded."""
    if identity.get("policy") is not None:
        return "record"
    source = identity.get("source")
    if source is None:
        return None
    return _KIND_OF_PREFIX.get(str(source).partition(":")[0], str(source))


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    return a == b


def identity_differences(wanted: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """'field: wanted X, found Y' for every identity field `wanted` sets that `found` differs in."""
    return [
        f"{k}: wanted {wanted[k]!r}, found {found.get(k)!r}"
        for k in IDENTITY_FIELDS
        if wanted.get(k) is not None and not _same_value(wanted[k], found.get(k))
    ]


def check_identity(where: str, wanted: Mapping[str, Any], found: Mapping[str, Any]) -> None:
    """Raises CacheError naming both values of every differing field."""
    diffs = identity_differences(wanted, found)
    if diffs:
        raise CacheError(
            f"{where} was made by something else than asked for ({'; '.join(diffs)}); remove it "
            "or choose another directory"
        )


def _num(x: Any) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() else f"{x:g}"


def cache_dir_for(identity: Mapping[str, Any], data_dir: str = "data") -> str:
    """The conventional cache directory of an identity (docs, trainers, local data, sweep).

    DATA_DIR/cache/{Game}_run{run}_{percent}pct for a fraction of DQN-Replay (e.g.
    data/cache/Pong_run1_5pct, `_random{seed}` appended for `ingest --sample=random`);
    DATA_DIR/cache/{Game}_{policy}_{steps}steps_seed{seed} for all
    of a local recording (e.g. data/cache/Pong_random_3000steps_seed0; '_{percent}pct' is
    appended when only part of it is ingested).
    """
    game = identity["game"]
    if source_kind(identity) == "record":
        policy = re.sub(r"[^a-z0-9_.]", "", str(identity["policy"]).lower())
        name = f"{game}_{policy}_{int(identity['steps'])}steps_seed{int(identity['seed'])}"
        pct = identity.get("percent")
        if pct is not None and float(pct) != 100.0:
            name += f"_{_num(pct)}pct"
    else:
        name = f"{game}_run{int(identity['run'])}_{_num(identity['percent'])}pct"
        if identity.get("sample") == "random":  # ingest --sample=random: its seed names it
            name += f"_random{int(identity.get('sample_seed') or 0)}"
    return os.path.join(data_dir, CACHE_ROOT, name)


# ---------------------------------------------------------------------------------------------
# Local recordings (`offline_moe.record`, `offline_moe.data.local`).

LOCAL_DATASET = "rlu_atari_local"  # the TFDS dataset name of local recordings
LOCAL_RUN = 1
RECORDER = "offline_moe.record"


def policy_identity(policy: str, eps: float | None) -> str:
    """The policy as identities name it: 'random', 'eps_greedy_0.1', 'scripted_0.25' (eps)."""
    return f"{policy}_{float(eps):g}" if policy in ("eps_greedy", "scripted") else policy


def description_identity(description: str) -> dict | None:
    """The identity (`offline_moe.replay.identity.IDENTITY_FIELDS`) a recording states in its
    dataset description, or None when the description is not this recorder's.

    Recordings carry no percent (None): a cache states the percent of them it holds.
    """
    try:
        d = json.loads(description)
    except (TypeError, ValueError):
        return None
    if not isinstance(d, dict) or d.get("recorder") != RECORDER:
        return None
    splits = d.get("checkpoints")
    return {
        "source": f"tfds:{d.get('name', LOCAL_DATASET)}/{d['game']}_run_{d['run']}",
        "game": d["game"],
        "run": d["run"],
        "checkpoints": list(range(splits)) if splits is not None else None,
        "percent": None,
        "policy": policy_identity(d["policy"], d.get("eps")),
        "steps": d["steps"],
        "seed": d["seed"],
    }


def recording_identity(
    game: str, steps: int, seed: int = 0, *, policy: str = "random", eps: float | None = None
) -> dict:
    """The identity of the local recording of `steps` steps of `game` by `policy` (with its
    `eps`, see `offline_moe.data.record`) and of its cache (all of it: percent 100)."""
    return {
        "source": f"tfds:{LOCAL_DATASET}/{game}_run_{LOCAL_RUN}",
        "game": game,
        "run": LOCAL_RUN,
        "checkpoints": [0],
        "percent": 100.0,
        "policy": policy_identity(policy, eps),
        "steps": int(steps),
        "seed": int(seed),
    }
