"""Transition rules shared by both replays: frame stacking, n-step returns, validity.

Each function acts on one window of consecutive rows (ranks asserted, so a caller that forgets
to `jax.vmap` fails loudly); `replay.device.DeviceReplay` (a flat cache) and
`replay.online.OnlineReplay` (a circular buffer) gather the windows their own way and vmap
these over the batch. The rules are those of DQN-Replay (Agarwal et al. 2020, "An Optimistic
Perspective on Offline Reinforcement Learning", Sec. 3; Dopamine's
replay_memory/circular_replay_buffer.py): a stack never crosses an episode start, an n-step
return stops at a terminal, and a window that runs past an episode end without a terminal is
not a transition.

Worked example, n = 3, gamma = 0.5, rewards (1, 2, 4) with a terminal on the second row:
the return is 1 + 0.5 * 2 = 2 (the row after the terminal does not count), the bootstrap
discount is 0 and the length L is 2. Without a terminal: 1 + 1 + 1 = 3, discount 0.125, L = 3.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from offline_moe.envs.frames import stack_frames

Array = jax.Array


def stack_keep(starts: Array) -> Array:
    """Which rows of a stack window belong to the newest row's episode.

    Args:
      starts: bool [K], episode_start of rows i-K+1..i (oldest first).

    Returns:
      bool [K]: True at and after the latest episode start (rows before it are zero frames).
      E.g. starts = [F, T, F, F] -> [F, T, T, T].
    """
    chex.assert_rank(starts, 1)
    s = starts.astype(jnp.int32)
    starts_after = jnp.cumsum(s[::-1])[::-1] - s  # starts strictly after each row
    return starts_after == 0


def mask_frames(frames: Array, keep: Array) -> Array:
    """frames [..., K, *frame], keep bool [..., K] -> frames with zeros where `keep` is false."""
    keep = keep.reshape(keep.shape + (1,) * (frames.ndim - keep.ndim))
    return jnp.where(keep, frames, jnp.zeros((), frames.dtype))


def stack(frames: Array, keep: Array) -> Array:
    """One frame stack: frames [K, H, W] (oldest first), keep bool [K] -> [H, W, K]; frames
    [K, H, W, C] -> [H, W, K * C] (`envs.frames.stack_frames`).

    Frames outside `keep` become zeros, as at the start of an episode in DQN (Mnih et al.
    2015, Methods: the first frames of an episode are padded).
    """
    chex.assert_rank(keep, 1)
    if frames.ndim not in (3, 4):
        raise ValueError(f"stack: frames must be [K, H, W(, C)], got {frames.shape}")
    return stack_frames(mask_frames(frames, keep), frames.ndim - 1)  # [H, W, K(*C)]


def n_step_return(rewards: Array, terminals: Array, gamma: float) -> tuple[Array, Array, Array]:
    """n-step return of one window that stops at the first terminal (see the module example).

    Args:
      rewards: float [n], r_t .. r_{t+n-1}.
      terminals: bool [n], terminal flags of the same rows.
      gamma: discount per step.

    Returns:
      reward: float32 [], sum_{k<L} gamma^k r_{t+k};
      discount: float32 [], gamma^n, or 0 if a terminal is in the window;
      length: int32 [], L = 1 + offset of the first terminal, or n.
    """
    chex.assert_rank([rewards, terminals], [1, 1])
    n = rewards.shape[0]
    terminals = terminals.astype(bool)
    t = terminals.astype(jnp.int32)
    live = (jnp.cumsum(t) - t) == 0  # no terminal strictly before row k
    powers = jnp.asarray(gamma, jnp.float32) ** jnp.arange(n, dtype=jnp.float32)  # [n]
    reward = jnp.sum(jnp.where(live, rewards.astype(jnp.float32) * powers, 0.0))
    hit = jnp.any(terminals)
    length = jnp.where(hit, jnp.argmax(terminals) + 1, n).astype(jnp.int32)
    discount = jnp.where(hit, 0.0, jnp.asarray(gamma, jnp.float32) ** n).astype(jnp.float32)
    return reward, discount, length


def window_valid(terminals: Array, starts_after: Array) -> Array:
    """Whether a window is a transition: no episode start is reached without a terminal first.

    Args:
      terminals: bool [n], terminal of rows t..t+n-1.
      starts_after: bool [n], episode_start of rows t+1..t+n (a row that does not exist, past
        the end of the data, counts as a start: nothing follows there).

    Returns:
      bool []: for every j with starts_after[j], some terminals[k] with k <= j is True.
    """
    chex.assert_rank([terminals, starts_after], [1, 1])
    seen_terminal = jnp.cumsum(terminals.astype(jnp.int32)) > 0  # a terminal in rows t..t+j
    return jnp.all(~starts_after.astype(bool) | seen_terminal)
