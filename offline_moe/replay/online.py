"""On-device replay for the online track (DER, DrQ(eps)): circular, functional, jittable.

Frames are stored once (single 84x84 frames, like the offline replay cache) and stacked at
sample time. Every operation is a pure function of an `OnlineReplay` pytree, so adding,
sampling and re-prioritising all happen inside the one jitted agent-step call, and
`jax.vmap` over a leading seed axis gives each seed its own buffer.

Row semantics (transition-aligned, as in the replay cache / DQN-Replay): logical row t holds
the frame o_t on which the agent acted at agent step t, the action a_t, the reward r_t that
followed (raw; the learner clips it), `terminal[t]` (the learning episode ended right after
a_t: game over or, in the Atari 100k protocol, a life loss) and `episode_start[t]` (o_t is
the first frame of a learning episode: stacks are zero-padded before it). Row t is written
in two halves because of the call order of the agent loop:

  call t:   finish row t-1 (reward_{t-1}, terminal_{t-1} from the emulator step just taken),
            write frame o_t + episode_start_t, then choose a_t and write it.

So after call t the rows 0..t-1 are complete and row t holds a frame and an action only.

Which rows may be sampled: a row i is a valid transition start once row i+n has been written
(at call i+n) and its n-step window does not run past a truncated episode end, i.e. every
episode start among rows i+1..i+n is preceded (inside the window) by a terminal. Validity is
decided once, at call i+n, in O(n), and recorded as a non-zero sampling priority; zero means
"never sample". When the buffer wraps, the rows whose frame stack would reach into the row
just overwritten get priority 0 (they are the oldest rows; losing stack-1 of them is free).

Worked example, n = 2, stack = 2, an episode [o0 o1 o2] ending with a terminal after a2,
then o3 starting a new one:
  row:            0    1    2    3
  episode_start:  T    F    F    T
  terminal:       F    F    T    .
  row 0 valid at call 2: window rows 0..1 has no start in rows 1..2     -> reward r0 + g r1,
      discount g^2, next stack (o1, o2).
  row 1 valid at call 3: start at row 3 preceded by terminal at row 2  -> r1 + g r2, discount 0.
  stack at row 3 = (0, o3): zero before the episode start.

Sampling (uniform and prioritized alike) is proportional to the stored priority: uniform
replay stores 1.0 for every valid row, prioritized replay (Schaul et al. 2016, as Dopamine
uses it for DER) stores the running maximum priority for new rows and sqrt(loss + 1e-10)
after each update, with importance weights 1 / sqrt(P + 1e-10) normalised by their maximum
over the batch. Sampling runs on the device via a two-level cumulative sum and
`searchsorted` (blocks of `BLOCK` rows): O(capacity) adds per call, exact up to float32
rounding inside one block, no sum-tree to maintain.

Frame stacking, n-step sums and window validity are the rules of `replay.transitions`, shared
with the offline DeviceReplay; this module only gathers the circular windows they act on.
"""

from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp

from offline_moe.replay import transitions

BLOCK = 1024  # rows per block in the two-level cumulative-sum sampler
PRIORITY_EPS = 1e-10


@flax.struct.dataclass
class OnlineReplay:
    """Circular replay buffer of single frames on the device.

    Attributes:
      frames: uint8 [C, H, W] single frames.
      action: int32 [C].
      reward: float32 [C] raw reward after the action.
      terminal: bool [C] learning episode ended after this row's action.
      episode_start: bool [C] this row's frame starts a learning episode.
      priority: float32 [C] sampling priority; 0 = not a valid transition start (yet).
      count: int32 [] rows written so far (logical index of the next row = agent steps taken).
      max_priority: float32 [] largest priority ever recorded (new rows get it under PER).
      stack: frames per observation (static).
      n_step: return horizon (static).
      gamma: discount (static).
    """

    frames: jax.Array
    action: jax.Array
    reward: jax.Array
    terminal: jax.Array
    episode_start: jax.Array
    priority: jax.Array
    count: jax.Array
    max_priority: jax.Array
    stack: int = flax.struct.field(pytree_node=False, default=4)
    n_step: int = flax.struct.field(pytree_node=False, default=10)
    gamma: float = flax.struct.field(pytree_node=False, default=0.99)

    @property
    def capacity(self) -> int:
        return self.action.shape[-1]  # (frames are [C, *frame_shape], seeds may lead)

    @classmethod
    def create(
        cls,
        capacity: int,
        *,
        stack: int = 4,
        n_step: int = 10,
        gamma: float = 0.99,
        frame_shape: tuple[int, ...] = (84, 84),
        frame_dtype: str = "uint8",
    ) -> OnlineReplay:
        """An empty buffer of [capacity, *frame_shape] frames of `frame_dtype` (the game's
        `envs.registry.observation_spec`; Atari uint8 [84, 84], MinAtar bool [10, 10, C]).
        `capacity` must exceed n_step + stack."""
        if capacity <= n_step + stack:
            raise ValueError(
                f"online replay capacity {capacity} must exceed n_step + stack = {n_step + stack}"
            )
        return cls(
            frames=jnp.zeros((capacity, *frame_shape), frame_dtype),
            action=jnp.zeros((capacity,), jnp.int32),
            reward=jnp.zeros((capacity,), jnp.float32),
            terminal=jnp.zeros((capacity,), bool),
            episode_start=jnp.zeros((capacity,), bool),
            priority=jnp.zeros((capacity,), jnp.float32),
            count=jnp.zeros((), jnp.int32),
            max_priority=jnp.ones((), jnp.float32),
            stack=stack,
            n_step=n_step,
            gamma=gamma,
        )

    @property
    def num_valid(self) -> jax.Array:
        return jnp.sum(self.priority > 0)


# ----------------------------------------------------------------------------------------------
# Pure helpers on the circular arrays.


def stack_frames(replay: OnlineReplay, idx: jax.Array) -> jax.Array:
    """uint8 [H, W, stack]: rows idx-stack+1..idx, zeros before the latest episode start."""
    k = replay.stack
    rows = (idx - k + 1 + jnp.arange(k)) % replay.capacity  # [K] oldest first
    keep = transitions.stack_keep(replay.episode_start[rows])  # [K]
    return transitions.stack(replay.frames[rows], keep)  # [H, W, K]


# ----------------------------------------------------------------------------------------------
# Writing.


def begin_step(
    replay: OnlineReplay,
    frame: jax.Array,
    first: jax.Array,
    reward_prev: jax.Array,
    terminal_prev: jax.Array,
    new_priority: jax.Array | float = 1.0,
) -> OnlineReplay:
    """Finishes row t-1 and writes frame o_t as row t (see the module docstring).

    Args:
      replay: the buffer after call t-1.
      frame: uint8 [H, W] o_t.
      first: bool [] o_t starts a learning episode (forced True for the very first row).
      reward_prev: float [] reward after a_{t-1} (ignored when t == 0).
      terminal_prev: bool [] the learning episode ended after a_{t-1} (ignored when t == 0).
      new_priority: priority given to row t-n if it is a valid transition start (PER: the
        maximum priority; uniform: 1).

    Returns:
      The buffer with count = t + 1. Row t has action 0 until `set_action`.
    """
    cap, n, k = replay.capacity, replay.n_step, replay.stack
    t = replay.count
    cur = t % cap
    prev = (t - 1) % cap
    has_prev = t > 0
    reward = replay.reward.at[prev].set(
        jnp.where(has_prev, reward_prev.astype(jnp.float32), replay.reward[prev])
    )
    terminal = replay.terminal.at[prev].set(
        jnp.where(has_prev, terminal_prev.astype(bool), replay.terminal[prev])
    )
    first = jnp.logical_or(first.astype(bool), ~has_prev)
    # Row t overwrites logical row t-C; rows whose stack reaches it can no longer be sampled.
    stale = (cur + 1 + jnp.arange(k - 1)) % cap
    priority = replay.priority.at[cur].set(0.0).at[stale].set(0.0)
    episode_start = replay.episode_start.at[cur].set(first)
    replay = replay.replace(
        frames=replay.frames.at[cur].set(frame.astype(replay.frames.dtype)),
        action=replay.action.at[cur].set(0),
        reward=reward.at[cur].set(0.0),
        terminal=terminal.at[cur].set(False),
        episode_start=episode_start,
        count=t + 1,
    )
    # Row v = t - n is now decidable: rows v..t-1 are complete and row t's start flag is known.
    v = t - n
    window = (v + jnp.arange(n)) % cap
    ok = transitions.window_valid(replay.terminal[window], episode_start[(window + 1) % cap])
    ok = ok & (v >= 0)
    vp = v % cap
    priority = priority.at[vp].set(
        jnp.where(ok, jnp.asarray(new_priority, jnp.float32), priority[vp])
    )
    return replay.replace(priority=priority)


def set_action(replay: OnlineReplay, action: jax.Array) -> OnlineReplay:
    """Writes a_t into the newest row (written by `begin_step` in the same call)."""
    cur = (replay.count - 1) % replay.capacity
    return replay.replace(action=replay.action.at[cur].set(action.astype(jnp.int32)))


def current_obs(replay: OnlineReplay) -> jax.Array:
    """uint8 [H, W, stack] observation for acting: the stack ending at the newest row."""
    return stack_frames(replay, (replay.count - 1) % replay.capacity)


# ----------------------------------------------------------------------------------------------
# Sampling.


def _padded_blocks(priority: jax.Array, block: int) -> jax.Array:
    cap = priority.shape[0]
    nb = -(-cap // block)
    return jnp.pad(priority, (0, nb * block - cap)).reshape(nb, block)  # [nb, block]


def sample_proportional(
    key: jax.Array, priority: jax.Array, batch_size: int, block: int = BLOCK
) -> tuple[jax.Array, jax.Array]:
    """Draws `batch_size` indices i.i.d. with probability priority[i] / sum(priority).

    Two-level inverse-CDF sampling: a cumulative sum over block totals picks the block, a
    cumulative sum inside that block picks the row. Rows of priority 0 are never returned as
    long as some row is positive.

    Args:
      key: PRNG key.
      priority: float32 [C] non-negative priorities.
      batch_size: B.
      block: rows per block.

    Returns:
      (indices int32 [B], probabilities float32 [B] = priority[idx] / total).
    """
    cap = priority.shape[0]
    block = min(block, cap)
    blocks = _padded_blocks(priority, block)  # [nb, block]
    block_sums = blocks.sum(axis=1)  # [nb]
    cum_blocks = jnp.cumsum(block_sums)  # [nb]
    total = cum_blocks[-1]
    u = jax.random.uniform(key, (batch_size,)) * total  # [B]
    nb = blocks.shape[0]
    b = jnp.clip(jnp.searchsorted(cum_blocks, u, side="right"), 0, nb - 1)  # [B]
    # Never pick an empty block because of rounding at the right edge.
    last_nonempty_block = nb - 1 - jnp.argmax((block_sums > 0)[::-1])
    b = jnp.minimum(b, last_nonempty_block)
    u_in = u - (cum_blocks[b] - block_sums[b])  # [B] offset inside the block
    rows = blocks[b]  # [B, block]
    cum_rows = jnp.cumsum(rows, axis=1)  # [B, block]
    j = jax.vmap(lambda c, x: jnp.searchsorted(c, x, side="right"))(cum_rows, u_in)  # [B]
    last_nonzero = block - 1 - jnp.argmax((rows > 0)[:, ::-1], axis=1)  # [B]
    j = jnp.minimum(j, last_nonzero)
    idx = (b * block + j).astype(jnp.int32)
    probs = priority[idx] / total
    return idx, probs


def importance_weights(probs: jax.Array) -> jax.Array:
    """PER loss weights 1 / sqrt(P + 1e-10), normalised by their maximum over the batch."""
    w = 1.0 / jnp.sqrt(probs + PRIORITY_EPS)
    return w / jnp.max(w)


def gather_transitions(
    replay: OnlineReplay, idx: jax.Array, clip_rewards: bool = False
) -> dict[str, jax.Array]:
    """Transitions starting at physical rows `idx` [B].

    Args:
      replay: the buffer.
      idx: int32 [B] physical rows (from `sample_proportional`).
      clip_rewards: clip each one-step reward to [-1, 1] before the n-step sum (rewards are
        stored raw; clipping is for learning only).

    Returns:
      dict with obs uint8 [B, H, W, stack], action int32 [B], reward float32 [B] (n-step
      discounted sum of the raw rewards, stopping at a terminal), discount float32 [B]
      (gamma^n, 0 after a terminal), next_obs uint8 [B, H, W, stack].
    """
    cap, n = replay.capacity, replay.n_step
    windows = (idx[:, None] + jnp.arange(n)[None, :]) % cap  # [B, n]
    rewards = replay.reward[windows]  # [B, n]
    if clip_rewards:
        rewards = jnp.clip(rewards, -1.0, 1.0)
    reward, discount, _ = jax.vmap(
        functools.partial(transitions.n_step_return, gamma=replay.gamma)
    )(rewards, replay.terminal[windows])
    stack = jax.vmap(lambda i: stack_frames(replay, i))
    return {
        "obs": stack(idx),
        "action": replay.action[idx],
        "reward": reward,
        "discount": discount,
        "next_obs": stack((idx + n) % cap),
    }


def update_priorities(replay: OnlineReplay, idx: jax.Array, loss: jax.Array) -> OnlineReplay:
    """Sets priority sqrt(loss + 1e-10) at rows `idx` and tracks the maximum priority."""
    new = jnp.sqrt(loss.astype(jnp.float32) + PRIORITY_EPS)
    return replay.replace(
        priority=replay.priority.at[idx].set(new),
        max_priority=jnp.maximum(replay.max_priority, jnp.max(new)),
    )
