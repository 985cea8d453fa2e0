"""Noisy torsos (`noisy=True`): factorised noisy hidden layers as in Dopamine's DER networks.

Known answers: with train=False a noisy torso is exactly the plain torso whose hidden kernel
is mu (no rng needed); with train=True the perturbation of the hidden pre-activation is
s (1 + x . f(p)) f(q) for one draw (p, q) shared by the batch (and, as in Dopamine, by the
experts), whose mean over draws is 0 and variance c (c sum_i x_i^2 + 1) s^2 with
c = E f(N)^2 = sqrt(2/pi) and s = sigma = 0.1 / sqrt(fan_in) at init (Fortunato et al. 2018).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.core import unfreeze

from offline_moe.networks import make_torso
from offline_moe.networks.moe import Experts
from offline_moe.networks.registry import count_params
from tests.networks import jit_init

SMALL = {
    "baseline": {"encoder": "nature", "width": 1 / 16},
    "soft_moe": {"encoder": "nature", "num_experts": 2, "expert_width": 8},
    "top1_moe": {"encoder": "nature", "num_experts": 2, "expert_width": 8},
    "tokenized_expert": {"encoder": "nature", "num_experts": 2, "expert_width": 8},
    "soft_moe_1_scaled": {"encoder": "nature", "num_experts": 2, "expert_width": 8},
    "soft_moe_uniform": {"encoder": "nature", "num_experts": 2, "expert_width": 8},
}


def _as_plain(tree):
    """Noisy params -> the plain layers' params: NoisyDense {mu_*, sigma_*} -> Dense(mu)."""
    if isinstance(tree, dict):
        if "mu_kernel" in tree:
            return {"kernel": tree["mu_kernel"], "bias": tree["mu_bias"]}
        return {k: _as_plain(v) for k, v in tree.items()}
    return tree


@pytest.mark.parametrize("name", sorted(SMALL))
def test_noisy_torso_without_train_is_the_plain_torso_at_mu(name):
    x = jax.random.uniform(jax.random.key(0), (2, 36, 36, 4))  # small frames: a fast check
    noisy = make_torso(name, noisy=True, **SMALL[name])
    plain = make_torso(name, **SMALL[name])
    # Jitted whole: one compile per function instead of one per eager op (test time).
    params = unfreeze(jax.jit(lambda k: noisy.init(k, x, train=False))(jax.random.key(1)))
    plain_params = _as_plain(params)
    want = jax.tree.map(
        np.shape, jax.eval_shape(lambda: plain.init(jax.random.key(1), x, train=False))
    )
    assert jax.tree.map(np.shape, plain_params) == want  # same names and shapes as plain
    sigma = sum(
        leaf.size
        for path, leaf in jax.tree_util.tree_leaves_with_path(params)
        if "sigma" in jax.tree_util.keystr(path)
    )
    assert count_params(params) == count_params(plain_params) + sigma
    f_eval = jax.jit(lambda p: noisy.apply(p, x, train=False)[0])(params)  # no rng: no noise
    f_plain = jax.jit(lambda p: plain.apply(p, x, train=False)[0])(plain_params)
    np.testing.assert_allclose(np.asarray(f_eval), np.asarray(f_plain), rtol=1e-5, atol=1e-6)
    train = jax.jit(lambda p, k: noisy.apply(p, x, train=True, rngs={"noise": k})[0])
    a, b, a2 = (train(params, jax.random.key(k)) for k in (2, 3, 2))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(a2))
    assert not np.allclose(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(a), np.asarray(f_eval))


def test_baseline_noise_is_one_factorised_draw_shared_by_the_batch():
    """delta_b = s (1 + flat_b . f(p)) f(q): the perturbations of two samples are parallel."""
    torso = make_torso("baseline", noisy=True, **SMALL["baseline"])
    x = jax.random.uniform(jax.random.key(0), (2, 36, 36, 4))
    params = jit_init(torso, jax.random.key(1), x, train=False)

    def hidden(train, key=None):
        rngs = {"noise": key} if train else None
        _, state = torso.apply(
            params, x, train=train, rngs=rngs, capture_intermediates=True, mutable=True
        )
        return np.asarray(state["intermediates"]["hidden"]["__call__"][0], np.float64)

    delta = hidden(True, jax.random.key(5)) - hidden(False)  # [2, 32]
    cos = delta[0] @ delta[1] / (np.linalg.norm(delta[0]) * np.linalg.norm(delta[1]))
    assert abs(abs(cos) - 1) < 1e-4 and np.linalg.norm(delta[0]) > 1e-4


def test_expert_noise_statistics_and_the_draw_shared_by_experts():
    d, h, draws = 4, 16, 20_000
    x_row = jnp.array([1.0, -2.0, 0.5, 3.0])
    x = jnp.tile(x_row, (1, 2, 1, 1))  # [B=1, n=2, slots=1, d]: both experts see x_row
    experts = Experts(num_experts=2, hidden=h, noisy=True)
    params = jit_init(experts, jax.random.key(0), x, train=False)

    def pre_activation(key, train=True):
        _, state = experts.apply(
            params, x, train, rngs={"noise": key}, capture_intermediates=True, mutable=True
        )
        return state["intermediates"]["mlp"]["hidden"]["__call__"][0][:, 0, 0]  # [n, H]

    noiseless = np.asarray(pre_activation(jax.random.key(0), train=False), np.float64)
    keys = jax.random.split(jax.random.key(7), draws)
    out = np.asarray(jax.jit(jax.vmap(pre_activation))(keys), np.float64)  # [draws, n, H]
    delta = out - noiseless
    # One draw for all experts (Dopamine gives every expert the same key): equal inputs and
    # equal sigma (its init) make equal perturbations, although the experts' mu differ.
    np.testing.assert_allclose(delta[:, 0], delta[:, 1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(noiseless[0], noiseless[1])
    c, s2 = np.sqrt(2 / np.pi), 0.1**2 / d
    var = c * (c * float(jnp.sum(x_row**2)) + 1) * s2
    np.testing.assert_allclose(delta.mean(0), 0.0, atol=5 * np.sqrt(var / draws))
    np.testing.assert_allclose(delta[:, 0].var(0).mean(), var, rtol=0.06)
