"""Known answers for the MoE layers and the parameter counts, written out by hand."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offline_moe.networks import count_params, make_torso
from offline_moe.networks.moe import (
    SoftMoE,
    Top1MoE,
    importance_loss,
    load_loss,
    slots_per_expert,
    soft_moe_weights,
    top1_dispatch,
)
from tests.networks import jit_init

LN3 = math.log(3.0)


def _expert(params, e, x):
    """Expert e of a vmapped `Experts` block applied by hand: relu(x W1 + b1) W2 + b2."""
    mlp = params["experts"]["mlp"]
    h = np.maximum(x @ mlp["hidden"]["kernel"][e] + mlp["hidden"]["bias"][e], 0.0)
    return h @ mlp["out"]["kernel"][e] + mlp["out"]["bias"][e]


def test_slots_per_expert():
    # m = 121 (11x11 per_conv tokens): n = 1/2/4/8 -> p = 121/61/31/16 (the paper's numbers).
    assert [slots_per_expert(121, n) for n in (1, 2, 4, 8)] == [121, 61, 31, 16]
    assert slots_per_expert(1, 8) == 1  # per_samp: one token, one slot per expert
    assert slots_per_expert(6, 2, capacity_factor=2.0) == 6


def test_soft_moe_weights_hand_example():
    # Two tokens e1 = [1, 0], e2 = [0, 1]; two experts with one slot each; Phi columns
    # [ln 3, 0] and [0, ln 3]. Logits: token 0 -> (ln 3, 0), token 1 -> (0, ln 3).
    x = jnp.array([[[1.0, 0.0], [0.0, 1.0]]])  # [B=1, m=2, d=2]
    phi = jnp.array([[[LN3], [0.0]], [[0.0], [LN3]]])  # [d=2, n=2, p=1]
    dispatch, combine = soft_moe_weights(x, phi)
    # Dispatch (softmax over tokens, per slot): slot 0 takes 3/4 of token 0 and 1/4 of token 1.
    np.testing.assert_allclose(dispatch[0, :, :, 0], [[0.75, 0.25], [0.25, 0.75]], rtol=1e-6)
    # Combine (softmax over slots, per token): token 0 reads 3/4 from slot 0, 1/4 from slot 1.
    np.testing.assert_allclose(combine[0, :, :, 0], [[0.75, 0.25], [0.25, 0.75]], rtol=1e-6)
    slots = jnp.einsum("bmnp,bmd->bnpd", dispatch, x)
    np.testing.assert_allclose(slots[0, :, 0], [[0.75, 0.25], [0.25, 0.75]], rtol=1e-6)


def test_soft_moe_weights_normalised():
    kx, kp = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, (3, 7, 5))
    phi = jax.random.normal(kp, (5, 4, 2))
    dispatch, combine = soft_moe_weights(x, phi)
    assert dispatch.shape == combine.shape == (3, 7, 4, 2)
    np.testing.assert_allclose(dispatch.sum(axis=1), np.ones((3, 4, 2)), rtol=1e-5)  # over m
    np.testing.assert_allclose(combine.sum(axis=(2, 3)), np.ones((3, 7)), rtol=1e-5)  # over n*p


def test_soft_moe_zero_phi_slots_are_mean_token():
    x = jax.random.normal(jax.random.key(1), (2, 5, 3))  # B=2, m=5, d=3
    layer = SoftMoE(num_experts=2, expert_width=16)  # p = ceil(5 / 2) = 3
    params = jit_init(layer, jax.random.key(2), x)["params"]
    assert params["phi"].shape == (3, 2, 3)
    params = {**params, "phi": jnp.zeros_like(params["phi"])}

    # All logits 0: dispatch is 1/m everywhere, so every slot input is the sample's mean token.
    dispatch, combine = soft_moe_weights(x, params["phi"])
    np.testing.assert_allclose(dispatch, np.full((2, 5, 2, 3), 1 / 5), rtol=1e-6)
    np.testing.assert_allclose(combine, np.full((2, 5, 2, 3), 1 / 6), rtol=1e-6)
    slots = jnp.einsum("bmnp,bmd->bnpd", dispatch, x)
    mean_token = np.asarray(x).mean(axis=1)  # [B, d]
    np.testing.assert_allclose(slots, np.broadcast_to(mean_token[:, None, None], slots.shape), 1e-5)

    # Combine is 1/(n*p): every output token of sample b is mean_e f_e(mean token of b).
    y, aux = layer.apply({"params": params}, x)
    for b in range(2):
        expected = (_expert(params, 0, mean_token[b]) + _expert(params, 1, mean_token[b])) / 2
        np.testing.assert_allclose(y[b], np.broadcast_to(expected, (5, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(aux["expert_usage"], [0.5, 0.5], rtol=1e-6)
    np.testing.assert_allclose(aux["router_entropy"], math.log(2), rtol=1e-6)
    assert float(aux["aux_loss"]) == 0.0


def test_soft_moe_normalisation_scale_invariant_routing():
    # With l2 normalisation the routing ignores token scale; experts have zero biases at init
    # and ReLU is positively homogeneous, so scaling the tokens by 10 scales the output by 10.
    x = jax.random.normal(jax.random.key(3), (2, 6, 4))
    layer = SoftMoE(num_experts=3, expert_width=8, normalize=True)
    variables = jit_init(layer, jax.random.key(4), x)
    assert variables["params"]["scale"].shape == ()
    apply = jax.jit(layer.apply)
    y1, _ = apply(variables, x)
    y10, _ = apply(variables, 10.0 * x)
    np.testing.assert_allclose(y10, 10.0 * y1, rtol=1e-4, atol=1e-5)
    # Without normalisation the routing sharpens with scale: the same check fails.
    plain = SoftMoE(num_experts=3, expert_width=8)
    variables = jit_init(plain, jax.random.key(4), x)
    apply = jax.jit(plain.apply)
    y1, _ = apply(variables, x)
    y10, _ = apply(variables, 10.0 * x)
    assert not np.allclose(y10, 10.0 * y1, rtol=1e-3)


def test_top1_dispatch_hand_example():
    gates = jnp.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]])  # [B=1, m=4, n=2]
    dispatch, expert_index, gate = top1_dispatch(gates, capacity=2)
    # Tokens pick experts 0, 1, 0, 0. Expert 0 keeps tokens 0 and 2 (capacity 2, token order);
    # token 3 overflows and is dropped.
    np.testing.assert_array_equal(expert_index[0], [0, 1, 0, 0])
    np.testing.assert_allclose(gate[0], [0.9, 0.8, 0.6, 0.7])
    expected = np.zeros((4, 2, 2))
    expected[0, 0, 0] = 1  # token 0 -> expert 0, slot 0
    expected[1, 1, 0] = 1  # token 1 -> expert 1, slot 0
    expected[2, 0, 1] = 1  # token 2 -> expert 0, slot 1
    np.testing.assert_array_equal(dispatch[0], expected)  # token 3: all zero


@pytest.mark.parametrize("capacity_factor,kept", [(1.0, 3), (2.0, 6)])
def test_top1_drops_tokens_beyond_capacity(capacity_factor, kept):
    # Six positive tokens; router weights send all of them to expert 0 with gate ~1.
    # n = 2, capacity ceil(6 * cf / 2): 3 -> tokens 3, 4, 5 output zeros; 6 -> none dropped.
    x = jnp.stack([jnp.arange(1.0, 7.0), jnp.ones(6)], axis=-1)[None]  # [B=1, m=6, d=2]
    layer = Top1MoE(num_experts=2, expert_width=16, capacity_factor=capacity_factor)
    params = jit_init(layer, jax.random.key(5), x)["params"]
    params = {**params, "router": {"kernel": jnp.array([[5.0, -5.0], [5.0, -5.0]])}}
    y, aux = jax.jit(layer.apply)({"params": params}, x)

    logits = np.asarray(x[0]) @ np.asarray(params["router"]["kernel"])  # [6, 2]
    gate0 = np.exp(logits[:, 0]) / np.exp(logits).sum(-1)  # prob of expert 0, ~1
    for i in range(6):
        if i < kept:
            expected = _expert(params, 0, np.asarray(x[0, i])) * gate0[i]
            np.testing.assert_allclose(y[0, i], expected, rtol=1e-5, atol=1e-6)
            assert np.abs(y[0, i]).sum() > 0
        else:
            np.testing.assert_array_equal(y[0, i], [0.0, 0.0])
    np.testing.assert_allclose(aux["expert_usage"], [1.0, 0.0])
    np.testing.assert_allclose(aux["dropped_fraction"], 1 - kept / 6, atol=1e-6)


def test_importance_and_load_losses():
    m, n = 4, 2
    uniform = jnp.full((1, m, n), 0.5)
    assert float(importance_loss(uniform)) == pytest.approx(0.0, abs=1e-7)
    # All mass on expert 0: importance [m, 0], mean m/2, std m/2 -> CV^2 = 1.
    onehot = jnp.zeros((1, m, n)).at[..., 0].set(1.0)
    assert float(importance_loss(onehot)) == pytest.approx(1.0, rel=1e-5)
    # Equal logits: every expert equally likely to be picked -> equal load -> 0.
    assert float(load_loss(jnp.zeros((1, m, n)), noise_std=0.5)) == pytest.approx(0.0, abs=1e-7)
    # Expert 0 far ahead: P(pick 0) ~ 1, P(pick 1) ~ 0 -> load [1, 0] -> CV^2 = 1.
    skewed = jnp.zeros((1, m, n)).at[..., 0].set(10.0)
    assert float(load_loss(skewed, noise_std=0.5)) == pytest.approx(1.0, rel=1e-4)


def test_top1_aux_loss_weights():
    x = jax.random.normal(jax.random.key(6), (2, 9, 4))
    off = Top1MoE(num_experts=3, expert_width=8)
    variables = jit_init(off, jax.random.key(7), x)
    _, aux = jax.jit(off.apply)(variables, x)
    assert float(aux["aux_loss"]) == 0.0  # default: balancing losses off
    on = Top1MoE(num_experts=3, expert_width=8, importance_weight=2.0, load_weight=0.5)
    _, aux_on = jax.jit(on.apply)(variables, x)
    expected = 2.0 * aux["importance_loss"] + 0.5 * aux["load_loss"]
    np.testing.assert_allclose(aux_on["aux_loss"], expected, rtol=1e-6)
    assert float(aux_on["aux_loss"]) > 0
    grads = jax.jit(jax.grad(lambda v: on.apply(v, x)[1]["aux_loss"]))(variables)
    router_grad = grads["params"]["router"]["kernel"]
    assert np.all(np.isfinite(router_grad)) and np.abs(router_grad).sum() > 0


@pytest.mark.parametrize("weights", [(0.0, 0.0), (1.0, 0.5)])
def test_top1_gradient_is_finite_when_the_router_splits_a_sample_evenly(weights):
    """All-zero tokens (a sparse board after a ReLU) give equal logits, so the importance and
    the load are equal over experts: their spread is 0, where a square root's derivative is
    infinite. The gradient stays finite, with the balancing losses off (a zero weight used to
    carry 0 * NaN into the router) and on."""
    x = jnp.zeros((2, 6, 4)).at[1].set(jax.random.normal(jax.random.key(1), (6, 4)))
    layer = Top1MoE(num_experts=2, expert_width=8, importance_weight=weights[0],
                    load_weight=weights[1])  # fmt: skip
    variables = jax.jit(layer.init)(jax.random.key(2), x)

    def loss(v):
        y, aux = layer.apply(v, x)
        return jnp.sum(y**2) + aux["aux_loss"]

    grads = jax.jit(jax.grad(loss))(variables)
    for leaf in jax.tree_util.tree_leaves(grads):
        assert np.all(np.isfinite(leaf))
    _, aux = jax.jit(layer.apply)(variables, x)
    assert np.isfinite(float(aux["importance_loss"])) and np.isfinite(float(aux["load_loss"]))


def test_normalized_soft_moe_gradient_is_finite_on_all_zero_tokens():
    """`normalize=True` divides tokens by their norm; an all-zero token (common on sparse
    boards) must give the paper's value (0 / eps = 0) and a finite gradient (not 0 / 0)."""
    from offline_moe.networks.moe import l2_normalize

    x = jnp.zeros((2, 5, 4)).at[0, :2].set(jax.random.normal(jax.random.key(3), (2, 4)))
    np.testing.assert_allclose(
        jax.jit(l2_normalize)(x),
        x / (np.linalg.norm(np.asarray(x), axis=-1, keepdims=True) + 1e-6),
        rtol=1e-6,
    )  # fmt: skip
    layer = SoftMoE(num_experts=2, expert_width=8, normalize=True)
    variables = jax.jit(layer.init)(jax.random.key(4), x)
    grads = jax.jit(jax.grad(lambda v, x: jnp.sum(layer.apply(v, x)[0] ** 2), argnums=(0, 1)))(
        variables, x
    )
    for leaf in jax.tree_util.tree_leaves(grads):
        assert np.all(np.isfinite(leaf))


# ----------------------------------------------------------------------------- parameter counts

ENCODER_PARAMS = {
    # Impala: per stack conv 3x3 (c_in -> c) + 2 blocks x 2 convs 3x3 (c -> c), all with bias.
    "impala": (9 * 4 * 16 + 16)
    + 4 * (9 * 16 * 16 + 16)
    + (9 * 16 * 32 + 32)
    + 4 * (9 * 32 * 32 + 32)
    + (9 * 32 * 32 + 32)
    + 4 * (9 * 32 * 32 + 32),  # = 97,744
    # Nature: 8x8x4->32, 4x4x32->64, 3x3x64->64, with bias.
    "nature": (64 * 4 * 32 + 32) + (16 * 32 * 64 + 64) + (9 * 64 * 64 + 64),  # = 77,984
}


def _param_tree(torso):
    x = jax.ShapeDtypeStruct((1, 84, 84, 4), jnp.float32)
    return jax.eval_shape(lambda x: torso.init(jax.random.key(0), x, train=False), x)["params"]


def test_encoder_param_counts():
    assert ENCODER_PARAMS == {"impala": 97_744, "nature": 77_984}
    for encoder, expected in ENCODER_PARAMS.items():
        tree = _param_tree(make_torso("baseline", encoder=encoder))
        encoder_tree = {k: v for k, v in tree.items() if k != "hidden"}
        assert count_params(encoder_tree) == expected


@pytest.mark.parametrize("encoder,c", [("impala", 32), ("nature", 64)])
@pytest.mark.parametrize("n", [1, 8])
def test_param_counts_closed_forms(encoder, c, n):
    hw, H = 121, 512  # 11x11 map, expert width 512
    d = c  # per_conv tokens
    p = math.ceil(hw / n)

    baseline = _param_tree(make_torso("baseline", encoder=encoder, width=n))
    assert count_params(baseline["hidden"]) == (hw * c + 1) * 512 * n

    soft = _param_tree(make_torso("soft_moe", encoder=encoder, num_experts=n))
    assert soft["moe"]["phi"].shape == (d, n, p)
    assert count_params(soft["moe"]["phi"]) == d * n * p
    assert count_params(soft["moe"]["experts"]) == n * (d * H + H + H * d + d)
    assert count_params(soft) == ENCODER_PARAMS[encoder] + d * n * p + n * (2 * d * H + H + d)

    top1 = _param_tree(make_torso("top1_moe", encoder=encoder, num_experts=n))
    assert count_params(top1["moe"]["router"]) == d * n
    assert count_params(top1["moe"]["experts"]) == n * (d * H + H + H * d + d)


def test_param_counts_paper_numbers():
    # Closed forms for the paper's torsos (Obando-Ceron et al. 2024, Sec. 4 and App. B; Dopamine
    # labs/moes): Impala per_conv (d = 32): one expert = 33,312 params, Phi = 4,096 at n = 8;
    # CNN expert 66,112; baseline penultimate layer scaled x8 15,863,808, CNN 3,965,440. The
    # unscaled Impala layer is (3872 + 1) * 512 = 1,982,976, consistent with the x8 figure
    # (3872 + 1) * 4096.
    impala = _param_tree(make_torso("soft_moe", encoder="impala", num_experts=8))
    assert count_params(impala["moe"]["experts"]) == 8 * 33_312
    assert count_params(impala["moe"]["phi"]) == 4_096
    nature = _param_tree(make_torso("soft_moe", encoder="nature", num_experts=1))
    assert count_params(nature["moe"]["experts"]) == 66_112
    assert count_params(_param_tree(make_torso("baseline"))["hidden"]) == 1_982_976
    assert count_params(_param_tree(make_torso("baseline", width=8))["hidden"]) == 15_863_808
    nature_baseline = _param_tree(make_torso("baseline", encoder="nature"))
    assert count_params(nature_baseline["hidden"]) == 3_965_440
