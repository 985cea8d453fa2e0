"""Evaluation in real ALE games: batched environments, one jitted act call per step.

Protocol (DQN-Replay / Dopamine Runner, paper Sec. 5.1): sticky actions 0.25, epsilon = 0.001,
no life-loss terminals, episodes capped at 27,000 agent steps; for every seed, run FULL
episodes until at least `steps` agent steps have been taken (the last episodes are not cut);
the score is the mean undiscounted, unclipped episode return.

Batching: S seeds x E environments are stepped together (one `BatchedAtari` of E copies per
seed, seeded per seed; optionally split over `workers` processes by seed, since the emulators
hold the GIL); each step is ONE jitted call
`act(params[S], obs[S, E, 84, 84, 4], keys[S], eps)`. For each seed,
once its started episodes add up to `steps` agent steps, its environments stop starting new
episodes and finish the ones they are in; an environment that is no longer counted is still
stepped (the batch is rectangular) but its results are ignored. Every started episode is
completed and counted, so the stopping rule does not favour short episodes.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings (the `eval` config block).

    Attributes:
      interval: evaluate every this many iterations (and after the last one).
      steps: agent steps per seed; full episodes until at least this many.
      num_envs: parallel environments per seed.
      epsilon: epsilon-greedy exploration.
      max_episode_steps: per-episode cap in agent steps (27,000 in the paper's protocol).
      protocol: environment protocol of `offline_moe.envs.atari` ('dqn_replay').
      workers: processes stepping the emulators (0 = this process; -1 = one per spare CPU
        core, none on a host with 2 cores or fewer). Results are identical either way.
    """

    interval: int = 1
    steps: int = 125_000
    num_envs: int = 16
    epsilon: float = 0.001
    max_episode_steps: int = 27_000
    protocol: str = "dqn_replay"
    workers: int = 0

    @classmethod
    def from_config(cls, block) -> EvalConfig:
        block = dict(block)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(block) - names
        if unknown:
            raise ValueError(
                f"config.eval: unknown field(s) {sorted(unknown)}; valid: {sorted(names)}"
            )
        return cls(**block)


def _make_seed_envs(game, cfg, env_seeds, stack):
    from offline_moe.envs import atari

    return [
        atari.BatchedAtari(
            game,
            cfg.num_envs,
            protocol=cfg.protocol,
            seed=int(env_seed),
            stack=stack,
            max_episode_steps=cfg.max_episode_steps,
        )
        for env_seed in env_seeds
    ]


def _step_all(envs, actions):
    steps = [env.step(a) for env, a in zip(envs, actions)]
    return (
        np.stack([st.obs for st in steps]),
        np.stack([st.done for st in steps]),
        np.stack([st.episode_return for st in steps]),
    )


def _worker(conn, game, cfg, env_seeds, stack):
    envs = _make_seed_envs(game, cfg, env_seeds, stack)
    conn.send(np.stack([env.reset() for env in envs]))
    while (actions := conn.recv()) is not None:
        conn.send(_step_all(envs, actions))
    conn.close()


def worker_count(requested: int, num_seeds: int) -> int:
    """Evaluation processes: `requested` >= 0, or -1 = one per spare CPU core (0 on <= 2 cores);
    at most one per seed (a seed's environments stay in one process)."""
    if requested < 0:
        cores = os.cpu_count() or 1
        requested = cores - 1 if cores > 2 else 0
    return min(requested, num_seeds)


class _SeedEnvs:
    """The S seeds' `BatchedAtari`s, in this process or split over worker processes."""

    def __init__(self, game, cfg, env_seeds, stack):
        workers = worker_count(cfg.workers, len(env_seeds))
        self.envs, self.conns, self.procs, self.chunks = None, [], [], []
        if workers == 0:
            self.envs = _make_seed_envs(game, cfg, env_seeds, stack)
            return
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.chunks = [c for c in np.array_split(np.arange(len(env_seeds)), workers) if len(c)]
        hide = {"JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}  # workers never use a GPU
        saved = {k: os.environ.get(k) for k in hide}
        os.environ.update(hide)
        try:
            for chunk in self.chunks:
                parent, child = ctx.Pipe()
                seeds = [env_seeds[k] for k in chunk]
                proc = ctx.Process(
                    target=_worker, args=(child, game, cfg, seeds, stack), daemon=True
                )
                proc.start()
                child.close()
                self.conns.append(parent)
                self.procs.append(proc)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def reset(self) -> np.ndarray:
        if self.envs is not None:
            return np.stack([env.reset() for env in self.envs])
        return np.concatenate([c.recv() for c in self.conns])

    def step(self, actions: np.ndarray):
        if self.envs is not None:
            return _step_all(self.envs, actions)
        for conn, chunk in zip(self.conns, self.chunks):
            conn.send(actions[chunk])
        parts = [conn.recv() for conn in self.conns]
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()


def evaluate(
    act_fn: Callable,
    params: Any,
    *,
    game: str,
    cfg: EvalConfig,
    keys: jax.Array,
    env_seeds: list[int],
    stack: int = 4,
) -> dict:
    """Evaluates S seeds' parameters; returns per-seed lists (JSON-ready).

    Seed s plays its own E environments (a `BatchedAtari` seeded with env_seeds[s]) with its
    own exploration key, so its result does not depend on the other seeds of the run.

    Args:
      act_fn: jitted (params[S], obs [S, E, 84, 84, K], keys [S, 2], epsilon) -> actions [S, E]
        (see `offline_moe.learners.make_act_fn`).
      params: parameters with a leading seed axis S.
      game: ALE game.
      cfg: EvalConfig.
      keys: [S, 2] exploration keys (step t of seed s uses fold_in(keys[s], t)).
      env_seeds: S environment seeds (sticky actions).
      stack: frames per observation.

    Returns:
      {"returns": [mean return per seed], "episodes": [count per seed],
       "agent_steps": [per seed], "episode_returns": [[...] per seed], "eval_s": seconds,
       "env_steps_per_s": agent steps of all envs per second}.
    """
    s_, e_ = len(env_seeds), cfg.num_envs
    envs = _SeedEnvs(game, cfg, env_seeds, stack)
    try:
        t0 = time.time()
        obs = envs.reset()  # [S, E, 84, 84, K]
        counted = np.ones((s_, e_), bool)  # this env's current episode counts
        started_steps = np.zeros(s_, np.int64)  # agent steps of counted episodes, per seed
        episode_returns: list[list[float]] = [[] for _ in range(s_)]
        step_keys = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))
        total_env_steps = 0
        t = 0
        while counted.any():
            actions = np.asarray(act_fn(params, obs, step_keys(keys, t), cfg.epsilon))  # [S, E]
            obs, done, ret = envs.step(actions)
            total_env_steps += s_ * e_
            started_steps += counted.sum(axis=1)
            for s, e in zip(*np.nonzero(done & counted)):
                episode_returns[s].append(float(ret[s, e]))
            # A finished env starts a new counted episode only while its seed is under budget.
            under_budget = (started_steps < cfg.steps)[:, None]
            counted = np.where(done, counted & under_budget, counted)
            t += 1
    finally:
        envs.close()
    elapsed = time.time() - t0
    return {
        "returns": [float(np.mean(r)) if r else float("nan") for r in episode_returns],
        "episodes": [len(r) for r in episode_returns],
        "agent_steps": started_steps.tolist(),
        "episode_returns": episode_returns,
        "eval_s": elapsed,
        "env_steps_per_s": total_env_steps / max(elapsed, 1e-9),
    }
