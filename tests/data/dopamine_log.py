"""A DQN-Replay log writer that follows Dopamine's `OutOfGraphReplayBuffer` step by step.

Dopamine `tf/replay_memory/circular_replay_buffer.py`: `add` writes `stack_size - 1` zero
transitions (`_add_zero_transition`) before the first step of every episode, `_add_transition`
writes at `cursor() = add_count % replay_capacity` and recomputes `invalid_range`, terminal
rows go into `episode_end_indices`, and `save` writes each `_store` array and each public
member (`add_count`, `invalid_range`: `np.save`; `episode_end_indices`: pickle) gzipped as
`{name}_ckpt.{suffix}.gz`.

Real steps carry their id in the frame so tests can check every ingested row against the step
it came from: pixel [0, 0] is id % 256, pixel [0, 1] is id // 256, and rows 1.. of the frame
hold 1 + id % 250, so a real frame is never all zero (padding frames are).
"""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np


def frame(step_id: int) -> np.ndarray:
    """The 84x84 frame of real step `step_id`."""
    f = np.full((84, 84), 1 + step_id % 250, np.uint8)
    f[0, :] = 0
    f[0, 0], f[0, 1] = step_id % 256, step_id // 256
    return f


def frame_id(f: np.ndarray) -> int:
    """The step id of a frame, or -1 for a zero (padding) frame."""
    return -1 if f[1, 0] == 0 else int(f[0, 0]) + 256 * int(f[0, 1])


class DopamineLog:
    """An `OutOfGraphReplayBuffer` of 84x84 uint8 frames, with the real steps it was fed.

    Attributes:
      steps: one dict per real step added, by id: episode, t (step in episode), action,
        reward, terminal.
    """

    def __init__(self, capacity: int, stack_size: int = 4, update_horizon: int = 1):
        self.capacity, self.stack_size, self.update_horizon = capacity, stack_size, update_horizon
        self.store = {
            "observation": np.empty((capacity, 84, 84), np.uint8),
            "action": np.empty(capacity, np.int32),
            "reward": np.empty(capacity, np.float32),
            "terminal": np.empty(capacity, np.uint8),
        }
        self.add_count = np.array(0)
        self.invalid_range = np.zeros(stack_size)
        self.episode_end_indices: set[int] = set()
        self._next_is_episode_start = True
        self.steps: list[dict] = []
        self._episode = 0
        self._t = 0

    def cursor(self) -> int:
        return int(self.add_count % self.capacity)

    def step(self, action: int, reward: float, terminal: bool) -> None:
        """One agent step: its frame is that of the next step id (`add` in Dopamine)."""
        step_id = len(self.steps)
        self.steps.append(
            dict(episode=self._episode, t=self._t, action=action, reward=reward, terminal=terminal)
        )
        if self._next_is_episode_start:
            for _ in range(self.stack_size - 1):
                self.episode_end_indices.discard(self.cursor())
                self._add(np.zeros((84, 84), np.uint8), 0, 0.0, 0)
            self._next_is_episode_start = False
        if terminal:
            self.episode_end_indices.add(self.cursor())
            self._next_is_episode_start = True
        else:
            self.episode_end_indices.discard(self.cursor())
        self._add(frame(step_id), action, reward, int(terminal))
        self._t += 1
        if terminal:
            self._episode += 1
            self._t = 0

    def _add(self, observation, action, reward, terminal) -> None:
        c = self.cursor()
        for name, value in zip(self.store, (observation, action, reward, terminal)):
            self.store[name][c] = value
        self.add_count += 1
        n, k = self.update_horizon, self.stack_size
        self.invalid_range = np.array(
            [(self.cursor() - n + i) % self.capacity for i in range(k + n)]
        )

    def episode(self, length: int, *, terminal: bool = True) -> None:
        """`length` steps with action id % 4 and reward id % 3 - 1 (already in [-1, 1], as
        Dopamine's runner clips); the last is terminal if `terminal` (else the episode goes
        on at the next call, as one cut by a checkpoint)."""
        for k in range(length):
            step_id = len(self.steps)
            self.step(step_id % 4, float(step_id % 3 - 1), terminal and k == length - 1)

    def save(self, replay_dir: str, suffix: int) -> None:
        """Dopamine's `save`: every `_store` array and public member, gzipped."""

        def dump(name, write):
            with gzip.open(os.path.join(replay_dir, f"{name}_ckpt.{suffix}.gz"), "wb") as fh:
                write(fh)

        for name, array in self.store.items():
            dump(f"$store${'_'}{name}", lambda fh, a=array: np.save(fh, a, allow_pickle=False))
        for name in ("add_count", "invalid_range"):
            value = getattr(self, name)
            dump(name, lambda fh, v=value: np.save(fh, v, allow_pickle=False))
        dump("episode_end_indices", lambda fh: pickle.dump(self.episode_end_indices, fh))
