"""Several copies of one game stepped together, with per-copy frame stacks.

`BatchedAtari` batches any game the registry makes (ALE games, MinAtar, Catch): evaluation
(`envs.evaluate`) and the emulator pool (`envs.pool`) step it; `envs.vector` is its
pixel-identical twin on ale-py's vector interface for ALE games.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from offline_moe.envs.atari import Protocol
from offline_moe.envs.frames import stack_frames
from offline_moe.envs.registry import make_env, observation_spec


class BatchStep(NamedTuple):
    """Result of `BatchedAtari.step` ([E] arrays unless noted).

    Attributes:
      obs: uint8 [E, 84, 84, stack] (other games: [E, *frames.stacked_shape]), the stacks to
        act on next (for envs whose episode just ended this is already the first stack of
        the new episode).
      reward: float32, unclipped.
      terminal: bool, terminal for learning (game over, or life loss under atari100k).
      done: bool, the episode ended (terminated or truncated) and the env was reset.
      terminated, truncated, life_lost: bool, as in `Step`.
      final_frame: uint8 [E, 84, 84] (other games: [E, *frame shape]), the single frame
        after this step's action (before any reset): the next observation of this step's
        transition.
      episode_return: float32, unclipped return of the finished episode where `done` (else 0).
      episode_length: int32, agent steps of the finished episode where `done` (else 0).
    """

    obs: np.ndarray
    reward: np.ndarray
    terminal: np.ndarray
    done: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    life_lost: np.ndarray
    final_frame: np.ndarray
    episode_return: np.ndarray
    episode_length: np.ndarray


class BatchedAtari:
    """`num_envs` copies of one game stepped together, with per-env frame stacks.

    The copies come from `offline_moe.envs.registry.make_env`, so a known-answer env (Catch)
    or a MinAtar game batches the same way as an ALE game.

    Stacks start with zeros at each episode start (and after a life loss where the protocol
    says so); finished episodes reset automatically. Seeds of the copies are derived from
    `seed` with `np.random.SeedSequence`, so they differ and are reproducible.

    Args:
      game, protocol: as `AtariEnv`.
      num_envs: E.
      seed: base seed.
      stack: frames per observation.
      **env_kwargs: passed to each `AtariEnv` (max_episode_steps, sticky_action_prob).
    """

    def __init__(
        self,
        game: str,
        num_envs: int,
        protocol: str | Protocol = "dqn_replay",
        seed: int = 0,
        stack: int = 4,
        **env_kwargs,
    ):
        if num_envs < 1 or stack < 1:
            raise ValueError(f"num_envs and stack must be >= 1, got {num_envs}, {stack}")
        seeds = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(num_envs)]
        self.envs = [make_env(game, protocol=protocol, seed=s, **env_kwargs) for s in seeds]
        self.num_envs = num_envs
        self.stack = stack
        self.game = self.envs[0].game
        self.protocol = self.envs[0].protocol
        self.num_actions = self.envs[0].num_actions
        frame_shape, dtype, _ = observation_spec(game)
        # Internally [E, stack, *frame] (contiguous frames); returned stacked on the last axis
        # (`envs.frames`): [E, 84, 84, stack] for ALE frames, [E, 10, 10, stack * C] MinAtar.
        self._stacks = np.zeros((num_envs, stack, *frame_shape), dtype)
        self._returns = np.zeros(num_envs, np.float64)
        self._lengths = np.zeros(num_envs, np.int64)

    def _obs(self) -> np.ndarray:
        return np.ascontiguousarray(stack_frames(self._stacks, self._stacks.ndim - 2))

    def _start(self, i: int, frame: np.ndarray) -> None:
        self._stacks[i] = 0
        self._stacks[i, -1] = frame

    def reset(self) -> np.ndarray:
        """Resets every env. Returns uint8 [E, 84, 84, stack]."""
        for i, env in enumerate(self.envs):
            self._start(i, env.reset())
        self._returns[:] = 0
        self._lengths[:] = 0
        return self._obs()

    def step(self, actions, active=None) -> BatchStep:
        """Steps every env with `actions` int [E].

        Args:
          actions: int [E] agent actions.
          active: optional bool [E]; envs where it is false are not stepped (their stacks stay,
            reward and flags are zero, `final_frame` is their current last frame). Saves work
            when only some envs still matter, e.g. at the end of an evaluation.
        """
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,):
            raise ValueError(f"actions must have shape ({self.num_envs},), got {actions.shape}")
        e = self.num_envs
        if active is not None:
            active = np.asarray(active, bool)
            if active.shape != (e,):
                raise ValueError(f"active must have shape ({e},), got {active.shape}")
        reward = np.zeros(e, np.float32)
        flags = {k: np.zeros(e, bool) for k in ("terminal", "done", "terminated", "truncated")}
        life_lost = np.zeros(e, bool)
        final = self._stacks[:, -1].copy()
        ep_return = np.zeros(e, np.float32)
        ep_length = np.zeros(e, np.int32)
        restart_on_life_loss = self.protocol.reset_stack_on_life_loss
        for i, env in enumerate(self.envs):
            if active is not None and not active[i]:
                continue
            s = env.step(int(actions[i]))
            reward[i] = s.reward
            final[i] = s.obs
            life_lost[i] = s.life_lost
            flags["terminal"][i] = s.terminal
            flags["terminated"][i] = s.terminated
            flags["truncated"][i] = s.truncated
            self._returns[i] += s.reward
            self._lengths[i] += 1
            if s.terminated or s.truncated:
                flags["done"][i] = True
                ep_return[i] = self._returns[i]
                ep_length[i] = self._lengths[i]
                self._returns[i] = 0
                self._lengths[i] = 0
                self._start(i, env.reset())
            elif s.life_lost and restart_on_life_loss:
                self._start(i, s.obs)
            else:
                self._stacks[i, :-1] = self._stacks[i, 1:]
                self._stacks[i, -1] = s.obs
        return BatchStep(
            obs=self._obs(),
            reward=reward,
            life_lost=life_lost,
            final_frame=final,
            episode_return=ep_return,
            episode_length=ep_length,
            **flags,
        )


def benchmark_steps(
    game: str = "Pong",
    *,
    protocol: str | Protocol = "dqn_replay",
    num_envs: int = 1,
    steps: int = 2000,
    seed: int = 0,
) -> float:
    """Agent steps per second (all envs together) of `BatchedAtari` under uniform random actions.

    One agent step is 4 emulator frames plus max-pool, resize and stacking; resets included.
    """
    envs = BatchedAtari(game, num_envs, protocol, seed=seed)
    envs.reset()
    rng = np.random.default_rng(seed)
    iters = max(1, steps // num_envs)
    actions = rng.integers(envs.num_actions, size=(iters, num_envs))
    t0 = time.perf_counter()
    for a in actions:
        envs.step(a)
    return iters * num_envs / (time.perf_counter() - t0)
