"""What a run states about itself: its protocol block, its summary, and how two configs differ.

`protocol_block` is written to protocol.json once the run is built (the report groups runs
and matches the paper on it); `build_summary` is summary.json's content, the same keys on both
tracks; `config_diff` names the keys in which a given config differs from a stored one (a
resume with another config is refused with them). `to_jsonable` turns what these hold
(numpy and jax scalars and arrays) into plain JSON.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

PROTOCOL = "protocol.json"
PROTOCOL_VERSION = 1
TRACKS = ("offline", "online")


def to_jsonable(x: Any) -> Any:
    """Converts numpy/jax scalars and arrays (nested in dicts/lists) to plain JSON types."""
    if isinstance(x, Mapping):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_jsonable(v) for v in x]
    if isinstance(x, jax.Array | np.ndarray | np.generic):
        arr = np.asarray(x)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)  # JSON has no NaN/inf; keep it readable
    return x


def protocol_block(
    *,
    track: str,
    agent: str,
    game: str,
    data: Mapping[str, Any],
    encoder: str | None,
    torso: Mapping[str, Any],
    budget: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    sticky_actions: float,
) -> dict:
    """The run's protocol: what a reader must know to compare runs like with like.

    Written by both trainers to protocol.json; `offline_moe.analysis.report` groups runs and
    matches the paper's findings on it, never on keys searched in the config.

    Args:
      track: 'offline' or 'online'.
      agent: 'cql', 'cql_c51', 'der', 'drq_eps'.
      game: the game (a run's game list is [game]).
      data: {'source': kind ('tfds', 'dqn_replay', 'record', 'online', ...), 'percent': percent
        of the source in the cache (None: not a fraction), 'cache': the cache's identity
        (`offline_moe.replay.identity.cache_identity`) or None}.
      encoder: the torso's encoder ('impala', 'nature'), None if it has none.
      torso: {'name': ..., 'kwargs': {...}} as the torso received them.
      budget: {'iterations', 'steps_per_iteration', 'unit': 'updates' | 'agent_steps'} plus
        anything else the track counts (e.g. 'updates_per_step').
      evaluation: {'protocol', 'epsilon', 'max_episode_steps', 'standard_max_episode_steps',
        'min_steps' (full episodes until this many steps; or None), 'episodes' (or None),
        'interval' (iterations between evaluations)}.
      sticky_actions: sticky-action probability of the emulators the run steps.

    Returns:
      The block (JSON-ready); raises ValueError naming a missing field.
    """
    if track not in TRACKS:
        raise ValueError(f"protocol track {track!r}; valid: {', '.join(TRACKS)}")
    need = {
        "data": ("source", "percent", "cache"),
        "torso": ("name", "kwargs"),
        "budget": ("iterations", "steps_per_iteration", "unit"),
        "evaluation": ("protocol", "epsilon", "max_episode_steps", "standard_max_episode_steps",
                       "min_steps", "episodes", "interval"),
    }  # fmt: skip
    given = {"data": data, "torso": torso, "budget": budget, "evaluation": evaluation}
    for name, fields in need.items():
        missing = [f for f in fields if f not in given[name]]
        if missing:
            raise ValueError(f"{PROTOCOL}: {name} block lacks {missing}")
    return to_jsonable(
        {
            "version": PROTOCOL_VERSION,
            "track": track,
            "agent": agent,
            "games": [game],
            "data": dict(data),
            "encoder": encoder,
            "torso": {"name": torso["name"], "kwargs": dict(torso["kwargs"])},
            "budget": dict(budget),
            "eval": dict(evaluation),
            "sticky_actions": float(sticky_actions),
        }
    )


def build_summary(
    evals: list[dict], *, agent: str, game: str, torso: Mapping, num_seeds: int, **extra
) -> dict:
    """summary.json content of a finished run, the same keys on both tracks.

    Args:
      evals: the run's eval.jsonl lines (each with per-seed "returns").
      agent, game: what was trained on what.
      torso: {"name": ..., "kwargs": {...}} as saved with the checkpoints.
      num_seeds: seeds in the run.
      **extra: track-specific figures (budget, throughput, parameter count, ...).

    Returns:
      {"final_return": [per seed] of the last evaluation, "best_return": [per seed] best over
      evaluations (both None without any), "agent", "game", "torso", "num_seeds", **extra};
      `RunDir.write_summary` adds "done".
    """
    returns = [e["returns"] for e in evals]
    return to_jsonable(
        {
            "final_return": returns[-1] if returns else None,
            "best_return": np.max(np.asarray(returns, float), axis=0) if returns else None,
            "agent": agent,
            "game": game,
            "torso": {"name": torso["name"], "kwargs": dict(torso.get("kwargs", {}))},
            "num_seeds": num_seeds,
            **extra,
        }
    )


_MISSING = object()


def config_diff(stored: Mapping, given: Mapping, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two (nested) config dicts."""
    out = []
    for key in sorted(set(stored) | set(given)):
        a, b = stored.get(key, _MISSING), given.get(key, _MISSING)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += config_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def config_value(config: Mapping, dotted: str) -> Any:
    """The value at a dotted key of a nested config ('learner.gamma'), or '(absent)'."""
    node: Any = config
    for part in dotted.split("."):
        node = node.get(part, _MISSING) if isinstance(node, Mapping) else _MISSING
    return "(absent)" if node is _MISSING else node
