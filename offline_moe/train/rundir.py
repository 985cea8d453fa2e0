"""Run directory: config, metrics, evaluations, Orbax checkpoints, summary (agent-agnostic).

This module holds the layout (`RunDir`) and the start/resume preamble (`open_run`); the lock
is `offline_moe.train.lock`, the protocol block, the summary and config differences are
`offline_moe.train.protocol`, Orbax's noise after a failed write is silenced by
`offline_moe.train.orbax_logs`, and the errors a refused start raises are `offline_moe.errors`.

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

Starting or resuming (`open_run`, the one preamble of both trainers):
  1. The run directory is locked (`run.lock`, see `RunLock`) before anything is written: a
     second trainer on the same directory stops at once, naming the holder's host and PID.
  2. A stored config.json is compared with the given config, also for a finished run: any
     difference is refused, naming the differing keys. A finished run with the same config
     returns its summary ("already finished").
  3. The run is built (the trainer's `build`: cache loaded and validated, game and action
     count checked, networks made). Only then are inputs.json (identities of the inputs the
     run depends on, e.g. the replay cache's fingerprint) and config.json written, so a start
     that fails writes no config and the corrected command is accepted. On resume the stored
     inputs are compared with the current ones and a difference is refused, naming both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np

from offline_moe.errors import (
    CheckpointWriteError,
    ConfigMismatchError,
    InputMismatchError,
    NonFiniteLossError,
    RunDirError,
)
from offline_moe.train import orbax_logs
from offline_moe.train.lock import RunLock
from offline_moe.train.protocol import PROTOCOL, config_diff, config_value, to_jsonable

CONFIG = "config.json"
METRICS = "metrics.jsonl"
EVAL = "eval.jsonl"
CHECKPOINTS = "checkpoints"
SUMMARY = "summary.json"
INPUTS = "inputs.json"


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
        orbax_logs.silence_failed_write_aftermath()
        quiet = orbax_logs.DropOrbaxErrors()
        absl_logger = logging.getLogger("absl")
        absl_logger.addFilter(quiet)
        try:
            self.manager.save(
                iteration,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
                ),
                force=True,
            )
            self.manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001 (any failure: one line naming the step and reason)
            raise self._checkpoint_failed(iteration, e) from e
        finally:
            absl_logger.removeFilter(quiet)

    def _checkpoint_failed(self, iteration: int, error: BaseException) -> CheckpointWriteError:
        """Removes the failed step's partial files and says which checkpoint is the last whole one.

        Orbax writes a step into a temporary directory renamed at the end, so a failed write
        leaves only that directory (removed here to give the space back) and earlier steps.
        """
        root = self.path(CHECKPOINTS)
        try:
            self.close()
        except Exception:  # noqa: BLE001 (the manager may be broken by the same failure)
            self._manager = None
        # Orbax's other writer threads may still be finishing into the step's temporary
        # directory; remove it until it stays removed.
        for _ in range(20):
            partial = [
                os.path.join(root, n)
                for n in (os.listdir(root) if os.path.isdir(root) else [])
                if n.startswith(f"{iteration}.orbax-checkpoint-tmp")
            ]
            if not partial:
                break
            for path in partial:
                shutil.rmtree(path, ignore_errors=True)
            time.sleep(0.05)
        complete = sorted(
            int(n)
            for n in (os.listdir(root) if os.path.isdir(root) else [])
            if n.isdigit() and n != str(iteration)
        )
        last = complete[-1] if complete else "none"
        return CheckpointWriteError(
            f"checkpoint write failed: {os.path.join(root, str(iteration))}: "
            f"{orbax_logs.write_error_reason(error)}; the last complete checkpoint is {last}"
        )

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


def printer(command: str):
    """The progress printer of a trainer: one flushed stdout line per call, `[command] msg`.

    Both tracks print their progress this way (absl logging stays for libraries such as
    Orbax, whose INFO lines the commands silence).
    """

    def log(msg: str) -> None:
        print(f"[{command}] {msg}", flush=True)

    return log


# ----- the start/resume preamble shared by both trainers -----


@dataclasses.dataclass
class Run:
    """What `open_run` hands the trainer.

    Attributes:
      rd: the locked RunDir.
      config: the run's config (the stored one on resume), a plain dict.
      built: what the trainer's `build` returned (None for a finished run).
      summary: summary.json of a finished run, else None.
      last_checkpoint: the last complete checkpoint's iteration, or None; the logs are already
        truncated to it.
    """

    rd: RunDir
    config: dict
    built: Any = None
    summary: dict | None = None
    last_checkpoint: int | None = None

    @property
    def finished(self) -> bool:
        return self.summary is not None


@contextlib.contextmanager
def open_run(
    workdir: str,
    config: Mapping | None,
    *,
    build: Callable[[dict], tuple[Any, Mapping[str, Any]]],
    describe_input: Callable[[Mapping], str] = json.dumps,
    max_to_keep: int | Callable[[dict], int] = 2,
    log: Callable[[str], None] = print,
) -> Iterator[Run]:
    """Locks, compares, builds and records a run; the one preamble of both trainers.

    Args:
      workdir: the run directory.
      config: the full config as a plain dict, or None to resume from config.json.
      build: config -> (built, inputs). `built` is the trainer's own (learner, replay, ...);
        `inputs` maps names to JSON identities of what the run depends on (e.g. {"cache":
        cache identity}), recorded in inputs.json on the first start and compared on resume
        (by their "fingerprint" field where they have one).
      describe_input: identity -> one-line text for error messages.
      max_to_keep: Orbax checkpoints kept, or config -> that number.
      log: progress printer.

    Yields:
      A `Run`. The lock is held until the block exits (however it exits).

    Raises:
      RunLockedError, ConfigMismatchError, InputMismatchError: the start is refused; nothing
        in the run directory was changed.
    """
    rd = RunDir(workdir)
    lock = RunLock(rd.workdir)
    lock.acquire()
    try:
        config_path = rd.path(CONFIG)
        if config is not None:
            config = json.loads(json.dumps(config))  # plain JSON types (NaN stays a float)
        if rd.has_config():
            stored = rd.read_config()
            if config is not None:
                diff = config_diff(stored, config)
                if diff:
                    shown = "; ".join(
                        f"{k}: stored {config_value(stored, k)!r}, "
                        f"given {config_value(config, k)!r}"
                        for k in diff[:6]
                    )
                    state = "finished run" if rd.is_done() else "run"
                    raise ConfigMismatchError(
                        f"{config_path} of this {state} differs from the given config in "
                        f"{diff} ({shown}{'; ...' if len(diff) > 6 else ''}); resume with "
                        "--workdir alone (the stored config is used) or pick a new --workdir"
                    )
            config = stored
        elif config is None:
            raise RunDirError(
                f"no config given and {config_path} does not exist: pass --config=... to start "
                "a run"
            )
        rd.max_to_keep = max_to_keep(config) if callable(max_to_keep) else int(max_to_keep)
        if rd.is_done():
            log(f"{rd.workdir}: run already finished (summary.json), same config; not re-running")
            yield Run(rd=rd, config=config, summary=rd.read_summary())
            return
        built, inputs = build(config)
        inputs = json.loads(json.dumps(to_jsonable(dict(inputs))))
        inputs_path = rd.path(INPUTS)
        if os.path.exists(inputs_path):
            with open(inputs_path) as f:
                recorded = json.load(f)
            for name in sorted(set(recorded) | set(inputs)):
                if not _same_input(recorded.get(name), inputs.get(name)):
                    raise InputMismatchError(
                        f"{inputs_path}: this run was started on {name} "
                        f"{_describe(describe_input, recorded.get(name))}, but {name} is now "
                        f"{_describe(describe_input, inputs.get(name))}; resuming would train "
                        "on other data. Restore the original or start a new --workdir"
                    )
        else:
            _atomic_write_json(inputs_path, inputs)
        if not rd.has_config():
            rd.write_config(config)  # only now: a failed build leaves no config.json
        last = rd.latest_checkpoint()
        rd.truncate_logs(last)  # drop lines of iterations after the last checkpoint
        yield Run(rd=rd, config=config, built=built, last_checkpoint=last)
    finally:
        try:
            rd.close()
        finally:
            lock.release()


def _same_input(a: Any, b: Any) -> bool:
    """Identities with a "fingerprint" are compared by it alone (not by path or time)."""
    if (
        isinstance(a, Mapping)
        and isinstance(b, Mapping)
        and "fingerprint" in a
        and "fingerprint" in b
    ):
        return a["fingerprint"] == b["fingerprint"]
    return a == b


def _describe(describe_input: Callable[[Mapping], str], identity: Any) -> str:
    return "(none recorded)" if identity is None else describe_input(identity)
