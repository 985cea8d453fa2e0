"""Observation layout: how single frames of any shape stack into an agent's observation.

An env's step returns one frame (`envs.registry.observation_spec`): uint8 [84, 84] for ALE
games and Catch, bool [10, 10, C] for MinAtar. An agent's observation stacks the last K frames
on the channel axis: [H, W, K] for [H, W] frames (DQN's 84x84x4), [H, W, K * C] for
[H, W, C] frames with frame k's channels at k*C .. k*C + C - 1 (oldest first; MinAtar's
K = 1 gives its state as is). Every replay, evaluator and actor stacks through these two
functions, so the layout is defined once. numpy and JAX arrays alike (methods only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def stacked_shape(frame_shape: Sequence[int], stack: int) -> tuple[int, ...]:
    """Shape of one observation of `stack` frames: (H, W, K) or (H, W, K * C)."""
    frame_shape = tuple(int(d) for d in frame_shape)
    if len(frame_shape) not in (2, 3):
        raise ValueError(f"frames must be [H, W] or [H, W, C], got shape {frame_shape}")
    return (*frame_shape[:2], int(stack) * math.prod(frame_shape[2:]))


def stack_frames(frames, frame_ndim: int):
    """[..., K, *frame] (oldest first) -> [..., H, W, K * C] (see the module docstring).

    Args:
      frames: array whose trailing `frame_ndim` axes are one frame, preceded by the K axis.
      frame_ndim: 2 ([H, W] frames) or 3 ([H, W, C]).
    """
    lead = frames.ndim - frame_ndim - 1  # index of the K axis
    if lead < 0 or frame_ndim not in (2, 3):
        raise ValueError(f"stack_frames: {frames.shape} is not [..., K, H, W(, C)]")
    # [..., K, H, W, (C)] -> [..., H, W, K, (C)] -> [..., H, W, K * C]
    perm = (*range(lead), lead + 1, lead + 2, lead, *range(lead + 3, frames.ndim))
    x = frames.transpose(perm)
    return x.reshape(*x.shape[: lead + 2], -1)
