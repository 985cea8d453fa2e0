"""Optional bfloat16 compute: matmuls and convolutions in bf16, parameters and losses in f32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offline_moe.configs import cql
from offline_moe.learners import LearnerConfig, make_learner
from offline_moe.networks import make_torso


def learners():
    torso = make_torso("baseline", encoder="nature", width=0.0625)  # convs + Dense(32)
    f32 = make_learner(LearnerConfig(agent="cql_c51"), torso, num_actions=3)
    bf16 = make_learner(LearnerConfig(agent="cql_c51", compute_dtype="bfloat16"), torso, 3)
    return f32, bf16


def test_default_is_float32():
    assert cql.get_config("smoke").learner.compute_dtype == "float32"
    f32, bf16 = learners()
    assert f32.network.compute_dtype is None and bf16.network.compute_dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="compute_dtype 'fp16' unknown; valid: float32, bfloat16"):
        LearnerConfig(compute_dtype="fp16")


def test_bf16_forward_and_update_keep_float32_params_and_outputs():
    f32, bf16 = learners()
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.integers(0, 255, (4, 84, 84, 4), dtype=np.uint8))
    state = bf16.init(jax.random.PRNGKey(0), obs)
    assert {x.dtype for x in jax.tree.leaves(state.params)} == {jnp.dtype("float32")}
    jaxpr = str(jax.make_jaxpr(lambda p: bf16.apply(p, obs, train=False))(state.params))
    assert "conv_general_dilated" in jaxpr and "bf16[" in jaxpr  # the convs run in bf16
    out16 = bf16.apply(state.params, obs, train=False)
    out32 = f32.apply(state.params, obs, train=False)  # same parameters, float32 compute
    assert out16["q_values"].dtype == jnp.float32 and out16["probabilities"].dtype == jnp.float32
    # bf16 keeps 8 bits of mantissa: the Q-values agree to about 1%.
    np.testing.assert_allclose(out16["q_values"], out32["q_values"], rtol=0.03, atol=0.03)
    batch = {
        "obs": obs,
        "action": jnp.array([0, 1, 2, 0], jnp.int32),
        "reward": jnp.array([1.0, 0.0, -1.0, 0.0], jnp.float32),
        "discount": jnp.full((4,), 0.99, jnp.float32),
        "next_obs": obs[::-1],
        "next_action": jnp.zeros((4,), jnp.int32),
    }
    new, metrics = jax.jit(bf16.update)(state, batch)
    assert metrics["loss"].dtype == jnp.float32 and np.isfinite(float(metrics["loss"]))
    assert {x.dtype for x in jax.tree.leaves(new.params)} == {jnp.dtype("float32")}
    moved = [
        float(jnp.max(jnp.abs(a - b)))
        for a, b in zip(*map(jax.tree.leaves, (new.params, state.params)))
    ]
    assert max(moved) > 0  # gradients reached the float32 parameters through the casts
