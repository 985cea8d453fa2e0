"""Known answers for the per-example losses, worked out by hand in the comments."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offline_moe.learners import losses
from offline_moe.networks.heads import DuelingC51Head, dueling_aggregate

f32 = lambda x: jnp.asarray(x, jnp.float32)


def test_huber_td_known_answers():
    # 1) target = 0.5 + 0.9 * max(0, 4, 2) = 4.1; error = 4.1 - q[1] = 2.1 > 1:
    #    huber = 0.5 * 1^2 + 1 * (2.1 - 1) = 1.6
    # 2) terminal (discount 0): target = 1; error = 1 - 0.5 = 0.5: huber = 0.5 * 0.25 = 0.125
    # 3) target = -1 + 0.99 * 0 = -1; error = -1 - 3 = -4: huber = 0.5 + 3 = 3.5
    q_tm1 = f32([[1, 2, 3], [0.5, 0, 0], [3, -1, 0]])
    a_tm1 = jnp.array([1, 0, 0], jnp.int32)
    r_t = f32([0.5, 1.0, -1.0])
    discount_t = f32([0.9, 0.0, 0.99])
    q_t = f32([[0, 4, 2], [100, 100, 100], [0, 0, 0]])
    out = jax.vmap(losses.q_learning_huber)(q_tm1, a_tm1, r_t, discount_t, q_t)
    np.testing.assert_allclose(out, [1.6, 0.125, 3.5], rtol=1e-6)
    td = jax.vmap(losses.td_error_max)(q_tm1, a_tm1, r_t, discount_t, q_t)
    np.testing.assert_allclose(td, [2.1, 0.5, -4.0], rtol=1e-6)


def test_huber_td_gradient_stops_at_target():
    # d/dq_t must be zero (target network), d/dq_tm1[a] = -clip(error, -1, 1) = -1 here.
    q_tm1, q_t = f32([1, 2, 3]), f32([0, 4, 2])
    g_tm1, g_t = jax.grad(losses.q_learning_huber, argnums=(0, 4))(
        q_tm1, jnp.int32(1), f32(0.5), f32(0.9), q_t
    )
    np.testing.assert_allclose(g_tm1, [0, -1, 0])
    np.testing.assert_allclose(g_t, [0, 0, 0])


def test_huber_rank_is_asserted():
    with pytest.raises(AssertionError):
        losses.q_learning_huber(f32([[1, 2]]), jnp.int32(0), f32(0), f32(1), f32([[1, 2]]))


def test_cql_loss_closed_form():
    # logsumexp(1, 2, 3) - Q[0] = 3 + log(1 + e^-1 + e^-2) - 1 = 2.4076059644
    assert float(losses.cql_loss(f32([1, 2, 3]), jnp.int32(0))) == pytest.approx(2.4076059644)
    # data action is the max: 3 + log(1 + e^-1 + e^-2) - 3 = 0.4076059644
    assert float(losses.cql_loss(f32([1, 2, 3]), jnp.int32(2))) == pytest.approx(0.4076059644)
    # all equal: log(A)
    assert float(losses.cql_loss(f32([7, 7, 7, 7]), jnp.int32(3))) == pytest.approx(math.log(4))
    # gradient: softmax(q) - onehot(a)
    g = jax.grad(losses.cql_loss)(f32([0, 0]), jnp.int32(1))
    np.testing.assert_allclose(g, [0.5, -0.5], rtol=1e-6)


def test_c51_projection_known_answers():
    z = f32([-1, 0, 1])  # dz = 1
    p = f32([0.2, 0.3, 0.5])
    # r = 0.5, discount 1: Tz = (-0.5, 0.5, 1.5) -> clipped (-0.5, 0.5, 1.0).
    # -0.5 splits 0.2 half/half onto -1 and 0; 0.5 splits 0.3 onto 0 and 1; 1.0 keeps 0.5 on 1.
    # -> (0.1, 0.1 + 0.15, 0.15 + 0.5) = (0.1, 0.25, 0.65)
    out = losses.categorical_l2_project(0.5 + 1.0 * z, p, z)
    np.testing.assert_allclose(out, [0.1, 0.25, 0.65], atol=1e-6)
    # terminal (discount 0), r = 0.3: all mass at 0.3 -> 0.7 on atom 0, 0.3 on atom 1.
    out = losses.categorical_l2_project(0.3 + 0.0 * z, p, z)
    np.testing.assert_allclose(out, [0.0, 0.7, 0.3], atol=1e-6)
    # Far below the support: everything on the lowest atom.
    out = losses.categorical_l2_project(-5.0 + 0.5 * z, p, z)
    np.testing.assert_allclose(out, [1.0, 0.0, 0.0], atol=1e-6)


def test_c51_projection_preserves_mass_on_51_atoms():
    z = jnp.linspace(-10, 10, 51)
    p = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(0), (51,)))
    out = losses.categorical_l2_project(0.37 + 0.97 * z, p, z)
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-5)
    # The mean is preserved where nothing is clipped: E = 0.37 + 0.97 E_p[z]
    inner = losses.categorical_l2_project(0.37 + 0.5 * z, p, z)
    assert float(inner @ z) == pytest.approx(0.37 + 0.5 * float(p @ z), abs=1e-4)


def test_categorical_cross_entropy_known_answers():
    target = f32([0.1, 0.25, 0.65])
    # uniform logits: CE = log 3
    assert float(losses.categorical_cross_entropy(target, f32([0, 0, 0]))) == pytest.approx(
        math.log(3)
    )
    # logits (0, log 2, log 3): q = (1/6, 2/6, 3/6);
    # CE = 0.1 log 6 + 0.25 log 3 + 0.65 log 2 = 0.9043746
    ce = losses.categorical_cross_entropy(target, f32([0, math.log(2), math.log(3)]))
    assert float(ce) == pytest.approx(0.9043746, rel=1e-5)


def test_double_q_action_choice_uses_online_argmax():
    z = f32([-1, 0, 1])
    probs_t = f32([[0, 0, 1], [1, 0, 0], [0, 1, 0]])  # target net: action 0 has the best value
    q_online = f32([1, 3, 2])  # online net prefers action 1
    assert int(losses.double_q_action(q_online)) == 1
    # r = 0, discount 0.5 on row 1 (all mass at -1): Tz = -0.5 -> (0.5, 0.5, 0)
    target = losses.categorical_double_q_target(f32(0), f32(0.5), probs_t, q_online, z)
    np.testing.assert_allclose(target, [0.5, 0.5, 0.0], atol=1e-6)
    # A max over the TARGET net's values would have chosen row 0 -> (0, 0.5, 0.5): not this.
    loss = losses.categorical_double_q_loss(
        jnp.zeros((3, 3)), jnp.int32(2), f32(0), f32(0.5), probs_t, q_online, z
    )
    assert float(loss) == pytest.approx(math.log(3), rel=1e-6)
    # ties go to the lowest index
    assert int(losses.double_q_action(f32([2, 5, 5]))) == 1


def test_dueling_aggregation_known_answer():
    # value (1, 2); advantages ((1, 0), (3, 2)); mean advantage (2, 1)
    # logits = ((1+1-2, 2+0-1), (1+3-2, 2+2-1)) = ((0, 1), (2, 3))
    value = f32([[[1, 2]]])
    adv = f32([[[1, 0], [3, 2]]])
    np.testing.assert_allclose(dueling_aggregate(value, adv), [[[0, 1], [2, 3]]])


def test_dueling_c51_head_shapes_and_expectation():
    head = DuelingC51Head(num_actions=4, num_atoms=51)
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 8))
    params = head.init(jax.random.PRNGKey(0), x)
    out = head.apply(params, x)
    assert out["logits"].shape == (2, 4, 51)
    np.testing.assert_allclose(out["probabilities"].sum(-1), 1.0, rtol=1e-5)
    z = jnp.linspace(-10, 10, 51)
    np.testing.assert_allclose(out["q_values"], out["probabilities"] @ z, rtol=1e-5, atol=1e-5)
