"""A paper-size replay built on the device, for measuring without a dataset.

`synthetic_replay(rows, n_step)` makes a `DeviceReplay` of `rows` synthetic frames in place on
the accelerator (the paper's 5% of a game is 2.5M rows), so the accelerator check measures
sampling and the learner at the paper's replay size on a machine lent for minutes.
"""

from __future__ import annotations

import json


def synthetic_replay(rows: int, n_step: int, *, episode_len: int = 1000, seed: int = 0):
    """A DeviceReplay of `rows` synthetic frames (made on the device, in chunks, in place).

    Episodes of `episode_len` rows, each ending terminal; random actions (6) and rewards.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from offline_moe.replay.device import DeviceReplay, episode_start_rows, valid_indices

    rng = np.random.default_rng(seed)
    episode_start = np.arange(rows) % episode_len == 0
    terminal = (np.arange(rows) % episode_len == episode_len - 1) | (np.arange(rows) == rows - 1)
    host = {
        "action": rng.integers(0, 6, rows).astype(np.int32),
        "reward": rng.choice(np.array([-1.0, 0.0, 0.0, 1.0], np.float32), rows),
        "terminal": terminal,
        "observation_only": np.zeros(rows, bool),
        "start_row": episode_start_rows(episode_start),
        "valid": valid_indices(terminal, episode_start, np.zeros(rows, bool), n_step),
    }
    arrays = {k: jax.device_put(v) for k, v in host.items()}
    chunk = min(rows, 65_536)

    def fill(frames, start):
        # A cheap per-pixel hash of (row, y, x) for one chunk, written in place (the frames
        # buffer is donated): no host copy and no random-number cost, and every frame differs.
        r = jax.lax.broadcasted_iota(jnp.uint32, (chunk, 84, 84), 0) + start.astype(jnp.uint32)
        y = jax.lax.broadcasted_iota(jnp.uint32, (chunk, 84, 84), 1)
        x = jax.lax.broadcasted_iota(jnp.uint32, (chunk, 84, 84), 2)
        h = r * jnp.uint32(2654435761) + y * jnp.uint32(40503) + x * jnp.uint32(9973) + seed
        return jax.lax.dynamic_update_slice(frames, (h >> 24).astype(jnp.uint8), (start, 0, 0))

    fill = jax.jit(fill, donate_argnums=0)
    frames = jnp.zeros((rows, 84, 84), jnp.uint8)
    for start in range(0, rows, chunk):
        frames = fill(frames, jnp.int32(min(start, rows - chunk)))
    arrays["observation"] = frames
    meta = {"game": "Synthetic", "num_actions": 6, "source": "synthetic"}
    return DeviceReplay(
        arrays, stack=4, n_step=n_step, gamma=0.99, meta_json=json.dumps(meta, sort_keys=True)
    )


def with_n_step(replay, n_step: int):
    """The same device arrays, sampled with another n-step horizon (its own valid rows)."""
    import jax
    import numpy as np

    from offline_moe.replay.device import DeviceReplay, valid_indices

    if replay.n_step == n_step:
        return replay
    start_row = np.asarray(replay.start_row)
    episode_start = start_row == np.arange(start_row.size)
    valid = valid_indices(
        np.asarray(replay.terminal), episode_start, np.asarray(replay.observation_only), n_step
    )
    arrays = {name: getattr(replay, name) for name in ("observation", "action", "reward")}
    arrays.update(
        terminal=replay.terminal,
        observation_only=replay.observation_only,
        start_row=replay.start_row,
        valid=jax.device_put(valid),
    )
    return DeviceReplay(
        arrays, stack=replay.stack, n_step=n_step, gamma=replay.gamma, meta_json=replay._meta_json
    )


def replay_bytes(replay) -> int:
    from offline_moe.replay.device import _LEAVES

    return int(sum(getattr(replay, name).nbytes for name in _LEAVES))
