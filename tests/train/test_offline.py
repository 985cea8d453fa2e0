"""End to end: train_offline on a tiny dataset recorded in real ALE, with the smoke config."""

import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offline_moe import errors
from offline_moe.bench.learner import ale_cache
from offline_moe.configs import cql, cql_c51
from offline_moe.configs.overrides import apply_overrides
from offline_moe.train import rundir as rundir_lib
from offline_moe.train.monitor import Monitor
from offline_moe.train.offline import build, train_and_evaluate
from tests.train.test_monitor import read_scalars


class NaNTorso(nn.Module):
    """A torso whose aux loss is NaN: the run must stop with a clear error."""

    @nn.compact
    def __call__(self, x, *, train):
        del train
        h = nn.Dense(4)(nn.avg_pool(x, (12, 12), (12, 12)).reshape(x.shape[0], -1))
        return h, {"aux_loss": jnp.float32(jnp.nan)}


# The fixture cache holds Pong; the smoke config's own game is Breakout, so the tests name it.
SMOKE = "smoke,game=Pong"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    # ~200 uniformly random agent steps of Pong, episodes truncated at 60 steps.
    out = tmp_path_factory.mktemp("data") / "pong_cache"
    return ale_cache(str(out), game="Pong", steps=200, max_episode_steps=60, seed=3)


def tiny(config, cache_dir, **overrides):
    """The smoke config, shrunk further for the test budget (2 iterations x 4 updates)."""
    config.data.cache_dir = cache_dir
    config.updates_per_iteration = 4
    config.scan_steps = 2
    config.log_interval = 2
    config.learner.batch_size = 4
    config.learner.target_update_period = 3
    config.eval.steps = 30
    config.eval.num_envs = 2
    config.eval.max_episode_steps = 20
    config.repr.batch_size = 8
    apply_overrides(config, overrides)  # dotted keys: "eval.episodes"
    return config


def final_params(workdir, iteration=None):
    config = json.load(open(os.path.join(workdir, "config.json")))
    tc, lc, ec, learner, replay, torso_meta = build(config)
    from offline_moe.learners import init_seeds, seed_keys

    obs = jnp.zeros((1, 84, 84, 4), jnp.uint8)
    template = init_seeds(learner, seed_keys(0, tc.num_seeds), obs)
    rd = rundir_lib.RunDir(workdir)
    state, meta = rd.restore_checkpoint(template, iteration)
    rd.close()
    return state, meta


@pytest.mark.slow
def test_end_to_end_resume_equals_uninterrupted_and_two_seeds(cache_dir, tmp_path):
    config = tiny(cql.get_config(f"{SMOKE},torso=soft_moe"), cache_dir, num_seeds=2)
    full = str(tmp_path / "full")
    summary = train_and_evaluate(config, full)
    # every file of the run directory
    for name in ("config.json", "metrics.jsonl", "eval.jsonl", "checkpoints", "summary.json"):
        assert os.path.exists(os.path.join(full, name)), name
    assert summary["done"] is True
    assert len(summary["final_return"]) == 2 and len(summary["best_return"]) == 2
    evals = rundir_lib.read_jsonl(os.path.join(full, "eval.jsonl"))
    assert [e["iteration"] for e in evals] == [0, 1]
    assert [e["step"] for e in evals] == [4, 8]
    for e in evals:
        assert len(e["returns"]) == 2 and all(n >= 1 for n in e["episodes"])
        assert all(s >= 30 for s in e["agent_steps"])
        assert len(e["repr/srank"]) == 2 and all(0 <= d <= 100 for d in e["repr/dormant_pct"])
        assert "repr/expert_usage" in e  # an MoE torso reports its experts' usage
    metrics = rundir_lib.read_jsonl(os.path.join(full, "metrics.jsonl"))
    assert [m["step"] for m in metrics] == [2, 4, 6, 8]
    assert all(len(m["loss"]) == 2 and np.all(np.isfinite(m["loss"])) for m in metrics)
    meta_torso = rundir_lib.RunDir(full).read_checkpoint_meta()["torso"]
    assert meta_torso["name"] == "soft_moe" and meta_torso["kwargs"]["num_experts"] == 2
    state_full, _ = final_params(full)
    # the two seeds differ
    leaf = jax.tree.leaves(state_full.params)[-1]
    assert not np.allclose(leaf[0], leaf[1])
    # ... and each is reproducible on its own: a 1-seed run with base seed 1 (one iteration)
    # equals seed 1 of the 2-seed run after its first iteration, evaluation included.
    alone = str(tmp_path / "seed1")
    one_seed = tiny(cql.get_config(f"{SMOKE},torso=soft_moe"), cache_dir, seed=1, num_iterations=1)
    train_and_evaluate(one_seed, alone)
    state_alone, _ = final_params(alone)
    state_it0, _ = final_params(full, iteration=0)
    for a, b in zip(jax.tree.leaves(state_alone), jax.tree.leaves(state_it0)):
        np.testing.assert_array_equal(a[0], b[1])
    eval_alone = rundir_lib.read_jsonl(os.path.join(alone, "eval.jsonl"))[0]
    assert eval_alone["episode_returns"][0] == evals[0]["episode_returns"][1]

    # Interrupted after the first checkpoint (plus a log line of the lost iteration, as if
    # killed between writing logs and saving the checkpoint), then resumed.
    part = str(tmp_path / "part")
    assert train_and_evaluate(config, part, max_iterations=1) is None
    assert rundir_lib.RunDir(part).latest_checkpoint() == 0
    assert not os.path.exists(os.path.join(part, "summary.json"))
    with open(os.path.join(part, "metrics.jsonl"), "a") as f:
        f.write(json.dumps({"iteration": 1, "step": 6, "loss": [0, 0]}) + "\n{broken")
    lost = Monitor(part)  # ... and its TensorBoard event
    lost.log({"iteration": 1, "step": 6, "loss": [0.0, 0.0]}, "train")
    lost.close()
    summary2 = train_and_evaluate(json.load(open(os.path.join(part, "config.json"))), part)
    assert summary2["final_return"] == summary["final_return"]
    state_part, meta = final_params(part)
    assert meta["iteration"] == 1 and meta["step"] == 8
    for a, b in zip(jax.tree.leaves(state_full), jax.tree.leaves(state_part)):
        np.testing.assert_array_equal(a, b)
    metrics2 = rundir_lib.read_jsonl(os.path.join(part, "metrics.jsonl"))
    assert [m["step"] for m in metrics2] == [2, 4, 6, 8]
    assert [m["loss"] for m in metrics2] == [m["loss"] for m in metrics]
    # TensorBoard holds every logged step once (the lost iteration's event was cut) with the
    # logged values, the torso's expert usage and the representation metrics.
    scalars = read_scalars(part)
    assert [s for s, _ in scalars["train/loss"]] == [2, 4, 6, 8]
    assert [v for _, v in scalars["train/loss"]] == pytest.approx(
        [np.mean(m["loss"]) for m in metrics2]
    )
    assert [s for s, _ in scalars["eval/returns"]] == [4, 8]
    assert {"torso/expert_usage/1", "train/loss/seed_1", "repr/srank"} <= set(scalars)
    evals2 = rundir_lib.read_jsonl(os.path.join(part, "eval.jsonl"))
    assert [e["returns"] for e in evals2] == [e["returns"] for e in evals]

    # a finished run is not re-run
    before = os.path.getmtime(os.path.join(full, "metrics.jsonl"))
    again = train_and_evaluate(config, full)
    assert again == summary
    assert os.path.getmtime(os.path.join(full, "metrics.jsonl")) == before


def test_user_torso_trains_through_its_path_with_c51(cache_dir, tmp_path):
    config = tiny(
        cql_c51.get_config(f"{SMOKE},torso=tests.toy_torso:ToyTorso"),
        cache_dir,
        num_iterations=1,
        **{"eval.steps": 10, "eval.num_envs": 1, "eval.max_episode_steps": 10},
    )
    workdir = str(tmp_path / "toy")
    summary = train_and_evaluate(config, workdir)
    assert summary["torso"] == {"name": "tests.toy_torso:ToyTorso", "kwargs": {}}
    # The protocol block states the data the cache holds (its meta.json), not the config's
    # word for it, plus the torso, budget and evaluation caps (smoke: episodes cut at 10).
    block = rundir_lib.RunDir(workdir).read_protocol()
    assert block["track"] == "offline" and block["agent"] == "cql_c51"
    assert block["games"] == ["Pong"]
    assert block["data"]["source"] == "record" and block["data"]["percent"] == 100.0
    assert block["data"]["cache"]["steps"] == 200 and block["data"]["cache"]["seed"] == 3
    assert block["torso"] == {"name": "tests.toy_torso:ToyTorso", "kwargs": {}}
    assert block["budget"] == {"iterations": 1, "steps_per_iteration": 4, "unit": "updates"}
    assert block["eval"]["max_episode_steps"] == 10 and block["eval"]["min_steps"] == 10
    assert block["eval"]["standard_max_episode_steps"] == 27_000
    assert block["sticky_actions"] == 0.25
    state, meta = final_params(workdir)
    assert meta["torso"] == {"name": "tests.toy_torso:ToyTorso", "kwargs": {}}
    assert int(state.step[0]) == 4
    metrics = rundir_lib.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
    assert "torso/feature_mean" in metrics[0]


def test_nan_loss_stops_with_clear_message(cache_dir, tmp_path):
    config = tiny(cql.get_config(f"{SMOKE},torso=tests.train.test_offline:NaNTorso"), cache_dir)
    workdir = str(tmp_path / "nan")
    with pytest.raises(errors.NonFiniteLossError, match="non-finite training metric 'loss'") as e:
        train_and_evaluate(config, workdir)
    assert "for seed 0 at iteration 0" in str(e.value)
    assert "No checkpoint was saved before it" in str(e.value) and "None" not in str(e.value)
    assert rundir_lib.RunDir(workdir).latest_checkpoint() is None
    assert not os.path.exists(os.path.join(workdir, "summary.json"))


def test_config_mismatch_and_missing_cache_are_clear_errors(cache_dir, tmp_path):
    config = tiny(cql.get_config(SMOKE), str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="replay cache"):
        train_and_evaluate(config, str(tmp_path / "a"))
    config = tiny(cql.get_config(SMOKE), cache_dir)
    rd = rundir_lib.RunDir(str(tmp_path / "b"))
    rd.write_config({**config.to_dict(), "seed": 5})
    with pytest.raises(ValueError, match="differs from the given config in \\['seed'\\]"):
        train_and_evaluate(config, str(tmp_path / "b"))
    with pytest.raises(ValueError, match="config argument"):
        cql.get_config("smok")


def test_a_cache_of_another_game_is_refused_naming_both_games(cache_dir):
    """The fixture's cache is Pong's (6 actions); Breakout has 4: the refusal names the games,
    not the action counts."""
    config = tiny(cql.get_config("game=Breakout"), cache_dir)
    with pytest.raises(ValueError, match=r"config.game is 'Breakout' but .* holds 'Pong'"):
        build(config.to_dict())


def test_cache_percent_and_source_are_checked_against_the_config(cache_dir):
    # The fixture's cache holds 100% of a local recording (meta.json); the paper config says 5%
    # of DQN-Replay.
    config = tiny(cql.get_config("game=Pong"), cache_dir)
    with pytest.raises(ValueError, match=r"config.data.percent is 5 but .* holds 100% of its"):
        build(config.to_dict())
    config.data.percent = 100.0
    with pytest.raises(ValueError, match=r"config.data.source is 'tfds' .* holds 'record' data"):
        build(config.to_dict())
    config.data.source = "record"
    assert build(config.to_dict())[4].meta["percent"] == 100.0


def test_training_path_imports_no_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys, offline_moe.train_offline, offline_moe.train_online, "
        "offline_moe.envs.evaluate, offline_moe.bench.learner, offline_moe.default_benchmark; "
        "bad = [m for m in ('tensorflow', 'tensorflow_datasets', 'rlds') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_configs_are_the_papers():
    from offline_moe.train.offline import unpack

    for module, lr, eps, n in ((cql, 5e-5, 3.125e-4, 1), (cql_c51, 6.25e-5, 1.5e-4, 3)):
        c = module.get_config("game=Breakout")
        tc, lc, ec = unpack(c.to_dict())
        assert (lc.learning_rate, lc.adam_eps, lc.n_step) == (lr, eps, n)
        assert (lc.batch_size, lc.gamma, lc.cql_coefficient, lc.target_update_period) == (
            32,
            0.99,
            0.1,
            2000,
        )
        assert (tc.num_iterations, tc.updates_per_iteration, tc.game) == (200, 62_500, "Breakout")
        assert (ec.steps, ec.epsilon, ec.max_episode_steps, ec.protocol, ec.interval) == (
            125_000,
            0.001,
            27_000,
            "dqn_replay",
            1,
        )
        assert c.torso.builtin.encoder == "impala" and c.torso.builtin.num_experts == 8
        assert c.torso.builtin.tokenization == "per_conv" and c.data.percent == 5.0
        assert tc.cache_dir == "data/cache/Breakout_run1_5pct"
    assert cql_c51.get_config().learner.num_atoms == 51
