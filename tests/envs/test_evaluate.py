"""Evaluation stopping rule (fake environments, hand-counted) and representation metrics."""

import jax.numpy as jnp
import numpy as np
import pytest

import offline_moe.envs.batched as batched
from offline_moe.envs.evaluate import EvalConfig, evaluate
from offline_moe.train import repr_metrics


class FakeBatchedAtari:
    """Env i's episodes all last LENGTHS[seed][i] steps and return that much (auto-reset)."""

    LENGTHS = {10: [3, 5], 20: [4, 4]}  # env seed -> episode length of each env

    def __init__(self, game, num_envs, protocol, seed, stack, max_episode_steps):
        assert num_envs == 2 and protocol == "dqn_replay"
        self.lengths = np.asarray(self.LENGTHS[seed])
        self.t = np.zeros(num_envs, int)

    def reset(self):
        return np.zeros((2, 84, 84, 4), np.uint8)

    stepped = 0  # env steps taken by all instances

    def step(self, actions, active=None):
        assert actions.shape == (2,)
        active = np.ones(2, bool) if active is None else active
        self.t += active  # envs outside `active` are not stepped
        FakeBatchedAtari.stepped += int(active.sum())
        lengths = self.lengths
        done = active & (self.t == lengths)
        self.t[done] = 0

        class S:
            pass

        s = S()
        s.obs = self.reset()
        s.done = done
        s.episode_return = np.where(done, lengths, 0).astype(np.float32)
        return s


def test_full_episodes_until_budget_hand_counted(monkeypatch):
    """The default backend ('auto') on a game the vector interface lacks falls back to the
    pool: finished envs are not stepped, and env_steps_per_s counts counted steps only."""
    from offline_moe.envs import vector

    monkeypatch.setattr(batched, "BatchedAtari", FakeBatchedAtari)
    monkeypatch.setattr(vector, "supports", lambda game, protocol: False)
    monkeypatch.setattr(FakeBatchedAtari, "stepped", 0)
    calls = []

    def act_fn(params, obs, keys, eps):
        calls.append((obs.shape, keys.shape, eps))
        return jnp.zeros(obs.shape[:2], jnp.int32)

    cfg = EvalConfig(steps=10, num_envs=2, epsilon=0.001)  # default backend: the pool
    keys = jnp.zeros((2, 2), jnp.uint32)
    out = evaluate(act_fn, None, game="Pong", cfg=cfg, keys=keys, env_seeds=[10, 20])
    # Seed 0 (lengths 3, 5): counted steps 2, 4, 6 (env 0 ends: 3, keeps going since 6 < 10),
    # 8, 10 (env 1 ends: 5; budget reached, env 1 stops), 11 (env 0 ends its 2nd episode: 3).
    # Seed 1 (4, 4): both end at t=4 (8 < 10, go on) and again at t=8 (16 >= 10, stop).
    assert out["episode_returns"] == [[3.0, 5.0, 3.0], [4.0, 4.0, 4.0, 4.0]]
    assert out["episodes"] == [3, 4]
    assert out["agent_steps"] == [11, 16]
    assert out["returns"] == pytest.approx([11 / 3, 4.0])
    assert len(calls) == 8  # the loop ends when the last counted episode ends
    # 11 + 16 counted steps; stepping every env in every call would be 8 x 4 = 32.
    assert FakeBatchedAtari.stepped == 27
    assert out["env_steps_per_s"] * out["eval_s"] == pytest.approx(27)
    assert calls[0] == ((2, 2, 84, 84, 4), (2, 2), 0.001)


def test_representation_metrics_known_answers():
    # units' mean |activation| = (2, 0, 1): one of three never fires -> 33.3% dormant
    f = jnp.array([[1.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    assert float(repr_metrics.dormant_pct(f)) == pytest.approx(100 / 3, rel=1e-5)
    # row norms sqrt(5) and 3
    assert float(repr_metrics.feature_norm(f)) == pytest.approx((5**0.5 + 3) / 2, rel=1e-5)
    # singular values (2, 1, 0.001): ratios (1, 0.5, 0.0005) -> 2 above 0.01
    g = jnp.diag(jnp.array([2.0, 1.0, 0.001]))
    assert int(repr_metrics.srank(g, 0.01)) == 2
    assert int(repr_metrics.srank(g, 0.0001)) == 3
    # cumulative mass (0.666, 0.9997, 1): 2 values reach 99%
    assert int(repr_metrics.srank_kumar(g, 0.01)) == 2
    out = repr_metrics.representation_metrics(
        g,
        {
            "expert_usage": jnp.array([0.25, 0.75]),
            "router_entropy": jnp.float32(0.5),
            "aux_loss": 0.0,
        },
    )
    assert out["srank"] == 2 and out["feature_dim"] == 3
    assert out["expert_usage"] == [0.25, 0.75] and out["router_entropy"] == 0.5
    assert "aux_loss" not in out


def test_worker_processes_give_identical_results():
    import jax

    def act_fn(params, obs, keys, eps):  # random actions from the keys: depends on the seed
        return jax.vmap(lambda k: jax.random.randint(k, (obs.shape[1],), 0, 3))(keys)

    # one env per seed, 90-step episodes (Pong scores its first points within them)
    cfg = EvalConfig(steps=100, num_envs=1, max_episode_steps=90, workers=0, backend="pool")
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    local = evaluate(act_fn, None, game="Pong", cfg=cfg, keys=keys, env_seeds=[1, 2])
    import dataclasses

    cfg2 = dataclasses.replace(cfg, workers=2)
    remote = evaluate(act_fn, None, game="Pong", cfg=cfg2, keys=keys, env_seeds=[1, 2])
    assert local["episode_returns"] == remote["episode_returns"]
    assert local["agent_steps"] == remote["agent_steps"] == [180, 180]
