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


class ResidualSoftMoE(nn.Module):
    """The README's plug-in example (Impala -> per_conv tokens -> Soft MoE + residual)."""

    num_experts: int = 8
    expert_width: int = 256

    @nn.compact
    def __call__(self, x, *, train: bool):
        from offline_moe.networks import SoftMoE, Tokenizer, make_encoder

        del train
        fmap = make_encoder("impala")(x)  # [B, 11, 11, 32]
        tokens = Tokenizer("per_conv")(fmap)  # [B, 121, 32]
        y, aux = SoftMoE(self.num_experts, self.expert_width)(tokens)  # [B, 121, 32]
        y = nn.LayerNorm()(tokens + y)
        return y.reshape(y.shape[0], -1), aux
