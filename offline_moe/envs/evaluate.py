"""Evaluation in real ALE games: batched environments, one jitted act call per step.

Protocol (DQN-Replay / Dopamine Runner, paper Sec. 5.1): sticky actions 0.25, epsilon = 0.001,
no life-loss terminals, episodes capped at 27,000 agent steps; for every seed, run FULL
episodes until at least `steps` agent steps have been taken (the last episodes are not cut);
the score is the mean undiscounted, unclipped episode return.

Batching: S seeds x E environments are stepped together (one `BatchedAtari` of E copies per
seed, seeded per seed; optionally split over `workers` processes by seed, since the emulators
hold the GIL); each step is one jitted call
`act(params[S], obs[S, E, 84, 84, 4], keys[S], eps)`. For each seed,
once its started episodes add up to `steps` agent steps, its environments stop starting new
episodes and finish the ones they are in; an environment that is no longer counted is not
stepped (its observation stays in the rectangular batch, its action is ignored). Every
started episode is completed and counted, so the stopping rule does not favour short episodes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

BACKENDS = ("auto", "pool", "vector")


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
      backend: 'pool' (`offline_moe.envs.pool.EmulatorPool`: `AtariEnv`s, in `workers`
        processes), 'vector' (`offline_moe.envs.vector.VectorAtari`: ale-py's C++ vector
        interface, one thread per core; `dqn_replay` protocol and ALE games only) or 'auto'
        (vector where it applies, else pool). Both give the same observations and returns
        (tests/envs/test_vector.py); vector was measured faster (docs/gpu.md, docs/results).
    """

    interval: int = 1
    steps: int = 125_000
    num_envs: int = 16
    epsilon: float = 0.001
    max_episode_steps: int = 27_000
    protocol: str = "dqn_replay"
    workers: int = 0
    backend: str = "auto"

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(
                f"config.eval.backend is {self.backend!r}; valid: {', '.join(BACKENDS)}"
            )

    @classmethod
    def from_config(cls, block, *, protocol: str | None = None) -> EvalConfig:
        """The settings of a config's `eval` block, on either track.

        An offline block gives `steps` and `num_envs`. An online block gives `episodes`
        instead: that many games per seed, one per parallel environment, each played to its
        end (`num_envs` = episodes and a budget of one agent step, which every environment's
        first game exceeds). `protocol` fills the environment protocol where the block names
        none (the online configs hold it in `env.protocol`).
        """
        block = dict(block)
        if "episodes" in block:
            both = sorted({"steps", "num_envs"} & set(block))
            if both:
                raise ValueError(
                    f"config.eval: 'episodes' and {both} given; an evaluation counts either "
                    "episodes (online) or steps over num_envs environments (offline)"
                )
            block["num_envs"] = int(block.pop("episodes"))
            block["steps"] = 1
        if protocol is not None:
            block.setdefault("protocol", protocol)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(block) - names
        if unknown:
            raise ValueError(
                f"config.eval: unknown field(s) {sorted(unknown)}; valid: "
                f"{sorted(names | {'episodes'})}"
            )
        return cls(**block)


def evaluate(
    act_fn: Callable,
    params: Any,
    *,
    game: str,
    cfg: EvalConfig,
    keys: jax.Array,
    env_seeds: list[int],
    stack: int | None = None,
) -> dict:
    """Evaluates S seeds' parameters; returns per-seed lists (JSON-ready).

    Seed s plays its own E environments (a `BatchedAtari` seeded with env_seeds[s]) with its
    own exploration key, so its result does not depend on the other seeds of the run.

    Args:
      act_fn: jitted (params[S], obs [S, E, 84, 84, K], keys [S, 2], epsilon) -> actions [S, E]
        (see `offline_moe.learners.make_act_fn`; obs [S, E, *stacked frames] for any game).
      params: parameters with a leading seed axis S.
      game: any game of `offline_moe.envs.registry` (ALE, MinAtar, Catch).
      cfg: EvalConfig.
      keys: [S, 2] exploration keys (step t of seed s uses fold_in(keys[s], t)).
      env_seeds: S environment seeds (sticky actions).
      stack: frames per observation (default: the game's, `registry.observation_spec`).

    Returns:
      {"returns": [mean return per seed], "episodes": [count per seed],
       "agent_steps": [per seed], "episode_returns": [[...] per seed], "eval_s": seconds,
       "env_steps_per_s": agent steps of counted episodes per second, all seeds}.
    """
    from offline_moe.envs.pool import EmulatorPool  # lazily: the ALE and cv2
    from offline_moe.envs.registry import observation_spec

    s_, e_ = len(env_seeds), cfg.num_envs
    stack = observation_spec(game)[2] if stack is None else stack
    backend = cfg.backend
    if backend == "auto":
        from offline_moe.envs import vector

        backend = "vector" if vector.supports(game, cfg.protocol) else "pool"
    if backend == "vector":
        from offline_moe.envs.vector import VectorAtari

        make = VectorAtari
        kwargs = {}
    else:
        make = EmulatorPool
        kwargs = {"workers": cfg.workers, "fields": ("obs", "done", "episode_return")}
    envs = make(
        game,
        cfg.protocol,
        env_seeds,
        num_envs=cfg.num_envs,
        stack=stack,
        max_episode_steps=cfg.max_episode_steps,
        **kwargs,
    )
    try:
        t0 = time.time()
        obs = envs.reset()  # [S, E, 84, 84, K] (Atari)
        counted = np.ones((s_, e_), bool)  # this env's current episode counts
        started_steps = np.zeros(s_, np.int64)  # agent steps of counted episodes, per seed
        episode_returns: list[list[float]] = [[] for _ in range(s_)]
        step_keys = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))
        total_env_steps = 0
        t = 0
        while counted.any():
            actions = np.asarray(act_fn(params, obs, step_keys(keys, t), cfg.epsilon))  # [S, E]
            if backend == "pool":
                # Only counted envs are stepped: the others' results are ignored, and every env
                # acts on its own observation and key, so skipping them changes no counted
                # episode. (ale-py's vector interface steps all of its envs together.)
                obs, done, ret = envs.step(actions, active=counted)
            else:
                obs, done, ret = envs.step(actions)
            total_env_steps += int(counted.sum())  # steps of counted episodes only
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
