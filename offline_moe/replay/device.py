"""DeviceReplay: a replay cache held on the accelerator, sampled inside jit (no TensorFlow).

A cache (see `offline_moe.replay.cache`) is loaded onto the default JAX device once. Frame stacking,
zero padding at episode starts and n-step returns all happen inside `sample`, which is pure,
so it runs inside the jitted update and the training loop never waits on the host.

`DeviceReplay` is a registered pytree: its arrays are leaves and `stack`, `n_step`, `gamma`
and the metadata are static. Pass it as an argument to jitted functions (never close over it:
closed-over arrays become huge HLO constants)::

    replay = DeviceReplay.load(cache_dir, stack=4, n_step=1, gamma=0.99)

    @jax.jit
    def update(state, replay, key):
        batch = replay.sample(key, 32)
        ...

Transition semantics (one definition for every data source; DQN-Replay semantics). For a
sampled row t of the cache, with K = stack and n = n_step:

* obs = frames [t-K+1, ..., t] stacked on the last axis; frames from before the episode's
  first row are zeros (a stack never crosses an episode start).
* L = 1 + (offset of the first terminal row in t..t+n-1) if there is one, else n. The
  n-step return stops at a terminal: reward = sum_{k<L} gamma^k r[t+k].
* discount = 0 if a terminal was hit, else gamma^n.
* next_obs = the stack at row t+L. When a terminal was hit, row t+L lies outside the episode,
  so next_obs is the stack at the terminal row t+L-1 instead (a well-defined frame stack of
  the same episode; it is multiplied by discount 0 in every TD target).
* next_action = action[t+L]; 0 when a terminal was hit or row t+L is observation-only.
* Row t is sampleable ("valid") iff it is not observation-only and either a terminal lies in
  rows t..t+n-1 of its episode, or rows t+1..t+n all exist in its episode (so the stack at
  t+n is real). So a window that runs past a truncated episode end is never sampled as if the
  episode continued: the last n-1 transitions of a truncated episode whose final frame was
  stored are not sampled (none for n = 1); without a stored final frame, its last transition
  is lost as well.

Worked example (observation = reward = step index in the episode; "z" is a zero frame).
Episode A: rows 0-3 hold steps 0..3, row 3 is terminal. Episode B: rows 4-7 hold steps 0..3,
row 7 is observation-only (B was truncated after 3 actions, its final frame stored).
K = 4, n = 3, gamma = 0.5:

    t  valid  obs             L  reward                    discount  next_obs        next_action
    0  yes    [z, z, z, A0]   3  0 + .5*1 + .25*2 = 1      0.125     [A0,A1,A2,A3]   action[3]
    1  yes    [z, z, A0, A1]  3  1 + .5*2 + .25*3 = 2.75   0 (hit)   [A0,A1,A2,A3]*  0
    2  yes    [z, A0, A1, A2] 2  2 + .5*3 = 3.5            0 (hit)   [A0,A1,A2,A3]*  0
    3  yes    [A0, A1, A2, A3] 1 3                         0 (hit)   [A0,A1,A2,A3]*  0
    4  yes    [z, z, z, B0]   3  0 + .5*1 + .25*2 = 1      0.125     [B0,B1,B2,B3]   0 (obs-only)
    5  no     next_obs would be the stack at row 8, which is not in episode B
    6  no     next_obs would be the stack at row 9
    7  no     observation-only

    * terminal window: the stack at the terminal row 3 (t+L = 4 is outside episode A).

With n = 1 rows 5 and 6 become valid too (next_obs = the stack at row 6 and row 7).

The rules themselves (stacking, n-step return, validity of a window) live in
`replay.transitions`, shared with the online replay; `valid_indices`, `stack_indices`,
`gather_stacks` and `nstep_targets` apply them to the flat cache.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from offline_moe.envs.frames import stack_frames, stacked_shape
from offline_moe.errors import CacheError
from offline_moe.replay import transitions
from offline_moe.replay.cache import frame_spec, load_cache

# ---------------------------------------------------------------------------------------------
# Host-side (numpy) index helpers.


def episode_start_rows(episode_start: np.ndarray) -> np.ndarray:
    """For every row, the row index of the first row of its episode. int32 [N].

    Row 0 always begins an episode, whether or not `episode_start[0]` is set.
    """
    episode_start = np.asarray(episode_start, dtype=bool).copy()
    if episode_start.size:
        episode_start[0] = True
    rows = np.where(episode_start, np.arange(episode_start.size), 0)
    return np.maximum.accumulate(rows).astype(np.int32)


def episode_end_rows(episode_start: np.ndarray) -> np.ndarray:
    """For every row, the row index of the last row of its episode. int32 [N]."""
    episode_start = np.asarray(episode_start, dtype=bool)
    n = episode_start.size
    is_last = np.append(episode_start[1:], True)
    rows = np.where(is_last, np.arange(n), n)
    # Reverse running minimum: the nearest last-row at or after each row.
    return np.minimum.accumulate(rows[::-1])[::-1].astype(np.int32)


# The fold_in tag that turns an update's key into its sampling key (the trainer's update k draws
# its batch with fold_in(fold_in(rng, step), SAMPLE_STREAM)); HostReplay draws the same rows.
SAMPLE_STREAM = 0
VALID_CHUNK = 1 << 16  # rows per call of the validity rule (bounds the [rows, n] windows)


def valid_indices(
    terminal: np.ndarray,
    episode_start: np.ndarray,
    observation_only: np.ndarray,
    n_step: int,
) -> np.ndarray:
    """Rows that start a sampleable n-step transition (module docstring rule). int32 [V].

    The rule is `replay.transitions.window_valid`, vmapped over the rows in chunks; rows past
    the end of the cache count as episode starts, and observation-only rows are never valid.
    """
    terminal = np.asarray(terminal, dtype=bool)
    observation_only = np.asarray(observation_only, dtype=bool)
    starts = np.asarray(episode_start, dtype=bool).copy()
    num_rows = terminal.size
    if num_rows:
        starts[0] = True
    # One padded row past the end: a terminal-free episode start, so windows reaching past
    # the cache end are invalid unless they hit a terminal first.
    terminal_p = np.append(terminal, False)
    starts_p = np.append(starts, True)
    rule = jax.jit(jax.vmap(transitions.window_valid))
    offsets = np.arange(n_step)[None, :]
    ok = np.zeros(num_rows, bool)
    for lo in range(0, num_rows, VALID_CHUNK):
        t = np.arange(lo, lo + VALID_CHUNK)[:, None]  # fixed shape: one compilation
        window = np.minimum(t + offsets, num_rows)  # rows t..t+n-1, clipped to the pad row
        after = np.minimum(t + offsets + 1, num_rows)  # rows t+1..t+n
        chunk = np.asarray(rule(terminal_p[window], starts_p[after]))
        hi = min(lo + VALID_CHUNK, num_rows)
        ok[lo:hi] = chunk[: hi - lo]
    return np.flatnonzero(~observation_only & ok).astype(np.int32)


# ---------------------------------------------------------------------------------------------
# Pure jittable helpers.


def stack_indices(t: jax.Array, start_row: jax.Array, stack: int) -> tuple[jax.Array, jax.Array]:
    """Row indices and validity mask of the frame stacks ending at rows `t`.

    Args:
      t: int [B], last row of each stack.
      start_row: int [B], first row of the episode each `t` belongs to.
      stack: frames per stack K.

    Returns:
      idx: int32 [B, K], rows t-K+1..t (oldest first), clipped to >= start_row so every index
        is a real row; mask: bool [B, K], false where the frame is before the episode start
        (that frame must be zero).
    """
    offsets = jnp.arange(1 - stack, 1, dtype=jnp.int32)  # [K]
    idx = t.astype(jnp.int32)[:, None] + offsets[None, :]  # [B, K]
    mask = idx >= start_row[:, None]
    return jnp.maximum(idx, start_row[:, None]).astype(jnp.int32), mask


def gather_stacks(frames: jax.Array, idx: jax.Array, mask: jax.Array) -> jax.Array:
    """Gathers frame stacks. frames uint8 [N, H, W]; idx, mask [B, K] -> uint8 [B, H, W, K]
    (frames [N, H, W, C] -> [B, H, W, K * C], `envs.frames`)."""
    x = jnp.take(frames, idx, axis=0, mode="clip")  # [B, K, H, W]
    return jax.vmap(transitions.stack)(x, mask)


def assemble_batch(frames: jax.Array, rows: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """A batch from the frames of `rows['frame_rows']` and the other fields of `rows`.

    Args:
      frames: [..., B, 2K, *frame], the frames at `rows['frame_rows']` (obs rows, then
        next_obs rows; see `DeviceReplay.transition_rows`); Atari: uint8 [..., B, 2K, 84, 84].
      rows: `transition_rows` output with the same leading axes.

    Returns:
      dict with obs, next_obs [..., B, H, W, K] for [H, W] frames, [..., B, H, W, K * C] for
      [H, W, C] frames (zero frames where masked; `envs.frames`), of the frames' dtype, and
      action, reward, discount, next_action as in `rows`.
    """
    k = rows["obs_mask"].shape[-1]
    frame_ndim = frames.ndim - rows["obs_mask"].ndim
    mask = jnp.concatenate([rows["obs_mask"], rows["next_mask"]], axis=-1)  # [..., B, 2K]
    frames = transitions.mask_frames(frames, mask)
    batch = {name: rows[name] for name in ("action", "reward", "discount", "next_action")}
    obs_frames, next_frames = jnp.split(frames, [k], axis=frames.ndim - frame_ndim - 1)
    batch["obs"] = stack_frames(obs_frames, frame_ndim)
    batch["next_obs"] = stack_frames(next_frames, frame_ndim)
    return batch


def nstep_targets(
    rewards: jax.Array, terminals: jax.Array, gamma: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`replay.transitions.n_step_return` over a batch of windows.

    Args:
      rewards: float [B, n], r[t], ..., r[t+n-1].
      terminals: bool [B, n], terminal flags of the same rows.
      gamma: discount factor.

    Returns:
      reward, discount: float32 [B]; length: int32 [B] (see `n_step_return`).
    """
    return jax.vmap(lambda r, d: transitions.n_step_return(r, d, gamma))(rewards, terminals)


# ---------------------------------------------------------------------------------------------


_LEAVES = (
    "observation",
    "action",
    "reward",
    "terminal",
    "observation_only",
    "start_row",
    "valid",
)


@jax.tree_util.register_pytree_node_class
class DeviceReplay:
    """A replay cache on the default JAX device; `sample` is pure and jittable.

    Attributes:
      observation: [N, *frame_shape] frames of the cache's frame_dtype (device; Atari uint8
        [N, 84, 84], MinAtar bool [N, 10, 10, C]).
      action: int32 [N]; reward: float32 [N]; terminal, observation_only: bool [N] (device).
      start_row: int32 [N], first row of each row's episode (device).
      valid: int32 [V], sampleable rows for this `stack`/`n_step` (device).
      stack, n_step, gamma: static sampling parameters.
      meta: the cache's meta.json (host dict).
      num_actions: from meta['num_actions'] (or max action + 1 when the meta has none).
      num_valid: V, number of sampleable transitions.
    """

    def __init__(
        self, arrays: Mapping[str, Any], *, stack: int, n_step: int, gamma: float, meta_json: str
    ):
        for name in _LEAVES:
            setattr(self, name, arrays[name])
        self.stack = stack
        self.n_step = n_step
        self.gamma = gamma
        self._meta_json = meta_json

    # -- pytree ----------------------------------------------------------------------------

    def tree_flatten(self):
        children = tuple(getattr(self, name) for name in _LEAVES)
        return children, (self.stack, self.n_step, self.gamma, self._meta_json)

    @classmethod
    def tree_unflatten(cls, aux, children):
        stack, n_step, gamma, meta_json = aux
        obj = object.__new__(cls)
        for name, child in zip(_LEAVES, children):
            setattr(obj, name, child)
        obj.stack, obj.n_step, obj.gamma, obj._meta_json = stack, n_step, gamma, meta_json
        return obj

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        cache_dir: str,
        *,
        stack: int | None = None,
        n_step: int = 1,
        gamma: float = 0.99,
        num_actions: int | None = None,
    ) -> DeviceReplay:
        """Loads a cache directory onto the default device (see `offline_moe.replay.cache`).

        `stack` defaults to the cache's frame_stack (meta.json; Atari 4, MinAtar 1).
        `num_actions` (the game's action count) is checked against the cache's content and
        meta.json, and stands in for a meta.json without one.
        """
        arrays, meta = load_cache(cache_dir, mmap=True, num_actions=num_actions)
        if meta.get("num_actions") is None and num_actions is not None:
            meta = {**meta, "num_actions": int(num_actions)}
        return cls.from_arrays(
            arrays, meta, stack=stack, n_step=n_step, gamma=gamma, name=str(cache_dir)
        )

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, np.ndarray],
        meta: Mapping[str, Any] | None = None,
        *,
        stack: int | None = None,
        n_step: int = 1,
        gamma: float = 0.99,
        name: str = "<arrays>",
    ) -> DeviceReplay:
        """Builds a replay from cache-format arrays (as returned by `load_cache`); the frame
        layout is the arrays' (recorded in `meta`), `stack` defaults to meta's frame_stack."""
        meta = dict(meta or {})
        frames = arrays["observation"]
        meta["frame_shape"] = [int(d) for d in frames.shape[1:]]
        meta["frame_dtype"] = np.dtype(frames.dtype).name
        if stack is None:
            stack = frame_spec(meta)[2]
        meta["frame_stack"] = frame_spec(meta)[2]
        if int(stack) < 1 or int(n_step) < 1:
            raise ValueError(f"DeviceReplay: stack and n_step must be >= 1, got {stack}, {n_step}")
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"DeviceReplay: gamma must be in [0, 1], got {gamma}")
        episode_start = np.asarray(arrays["episode_start"], bool)
        terminal = np.asarray(arrays["terminal"], bool)
        observation_only = np.asarray(arrays["observation_only"], bool)
        valid = valid_indices(terminal, episode_start, observation_only, int(n_step))
        if valid.size == 0:
            raise CacheError(
                f"replay cache {name}: no transition can be sampled with n_step={n_step} "
                f"({episode_start.size} rows)"
            )
        action = np.asarray(arrays["action"], np.int32)
        if meta.get("num_actions") is None:
            meta["num_actions"] = int(action.max()) + 1
        host = {
            "observation": np.asarray(arrays["observation"]),  # uint8 or bool frames
            "action": action,
            "reward": np.asarray(arrays["reward"], np.float32),
            "terminal": terminal,
            "observation_only": observation_only,
            "start_row": episode_start_rows(episode_start),
            "valid": valid,
        }
        device = {k: jax.device_put(v) for k, v in host.items()}
        return cls(
            device,
            stack=int(stack),
            n_step=int(n_step),
            gamma=float(gamma),
            meta_json=json.dumps(meta, sort_keys=True),
        )

    # -- host attributes -------------------------------------------------------------------

    @property
    def meta(self) -> dict:
        return json.loads(self._meta_json)

    @property
    def num_actions(self) -> int:
        return int(self.meta["num_actions"])

    @property
    def frame_shape(self) -> tuple[int, ...]:
        """One stored frame's shape (meta.json frame_shape; Atari (84, 84))."""
        return frame_spec(self.meta)[0]

    @property
    def obs_shape(self) -> tuple[int, ...]:
        """One sampled observation's shape: `stack` frames (`envs.frames.stacked_shape`)."""
        return stacked_shape(self.frame_shape, self.stack)

    @property
    def num_valid(self) -> int:
        return int(self.valid.shape[0])

    @property
    def num_rows(self) -> int:
        return int(self.action.shape[0])  # (a HostReplay's index replay holds no frames)

    def __repr__(self) -> str:
        return (
            f"DeviceReplay(rows={self.num_rows}, valid={self.num_valid}, stack={self.stack}, "
            f"n_step={self.n_step}, gamma={self.gamma}, game={self.meta.get('game')!r})"
        )

    # -- sampling --------------------------------------------------------------------------

    def transition_rows(self, t: jax.Array) -> dict[str, jax.Array]:
        """Everything of the transitions starting at rows `t` (int [B], assumed valid) but
        their frames: which frame rows make them up, and their other fields. Pure, jittable.

        Returns:
          frame_rows int32 [B, 2 * stack] (the rows of obs, then of next_obs, oldest first;
          every index a real row), obs_mask / next_mask bool [B, stack] (false: a zero frame
          from before the episode start), action, reward, discount, next_action [B].
          `assemble_batch(frames[frame_rows], rows)` is `transitions(t)`.
        """
        t = t.astype(jnp.int32)
        last = self.num_rows - 1
        start = self.start_row[t]  # [B]
        idx, mask = stack_indices(t, start, self.stack)
        window = jnp.minimum(t[:, None] + jnp.arange(self.n_step, dtype=jnp.int32), last)
        reward, discount, length = nstep_targets(
            self.reward[window], self.terminal[window], self.gamma
        )  # [B] each
        hit = jnp.any(self.terminal[window], axis=-1)  # any later rows only follow a terminal
        # Terminal windows: row t+L is outside the episode; use the terminal row instead.
        next_t = jnp.minimum(t + length - hit.astype(jnp.int32), last)
        next_idx, next_mask = stack_indices(next_t, start, self.stack)
        next_action = jnp.where(hit | self.observation_only[next_t], 0, self.action[next_t])
        return {
            "frame_rows": jnp.concatenate([idx, next_idx], axis=-1),  # [B, 2K]
            "obs_mask": mask,
            "next_mask": next_mask,
            "action": self.action[t],
            "reward": reward,
            "discount": discount,
            "next_action": next_action.astype(jnp.int32),
        }

    def transitions(self, t: jax.Array) -> dict[str, jax.Array]:
        """The transitions starting at rows `t` (int [B], assumed valid). Pure, jittable."""
        rows = self.transition_rows(t)
        frames = jnp.take(self.observation, rows["frame_rows"], axis=0, mode="clip")
        return assemble_batch(frames, rows)

    def sample(self, key: jax.Array, batch_size: int) -> dict[str, jax.Array]:
        """Uniformly samples `batch_size` valid transitions. Pure and jittable.

        Returns:
          dict with obs [B, *obs_shape] (Atari uint8 [B, 84, 84, stack]), action int32 [B],
          reward float32 [B], discount float32 [B], next_obs like obs, next_action int32 [B].
        """
        i = jax.random.randint(key, (batch_size,), 0, self.valid.shape[0])
        return self.transitions(self.valid[i])


def benchmark_sampling(
    replay: DeviceReplay, batch_size: int = 32, iters: int = 1000, *, repeats: int = 3
) -> float:
    """Sampled transitions per second inside jit (one compiled call of `iters` batches).

    Each batch is reduced to a scalar so that every gathered frame must be materialised;
    compile time is excluded. Returns the best of `repeats` timings.
    """

    @jax.jit
    def run(replay, key):
        def body(carry, key):
            b = replay.sample(key, batch_size)
            s = (
                jnp.sum(b["obs"], dtype=jnp.int32)
                + jnp.sum(b["next_obs"], dtype=jnp.int32)
                + jnp.sum(b["action"] + b["next_action"])
            )
            return carry + s + jnp.sum(b["reward"] + b["discount"]).astype(jnp.int32), None

        keys = jax.random.split(key, iters)
        total, _ = jax.lax.scan(body, jnp.zeros((), jnp.int32), keys)
        return total

    key = jax.random.key(0)
    run(replay, key).block_until_ready()  # compile
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        run(replay, jax.random.fold_in(key, r + 1)).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return batch_size * iters / best
