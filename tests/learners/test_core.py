"""Learner smoke tests on fake data with a tiny stand-in torso."""

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offline_moe.learners import (
    LearnerConfig,
    init_seeds,
    make_act_fn,
    make_learner,
    make_train_fn,
    seed_keys,
)
from offline_moe.networks import make_torso
from offline_moe.networks.moe import router_update_size
from offline_moe.replay.device import DeviceReplay


class TinyTorso(nn.Module):
    """4x average-pool + Dense(16): cheap enough for many updates on CPU."""

    @nn.compact
    def __call__(self, x, *, train):
        del train
        x = nn.avg_pool(x, (8, 8), (8, 8))  # [B, 10, 10, C]
        h = nn.relu(nn.Dense(16)(x.reshape(x.shape[0], -1)))
        return h, {"aux_loss": 0.01 * jnp.mean(h), "mean_act": jnp.mean(h)}


def fake_arrays(num_rows=64, num_actions=3, seed=0):
    rng = np.random.default_rng(seed)
    episode_start = np.zeros(num_rows, bool)
    episode_start[::16] = True
    terminal = np.zeros(num_rows, bool)
    terminal[15::16] = True
    arrays = {
        "observation": rng.integers(0, 255, (num_rows, 84, 84), dtype=np.uint8),
        "action": rng.integers(0, num_actions, num_rows).astype(np.int32),
        "reward": rng.integers(0, 2, num_rows).astype(np.float32),
        "terminal": terminal,
        "episode_start": episode_start,
        "observation_only": np.zeros(num_rows, bool),
    }
    return arrays, {"num_actions": num_actions}


def fake_batch(b=4, a=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "obs": jnp.asarray(rng.integers(0, 255, (b, 84, 84, 4), dtype=np.uint8)),
        "action": jnp.asarray(rng.integers(0, a, b), jnp.int32),
        "reward": jnp.asarray(rng.normal(size=b), jnp.float32),
        "discount": jnp.full((b,), 0.99, jnp.float32),
        "next_obs": jnp.asarray(rng.integers(0, 255, (b, 84, 84, 4), dtype=np.uint8)),
        "next_action": jnp.zeros((b,), jnp.int32),
    }


def leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("agent", ["cql", "cql_c51"])
def test_params_move_and_target_syncs_exactly_at_period(agent):
    cfg = LearnerConfig(agent=agent, learning_rate=1e-2, target_update_period=3, num_atoms=11)
    learner = make_learner(cfg, TinyTorso(), num_actions=3)
    batch = fake_batch()
    state0 = learner.init(jax.random.PRNGKey(0), batch["obs"])
    assert leaves_equal(state0.params, state0.target_params)
    update = jax.jit(learner.update)
    s1, m1 = update(state0, batch)
    s2, _ = update(s1, batch)
    s3, _ = update(s2, batch)
    s4, _ = update(s3, batch)
    assert int(s3.step) == 3
    # params move every step
    assert not leaves_equal(s1.params, state0.params)
    assert not leaves_equal(s2.params, s1.params)
    # target fixed at the init params until step 3, equal to params right after update 3
    assert leaves_equal(s1.target_params, state0.params)
    assert leaves_equal(s2.target_params, state0.params)
    assert leaves_equal(s3.target_params, s3.params)
    # then fixed again
    assert leaves_equal(s4.target_params, s3.params)
    assert not leaves_equal(s4.target_params, s4.params)
    # metrics: finite, the torso's aux loss is part of the loss and its extra scalars are logged
    for name in ("loss", "td_loss", "cql_loss", "aux_loss", "q_data", "grad_norm"):
        assert np.isfinite(float(m1[name])), name
    assert float(m1["aux_loss"]) > 0
    assert "torso/mean_act" in m1
    total = float(m1["td_loss"]) + 0.1 * float(m1["cql_loss"]) + float(m1["aux_loss"])
    assert float(m1["loss"]) == pytest.approx(total, rel=1e-5)


def test_fused_scan_equals_single_updates_and_seeds_differ():
    arrays, meta = fake_arrays()
    replay = DeviceReplay.from_arrays(arrays, meta, stack=4, n_step=1, gamma=0.99)
    cfg = LearnerConfig(agent="cql", learning_rate=1e-3, target_update_period=2)
    learner = make_learner(cfg, TinyTorso(), num_actions=3)
    obs = jnp.zeros((1, 84, 84, 4), jnp.uint8)
    state = init_seeds(learner, seed_keys(7, 2), obs)
    # seeds get different inits
    seed0 = jax.tree.map(lambda x: x[0], state.params)
    seed1 = jax.tree.map(lambda x: x[1], state.params)
    assert not leaves_equal(seed0, seed1)
    train3 = make_train_fn(learner, batch_size=4, num_steps=3)
    ref = jax.tree.map(np.asarray, state)
    out, metrics = train3(state, replay)
    assert metrics["loss"].shape == (2,)
    assert out.step.tolist() == [3, 3]
    # the same three updates done one by one on seed 0 (same keys, same samples)
    from offline_moe.learners.core import update_key
    from offline_moe.replay.device import SAMPLE_STREAM

    s = jax.tree.map(lambda x: jnp.asarray(x[0]), ref)
    sample = jax.jit(lambda s: replay.sample(jax.random.fold_in(update_key(s), SAMPLE_STREAM), 4))
    update = jax.jit(learner.update)  # one compile, not one per operation
    for _ in range(3):
        s, _ = update(s, sample(s))
    for x, y in zip(jax.tree.leaves(out.params), jax.tree.leaves(s.params)):
        np.testing.assert_allclose(x[0], y, rtol=1e-5, atol=1e-6)
    # the accelerator layout (rolled scan, vmap over seeds) computes the same updates
    gpu_style = make_train_fn(learner, batch_size=4, num_steps=3, unroll=1, seed_axis="vmap")
    out_vmap, _ = gpu_style(jax.tree.map(jnp.asarray, ref), replay)
    for x, y in zip(jax.tree.leaves(out_vmap.params), jax.tree.leaves(out.params)):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    # 1-seed runs with base seeds 7 and 8 reproduce seeds 0 and 1 of the 2-seed run
    for s in (0, 1):
        single = init_seeds(learner, seed_keys(7 + s, 1), obs)
        single, _ = train3(single, replay)
        for x, y in zip(jax.tree.leaves(single.params), jax.tree.leaves(out.params)):
            np.testing.assert_allclose(x[0], y[s], rtol=1e-5, atol=1e-6)


def test_act_is_greedy_at_eps_zero_and_random_at_eps_one():
    learner = make_learner(LearnerConfig(agent="cql"), TinyTorso(), num_actions=3)
    batch = fake_batch(b=6)
    state = init_seeds(learner, seed_keys(0, 2), batch["obs"][:1])
    act = make_act_fn(learner)
    obs = jnp.stack([batch["obs"], batch["obs"]])  # [S, E, ...]
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    greedy = act(state.params, obs, keys, 0.0)
    q = jax.vmap(lambda p: learner.apply(p, batch["obs"], train=False)["q_values"])(state.params)
    np.testing.assert_array_equal(greedy, np.argmax(q, -1))
    rand = np.concatenate(
        [
            np.asarray(act(state.params, obs, jax.random.split(jax.random.PRNGKey(i), 2), 1.0))
            for i in range(10)
        ]
    )
    assert set(rand.ravel().tolist()) == {0, 1, 2}


def test_cpu_scan_steps_are_capped_divisors():
    from offline_moe.learners import CPU_UNROLL, effective_scan_steps

    assert jax.default_backend() == "cpu"
    ks = (500, 62_500, 40, 21, 7)
    assert [effective_scan_steps(k, 20) for k in ks] == [20, 20, 20, 7, 7]
    assert [effective_scan_steps(k, 4) for k in ks] == [4, 4, 4, 3, 1]
    assert [effective_scan_steps(k) for k in ks] == [
        effective_scan_steps(k, CPU_UNROLL) for k in ks
    ]
    with pytest.raises(ValueError, match="cpu_unroll"):
        effective_scan_steps(500, 21)


def test_unrolled_calls_have_no_while_loop_and_chunks_equal_one_call():
    # lax.scan(unroll=True) of length 1 is a rolled while loop (slow on XLA:CPU): K = 1 must
    # trace to straight-line updates, like any full unroll.
    arrays, meta = fake_arrays()
    replay = DeviceReplay.from_arrays(arrays, meta, stack=4, n_step=1, gamma=0.99)
    learner = make_learner(LearnerConfig(agent="cql", target_update_period=2), TinyTorso(), 3)
    state = init_seeds(learner, seed_keys(0, 1), jnp.zeros((1, 84, 84, 4), jnp.uint8))
    one, three = (make_train_fn(learner, batch_size=4, num_steps=k) for k in (1, 3))
    loops = lambda fn: re.findall(r"\b(?:scan|while)\[", str(jax.make_jaxpr(fn)(state, replay)))  # noqa: E731
    assert loops(one) == loops(three) == []
    assert loops(make_train_fn(learner, 4, 3, unroll=1)) == ["scan["]
    # three calls of one update = one call of three (same keys, same samples, same order)
    ref = jax.tree.map(np.asarray, state)
    out3, m3 = three(jax.tree.map(jnp.asarray, ref), replay)
    out1, losses = jax.tree.map(jnp.asarray, ref), []
    for _ in range(3):
        out1, m1 = one(out1, replay)
        losses.append(float(m1["loss"][0]))
    for x, y in zip(jax.tree.leaves(out1), jax.tree.leaves(out3)):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    assert float(m3["loss"][0]) == pytest.approx(np.mean(losses), rel=1e-5)


def test_router_update_size_hand_example():
    params = {
        "torso": {"phi": jnp.full((2, 2), 2.0), "dense": {"kernel": jnp.ones((3,))}},
        "router": {"kernel": jnp.ones((4,))},
    }
    updates = {
        "torso": {"phi": jnp.full((2, 2), 0.5), "dense": {"kernel": jnp.full((3,), 9.0)}},
        "router": {"kernel": jnp.zeros((4,))},
    }
    got = router_update_size(params, updates)
    # router leaves: phi (4 elements of 0.5 on 2.0) and router/kernel (4 of 0 on 1.0);
    # the dense kernel is not a router parameter.
    assert float(got["router_update_rms"]) == pytest.approx(np.sqrt(4 * 0.25 / 8))
    assert float(got["router_update_ratio"]) == pytest.approx(1.0 / np.sqrt(16 + 4))
    assert (
        router_update_size({"dense": {"kernel": jnp.ones(3)}}, {"dense": {"kernel": jnp.ones(3)}})
        == {}
    )
    zero = {"phi": jnp.zeros((2,))}
    assert float(router_update_size(zero, zero)["router_update_ratio"]) == 0.0


@pytest.mark.parametrize("name", ["soft_moe", "top1_moe", "soft_moe_uniform", "baseline"])
def test_update_logs_the_router_update_it_applied(name):
    """torso/router_update_* are the size of the step the optimizer took on the router."""
    kwargs = {"encoder": "minatar"}
    if name != "baseline":
        kwargs |= {"num_experts": 2, "expert_width": 8}
    torso = make_torso(name, **kwargs)
    learner = make_learner(LearnerConfig(agent="cql", learning_rate=1e-3), torso, num_actions=3)
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.random((4, 10, 10, 4)) < 0.3)
    batch = {**fake_batch(), "obs": obs, "next_obs": obs[::-1]}
    state0 = learner.init(jax.random.PRNGKey(0), obs)
    state1, metrics = jax.jit(learner.update)(state0, batch)
    if name == "baseline":
        assert not any(k.startswith("torso/router_update") for k in metrics)
        return
    before = [x for p, x in jax.tree_util.tree_leaves_with_path(state0.params) if _router(p)]
    after = [x for p, x in jax.tree_util.tree_leaves_with_path(state1.params) if _router(p)]
    assert len(before) == 1  # Soft MoE's phi or Top-1's router kernel
    delta = np.asarray(after[0], np.float64) - np.asarray(before[0], np.float64)
    rms = np.sqrt(np.mean(delta**2))
    assert float(metrics["torso/router_update_rms"]) == pytest.approx(rms, rel=1e-4)
    if name == "soft_moe_uniform":  # Phi is held at zero: no update, ratio 0 (not 0/0)
        assert rms == 0.0
        assert float(metrics["torso/router_update_ratio"]) == 0.0
    else:  # Adam's first step moves every element with a gradient well above eps by ~lr
        assert 1e-5 < rms <= 1.01e-3
        ratio = np.linalg.norm(delta) / np.linalg.norm(np.asarray(before[0], np.float64))
        assert float(metrics["torso/router_update_ratio"]) == pytest.approx(ratio, rel=1e-4)


def _router(path):
    return any(getattr(k, "key", None) in ("phi", "router") for k in path)
