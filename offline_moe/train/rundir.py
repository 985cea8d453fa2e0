"""Run directory: config, metrics, evaluations, Orbax checkpoints, summary (agent-agnostic).

Layout (shared by the offline and online tracks; `offline_moe.report` reads only this):

  workdir/
    config.json      the full config (agent, game, seed, num_seeds, torso {...}, data {...}, ...)
    metrics.jsonl    training metrics, one JSON object per log interval; each has "iteration"
    eval.jsonl       one line per evaluation: {"iteration", "step", "returns": [per seed],
                     "episodes": [per seed], ...extra}
    checkpoints/     Orbax CheckpointManager; one step per saved iteration, each holding
                     `state` (the TrainState pytree, seeds stacked on axis 0) and `meta` (JSON:
                     iteration, torso name + kwargs, host RNG state, anything the trainer adds)
    protocol.json    the run's protocol, written by both trainers once the run is built
                     (`protocol_block`): track, agent, games, data {source, percent, cache
                     identity}, encoder, torso {name, kwargs}, budget {iterations,
                     steps_per_iteration, unit}, eval {protocol, epsilon, max_episode_steps,
                     standard_max_episode_steps, min_steps, episodes, interval},
                     sticky_actions. The report groups runs and matches the paper on it.
    events.out.tfevents.*  TensorBoard scalars of the metrics and eval lines, written with
                     them (`offline_moe.train.monitor`; cut with them on resume)
    summary.json     written last: {"done": true, "final_return": [per seed],
                     "best_return": [per seed], ...}

Crash safety (a run may be SIGKILLed at any instant):
  * The trainer appends an iteration's metrics/eval lines before saving that iteration's
    checkpoint. On resume, `truncate_logs(last_checkpointed_iteration)` drops every line of a
    later iteration (and any half-written line), so an iteration is neither repeated nor lost.
  * Orbax finalises a checkpoint step by an atomic rename; unfinished steps are ignored.
  * config.json, protocol.json and summary.json are written to a temporary file and renamed.
  * A finished run (summary.json with "done": true) is never re-run.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

CONFIG = "config.json"
METRICS = "metrics.jsonl"
EVAL = "eval.jsonl"
CHECKPOINTS = "checkpoints"
SUMMARY = "summary.json"
PROTOCOL = "protocol.json"
PROTOCOL_VERSION = 1
TRACKS = ("offline", "online")


class NonFiniteLossError(FloatingPointError):
    """Raised when a training loss is NaN/inf; the last good checkpoint is kept untouched."""


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


def _atomic_write_json(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(to_jsonable(obj), f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_jsonl(path: str) -> list[dict]:
    """Reads a JSONL file, skipping a trailing half-written line."""
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


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
        (`offline_moe.replay.cache.cache_identity`) or None}.
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


class RunDir:
    """One run directory (see the module docstring for the layout and crash-safety rules).

    Args:
      workdir: the directory (created if missing).
      max_to_keep: how many Orbax checkpoints to keep.
    """

    def __init__(self, workdir: str, max_to_keep: int = 2):
        self.workdir = os.path.abspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.max_to_keep = max_to_keep
        self._manager = None
        self._monitor = None

    def path(self, name: str) -> str:
        return os.path.join(self.workdir, name)

    # ----- config / summary -----
    def has_config(self) -> bool:
        return os.path.exists(self.path(CONFIG))

    def write_config(self, config: Mapping) -> None:
        _atomic_write_json(self.path(CONFIG), config)

    def read_config(self) -> dict:
        with open(self.path(CONFIG)) as f:
            return json.load(f)

    def is_done(self) -> bool:
        s = self.read_summary()
        return bool(s and s.get("done"))

    def read_summary(self) -> dict | None:
        if not os.path.exists(self.path(SUMMARY)):
            return None
        with open(self.path(SUMMARY)) as f:
            return json.load(f)

    def write_summary(self, summary: Mapping) -> None:
        _atomic_write_json(self.path(SUMMARY), {"done": True, **dict(summary)})

    def write_protocol(self, block: Mapping) -> None:
        """Writes protocol.json (`protocol_block`), atomically."""
        _atomic_write_json(self.path(PROTOCOL), block)

    def read_protocol(self) -> dict | None:
        if not os.path.exists(self.path(PROTOCOL)):
            return None
        with open(self.path(PROTOCOL)) as f:
            return json.load(f)

    # ----- jsonl logs -----
    def _append(self, name: str, record: Mapping) -> None:
        with open(self.path(name), "a") as f:
            f.write(json.dumps(to_jsonable(record), sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def append_metrics(self, record: Mapping) -> None:
        """Appends one training-metrics line (must hold "iteration")."""
        if "iteration" not in record:
            raise ValueError(f"{METRICS} records need an 'iteration' field; got {sorted(record)}")
        self._append(METRICS, record)
        self.monitor.log(record, "train")

    def append_eval(self, record: Mapping) -> None:
        """Appends one evaluation line: iteration, step, returns [per seed], episodes [per seed]."""
        missing = {"iteration", "step", "returns", "episodes"} - set(record)
        if missing:
            raise ValueError(f"{EVAL} records need fields {sorted(missing)}")
        self._append(EVAL, record)
        self.monitor.log(record, "eval")

    def read_metrics(self) -> list[dict]:
        return read_jsonl(self.path(METRICS))

    def read_evals(self) -> list[dict]:
        return read_jsonl(self.path(EVAL))

    @property
    def monitor(self):
        """TensorBoard (and optional W&B) scalars of this run (`offline_moe.train.monitor`)."""
        if self._monitor is None:
            from offline_moe.train.monitor import Monitor

            self._monitor = Monitor(self.workdir, self.read_config() if self.has_config() else None)
        return self._monitor

    def truncate_logs(self, last_iteration: int | None) -> None:
        """Keeps only lines with iteration <= last_iteration (none if None); drops broken lines.

        The TensorBoard event files are cut to the same point: events after the last step of
        the kept lines are dropped.
        """
        from offline_moe.train.monitor import truncate_event_files

        kept_steps = []
        for name in (METRICS, EVAL):
            p = self.path(name)
            if not os.path.exists(p):
                continue
            keep = [
                r
                for r in read_jsonl(p)
                if last_iteration is not None and int(r.get("iteration", -1)) <= last_iteration
            ]
            kept_steps += [int(r["step"]) for r in keep if "step" in r]
            tmp = f"{p}.tmp{os.getpid()}"
            with open(tmp, "w") as f:
                for r in keep:
                    f.write(json.dumps(r, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
        truncate_event_files(self.workdir, max(kept_steps) if kept_steps else None)

    # ----- checkpoints -----
    @property
    def manager(self):
        if self._manager is None:
            import orbax.checkpoint as ocp

            self._manager = ocp.CheckpointManager(
                self.path(CHECKPOINTS),
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=self.max_to_keep,
                    create=True,
                    enable_async_checkpointing=False,
                ),
            )
        return self._manager

    def latest_checkpoint(self) -> int | None:
        """The last fully written checkpointed iteration, or None."""
        if not os.path.isdir(self.path(CHECKPOINTS)):
            return None
        self.manager.reload()
        return self.manager.latest_step()

    def save_checkpoint(self, iteration: int, state: Any, meta: Mapping) -> None:
        """Saves `state` (a pytree of arrays) and JSON `meta` as step `iteration`, synchronously."""
        import orbax.checkpoint as ocp

        meta = to_jsonable({"iteration": iteration, **dict(meta)})
        self.manager.save(
            iteration,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        self.manager.wait_until_finished()

    def restore_checkpoint(self, template: Any, iteration: int | None = None) -> tuple[Any, dict]:
        """Restores (state, meta); `template` gives the pytree structure, shapes and dtypes."""
        import orbax.checkpoint as ocp

        if iteration is None:
            iteration = self.latest_checkpoint()
        if iteration is None:
            raise FileNotFoundError(f"no checkpoint under {self.path(CHECKPOINTS)}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
        out = self.manager.restore(
            iteration,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
        return out["state"], dict(out["meta"])

    def read_checkpoint_meta(self, iteration: int | None = None) -> dict:
        """Reads only the JSON metadata of a checkpoint (torso name/kwargs, iteration, ...)."""
        if iteration is None:
            iteration = self.latest_checkpoint()
        if iteration is None:
            raise FileNotFoundError(f"no checkpoint under {self.path(CHECKPOINTS)}")
        meta_dir = os.path.join(self.path(CHECKPOINTS), str(iteration), "meta")
        for name in ("metadata", "meta"):
            p = os.path.join(meta_dir, name)
            if os.path.isfile(p):
                with open(p) as f:
                    return json.load(f)
        import orbax.checkpoint as ocp

        out = self.manager.restore(iteration, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return dict(out["meta"])

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None


def check_finite(
    metrics: Mapping,
    *,
    iteration: int,
    step: int,
    rundir: RunDir | None = None,
    seeds: Sequence[int] | None = None,
):
    """Raises NonFiniteLossError if any float metric is NaN/inf, naming the metric, the seeds
    whose values diverged and the last good checkpoint.

    Args:
      metrics: {name: value}; values of shape [S, ...] are per seed (seeds on axis 0).
      iteration: the iteration being trained (as the trainer numbers its checkpoints).
      step: the update (offline) or agent step (online) count.
      rundir: the run directory, for the last checkpoint.
      seeds: the seed of each member of axis 0 (config seed .. seed + num_seeds - 1).
    """
    for name, value in metrics.items():
        arr = np.asarray(value)
        if arr.dtype.kind != "f" or np.all(np.isfinite(arr)):
            continue
        where = ""
        if seeds is not None and arr.ndim >= 1 and arr.shape[0] == len(seeds):
            finite = np.isfinite(arr.reshape(len(seeds), -1)).all(axis=1)
            bad = [s for s, ok in zip(seeds, finite) if not ok]
            where = f" for seed{'s' if len(bad) > 1 else ''} {', '.join(map(str, bad))}"
            if len(bad) < len(seeds):
                where += (
                    f" (the other seed{'s' if len(seeds) - len(bad) > 1 else ''} of this run "
                    "stop with it: the seeds train in one program)"
                )
        last = rundir.latest_checkpoint() if rundir is not None else None
        if rundir is None:
            kept = ""
        elif last is None:
            kept = " No checkpoint was saved before it, so the run restarts from scratch."
        else:
            kept = (
                f" The last good checkpoint, iteration {last}, is kept in "
                f"{rundir.path(CHECKPOINTS)}; a resume restarts after it."
            )
        raise NonFiniteLossError(
            f"non-finite training metric {name!r} = {arr.tolist()}{where} at iteration "
            f"{iteration}, step {step}; stopping.{kept} Lower the learning rate or check the "
            "data for NaNs."
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


def printer(command: str):
    """The progress printer of a trainer: one flushed stdout line per call, `[command] msg`.

    Both tracks print their progress this way (absl logging stays for libraries such as
    Orbax, whose INFO lines the commands silence).
    """

    def log(msg: str) -> None:
        print(f"[{command}] {msg}", flush=True)

    return log
