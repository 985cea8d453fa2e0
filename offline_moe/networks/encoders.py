"""Convolutional encoders shared by every torso, and the one place uint8 frames are scaled.

The two Atari encoders follow the paper's code (Dopamine `jax/networks.py`), including Flax's
default SAME padding, which turns an 84x84 frame into an 11x11 feature map:

- `NatureCNN`: Conv 32 8x8/4 -> ReLU -> Conv 64 4x4/2 -> ReLU -> Conv 64 3x3/1 -> ReLU, all
  kernels xavier_uniform: [B, 84, 84, C] -> [B, 11, 11, 64] (the original Nature DQN used VALID
  padding and a 7x7 map; the MoE paper's code does not).
- `ImpalaEncoder`: three stacks of 16/32/32 channels, each Conv 3x3 (xavier_uniform) -> max-pool
  3x3 stride 2 SAME -> 2 residual blocks [ReLU, Conv, ReLU, Conv] + skip (block convs keep Flax's
  default lecun_normal init, as in the reference), then a final ReLU: [B, 84, 84, C] ->
  [B, 11, 11, 32].

MinAtar's (Young & Tian 2019; its examples/dqn.py `QNetwork`):

- `MinAtarCNN`: Conv 16 3x3/1 with no padding (PyTorch's Conv2d default, so VALID here) ->
  ReLU: [B, 10, 10, C] -> [B, 8, 8, 16], 1,024 features. Its dense layer has 128 units ("a
  quarter of the original DQN paper of 512", dqn.py), so `DENSE_UNITS['minatar']` is 128:
  the baseline torso's Dense(128 * width), and the width of a MinAtar expert as 512 is an
  Atari expert's. Kernel init as dqn.py's (PyTorch's default for Conv2d: uniform within
  +-1/sqrt(fan_in), i.e. variance_scaling(1/3, fan_in, uniform)); the bias starts at zero
  (Flax's default; PyTorch draws it from the same range). VALID, as MinAtar: with SAME the map
  would be 10x10 (100 tokens of 16), not the network MinAtar's results were measured with.

Encoders are looked up by name (`make_encoder('impala')`); `ENCODERS` lists them and
`DENSE_UNITS` the hidden width of the network each comes from.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

_xavier = nn.initializers.xavier_uniform()


def preprocess_obs(obs):
    """Scales observations to float32 in [0, 1]: the one place observations are scaled.

    Args:
      obs: uint8 array [..., H, W, C] of pixel intensities (Atari [..., 84, 84, 4]; any
        integer or float array is cast the same way), or bool (MinAtar's binary channels).

    Returns:
      float32 array of the same shape: `obs / 255`, or 0 / 1 for bool observations.
    """
    obs = jnp.asarray(obs)
    if obs.dtype == jnp.bool_:
        return obs.astype(jnp.float32)
    return obs.astype(jnp.float32) / 255.0


class NatureCNN(nn.Module):
    """Nature-DQN convolutional encoder with Flax SAME padding (11x11x64 map for 84x84 input)."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(32, (8, 8), strides=(4, 4), kernel_init=_xavier, name="conv1")(x))
        x = nn.relu(nn.Conv(64, (4, 4), strides=(2, 2), kernel_init=_xavier, name="conv2")(x))
        x = nn.relu(nn.Conv(64, (3, 3), strides=(1, 1), kernel_init=_xavier, name="conv3")(x))
        return x  # [B, 11, 11, 64]


class ResidualBlock(nn.Module):
    """[ReLU, Conv 3x3, ReLU, Conv 3x3] + skip; convs use Flax's default lecun_normal init."""

    channels: int

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(self.channels, (3, 3), name="conv1")(nn.relu(x))
        y = nn.Conv(self.channels, (3, 3), name="conv2")(nn.relu(y))
        return x + y


class ImpalaStack(nn.Module):
    """Conv 3x3 (xavier_uniform) -> max-pool 3x3 stride 2 SAME -> `num_blocks` residual blocks."""

    channels: int
    num_blocks: int = 2

    @nn.compact
    def __call__(self, x):
        x = nn.Conv(self.channels, (3, 3), kernel_init=_xavier, name="conv")(x)
        x = nn.max_pool(x, window_shape=(3, 3), strides=(2, 2), padding="SAME")
        for i in range(self.num_blocks):
            x = ResidualBlock(self.channels, name=f"block{i}")(x)
        return x


class ImpalaEncoder(nn.Module):
    """Impala ResNet encoder (stacks 16/32/32, 2 residual blocks each): 84x84 -> 11x11x32.

    Attributes:
      stack_sizes: channels of each stack.
      num_blocks: residual blocks per stack.
    """

    stack_sizes: Sequence[int] = (16, 32, 32)
    num_blocks: int = 2

    @nn.compact
    def __call__(self, x):
        for i, channels in enumerate(self.stack_sizes):
            x = ImpalaStack(channels, self.num_blocks, name=f"stack{i}")(x)
        return nn.relu(x)  # [B, 11, 11, 32]


class MinAtarCNN(nn.Module):
    """MinAtar's DQN encoder: Conv 16 3x3 stride 1 VALID + ReLU (8x8x16 map for 10x10 input)."""

    @nn.compact
    def __call__(self, x):
        torch_default = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")
        conv = nn.Conv(16, (3, 3), strides=(1, 1), padding="VALID", kernel_init=torch_default)
        return nn.relu(conv(x))  # [B, 8, 8, 16]


ENCODERS = {"impala": ImpalaEncoder, "nature": NatureCNN, "minatar": MinAtarCNN}
# Hidden units of the dense layer after each encoder in the network it comes from: the
# baseline's Dense(DENSE_UNITS * width) and the expert width matching it.
DENSE_UNITS = {"impala": 512, "nature": 512, "minatar": 128}


def make_encoder(name: str) -> nn.Module:
    """Returns a fresh encoder module by name ('impala', 'nature' or 'minatar')."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; valid encoders: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name]()
