"""The iteration loop of both trainers: resume, training blocks, the finiteness check, the
evaluation schedule, checkpoints and the summary.

A track (`offline_moe.train.offline`, `offline_moe.train.online`) supplies what differs as a
`Track`: how one iteration trains (in log-interval `Block`s), how it evaluates, and what a
checkpoint holds. `run_iterations` does the rest, the same way on both tracks:

  * Iterations are numbered from 0, as in Dopamine's runners: the `iteration` field of every
    metrics.jsonl and eval.jsonl line and the checkpoint number are the 0-based index of the
    iteration the line or checkpoint belongs to. `step` counts what the track counts (gradient
    updates offline, agent steps online) from the start of the run to the end of the line's
    block or evaluated iteration. protocol.json and every checkpoint's metadata record
    `"iteration_base": 0`; online runs written before both tracks shared this loop numbered
    from 1 and lack the field (`iteration_base` reads either).
  * Rates, per seed: `updates_per_s` (gradient updates per second, both tracks) and, online,
    `agent_steps_per_s` (agent steps per second, emulator included); `time_s` is the time
    since this process started training. The same names are in summary.json, over the blocks
    of the process after its first (which includes compilation).
  * Evaluation after every `eval.interval`-th iteration and after the last; the evaluation
    after iteration `it` uses the keys and emulator seeds of `eval_seeds(seed, S, it)`.
  * An iteration's log lines are written before its checkpoint (`offline_moe.train.rundir`
    drops lines past the last checkpoint on resume), so a run killed at any moment neither
    repeats nor loses an iteration.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import numpy as np

from offline_moe.train import protocol as protocol_lib
from offline_moe.train import rundir as rundir_lib
from offline_moe.train.progress import Progress

ITERATION_BASE = 0
# What runs that do not record "iteration_base" used: the online trainer counted from 1
# until both tracks shared this loop (the last such commit: LEGACY_COMMIT).
LEGACY_ITERATION_BASE = {"offline": 0, "online": 1}
LEGACY_COMMIT = "4c51b5d"

# fold_in tags of a seed's random streams on both tracks: seed s of a run with base seed b
# uses fold_in(PRNGKey(b + s), stream) (`learners.seed_keys`). The offline track adds its
# representation batch's stream (2).
TRAIN_STREAM, EVAL_STREAM = 0, 1

UNITS = ("updates", "agent_steps")


def iteration_base(track: str | None, recorded: int | None = None) -> int:
    """The number of a run's first iteration in its files.

    Args:
      track: 'offline' or 'online' (protocol.json's track), None if unknown (then 0).
      recorded: the run's "iteration_base" (protocol.json, checkpoint metadata), if any.
    """
    if recorded is not None:
        return int(recorded)
    return LEGACY_ITERATION_BASE.get(track or "offline", 0)


# Field names of older run files and what they are called now.
RENAMED_FIELDS = {"steps_per_sec": "agent_steps_per_s"}  # online metrics.jsonl


def upgrade_record(record: Mapping, base: int) -> dict:
    """A metrics.jsonl / eval.jsonl line of a run whose files number iterations from `base`
    (`iteration_base`) and may use older field names, as this loop writes it now."""
    out = {RENAMED_FIELDS.get(k, k): v for k, v in record.items()}
    if base and "iteration" in out:
        out["iteration"] = int(out["iteration"]) - base + ITERATION_BASE
    return out


def is_eval_iteration(it: int, num_iterations: int, interval: int) -> bool:
    """Evaluation after every `interval`-th iteration and after the last (0-based `it`)."""
    return (it + 1) % interval == 0 or it == num_iterations - 1


def eval_seeds(seed: int, num_seeds: int, iteration: int):
    """(exploration keys [S, 2], emulator seeds [S]) of the evaluation after `iteration`.

    Seed s of the run (base seed + s) gets fold_in(its EVAL_STREAM key, iteration) and the
    emulator seed `learners.env_seed(seed + s, f'eval-{iteration}')`, so its evaluation does
    not depend on the run's other seeds.
    """
    import jax

    from offline_moe.learners import env_seed, seed_keys

    keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(
        seed_keys(seed, num_seeds, EVAL_STREAM), iteration
    )
    return keys, [env_seed(seed + s, f"eval-{iteration}") for s in range(num_seeds)]


def rate_fields(unit: str, steps: int, updates: float, seconds: float) -> dict[str, float]:
    """The rate fields of a metrics line or summary: {'updates_per_s'} offline (where a step is
    an update), {'agent_steps_per_s', 'updates_per_s'} online; per seed."""
    seconds = max(seconds, 1e-9)
    if unit == "updates":
        return {"updates_per_s": steps / seconds}
    return {"agent_steps_per_s": steps / seconds, "updates_per_s": updates / seconds}


def _display(rates: Mapping[str, float]) -> dict[str, float]:
    names = {"agent_steps_per_s": "agent steps/s", "updates_per_s": "updates/s"}
    return {names[k]: v for k, v in rates.items()}


@dataclasses.dataclass
class Block:
    """One log interval of training, as a track reports it.

    Attributes:
      step: steps (the track's unit) done at the block's end, counted from the run's start.
      steps: steps in this block.
      updates: gradient updates per seed in this block (= steps offline).
      metrics: the track's metrics.jsonl fields (values per seed on axis 0); must hold "loss".
      check: the metrics checked for NaN/inf (default: all of `metrics`).
    """

    step: int
    steps: int
    updates: int
    metrics: dict
    check: dict | None = None


class Track(Protocol):
    """What one track supplies to `run_iterations`.

    Attributes:
      name: 'offline' or 'online' (protocol.json's track).
      unit: 'updates' or 'agent_steps' (what `step` counts).
      num_iterations: iterations of the run.
      total_steps: steps of the whole run.
      eval_interval: evaluate after every this many iterations (and after the last).
      seed: the run's base seed.
      num_seeds: seeds trained side by side (seed .. seed + num_seeds - 1).
    """

    name: str
    unit: str
    num_iterations: int
    total_steps: int
    eval_interval: int
    seed: int
    num_seeds: int

    def protocol(self) -> dict:
        """The run's protocol block (`train.protocol.protocol_block`)."""

    def restore(self, rd: rundir_lib.RunDir, iteration: int) -> dict:
        """Restores the state saved after `iteration`; returns the checkpoint's metadata."""

    def train(self, it: int) -> Iterator[Block]:
        """Trains iteration `it`, yielding one Block per log interval."""

    def step_at(self, it: int) -> int:
        """Steps done at the end of iteration `it`."""

    def evaluate(self, it: int) -> dict:
        """The eval.jsonl fields of the evaluation after iteration `it` ("returns" and
        "episodes" per seed at least; `iteration` and `step` are added)."""

    def checkpoint(self, it: int) -> tuple[Any, dict]:
        """(state pytree, JSON metadata) to save after iteration `it`."""

    def summary(self) -> dict:
        """summary.json fields of the track (`train.protocol.build_summary`'s agent, game, torso,
        params and anything else) once the last iteration is done."""

    def close(self) -> None:
        """Releases what training holds (threads, files); called however the loop ends."""


def check_resumable(rd: rundir_lib.RunDir, track: str, last: int) -> None:
    """Refuses a run whose checkpoints number iterations from another base, naming the fix."""
    meta = rd.read_checkpoint_meta(last)
    base = iteration_base(track, meta.get("iteration_base"))
    if base != ITERATION_BASE:
        raise rundir_lib.RunDirError(
            f"{rd.path(rundir_lib.CHECKPOINTS)}: this unfinished {track} run numbers its "
            f"iterations from {base}, the trainers now from {ITERATION_BASE}; finish it once "
            f"with the trainer of commit {LEGACY_COMMIT} (`git checkout {LEGACY_COMMIT}`) or "
            "start it again in a new --workdir"
        )


def run_iterations(
    run: rundir_lib.Run,
    track: Track,
    *,
    max_iterations: int | None = None,
    stop_at: float | None = None,
    log: Callable[[str], None] = print,
) -> dict | None:
    """Trains `run` (opened by `rundir.open_run`) from its last checkpoint to the end.

    Args:
      run: the opened, unfinished run (its logs already cut to its last checkpoint).
      track: the track's parts.
      max_iterations: stop after this many iterations in this call (checkpointed, no summary).
      stop_at: a `time.time()` deadline: stop (checkpointed, no summary) after the first
        iteration after which another one, as long as the last, would end past it.
      log: progress printer.

    Returns:
      summary.json's content, or None if stopped by `max_iterations` or `stop_at` first.
    """
    try:
        return _run(run, track, max_iterations, stop_at, log)
    finally:
        track.close()


def _run(run, track, max_iterations, stop_at, log) -> dict | None:
    rd, n = run.rd, track.num_iterations
    if track.unit not in UNITS:
        raise ValueError(f"track unit {track.unit!r}; valid: {', '.join(UNITS)}")
    start = 0
    if run.last_checkpoint is not None:
        check_resumable(rd, track.name, run.last_checkpoint)
    rd.write_protocol({**track.protocol(), "iteration_base": ITERATION_BASE})
    if run.last_checkpoint is not None:
        meta = track.restore(rd, run.last_checkpoint)
        start = run.last_checkpoint + 1
        log(
            f"resuming {rd.workdir} after iteration {run.last_checkpoint} "
            f"({track.unit.replace('_', ' ')}: {meta.get('step', track.step_at(start - 1)):,})"
        )
    seeds = list(range(track.seed, track.seed + track.num_seeds))
    eval_its = [i for i in range(n) if is_eval_iteration(i, n, track.eval_interval)]
    unit = "update" if track.unit == "updates" else "step"
    progress = Progress(
        track.total_steps, len(eval_its), sum(i < start for i in eval_its), unit, len(seeds)
    )
    # (steps, updates, seconds) of the blocks after this process's first (which compiles).
    first, timed = (0, 0, 0.0), (0, 0, 0.0)
    blocks = 0
    stop = n if max_iterations is None else min(n, start + max_iterations)
    t0 = time.time()
    for it in range(start, stop):
        t_iteration = t_block = time.time()
        for block in track.train(it):
            now = time.time()
            check = block.metrics if block.check is None else block.check
            rundir_lib.check_finite(check, iteration=it, step=block.step, rundir=rd, seeds=seeds)
            seconds = max(now - t_block, 1e-9)
            progress.block(block.steps, seconds)
            this = (block.steps, block.updates, seconds)
            if blocks == 0:
                first = this
            else:
                timed = tuple(a + b for a, b in zip(timed, this))
            blocks += 1
            rates = rate_fields(track.unit, *this)
            # Written at once (live monitoring); lines of an iteration that is not
            # checkpointed are dropped on resume.
            rd.append_metrics(
                {"iteration": it, "step": block.step, "time_s": now - t0, **rates,
                 **block.metrics}
            )  # fmt: skip
            loss = float(np.mean(block.metrics["loss"]))
            log(progress.line(it + 1, n, block.step, loss, _display(rates)))
            t_block = time.time()
        step = track.step_at(it)
        if is_eval_iteration(it, n, track.eval_interval):
            t_eval = time.time()
            record = track.evaluate(it)
            seconds = time.time() - t_eval
            progress.evaluation(seconds)
            rd.append_eval({**record, "iteration": it, "step": step})
            returns = [round(float(r), 2) for r in record["returns"]]
            log(
                f"eval after iteration {it} ({unit} {step:,}): returns {returns} "
                f"({record['episodes']} episodes, {seconds:.1f}s)"
            )
        state, meta = track.checkpoint(it)
        rd.save_checkpoint(it, state, {**meta, "step": step, "iteration_base": ITERATION_BASE})
        now = time.time()
        if stop_at is not None and it + 1 < stop and now + (now - t_iteration) > stop_at:
            log(f"stopping after iteration {it} (stop_at); resumes from {rd.workdir}")
            stop = it + 1
            break
    if stop < n:
        return None
    steps, updates, seconds = timed if timed[0] else first
    rates = rate_fields(track.unit, steps, updates, seconds)
    summary = protocol_lib.build_summary(
        rd.read_evals(),
        num_seeds=len(seeds),
        iterations=n,
        wall_s=time.time() - t0,
        **(rates if steps else dict.fromkeys(rates)),  # None: no block ran in this process
        **track.summary(),
    )
    rd.write_summary(summary)
    log(f"done: final returns {summary['final_return']} -> {rd.path(rundir_lib.SUMMARY)}")
    return rd.read_summary()
