"""A pool of ALE emulators, stepped in this process or split over worker processes.

One unit per environment seed: an `AtariEnv` (or a known-answer env, through
`envs.registry.make_env`) seeded with it (`num_envs=None`), or a
`BatchedAtari` of `num_envs` copies seeded with it. The units are split over `workers`
spawned processes by unit (the emulators hold the GIL, so processes step them in parallel on
a many-core host); results are exactly those of stepping them in this process. Workers never
see the accelerator (JAX_PLATFORMS=cpu, CUDA_VISIBLE_DEVICES='' in the child).
"""

from __future__ import annotations

import os

import numpy as np

from offline_moe.envs import atari, batched, registry


def worker_count(requested: int, n: int) -> int:
    """Worker processes: `requested` >= 0, or -1 = one per spare CPU core (0 on a host with 2
    cores or fewer); at most one per unit (`n` units)."""
    if requested < 0:
        cores = os.cpu_count() or 1
        requested = cores - 1 if cores > 2 else 0
    return min(requested, n)


class _Units:
    """The units of one process: `reset()` and `step(actions, active)` as `EmulatorPool`."""

    def __init__(self, game, protocol, env_seeds, num_envs, stack, max_episode_steps, fields):
        self.batched = num_envs is not None
        self.fields = fields
        if self.batched:
            self.envs = [
                batched.BatchedAtari(
                    game,
                    num_envs,
                    protocol=protocol,
                    seed=int(s),
                    stack=stack,
                    max_episode_steps=max_episode_steps,
                )
                for s in env_seeds
            ]
        else:
            self.envs = [
                registry.make_env(
                    game, protocol=protocol, seed=int(s), max_episode_steps=max_episode_steps
                )
                for s in env_seeds
            ]

    def reset(self) -> np.ndarray:
        return np.stack([env.reset() for env in self.envs])

    def step(self, actions, active):
        if self.batched:
            if active is None:
                steps = [env.step(a) for env, a in zip(self.envs, actions)]
            else:
                steps = [env.step(a, active=m) for env, a, m in zip(self.envs, actions, active)]
            names = self.fields or batched.BatchStep._fields
            out = [np.stack([getattr(st, f) for st in steps]) for f in names]
            return batched.BatchStep(*out) if self.fields is None else tuple(out)
        n = len(self.envs)
        frame_shape, dtype, _ = registry.observation_spec(self.envs[0].game)
        obs = np.zeros((n, *frame_shape), dtype)
        reward = np.zeros(n, np.float64)
        flags = [np.zeros(n, bool) for _ in range(4)]  # terminated, truncated, life_lost, terminal
        for k in range(n) if active is None else np.flatnonzero(active):
            st = self.envs[k].step(int(actions[k]))
            obs[k], reward[k] = st.obs, st.reward
            for f, v in zip(flags, st[2:]):
                f[k] = v
        out = atari.Step(obs, reward, *flags)
        return out if self.fields is None else tuple(getattr(out, f) for f in self.fields)


def _worker(conn, *args):
    units = _Units(*args)
    conn.send(units.reset())
    while (msg := conn.recv()) is not None:
        conn.send(units.step(*msg))
    conn.close()


class EmulatorPool:
    """Emulators for `env_seeds` (one unit each), in this process or over worker processes.

    Args:
      game, protocol: as `AtariEnv`.
      env_seeds: U seeds, one unit each.
      num_envs: None: each unit is one `AtariEnv`; E: a `BatchedAtari` of E copies.
      stack: frames per observation (`BatchedAtari` units only).
      max_episode_steps: per-episode cap (None: the protocol's).
      workers: processes (0 = this process; -1 = one per spare CPU core; see `worker_count`).
      fields: None, or names of `Step`/`BatchStep` fields: `step` then returns a plain tuple
        of just those arrays (less to send back from the workers).

    `reset()` -> uint8 [U, 84, 84] (single) or [U, E, 84, 84, stack] (batched); for a game
    with other frames (MinAtar) the game's frame shape and dtype (`registry.observation_spec`).
    `step(actions [U] or [U, E], active=None or the same shape bool)` -> `atari.Step` of
    [U] arrays (inactive units: zero obs, reward and flags) or `batched.BatchStep` of [U, E, ...]
    arrays (inactive envs as in `BatchedAtari.step`).
    """

    def __init__(
        self,
        game: str,
        protocol,
        env_seeds,
        *,
        num_envs: int | None = None,
        stack: int = 4,
        max_episode_steps: int | None = None,
        workers: int = 0,
        fields: tuple[str, ...] | None = None,
    ):
        env_seeds = [int(s) for s in env_seeds]
        workers = worker_count(workers, len(env_seeds))
        self.units, self.conns, self.procs, self.chunks = None, [], [], []
        cls = atari.Step if num_envs is None else batched.BatchStep
        self._wrap = cls._make if fields is None else tuple
        fields = None if fields is None else tuple(fields)
        if fields is not None and not set(fields) <= set(cls._fields):
            raise ValueError(f"fields {fields} not all in {cls._fields}")
        spec = (game, protocol, env_seeds, num_envs, stack, max_episode_steps, fields)
        if workers == 0:
            self.units = _Units(*spec)
            return
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.chunks = [c for c in np.array_split(np.arange(len(env_seeds)), workers) if len(c)]
        # Workers may import JAX (spawn re-imports the main module) but never use a GPU.
        hide = {"JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
        saved = {k: os.environ.get(k) for k in hide}
        os.environ.update(hide)
        try:
            for chunk in self.chunks:
                parent, child = ctx.Pipe()
                args = (child, game, protocol, [env_seeds[k] for k in chunk], *spec[3:])
                proc = ctx.Process(target=_worker, args=args, daemon=True)
                proc.start()
                child.close()
                self.conns.append(parent)
                self.procs.append(proc)
        except BaseException:
            self.close()
            raise
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def reset(self) -> np.ndarray:
        if self.units is not None:
            return self.units.reset()
        return np.concatenate([c.recv() for c in self.conns])

    def step(self, actions, active=None):
        actions = np.asarray(actions)
        active = None if active is None else np.asarray(active, bool)
        if self.units is not None:
            return self.units.step(actions, active)
        for conn, chunk in zip(self.conns, self.chunks):
            conn.send((actions[chunk], None if active is None else active[chunk]))
        parts = [conn.recv() for conn in self.conns]
        return self._wrap(np.concatenate(f) for f in zip(*parts))

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
        self.conns, self.procs = [], []

    def __enter__(self) -> EmulatorPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
