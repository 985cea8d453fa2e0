"""Value heads and the Q-network wrapper that joins a torso to a head.

`QNetwork(torso, head)` is the only network the learners of both tracks see:
  obs uint8 [B, 84, 84, 4] (or float in [0, 1], e.g. augmented) -> preprocess_obs -> torso
  -> features [B, D] -> head (QHead, DuelingC51Head, or the online track's RainbowHead).
It returns a dict with
  'q_values' [B, A]            expected Q-values (always present),
  'logits' [B, A, K]           C51 only: per-action atom logits,
  'probabilities' [B, A, K]    C51 only: softmax of the logits over atoms,
  'features' [B, D]            the torso's output (penultimate layer, for representation metrics),
  'aux' dict                   the torso's aux (always holds 'aux_loss').
Learners read only these keys, never the torso's type.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from offline_moe.networks.encoders import preprocess_obs

Array = jax.Array


def dueling_aggregate(value: Array, advantage: Array) -> Array:
    """Dueling combination (Wang et al. 2016): value + advantage - mean_a advantage.

    Args:
      value: [..., 1, K] state value (per atom for C51).
      advantage: [..., A, K] action advantages.

    Returns:
      [..., A, K] combined logits.
    """
    return value + advantage - jnp.mean(advantage, axis=-2, keepdims=True)


class QHead(nn.Module):
    """Linear Q head Dense(A), xavier_uniform kernel, zero bias (Dopamine's DQN head).

    Attributes:
      num_actions: A.
    """

    num_actions: int

    @nn.compact
    def __call__(self, features: Array, *, train: bool = False) -> dict[str, Array]:
        del train  # deterministic head; the argument keeps one call for every head
        q = nn.Dense(self.num_actions, kernel_init=nn.initializers.xavier_uniform(), name="q")(
            features
        )  # [B, A]
        return {"q_values": q}


class DuelingC51Head(nn.Module):
    """Dueling categorical head (C51 on `num_atoms` atoms over [v_min, v_max]).

    advantage = Dense(A * K), value = Dense(K), both xavier_uniform (as Dopamine's full Rainbow
    network); logits = value + advantage - mean_a advantage; probabilities = softmax over atoms;
    q_values = sum_i z_i p_i.

    Attributes:
      num_actions: A.
      num_atoms: K (51 in the paper).
      v_min: lowest atom (-10).
      v_max: highest atom (10).
    """

    num_actions: int
    num_atoms: int = 51
    v_min: float = -10.0
    v_max: float = 10.0

    @property
    def support(self) -> Array:
        return jnp.linspace(self.v_min, self.v_max, self.num_atoms, dtype=jnp.float32)

    @nn.compact
    def __call__(self, features: Array, *, train: bool = False) -> dict[str, Array]:
        del train  # deterministic head; the argument keeps one call for every head
        init = nn.initializers.xavier_uniform()
        b = features.shape[0]
        adv = nn.Dense(self.num_actions * self.num_atoms, kernel_init=init, name="advantage")(
            features
        ).reshape(b, self.num_actions, self.num_atoms)  # [B, A, K]
        value = nn.Dense(self.num_atoms, kernel_init=init, name="value")(features).reshape(
            b, 1, self.num_atoms
        )  # [B, 1, K]
        logits = dueling_aggregate(value, adv)  # [B, A, K]
        probs = jax.nn.softmax(logits, axis=-1)  # [B, A, K]
        q = jnp.sum(probs * self.support, axis=-1)  # [B, A]
        return {"q_values": q, "logits": logits, "probabilities": probs}


class QNetwork(nn.Module):
    """Torso + head. Scales uint8 observations with `preprocess_obs` (the one place it happens).

    Attributes:
      torso: any module with the torso contract `torso(x, train=...) -> (features, aux)`.
      head: QHead, DuelingC51Head or RainbowHead (any module `head(features, train=...)`
        returning a dict with 'q_values').
      compute_dtype: None (float32 everywhere, the paper's setting), or e.g. jnp.bfloat16:
        the observations enter the torso in this dtype and `apply_network` casts the float32
        parameters to it for the forward pass, so every matmul and convolution of torso and
        head runs in it; the outputs are cast back to float32 (losses stay float32, and the
        gradients reach the float32 parameters through the casts).
    """

    torso: nn.Module
    head: nn.Module
    compute_dtype: Any = None

    @nn.compact
    def __call__(self, obs: Array, *, train: bool = False) -> dict:
        x = preprocess_obs(obs) if obs.dtype == jnp.uint8 else obs.astype(jnp.float32)
        if self.compute_dtype is not None:
            x = x.astype(self.compute_dtype)
        features, aux = self.torso(x, train=train)  # [B, D]
        out = dict(self.head(features, train=train))
        out["features"] = features
        out["aux"] = dict(aux)
        if self.compute_dtype is not None:
            out = jax.tree.map(_to_float32, out)
        return out


def _to_float32(x):
    x = jnp.asarray(x)
    return x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x
