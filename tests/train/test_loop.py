"""The one iteration loop of both tracks (`offline_moe.train.loop`)."""

import json
import os

import numpy as np
import pytest

from offline_moe.configs import cql, der
from offline_moe.envs.evaluate import EvalConfig
from offline_moe.learners import env_seed
from offline_moe.train import loop
from offline_moe.train import offline as train_offline
from offline_moe.train import online as train_online
from offline_moe.train import rundir as rundir_lib
from tests.train.test_offline import SMOKE, cache_dir, tiny  # noqa: F401 (cache_dir: fixture)
from tests.train.test_online import _tiny as tiny_online


def test_schedule_bases_and_record_upgrade():
    # Evaluation after every 2nd iteration and after the last, iterations from 0.
    assert [i for i in range(5) if loop.is_eval_iteration(i, 5, 2)] == [1, 3, 4]
    assert loop.iteration_base("offline") == 0 and loop.iteration_base("online") == 1
    assert loop.iteration_base("online", 0) == 0 and loop.iteration_base(None) == 0
    old = {"iteration": 3, "step": 30, "steps_per_sec": 5.0}
    assert loop.upgrade_record(old, 1) == {"iteration": 2, "step": 30, "agent_steps_per_s": 5.0}
    assert loop.rate_fields("updates", 10, 10, 2.0) == {"updates_per_s": 5.0}
    assert loop.rate_fields("agent_steps", 10, 5, 2.0) == {
        "agent_steps_per_s": 5.0,
        "updates_per_s": 2.5,
    }


def test_one_seed_rule_for_emulators():
    """Seed 1 of a 2-seed run gets the evaluation keys and emulator seeds of a 1-seed run with
    base seed 1; the emulator seed is `learners.env_seed` of stream 'eval-{iteration}'."""
    keys2, seeds2 = loop.eval_seeds(0, 2, 3)
    keys1, seeds1 = loop.eval_seeds(1, 1, 3)
    np.testing.assert_array_equal(np.asarray(keys2[1]), np.asarray(keys1[0]))
    assert seeds2[1] == seeds1[0] == env_seed(1, "eval-3")
    assert len(set(seeds2)) == 2 and loop.eval_seeds(1, 1, 4)[1] != seeds1


def test_online_eval_settings_come_from_the_shared_builder():
    rc = train_online.run_config(tiny_online(der, **{"eval.episodes": 3}))
    assert rc.eval == EvalConfig(
        interval=1, steps=1, num_envs=3, epsilon=0.001, max_episode_steps=15,
        protocol="atari100k", workers=0,
    )  # fmt: skip
    with pytest.raises(ValueError, match="'episodes' and \\['steps'\\]"):
        EvalConfig.from_config({"episodes": 2, "steps": 10})


def test_old_online_run_is_refused_in_one_line_naming_the_fix(tmp_path):
    rd = rundir_lib.RunDir(str(tmp_path / "old"))
    rd.save_checkpoint(2, {"x": np.zeros(2)}, {"agent": "der"})  # no "iteration_base"
    try:
        loop.check_resumable(rd, "offline", 2)  # offline always counted from 0
        with pytest.raises(rundir_lib.RunDirError) as e:
            loop.check_resumable(rd, "online", 2)
        assert "\n" not in str(e.value)
        assert f"git checkout {loop.LEGACY_COMMIT}" in str(e.value) and "--workdir" in str(e.value)
        rd.save_checkpoint(3, {"x": np.zeros(2)}, {"iteration_base": 0})
        loop.check_resumable(rd, "online", 3)
    finally:
        rd.close()


@pytest.mark.slow
def test_both_tracks_write_the_same_fields_and_iteration_numbers(cache_dir, tmp_path):  # noqa: F811
    off, on = str(tmp_path / "offline"), str(tmp_path / "online")
    train_offline.train_and_evaluate(tiny(cql.get_config(SMOKE), cache_dir), off)
    train_online.train_and_evaluate(tiny_online(der), on)
    runs = {name: rundir_lib.RunDir(d) for name, d in (("offline", off), ("online", on))}
    for name, rd in runs.items():
        metrics, evals = rd.read_metrics(), rd.read_evals()
        # 2 iterations numbered 0 and 1 in both files, 2 log lines each, one evaluation each.
        assert [m["iteration"] for m in metrics] == [0, 0, 1, 1], name
        assert [e["iteration"] for e in evals] == [0, 1], name
        assert rd.latest_checkpoint() == 1 and rd.read_checkpoint_meta()["iteration_base"] == 0
        assert rd.read_protocol()["iteration_base"] == 0
        shared = {"iteration", "step", "time_s", "updates_per_s", "loss"}
        assert shared <= set(metrics[0]), (name, sorted(metrics[0]))
        shared = {"iteration", "step", "returns", "episodes", "agent_steps", "episode_returns"}
        assert shared <= set(evals[0]), (name, sorted(evals[0]))
        summary = rd.read_summary()
        assert {"updates_per_s", "iterations", "params", "wall_s"} <= set(summary), name
        assert summary["iterations"] == 2
    online_metrics = runs["online"].read_metrics()[0]
    assert "agent_steps_per_s" in online_metrics and "steps_per_sec" not in online_metrics
    assert "agent_steps_per_s" in runs["online"].read_summary()

    # The online run as the online trainer of LEGACY_COMMIT left it when stopped: no
    # "iteration_base" in its checkpoint. Resuming it is refused in one line, changing nothing.
    os.remove(os.path.join(on, "summary.json"))
    meta_file = os.path.join(on, "checkpoints", "1", "meta", "metadata")
    with open(meta_file) as f:
        meta = json.load(f)
    del meta["iteration_base"]
    with open(meta_file, "w") as f:
        json.dump(meta, f)
    before = open(os.path.join(on, "eval.jsonl")).read()
    with pytest.raises(rundir_lib.RunDirError, match=f"git checkout {loop.LEGACY_COMMIT}") as e:
        train_online.train_and_evaluate(None, on)
    assert "\n" not in str(e.value) and "new --workdir" in str(e.value)
    assert open(os.path.join(on, "eval.jsonl")).read() == before
