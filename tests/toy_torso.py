"""A user-defined torso living outside the package, reached as 'tests.toy_torso:ToyTorso'.

It follows the torso contract (`features, aux = torso(x, train=...)`, aux['aux_loss'] always
present) and is deliberately tiny so tests that train through it stay fast.
"""

import flax.linen as nn
import jax.numpy as jnp


class ToyTorso(nn.Module):
    """Average-pool 84x84 -> 7x7, flatten, Dense(features) -> ReLU.

    Attributes:
      features: output width D.
    """

    features: int = 16

    @nn.compact
    def __call__(self, x, *, train: bool):
        del train
        x = nn.avg_pool(x, window_shape=(12, 12), strides=(12, 12))  # [B, 7, 7, C]
        x = x.reshape(x.shape[0], -1)
        x = nn.relu(nn.Dense(self.features)(x))  # [B, features]
        return x, {"aux_loss": jnp.zeros((), jnp.float32), "feature_mean": x.mean()}
