"""Factorised Gaussian noisy layers and the Rainbow/DER value head.

NoisyNets: Fortunato et al. 2018, "Noisy Networks for Exploration" (factorised Gaussian noise,
Sec. 3.2). Initialisation as in Dopamine's `NoisyNetwork` (dopamine/jax/networks.py):

  mu_w, mu_b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)),   sigma_w = sigma_b = 0.1 / sqrt(fan_in)
  eps_w = f(p) f(q)^T,  eps_b = f(q),  p ~ N(0, I_in), q ~ N(0, I_out),  f(x) = sign(x) sqrt|x|
  W = mu_w + sigma_w * eps_w,  b = mu_b + sigma_b * eps_b

The noise is drawn from the Flax rng stream ``'noise'`` and is exactly zero when
``train=False`` (evaluation), so evaluation needs no rng at all.

The head (`RainbowHead`) maps torso features [B, D] to per-action atom logits [B, A, K]:
dueling (value + advantage - mean_a advantage), optional noisy layers, optional C51. With
``num_atoms=1`` the Q-value is the single logit (Dopamine's non-distributional path, used by
DrQ(eps)); with C51 it is sum_i z_i softmax(logits)_i.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from offline_moe.networks.heads import dueling_aggregate

NOISE_RNG = "noise"


def _signed_sqrt(x: jax.Array) -> jax.Array:
    return jnp.sign(x) * jnp.sqrt(jnp.abs(x))


def factorised_noise(key: jax.Array, fan_in: int, fan_out: int) -> tuple[jax.Array, jax.Array]:
    """Factorised Gaussian noise for one layer.

    Args:
      key: PRNG key.
      fan_in: input width.
      fan_out: output width.

    Returns:
      (eps_w [fan_in, fan_out], eps_b [fan_out]) with eps_w = f(p) f(q)^T and eps_b = f(q).
    """
    kp, kq = jax.random.split(key)
    p = _signed_sqrt(jax.random.normal(kp, (fan_in,)))  # [in]
    q = _signed_sqrt(jax.random.normal(kq, (fan_out,)))  # [out]
    return jnp.outer(p, q), q


class NoisyDense(nn.Module):
    """Dense layer with factorised Gaussian parameter noise (Fortunato et al. 2018).

    Attributes:
      features: output width.
      sigma0: sigma is initialised to sigma0 / sqrt(fan_in) (0.1 in Dopamine, 0.5 in the
        paper's Table; this follows Dopamine).
      per_sample: draw independent noise for every row of the batch (Dopamine's MoE DER
        agent); False shares one draw across the batch (Dopamine's DER).
    """

    features: int
    sigma0: float = 0.1
    per_sample: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        fan_in = x.shape[-1]
        bound = 1.0 / jnp.sqrt(fan_in)

        def uniform_init(key, shape, dtype=jnp.float32):
            return jax.random.uniform(key, shape, dtype, -bound, bound)

        def sigma_init(key, shape, dtype=jnp.float32):
            del key
            return jnp.full(shape, self.sigma0 / jnp.sqrt(fan_in), dtype)

        mu_w = self.param("mu_kernel", uniform_init, (fan_in, self.features))
        mu_b = self.param("mu_bias", uniform_init, (self.features,))
        sigma_w = self.param("sigma_kernel", sigma_init, (fan_in, self.features))
        sigma_b = self.param("sigma_bias", sigma_init, (self.features,))
        if train and self.per_sample:
            # An independent factorised draw per sample (Dopamine's MoE DER agent), without
            # materialising [B, in, out]: x (sigma * p q^T) = ((x * p) sigma) * q.
            kp, kq = jax.random.split(self.make_rng(NOISE_RNG))
            p = _signed_sqrt(jax.random.normal(kp, x.shape))  # [B, in]
            q = _signed_sqrt(jax.random.normal(kq, (*x.shape[:-1], self.features)))  # [B, out]
            return x @ mu_w + ((x * p) @ sigma_w) * q + mu_b + sigma_b * q
        if train:
            eps_w, eps_b = factorised_noise(self.make_rng(NOISE_RNG), fan_in, self.features)
            w = mu_w + sigma_w * eps_w
            b = mu_b + sigma_b * eps_b
        else:
            w, b = mu_w, mu_b
        return x @ w + b


class RainbowHead(nn.Module):
    """Dueling / distributional / noisy value head over torso features.

    Attributes:
      num_actions: A.
      num_atoms: K (51 for C51; 1 for a scalar Q-value, Huber-loss agents).
      v_max: support is linspace(-v_max, v_max, K) when K > 1.
      dueling: value + advantage - mean_a advantage.
      noisy: NoisyDense layers (need the 'noise' rng when train=True) instead of Dense.
      per_sample_noise: independent noise per batch row (see NoisyDense.per_sample).

    Returns from __call__: dict with 'logits' [B, A, K], 'q_values' [B, A] and, for K > 1,
    'probabilities' [B, A, K].
    """

    num_actions: int
    num_atoms: int = 51
    v_max: float = 10.0
    dueling: bool = True
    noisy: bool = True
    per_sample_noise: bool = False

    def _layer(self, features: int, name: str):
        if self.noisy:
            return NoisyDense(features, per_sample=self.per_sample_noise, name=name)
        return nn.Dense(features, kernel_init=nn.initializers.xavier_uniform(), name=name)

    def _apply(self, layer, x, train):
        return layer(x, train=train) if self.noisy else layer(x)

    @property
    def support(self) -> jax.Array:
        return jnp.linspace(-self.v_max, self.v_max, self.num_atoms)

    @nn.compact
    def __call__(self, features: jax.Array, *, train: bool) -> dict[str, jax.Array]:
        assert features.ndim == 2, features.shape
        a, k = self.num_actions, self.num_atoms
        if self.dueling:
            adv = self._apply(self._layer(a * k, "advantage"), features, train)  # [B, A*K]
            adv = adv.reshape(-1, a, k)
            value = self._apply(self._layer(k, "value"), features, train)  # [B, K]
            logits = dueling_aggregate(value[:, None, :], adv)  # [B, A, K]
        else:
            logits = self._apply(self._layer(a * k, "q"), features, train).reshape(-1, a, k)
        out = {"logits": logits}
        if k > 1:
            probs = jax.nn.softmax(logits, axis=-1)  # [B, A, K]
            out["probabilities"] = probs
            out["q_values"] = jnp.sum(probs * self.support, axis=-1)  # [B, A]
        else:
            out["q_values"] = logits.sum(axis=-1)  # [B, A]
        return out
