"""Representation metrics of the penultimate (torso) features on a fixed batch.

Definitions (features F of shape [B, D], one row per state):
  dormant_pct   100 * fraction of the D units whose mean |activation| over the batch is <= tau
                after normalising by the layer mean (Sokar et al. 2023). With tau = 0 (the
                default, as in Dopamine's MoE agents) a unit is dormant iff it is exactly zero
                on every state of the batch.
  srank         threshold count of singular values: #{i : sigma_i / sigma_max > threshold}
                (threshold 0.01). This is the count Dopamine's MoE lab logs, not Kumar et al.'s
                cumulative (1 - delta) effective rank, which is also returned as srank_kumar
                (smallest k with sum_{i<=k} sigma_i >= (1 - 0.01) sum_i sigma_i).
  feature_norm  mean over states of the l2 norm ||F_b||_2.
MoE torsos additionally report their aux 'expert_usage' [n] and 'router_entropy'.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np


def dormant_pct(features: jax.Array, tau: float = 0.0) -> jax.Array:
    """Percentage of dormant units (see the module docstring). features: [B, D]."""
    score = jnp.mean(jnp.abs(features), axis=0)  # [D]
    score = score / (jnp.mean(score) + 1e-9)
    return 100.0 * jnp.mean((score <= tau).astype(jnp.float32))


def singular_values(features: jax.Array) -> jax.Array:
    return jnp.linalg.svd(features.astype(jnp.float32), compute_uv=False)


def srank(features: jax.Array, threshold: float = 0.01) -> jax.Array:
    """#{sigma_i / sigma_max > threshold}. features: [B, D]."""
    s = singular_values(features)
    return jnp.sum(s / (s[0] + 1e-12) > threshold)


def srank_kumar(features: jax.Array, delta: float = 0.01) -> jax.Array:
    """Kumar et al. 2021: min k with cumulative singular-value mass >= 1 - delta."""
    s = singular_values(features)
    cum = jnp.cumsum(s) / (jnp.sum(s) + 1e-12)
    return jnp.sum(cum < 1.0 - delta) + 1


def feature_norm(features: jax.Array) -> jax.Array:
    """Mean over the batch of ||F_b||_2. features: [B, D]."""
    return jnp.mean(jnp.linalg.norm(features, axis=-1))


def representation_metrics(
    features: jax.Array, aux: Mapping | None = None, *, srank_threshold: float = 0.01
) -> dict:
    """All metrics for one seed's features [B, D] and torso aux (host values, JSON-ready)."""
    features = jnp.asarray(features, jnp.float32)
    out = {
        "dormant_pct": float(dormant_pct(features)),
        "srank": int(srank(features, srank_threshold)),
        "srank_kumar": int(srank_kumar(features)),
        "feature_norm": float(feature_norm(features)),
        "feature_dim": int(features.shape[-1]),
    }
    for name in ("expert_usage", "router_entropy"):
        if aux is not None and name in aux:
            value = np.asarray(aux[name], np.float32)
            out[name] = value.tolist() if value.ndim else float(value)
    return out
