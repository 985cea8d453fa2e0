"""Evaluation emulators in ale-py's C++ vector interface (`ALEVectorInterface`, threads).

`VectorAtari` steps U units of E environments (one unit per environment seed, as
`EmulatorPool(num_envs=E)`) in one `ALEVectorInterface`, whose worker threads run the
emulators and the preprocessing outside the GIL. Under the `dqn_replay` protocol its
observations, rewards and episode ends are exactly those of `BatchedAtari` under the same
actions (tests/envs/test_vector.py checks it pixel by pixel, sticky actions and episode ends
included), because the vector interface is configured to do what `offline_moe.envs.atari`
does:

* frame-skip 4 with the max of the last two grayscale screens, resized to 84x84 (ale-py's
  `frame_skip`, `maxpool`, `img_height/width`, `grayscale`); 4-frame stacks that start with
  zeros at every episode start (`stack_num`);
* sticky actions per emulator frame (`repeat_action_probability`), each environment seeded
  with the seed `BatchedAtari` gives its copy (`np.random.SeedSequence(seed).spawn(E)`, then
  `% 2**31` as `_new_ale`);
* no no-op starts, no fire reset, no life-loss terminals, unclipped rewards;
* the per-episode cap in agent steps, given to ale-py in emulator frames (x4: its
  `max_episode_steps` counts frames);
* automatic reset in the same step (`autoreset_mode='SameStep'`), so the observation after a
  finished episode is already the new episode's first stack, as `BatchedAtari.step` returns.

It has no exact snapshots (`cloneState`), so the online track, which resumes bit-identically
from emulator snapshots, keeps `AtariEnv`; and no-op starts draw from ale-py's own generator,
so the `atari100k` protocol is refused here.
"""

from __future__ import annotations

import os

import numpy as np

from offline_moe.envs import atari


def available() -> bool:
    """Whether this ale-py build ships the vector interface (an optional part of its build)."""
    try:
        from ale_py._ale_py import ALEVectorInterface  # noqa: F401
    except ImportError:
        return False
    return True


def supports(game: str, protocol) -> bool:
    """Whether `VectorAtari` can stand in for `EmulatorPool` here: the vector interface is
    built, `game` is an ALE game (not a known-answer env) and `protocol` has no no-op starts
    or life-loss terminals."""
    from offline_moe.envs.registry import is_ale

    p = atari.get_protocol(protocol)
    exact = not (p.noop_max or p.life_loss_terminal or p.reset_stack_on_life_loss)
    return exact and is_ale(game) and available()


def env_seeds_of_unit(seed: int, num_envs: int) -> list[int]:
    """The ALE `random_seed` of each copy of a `BatchedAtari(num_envs, seed=seed)`."""
    spawned = np.random.SeedSequence(int(seed)).spawn(num_envs)
    return [int(s.generate_state(1)[0]) % (2**31) for s in spawned]


class VectorAtari:
    """U units x E environments of one game in one `ALEVectorInterface`.

    Args:
      game: ALE game ('Pong', 'space_invaders', ...).
      protocol: an `offline_moe.envs.atari` protocol without no-op starts or life-loss
        terminals ('dqn_replay').
      env_seeds: U seeds, one unit of `num_envs` copies each (as `EmulatorPool`).
      num_envs: E.
      stack: frames per observation.
      max_episode_steps: per-episode cap in agent steps (None: the protocol's).
      num_threads: emulator threads (0 or less: one per CPU core of the host).

    `reset()` -> uint8 [U, E, 84, 84, stack]; `step(actions int [U, E], active=None)` ->
    (obs uint8 [U, E, 84, 84, stack], done bool [U, E], episode_return float32 [U, E]), the
    fields ('obs', 'done', 'episode_return') of `BatchStep` that evaluation reads. The vector
    interface steps every environment; where `active` is false the result is that of an env
    that was not stepped (its previous observation, no episode end, return 0), as
    `EmulatorPool` gives, and the env's own game (it has its own emulator and sticky-action
    generator) never touches the others'. So an env, once inactive, must stay inactive (as in
    evaluation, where a finished env stops counting for good).
    """

    def __init__(
        self,
        game: str,
        protocol,
        env_seeds,
        *,
        num_envs: int,
        stack: int = 4,
        max_episode_steps: int | None = None,
        num_threads: int = 0,
    ):
        proto = atari.get_protocol(protocol)
        if proto.noop_max or proto.life_loss_terminal or proto.reset_stack_on_life_loss:
            valid = [
                name
                for name, p in atari.PROTOCOLS.items()
                if not (p.noop_max or p.life_loss_terminal or p.reset_stack_on_life_loss)
            ]
            raise ValueError(
                f"VectorAtari: protocol {proto.name!r} has no-op starts or life-loss terminals, "
                f"which ale-py's vector interface does not reproduce exactly; valid: {valid} "
                "(use offline_moe.envs.pool.EmulatorPool for the others)"
            )
        try:
            from ale_py._ale_py import ALEVectorInterface
        except ImportError as e:
            raise ImportError(
                "VectorAtari: this ale-py build has no ALEVectorInterface (an optional part of "
                "its build); use eval.backend='pool'"
            ) from e
        from ale_py import ALEInterface, LoggerMode, roms

        ALEInterface.setLoggerMode(LoggerMode.Error)
        self.game = atari.canonical_game(game)
        self.num_units, self.num_envs = len(env_seeds), int(num_envs)
        if self.num_units < 1 or self.num_envs < 1 or stack < 1:
            raise ValueError(
                f"VectorAtari: need >= 1 seed, env and stack frame, got {self.num_units}, "
                f"{num_envs}, {stack}"
            )
        cap = proto.max_episode_steps if max_episode_steps is None else int(max_episode_steps)
        n = self.num_units * self.num_envs
        threads = int(num_threads) if num_threads and num_threads > 0 else os.cpu_count() or 1
        self._seeds = [s for u in env_seeds for s in env_seeds_of_unit(u, self.num_envs)]
        self._ale = ALEVectorInterface(
            rom_path=str(roms.get_rom_path(atari.rom_id(self.game))),
            num_envs=n,
            frame_skip=atari.FRAME_SKIP,
            stack_num=int(stack),
            img_height=atari.SCREEN_SIZE,
            img_width=atari.SCREEN_SIZE,
            grayscale=True,
            maxpool=True,
            noop_max=0,
            use_fire_reset=False,
            episodic_life=False,
            life_loss_info=False,
            reward_clipping=False,
            max_episode_steps=atari.FRAME_SKIP * cap,  # ale-py counts emulator frames
            repeat_action_probability=float(proto.sticky_action_prob),
            full_action_space=False,
            batch_size=0,
            num_threads=min(threads, n),
            thread_affinity_offset=-1,
            autoreset_mode="SameStep",
        )
        self.num_actions = len(self._ale.get_action_set())
        self.num_threads = min(threads, n)
        self._returns = np.zeros(n, np.float64)
        self._strength = np.ones(n, np.float32)

    def _shape(self, obs: np.ndarray) -> np.ndarray:
        # ale-py stacks on axis 1: [N, K, 84, 84] -> [U, E, 84, 84, K].
        obs = np.ascontiguousarray(np.moveaxis(obs, 1, -1))
        return obs.reshape(self.num_units, self.num_envs, *obs.shape[1:])

    def reset(self) -> np.ndarray:
        obs, _ = self._ale.reset(list(range(len(self._seeds))), self._seeds)
        self._returns[:] = 0
        self._obs = self._shape(obs)
        return self._obs

    def step(self, actions, active=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        actions = np.asarray(actions)
        if actions.shape != (self.num_units, self.num_envs):
            raise ValueError(
                f"VectorAtari.step: actions must have shape {(self.num_units, self.num_envs)}, "
                f"got {actions.shape}"
            )
        self._ale.send(actions.reshape(-1).astype(np.int32), self._strength)
        obs, reward, terminated, truncated, _ = self._ale.recv()
        done = np.asarray(terminated) | np.asarray(truncated)
        self._returns += reward
        episode_return = np.where(done, self._returns, 0.0).astype(np.float32)
        self._returns[done] = 0.0
        shape = (self.num_units, self.num_envs)
        obs, done, episode_return = (
            self._shape(obs),
            done.reshape(shape),
            episode_return.reshape(shape),
        )
        if active is not None:
            active = np.asarray(active, bool)
            obs = np.where(active[..., None, None, None], obs, self._obs)
            done, episode_return = done & active, np.where(active, episode_return, 0.0)
        self._obs = obs
        return obs, done, episode_return

    def close(self) -> None:
        self._ale = None

    def __enter__(self) -> VectorAtari:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
