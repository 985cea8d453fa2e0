"""The MinAtar behaviour DQN (`configs/dqn.py`) and its replay logged as DQN-Replay checkpoints."""

import gzip
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offline_moe.configs import dqn
from offline_moe.data import dqn_replay
from offline_moe.data.ingest import ingest
from offline_moe.learners import online
from offline_moe.train import online as train_online
from offline_moe.train.replay_logs import replay_dir

GAME = "MinAtarBreakout"


def test_config_is_minatars_dqn():
    """Every value of MinAtar's examples/dqn.py (constants at its top), and the two scaled."""
    c = dqn.get_config(f"game={GAME}")
    lr = c.learner
    assert (lr.batch_size, lr.learning_rate, lr.rmsprop_decay, lr.rmsprop_eps) == (
        32,
        0.00025,
        0.95,
        0.01,
    )
    assert (lr.optimizer, lr.gamma, lr.target_update_period) == ("rmsprop_centered", 0.99, 1000)
    assert (lr.epsilon_train, lr.epsilon_decay_steps, lr.n_step, lr.num_atoms) == (
        0.1,
        100_000,
        1,
        1,
    )
    assert not (lr.dueling or lr.double_q or lr.noisy or c.replay.prioritized)
    assert (c.replay.min_replay, c.replay.capacity, c.replay.clip_rewards) == (5000, 100_000, False)
    assert c.torso.builtin.encoder == "minatar" and c.torso.builtin.width == 1.0
    # Scaled: 1M agent steps, an update every 4 steps, 10 logged checkpoints.
    assert (c.total_steps, lr.update_period, c.iteration_steps) == (1_000_000, 4, 100_000)
    with pytest.raises(ValueError, match="not a MinAtar game"):
        dqn.get_config("game=Pong")


def test_minatar_epsilon_schedule():
    """world_dynamics: uniform random before REPLAY_START_SIZE, then 1 -> 0.1 over 100k."""
    cfg = train_online.agent_config(dqn.get_config(f"game={GAME}"), 6)
    agent = online.OnlineAgent(cfg)
    for t, eps in [
        (0, 1.0),
        (4999, 1.0),
        (5000, 1.0),
        (55_000, 0.55),
        (105_000, 0.1),
        (10**6, 0.1),
    ]:
        assert float(agent.epsilon(t)) == pytest.approx(eps, abs=1e-6), t
    # One update every 4 agent steps from step 5000 on.
    assert [t for t in range(4990, 5010) if agent.trains_at(t)] == [5000, 5004, 5008]


def _torch_centered_rmsprop(params, grads_seq, lr, alpha, eps):
    """torch.optim.RMSprop(centered=True, momentum=0) step by step, in numpy float64."""
    p = params.astype(np.float64)
    v = np.zeros_like(p)
    g_avg = np.zeros_like(p)
    for g in grads_seq:
        v = alpha * v + (1 - alpha) * g * g
        g_avg = alpha * g_avg + (1 - alpha) * g
        p = p - lr * g / (np.sqrt(v - g_avg**2) + eps)
    return p


def test_rmsprop_matches_torch_centered_rmsprop():
    cfg = train_online.agent_config(dqn.get_config(f"game={GAME}"), 6)
    opt = online.make_optimizer(cfg)
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(3, 4)).astype(np.float32)
    grads = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(3)]
    params, state = jnp.asarray(p0), opt.init(jnp.asarray(p0))
    for g in grads:
        updates, state = opt.update(jnp.asarray(g), state, params)
        params = params + updates
    want = _torch_centered_rmsprop(p0, grads, 0.00025, 0.95, 0.01)
    np.testing.assert_allclose(np.asarray(params), want, rtol=1e-5, atol=1e-6)


def test_dqn_update_matches_a_hand_written_reference():
    """One sgd_step of the dqn agent == grad of mean Huber(r + g max_a Q_target(s') - Q(s, a))
    followed by torch's centered RMSprop step (numpy)."""
    cfg = train_online.agent_config(dqn.get_config(f"game={GAME}"), 6)
    learner = online.OnlineAgent(cfg).learner
    rng = np.random.default_rng(1)
    obs = jnp.asarray(rng.random((5, 10, 10, 4)) < 0.2)
    next_obs = jnp.asarray(rng.random((5, 10, 10, 4)) < 0.2)
    batch = {
        "obs": obs,
        "action": jnp.asarray([0, 1, 5, 3, 2], jnp.int32),
        "reward": jnp.asarray([0.0, 1.0, 0.0, 3.0, 1.0], jnp.float32),
        "discount": jnp.asarray([0.99, 0.99, 0.0, 0.99, 0.99], jnp.float32),
        "next_obs": next_obs,
    }
    state = learner.init(jax.random.key(0), obs[:1])
    # A target network different from the online one, so max_a Q_target is what is used.
    target = jax.tree.map(lambda x: x * 1.5, state.params)
    state = state.replace(target_params=target)

    def reference_loss(params):
        q = learner.apply(params, obs.astype(jnp.float32), train=True)["q_values"]
        q_next = learner.apply(target, next_obs.astype(jnp.float32), train=True)["q_values"]
        y = batch["reward"] + batch["discount"] * q_next.max(axis=1)
        err = y - q[jnp.arange(5), batch["action"]]
        huber = jnp.where(jnp.abs(err) <= 1, 0.5 * err**2, jnp.abs(err) - 0.5)
        return huber.mean()

    grads = jax.grad(reference_loss)(state.params)
    new_state, _, metrics = learner.sgd_step(state, batch, jax.random.key(1))
    assert float(metrics["loss"]) == pytest.approx(float(reference_loss(state.params)), rel=1e-6)
    flat_p = jax.tree_util.tree_leaves_with_path(state.params)
    for (path, p), g, new in zip(flat_p, jax.tree.leaves(grads), jax.tree.leaves(new_state.params)):
        want = _torch_centered_rmsprop(np.asarray(p), [np.asarray(g)], 0.00025, 0.95, 0.01)
        np.testing.assert_allclose(np.asarray(new), want, rtol=1e-5, atol=1e-7, err_msg=str(path))


# ---------------------------------------------------------------------------------------------
# Tiny end-to-end runs: 600 agent steps, 3 checkpoints of 200.


def _tiny():
    c = dqn.get_config(f"smoke,game={GAME}")
    c.replay.capacity = 1024  # every row stays in the device replay: the reference to compare
    c.replay.min_replay = 100
    return c


def _read_logs(workdir):
    d = replay_dir(str(workdir), GAME, 0)
    out = {}
    for field in dqn_replay.STORE_FIELDS:
        parts = []
        for k in dqn_replay.list_checkpoints(d):
            with gzip.open(dqn_replay.store_path(d, field, k)) as f:
                parts.append(np.load(f))
        out[field] = parts
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dqn") / "run"
    train_online.train_and_evaluate(_tiny(), str(workdir), log=lambda *_: None)
    return workdir


@pytest.mark.slow
def test_logged_checkpoints_are_the_transitions_the_agent_experienced(uninterrupted):
    logs = _read_logs(uninterrupted)
    assert [len(a) for a in logs["action"]] == [200, 200, 200]
    state, meta = train_online.restore_state(str(uninterrupted))
    replay = jax.tree.map(lambda x: np.asarray(x[0]), state.replay)
    assert int(replay.count) == 600
    obs = np.concatenate(logs["observation"])
    assert obs.dtype == np.bool_ and obs.shape == (600, 10, 10, 4)
    np.testing.assert_array_equal(obs, replay.frames[:600])
    np.testing.assert_array_equal(np.concatenate(logs["action"]), replay.action[:600])
    # Row 599's reward and terminal reach the device replay with the next (never taken) step.
    np.testing.assert_array_equal(np.concatenate(logs["reward"])[:599], replay.reward[:599])
    terminal = np.concatenate(logs["terminal"]).astype(bool)
    np.testing.assert_array_equal(terminal[:599], replay.terminal[:599])
    # The games the agent played: game overs at the rows the actors saw them.
    assert np.flatnonzero(terminal).tolist() == meta["actors"]["game_overs"][0]
    assert terminal.any()


@pytest.mark.slow
def test_killed_and_resumed_generator_logs_the_same_data(uninterrupted, tmp_path):
    workdir = tmp_path / "resumed"
    assert train_online.train_and_evaluate(_tiny(), str(workdir), max_iterations=1) is None
    d = replay_dir(str(workdir), GAME, 0)
    assert dqn_replay.list_checkpoints(d) == [0]
    # A kill inside iteration 2 may leave a stale file of checkpoint 1: it is rewritten.
    with gzip.open(dqn_replay.store_path(d, "action", 1), "wb") as f:
        np.save(f, np.zeros(7, np.int32))
    train_online.train_and_evaluate(None, str(workdir), log=lambda *_: None)
    a, b = _read_logs(uninterrupted), _read_logs(workdir)
    for field in dqn_replay.STORE_FIELDS:
        for x, y in zip(a[field], b[field], strict=True):
            np.testing.assert_array_equal(x, y, err_msg=field)
    for k in range(3):
        for field in dqn_replay.STORE_FIELDS:
            path = dqn_replay.store_path(d, field, k)
            with (
                open(path, "rb") as f1,
                open(path.replace(str(workdir), str(uninterrupted)), "rb") as f2,
            ):
                assert f1.read() == f2.read()  # byte-identical files (gzip mtime 0)


@pytest.mark.slow
def test_five_percent_of_each_checkpoint(uninterrupted, tmp_path):
    d = replay_dir(str(uninterrupted), GAME, 0)
    meta = ingest(f"dqn_replay:{d}", str(tmp_path / "c5"), percent=5, clip_rewards=False)
    assert meta["game"] == GAME and meta["run"] == 1
    assert meta["frame_shape"] == [10, 10, 4] and meta["frame_stack"] == 1
    assert meta["source_detail"]["transitions_per_checkpoint"] == {"0": 10, "1": 10, "2": 10}
    assert meta["num_transitions"] == 30
    # All of it: each checkpoint's last row is observation-only unless its game ended there
    # (the episode crossing the boundary is cut; its next frame is in the next checkpoint).
    terminal = _read_logs(uninterrupted)["terminal"]
    want = sum(200 - (0 if t[-1] else 1) for t in terminal)
    meta = ingest(f"dqn_replay:{d}", str(tmp_path / "c100"), percent=100, clip_rewards=False)
    assert meta["num_transitions"] == want
    assert os.path.isfile(tmp_path / "c100" / "meta.json")
