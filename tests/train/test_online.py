"""End-to-end checks of the online track on a real game (Breakout, Atari 100k protocol)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offline_moe.configs import der, drq_eps
from offline_moe.configs.overrides import apply_overrides
from offline_moe.envs import atari
from offline_moe.envs.pool import EmulatorPool
from offline_moe.train import online as train_online
from offline_moe.train.monitor import Monitor
from offline_moe.train.rundir import RunDir
from tests.train.test_monitor import read_scalars


def _tiny(config_module, **overrides):
    """The smoke config, shrunk further: 2 iterations of 40 agent steps, updates from step 24."""
    c = config_module.get_config("smoke")
    c.total_steps = 80
    c.iteration_steps = 40
    c.replay.min_replay = 24
    c.log_interval = 20
    c.eval.episodes = 1
    c.eval.max_episode_steps = 15
    c.replay.capacity = 128
    apply_overrides(c, overrides)  # dotted keys: "eval.episodes"
    return c


# Timings differ from run to run: the rates, time_s and the evaluation's seconds.
TIMINGS = ("agent_steps_per_s", "updates_per_s", "time_s", "eval_s", "env_steps_per_s")


def _lines(path, drop=TIMINGS):
    out = []
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            out.append({k: v for k, v in rec.items() if k not in drop})
    return out


def _assert_same_run(dir_a, dir_b):
    state_a, meta_a = train_online.restore_state(dir_a)
    state_b, meta_b = train_online.restore_state(dir_b)
    leaves_a = jax.tree_util.tree_leaves_with_path(state_a)
    leaves_b = jax.tree_util.tree_leaves(state_b)
    for (path, a), b in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=str(path))
    assert meta_a["actors"] == meta_b["actors"]
    assert _lines(f"{dir_a}/metrics.jsonl") == _lines(f"{dir_b}/metrics.jsonl")
    assert _lines(f"{dir_a}/eval.jsonl") == _lines(f"{dir_b}/eval.jsonl")


@pytest.mark.slow
@pytest.mark.parametrize(
    "config_module,torso",
    [(der, "baseline"), (drq_eps, "tests.toy_torso:ToyTorso")],
    ids=["der", "drq_eps-plugin-torso"],
)
def test_smoke_run_resumes_to_identical_parameters(tmp_path, config_module, torso):
    config = _tiny(config_module)
    config.torso.name = torso
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    config_a = config.copy_and_resolve_references()
    export = config_module is der
    if export:  # run `a` also exports its replay (the config of `b` keeps export off)
        config_a.export_replay = str(tmp_path / "rlds")
    summary = train_online.train_and_evaluate(config_a, a)
    assert summary["done"] and len(summary["final_return"]) == 1

    assert train_online.train_and_evaluate(config, b, max_iterations=1) is None
    # A crash in the middle of iteration 1 leaves lines of it behind; resume drops them.
    with open(f"{b}/metrics.jsonl", "a") as f:
        f.write(json.dumps({"iteration": 1, "step": 60, "loss": [1.0]}) + "\n{broken")
    lost = Monitor(b)  # ... and their TensorBoard events
    lost.log({"iteration": 1, "step": 60, "loss": [1.0]}, "train")
    lost.close()
    resumed = train_online.train_and_evaluate(None, b)  # --workdir alone
    assert resumed["done"]
    _assert_same_run(a, b)
    # TensorBoard: the steps and values of metrics.jsonl, the cut lines' events gone.
    metrics_b = RunDir(b).read_metrics()
    loss_b = read_scalars(b)["train/loss"]
    assert [s for s, _ in loss_b] == [m["step"] for m in metrics_b]
    assert [v for _, v in loss_b] == pytest.approx([np.mean(m["loss"]) for m in metrics_b])

    state, meta = train_online.restore_state(a)
    assert int(state.replay.count[0]) == config.total_steps
    assert int(state.train.step[0]) == config.total_steps - config.replay.min_replay
    assert meta["torso"]["name"] == config.torso.name
    evals = RunDir(a).read_evals()
    assert [e["step"] for e in evals] == [40, 80] and evals[-1]["episodes"] == [1]
    # A finished run is not re-run.
    assert train_online.train_and_evaluate(None, a) == RunDir(a).read_summary()
    if export:
        _check_export_ingests(tmp_path, summary, state, meta)


def _check_export_ingests(tmp_path, summary, state, meta):
    """The exported RLDS dataset goes through the offline track's ingest into a cache whose
    transitions are exactly the run's replay rows."""
    from offline_moe.data import rlu_format
    from offline_moe.data.ingest import ingest
    from offline_moe.replay.cache import load_cache

    ds_dir = rlu_format.dataset_dir(summary["export_replay"], "Breakout", 1)
    cache_meta = ingest(
        f"rlds_dir:{ds_dir}", str(tmp_path / "cache"), percent=100, clip_rewards=False
    )
    arrays, _ = load_cache(str(tmp_path / "cache"))
    actors = meta["actors"]
    count = int(state.replay.count[0])
    starts = [b for b in actors["game_starts"][0] if b < count]
    not_over = sum(1 for b in starts[1:] + [count] if b - 1 not in actors["game_overs"][0])
    assert cache_meta["num_episodes"] == len(starts)
    assert cache_meta["num_transitions"] == count - not_over
    frames = np.asarray(state.replay.frames[0])
    np.testing.assert_array_equal(np.asarray(arrays["observation"][0]), frames[0])
    n = min(10, count - 1)
    np.testing.assert_array_equal(
        np.asarray(arrays["action"][:n]), np.asarray(state.replay.action[0, :n])
    )


def test_actor_loop_life_loss_is_terminal_for_learning_only():
    """Breakout under atari100k: a lost life sets terminal + a new learning episode (zeroed
    stack) while the game, its return and its step count go on; no-op starts are in [0, 30)."""
    rc = train_online.run_config(_tiny(der, num_seeds=1))
    actors = train_online.Actors.create(rc, "Breakout")
    env = actors.envs[0]
    assert 0 <= env.last_noops < 30
    rng = np.random.default_rng(0)
    life_losses = 0
    for _ in range(2000):
        lives_before = env.lives
        actors.step(rng.integers(0, env.num_actions, size=1))
        if actors.game_starts[0][1:]:
            break
        if env.lives < lives_before:
            life_losses += 1
            assert actors.terminal[0] and actors.first[0]
            assert actors.ep_length[0] == actors.t  # same game: no reset happened
        else:
            assert not actors.first[0]
    assert life_losses >= 1
    assert actors.game_starts[0][1:] and actors.game_overs[0] == [actors.game_starts[0][1] - 1]
    assert actors.finished[0]  # the game's return was recorded once, at game over
    # A new game: fresh no-ops, first frame flagged.
    assert actors.first[0] and 0 <= env.last_noops < 30


def test_eval_counts_whole_games_with_noise_off():
    """Evaluation plays one game per parallel emulator; capped games count with their return."""
    config = _tiny(der, **{"eval.episodes": 2, "eval.max_episode_steps": 10})
    rc, game, agent = train_online.build(config)
    init_fn, _, eval_act = train_online.compiled_fns(agent, rc.num_seeds)
    state = init_fn(train_online.init_keys(rc))
    kw = dict(game=game, rc=rc, iteration=1, num_episodes=2, epsilon=0.001)
    returns, episodes = train_online.evaluate(eval_act, state.train.params, **kw)
    assert returns.shape == (1,) and episodes.tolist() == [2]
    again, _ = train_online.evaluate(eval_act, state.train.params, **kw)
    np.testing.assert_array_equal(returns, again)  # deterministic given seed and iteration
    assert atari.num_actions(game, "atari100k") == agent.config.num_actions

    # Noise off: with every noisy layer's mean weights zeroed, the noise-free Q-values are
    # all equal, so evaluation at epsilon 0 plays action 0 everywhere; with the noise on the
    # Q-values are the noise alone (one draw per call) and pick another action here.
    def zero_mu(path, x):
        return jnp.zeros_like(x) if "mu_" in jax.tree_util.keystr(path) else x

    params = jax.tree_util.tree_map_with_path(zero_mu, state.train.params)
    obs = jax.random.randint(jax.random.key(1), (1, 64, 84, 84, 4), 0, 256).astype(jnp.uint8)
    keys = jax.random.split(jax.random.key(2), 1)
    acts = np.asarray(eval_act(params, obs, keys, 0.0))[0]  # [64]
    assert acts.tolist() == [0] * 64
    params0 = jax.tree.map(lambda x: x[0], params)
    noisy = np.asarray(agent.learner.act(params0, obs[0], keys[0], 0.0, noise=True))
    assert noisy.tolist() == [3] * 64  # noise on: the argmax of this key's noise draw


def test_non_finite_loss_stops_and_keeps_no_bad_checkpoint(tmp_path):
    """A NaN learning rate poisons the parameters at the first update; the next metrics line
    raises NonFiniteLossError before iteration 0 is checkpointed."""
    from offline_moe.errors import NonFiniteLossError

    config = _tiny(drq_eps, **{"learner.learning_rate": float("nan")})
    config.torso.name = "tests.toy_torso:ToyTorso"
    workdir = str(tmp_path / "nan")
    with pytest.raises(NonFiniteLossError, match="non-finite") as e:
        train_online.train_and_evaluate(config, workdir)
    assert "for seed 0 at iteration 0" in str(e.value)
    assert "No checkpoint was saved before it" in str(e.value) and "None" not in str(e.value)
    rd = RunDir(workdir)
    assert rd.latest_checkpoint() is None and not rd.is_done()
    # The protocol block was written when the run was built (the same fields as offline).
    block = rd.read_protocol()
    assert block["track"] == "online" and block["games"] == ["Breakout"]
    assert block["data"] == {"source": "online", "percent": None, "cache": None}
    assert block["torso"] == {"name": "tests.toy_torso:ToyTorso", "kwargs": {}}
    assert block["budget"] == {"iterations": 2, "steps_per_iteration": 40, "unit": "agent_steps",
                               "updates_per_step": 1, "update_period": 1}  # fmt: skip
    assert block["eval"]["max_episode_steps"] == 15 and block["eval"]["episodes"] == 1
    assert block["eval"]["standard_max_episode_steps"] == 27_000
    assert block["sticky_actions"] == 0.0 and block["eval"]["protocol"] == "atari100k"


def test_noop_start_equals_that_many_noop_steps():
    """Known answer: an atari100k reset that took k random no-ops shows the same frame as a
    reset without no-ops followed by k NOOP agent steps (frame skip 4 + max-pool each)."""
    for seed in range(20):
        env = atari.AtariEnv("Pong", protocol="atari100k", seed=seed)
        frame = env.reset()
        if env.last_noops >= 5:
            break
    k = env.last_noops
    assert 5 <= k < 30
    plain = atari.AtariEnv("Pong", protocol="atari100k", seed=seed)
    plain.protocol = atari.Protocol("no_noops", 0.0, True, True, 0, 27_000)
    expected = plain.reset()
    assert not np.array_equal(expected, frame)  # the no-ops did change the screen
    for _ in range(k):
        expected = plain.step(0).obs  # action 0 is NOOP in every minimal action set
    np.testing.assert_array_equal(frame, expected)


def test_emulators_in_worker_processes_match_in_process():
    """Evaluation emulators split over worker processes give exactly the same frames, rewards
    and flags as in-process ones (only the active emulators step)."""
    seeds = [train_online.env_seed(k, "eval-1") for k in range(3)]
    local = EmulatorPool("Pong", "atari100k", seeds, max_episode_steps=27_000)
    remote = EmulatorPool("Pong", "atari100k", seeds, max_episode_steps=27_000, workers=2)
    try:
        np.testing.assert_array_equal(local.reset(), remote.reset())
        rng = np.random.default_rng(0)
        total = 0.0
        for t in range(150):
            actions = rng.integers(0, 6, size=3)
            active = np.array([True, t < 100, True])
            a, b = local.step(actions, active), remote.step(actions, active)
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)
            assert not a[0][1].any() or t < 100  # an inactive emulator returns nothing
            total += np.abs(a[1]).sum()
        assert total > 0  # some points were scored: rewards are compared, not just zeros
    finally:
        remote.close()


def test_interval_means_per_seed_with_vector_metrics():
    """Known answer: 2 seeds, 4 updates since the last line; expert_usage is a vector [S, n]."""
    prev = {"loss": np.array([1.0, 2.0]), "torso/expert_usage": np.zeros((2, 3))}
    sums = {"loss": np.array([5.0, 10.0]), "torso/expert_usage": np.array([[1, 2, 1], [4, 0, 0]])}
    means = train_online.interval_means(sums, np.array([6, 6]), prev, np.array([2, 2]))
    np.testing.assert_allclose(means["loss"], [1.0, 2.0])
    np.testing.assert_allclose(means["torso/expert_usage"], [[0.25, 0.5, 0.25], [1.0, 0, 0]])
    none = train_online.interval_means(prev, np.array([2, 2]), prev, np.array([2, 2]))
    np.testing.assert_allclose(none["loss"], [0.0, 0.0])


@pytest.mark.slow
def test_seed_of_a_multi_seed_run_equals_that_seed_run_alone():
    """The seed rule of both tracks: seed 1 of a 2-seed run with base seed 0 trains, acts and
    evaluates exactly like a 1-seed run with base seed 1, so `sweep --seeds_per_run` never
    changes a seed's result (emulator seeds, init and update keys, evaluation keys)."""
    runs = {}
    for seed, num_seeds in ((0, 2), (1, 1)):
        overrides = {"replay.min_replay": 20, "eval.max_episode_steps": 8}
        config = _tiny(drq_eps, seed=seed, num_seeds=num_seeds, **overrides)
        config.torso.name = "tests.toy_torso:ToyTorso"
        rc, game, agent = train_online.build(config)
        init_fn, step_fn, act_fn = train_online.compiled_fns(agent, rc.num_seeds)
        state = init_fn(train_online.init_keys(rc))
        actors = train_online.Actors.create(rc, game)
        for t in range(26):
            state, actions = step_fn(
                state, actors.frame, actors.first, actors.reward, actors.terminal, t >= 20
            )
            actors.step(np.asarray(actions))
        returns, _ = train_online.evaluate(
            act_fn, state.train.params, game=game, rc=rc, iteration=1, num_episodes=2, epsilon=0.5
        )
        runs[seed] = (state, actors.snapshot()["envs"], returns)
    (two, envs_two, ret_two), (one, envs_one, ret_one) = runs[0], runs[1]
    assert int(one.train.step[0]) == 6
    for a, b in zip(jax.tree.leaves(two), jax.tree.leaves(one)):
        # Seeds are vmapped in the online step: float rounding may differ in the last bits.
        np.testing.assert_allclose(np.asarray(a[1]), np.asarray(b[0]), rtol=1e-5, atol=1e-6)
    assert envs_two[1] == envs_one[0]  # same emulator states: same actions were taken
    assert ret_two[1] == ret_one[0]
    leaf = jax.tree.leaves(two.train.params)[0]
    assert not np.allclose(np.asarray(leaf[0]), np.asarray(leaf[1]))  # the seeds differ
