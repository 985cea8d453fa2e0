"""Mixture-of-Experts layers over token sequences: Soft MoE and Top-1 MoE.

Both layers map tokens `[B, m, d] -> ([B, m, d], aux)` and can be used on their own inside any
torso. Every computation keeps the batch axis `b` separate (einsums with a batch index, softmaxes
over token/slot/expert axes only), so tokens of different samples never mix: output row `i` of
sample `b` depends on sample `b` alone.

`aux` (all jnp arrays, batch means):
  aux_loss:       scalar added to the learner's loss (0.0 for Soft MoE; weighted importance +
                  load losses for Top-1, 0.0 with the default weights).
  router_entropy: mean entropy (nats) of each token's distribution over experts.
  expert_usage:   [n], fraction of combine mass (Soft MoE) or of routed tokens (Top-1) per
                  expert; sums to 1.
Top-1 adds dropped_fraction, importance_loss and load_loss (unweighted).

Router parameters are the leaves under a key in `ROUTER_PARAMS` (Soft MoE's `phi`, Top-1's
`router` Dense); `router_update_size` measures one optimizer update to them, which the learners
log every step as torso/router_update_rms and torso/router_update_ratio.

Experts are one `nn.vmap`-ed module with a leading expert axis on every parameter
(kernel [n, d, H], ...): expert e maps each of its slots d -> H -> ReLU -> d (xavier_uniform
kernels, zero biases, no output activation), as in the paper's code.

References: Puigcerver et al. 2023, "From Sparse to Soft Mixtures of Experts"; Riquelme et al.
2021, "Scaling Vision with Sparse Mixture of Experts" (importance / load losses);
Obando-Ceron et al. 2024 (the RL use of both).
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from offline_moe.networks.noisy import NOISE_RNG, NoisyDense

_xavier = nn.initializers.xavier_uniform()

# Notation used in the einsums of this module:
#   b  batch (samples never mix)
#   m  tokens per sample
#   d  token dimension
#   n  experts
#   p  slots per expert (Soft MoE) = ceil(m * capacity_factor / n)
#   c  capacity per expert (Top-1)  = ceil(m * capacity_factor / n)
#   h  expert hidden width H


def slots_per_expert(num_tokens: int, num_experts: int, capacity_factor: float = 1.0) -> int:
    """p = ceil(m * capacity_factor / n), at least 1 (also Top-1's per-expert capacity)."""
    return max(1, math.ceil(num_tokens * capacity_factor / num_experts))


class ExpertMLP(nn.Module):
    """One expert: Dense(H) -> ReLU -> Dense(d), xavier_uniform kernels and zero biases.

    With `noisy`, the first layer is a factorised `NoisyDense` (Dopamine's labs/moes
    `ExpertModel` with noisy=True, the MoE DER network); noise only when `train`.
    """

    hidden: int
    features: int
    noisy: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):  # [..., d]
        if self.noisy:
            h = nn.relu(NoisyDense(self.hidden, name="hidden")(x, train=train))
        else:
            h = nn.relu(nn.Dense(self.hidden, kernel_init=_xavier, name="hidden")(x))
        self.sow("intermediates", "expert_hidden", h)  # [..., H]; for dormant-neuron stats
        return nn.Dense(self.features, kernel_init=_xavier, name="out")(h)


class Experts(nn.Module):
    """n independent `ExpertMLP`s as one vmapped module: [B, n, s, d] -> [B, n, s, d].

    Parameters carry a leading expert axis (e.g. hidden kernel [n, d, H]); expert e sees only
    the slots at index e of axis 1. With `noisy`, every expert's first layer is noisy and the
    experts share one noise draw per call, as Dopamine's experts share one key.
    """

    num_experts: int
    hidden: int
    noisy: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False):  # [B, n, s, d]
        if x.shape[1] != self.num_experts:
            raise ValueError(f"Experts: axis 1 of {x.shape} must be num_experts={self.num_experts}")
        vmapped = nn.vmap(
            ExpertMLP,
            variable_axes={"params": 0, "intermediates": 0},
            split_rngs={"params": True, NOISE_RNG: False},
            in_axes=(1, None),
            out_axes=1,
        )
        return vmapped(self.hidden, x.shape[-1], self.noisy, name="mlp")(x, train)


ROUTER_PARAMS = ("phi", "router")


def router_update_size(params, updates) -> dict:
    """The size of one optimizer update to the router parameters (keys in `ROUTER_PARAMS`).

    Args:
      params: the parameters before the update (a pytree of dicts).
      updates: the optimizer's update, the same pytree (`optax.apply_updates(params, updates)`).

    Returns:
      {} for a network without a router parameter, else float32 scalars
      router_update_rms: root mean square of the update per element (Adam moves an element by
        about the learning rate while its gradient is well above Adam's epsilon, by less when
        the gradient is at or below it);
      router_update_ratio: ||update|| / ||params|| over all router leaves (0 for a zero router).
    """
    flat_params = jax.tree_util.tree_leaves_with_path(params)
    flat_updates = jax.tree.leaves(updates)
    sq_update = sq_param = jnp.zeros((), jnp.float32)
    count = 0
    for (path, param), update in zip(flat_params, flat_updates, strict=True):
        if not any(getattr(k, "key", None) in ROUTER_PARAMS for k in path):
            continue
        sq_update = sq_update + jnp.sum(jnp.square(update.astype(jnp.float32)))
        sq_param = sq_param + jnp.sum(jnp.square(param.astype(jnp.float32)))
        count += param.size
    if count == 0:
        return {}
    norm_param = jnp.sqrt(sq_param)
    return {
        "router_update_rms": jnp.sqrt(sq_update / count),
        "router_update_ratio": jnp.where(
            norm_param > 0, jnp.sqrt(sq_update) / jnp.maximum(norm_param, 1e-30), 0.0
        ),
    }


def soft_moe_weights(x, phi):
    """Soft MoE dispatch and combine weights.

    Args:
      x: tokens used for the logits [B, m, d] (already l2-normalised if that option is on).
      phi: slot parameters [d, n, p].

    Returns:
      (dispatch, combine), both [B, m, n, p]: dispatch is a softmax over tokens m (for each
      slot), combine a softmax over all n*p slots jointly (for each token).
    """
    logits = jnp.einsum("bmd,dnp->bmnp", x, phi)
    b, m, n, p = logits.shape
    dispatch = jax.nn.softmax(logits, axis=1)
    combine = jax.nn.softmax(logits.reshape(b, m, n * p), axis=-1).reshape(b, m, n, p)
    return dispatch, combine


def l2_normalize(x, axis=-1, eps=1e-6):
    """x / (||x||_2 + eps) along `axis` (the normaliser of the paper's code).

    The norm is taken so that its gradient at an all-zero x is 0 rather than NaN (the same
    values everywhere): jnp.linalg.norm's derivative at 0 is 0 / 0, and all-zero tokens are
    common (a ReLU map of a mostly empty MinAtar board).
    """
    squares = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
    nonzero = squares > 0
    norm = jnp.where(nonzero, jnp.sqrt(jnp.where(nonzero, squares, 1.0)), 0.0)
    return x / (norm + eps)


def _scaled(init, factor: float):
    return lambda key, shape, dtype=jnp.float32: factor * init(key, shape, dtype)


def _entropy(probs, axis=-1):
    return -jnp.sum(probs * jnp.log(jnp.clip(probs, 1e-12, 1.0)), axis=axis)


class SoftMoE(nn.Module):
    """Soft MoE layer (Puigcerver et al. 2023): tokens [B, m, d] -> ([B, m, d], aux).

    Attributes:
      num_experts: n.
      expert_width: H, hidden units of each expert (512 in the paper; 512 / n for the
        'shrunk experts' ablation).
      capacity_factor: sets the slots per expert, p = ceil(m * capacity_factor / n).
      normalize: l2-normalise tokens (over d) and Phi (over d, per slot) for the logits, with a
        learned scalar scale on Phi (init 1). The dispatched slot inputs use the raw tokens.
      noisy: noisy first layer in every expert (see `Experts`); noise only when `train`.
      phi_init_scale: multiplies Phi's initial values (1: the paper's lecun_normal). At 1 the
        logits of small tokens are near 0 and routing starts uniform (`bench routing`).
      train_router: False holds Phi at its initial values (no gradient reaches it); with
        phi_init_scale = 0 the routing is then exactly uniform for good.
    """

    num_experts: int = 8
    expert_width: int = 512
    capacity_factor: float = 1.0
    normalize: bool = False
    noisy: bool = False
    phi_init_scale: float = 1.0
    train_router: bool = True

    @nn.compact
    def __call__(self, x, *, train: bool = False):  # [B, m, d]
        _, m, d = x.shape
        n = self.num_experts
        p = slots_per_expert(m, n, self.capacity_factor)
        # lecun_normal on (d, n, p): fan_in = n * d, as in the paper's code.
        lecun = nn.initializers.lecun_normal()
        init = lecun if self.phi_init_scale == 1.0 else _scaled(lecun, self.phi_init_scale)
        phi = self.param("phi", init, (d, n, p))  # [d, n, p]
        if not self.train_router:
            phi = jax.lax.stop_gradient(phi)
        x_logits = x
        if self.normalize:
            scale = self.param("scale", nn.initializers.ones, ())
            x_logits = l2_normalize(x, axis=-1)
            phi = scale * l2_normalize(phi, axis=0)
        dispatch, combine = soft_moe_weights(x_logits, phi)  # [B, m, n, p] each
        slots = jnp.einsum("bmnp,bmd->bnpd", dispatch, x)  # [B, n, p, d]
        experts = Experts(n, self.expert_width, self.noisy, name="experts")
        outputs = experts(slots, train)  # [B, n, p, d]
        y = jnp.einsum("bmnp,bnpd->bmd", combine, outputs)  # [B, m, d]

        per_expert = combine.sum(axis=-1)  # [B, m, n], each token's combine mass per expert
        aux = {
            "aux_loss": jnp.zeros((), jnp.float32),
            "router_entropy": _entropy(per_expert).mean(),
            "expert_usage": per_expert.mean(axis=(0, 1)),  # [n]
        }
        return y, aux


def top1_dispatch(gates, capacity: int):
    """Top-1 assignment with per-expert capacity, tokens taken in token order.

    Args:
      gates: router probabilities [B, m, n].
      capacity: c, tokens each expert keeps per sample; later tokens are dropped.

    Returns:
      dispatch: [B, m, n, c] one-hot (token i -> slot c of expert e), all zero for a dropped
        token.
      expert_index: [B, m] chosen expert per token (before capacity).
      gate: [B, m] probability of the chosen expert.
    """
    n = gates.shape[-1]
    expert_index = jnp.argmax(gates, axis=-1)  # [B, m]
    gate = jnp.max(gates, axis=-1)  # [B, m]
    chosen = jax.nn.one_hot(expert_index, n, dtype=gates.dtype)  # [B, m, n]
    # Position of each token in its expert's queue: 0 for the first token routed there, ...
    position = jnp.sum(jnp.cumsum(chosen, axis=1) * chosen, axis=-1).astype(jnp.int32) - 1
    # one_hot of an index >= c is all zeros: tokens beyond capacity get no slot (dropped).
    slot = jax.nn.one_hot(position, capacity, dtype=gates.dtype)  # [B, m, c]
    dispatch = chosen[..., None] * slot[:, :, None, :]  # [B, m, n, c]
    return dispatch, expert_index, gate


def _cv_squared(x):
    """Squared coefficient of variation over the last axis, (std / (mean + 1e-9))^2, computed
    as var / (mean + 1e-9)^2: the same value, and a finite gradient where all values are equal
    (std's square root has an infinite derivative at 0, which turns into NaN, even through a
    zero weight, e.g. when every token of a sample is zero and the router splits it evenly)."""
    return jnp.var(x, axis=-1) / (jnp.mean(x, axis=-1) + 1e-9) ** 2


def importance_loss(gates):
    """Riquelme et al. 2021 importance loss: squared coefficient of variation over experts of
    imp_e = sum over tokens of gates[:, e], per sample, averaged over the batch.

    Args:
      gates: router probabilities [B, m, n].
    """
    importance = gates.sum(axis=1)  # [B, n]
    return jnp.mean(_cv_squared(importance))


def load_loss(logits, noise_std: float):
    """Riquelme et al. 2021 load loss (k = 1), squared coefficient of variation of the load.

    P[b, i, e] = probability that token i picks expert e if Gaussian noise N(0, noise_std^2)
    were added to its logit for e: 1 - Phi((thr - logit_e) / noise_std), with thr the largest
    logit among the OTHER experts. This is the noise-free (deterministic) form: routing here
    adds no noise, so the threshold uses the clean logits. load_e = mean over tokens of P.

    Args:
      logits: router logits (pre-softmax) [B, m, n].
      noise_std: sigma (1 / n in the reference).
    """
    n = logits.shape[-1]
    # A large finite negative (not -inf) keeps the gradient finite when n = 1.
    others = jnp.where(jnp.eye(n, dtype=bool), -1e30, logits[..., None, :])  # [B, m, n, n]
    threshold = jnp.max(others, axis=-1)  # [B, m, n]: max over e' != e
    prob = 1.0 - jax.scipy.stats.norm.cdf((threshold - logits) / noise_std)  # [B, m, n]
    load = prob.mean(axis=1)  # [B, n]
    return jnp.mean(_cv_squared(load))


class Top1MoE(nn.Module):
    """Top-1 routed MoE: tokens [B, m, d] -> ([B, m, d], aux).

    Router Dense(n, no bias) -> softmax -> top-1 expert per token. Each expert keeps the first
    c = ceil(m * capacity_factor / n) tokens routed to it (token order); overflow tokens output
    zeros. Output row = expert(x_i) * gate probability (no residual).

    Attributes:
      num_experts: n.
      expert_width: H.
      capacity_factor: sets c.
      importance_weight: weight of the importance loss in aux_loss (default 0: off).
      load_weight: weight of the load loss in aux_loss (default 0: off).
      noisy: noisy first layer in every expert (see `Experts`); noise only when `train`.
    """

    num_experts: int = 8
    expert_width: int = 512
    capacity_factor: float = 1.0
    importance_weight: float = 0.0
    load_weight: float = 0.0
    noisy: bool = False

    @nn.compact
    def __call__(self, x, *, train: bool = False):  # [B, m, d]
        _, m, _ = x.shape
        n = self.num_experts
        c = slots_per_expert(m, n, self.capacity_factor)
        logits = nn.Dense(n, use_bias=False, name="router")(x)  # [B, m, n]
        gates = jax.nn.softmax(logits, axis=-1)  # [B, m, n]
        dispatch, expert_index, gate = top1_dispatch(gates, c)  # [B, m, n, c], [B, m], [B, m]
        expert_in = jnp.einsum("bmnc,bmd->bncd", dispatch, x)  # [B, n, c, d]
        experts = Experts(n, self.expert_width, self.noisy, name="experts")
        expert_out = experts(expert_in, train)  # [B, n, c, d]
        combine = dispatch * gate[:, :, None, None]  # [B, m, n, c]
        y = jnp.einsum("bmnc,bncd->bmd", combine, expert_out)  # [B, m, d]

        imp = importance_loss(gates)
        load = load_loss(logits, noise_std=1.0 / n)
        # Only the weighted terms enter the loss (a zero weight adds nothing, not 0 * loss).
        terms = [(self.importance_weight, imp), (self.load_weight, load)]
        aux_loss = sum((w * v for w, v in terms if w), jnp.zeros((), jnp.float32))
        aux = {
            "aux_loss": aux_loss,
            "router_entropy": _entropy(gates).mean(),
            "expert_usage": jax.nn.one_hot(expert_index, n).mean(axis=(0, 1)),  # [n]
            "dropped_fraction": 1.0 - dispatch.sum(axis=(2, 3)).mean(),
            "importance_loss": imp,
            "load_loss": load,
        }
        return y, aux
