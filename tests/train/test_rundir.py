"""Run directory: log truncation on resume, record validation, NaN message, checkpoints."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from offline_moe import errors
from offline_moe.train import rundir as rundir_lib


def test_truncate_logs_drops_later_iterations_and_broken_lines(tmp_path):
    rd = rundir_lib.RunDir(str(tmp_path))
    for it in range(3):
        rd.append_metrics({"iteration": it, "step": it, "loss": 0.1})
        rd.append_eval({"iteration": it, "step": it, "returns": [1.0], "episodes": [1]})
    with open(rd.path(rundir_lib.METRICS), "a") as f:
        f.write('{"iteration": 3, "st')  # killed mid-write
    rd.truncate_logs(1)
    assert [r["iteration"] for r in rd.read_metrics()] == [0, 1]
    assert [r["iteration"] for r in rd.read_evals()] == [0, 1]
    rd.truncate_logs(None)
    assert rd.read_metrics() == [] and rd.read_evals() == []
    with pytest.raises(ValueError, match="returns"):
        rd.append_eval({"iteration": 0, "step": 0})
    with pytest.raises(ValueError, match="iteration"):
        rd.append_metrics({"step": 0})


def test_checkpoint_roundtrip_meta_and_summary(tmp_path):
    rd = rundir_lib.RunDir(str(tmp_path), max_to_keep=2)
    assert rd.latest_checkpoint() is None
    state = {"w": jnp.arange(6.0).reshape(2, 3), "step": jnp.int32(4)}
    torso = {"name": "soft_moe", "kwargs": {"num_experts": 8}}
    for it in range(3):
        rd.save_checkpoint(it, {**state, "step": jnp.int32(it)}, {"torso": torso})
    assert rd.latest_checkpoint() == 2
    assert sorted(int(d) for d in os.listdir(rd.path("checkpoints")) if d.isdigit()) == [1, 2]
    restored, meta = rd.restore_checkpoint(state)
    np.testing.assert_array_equal(restored["w"], state["w"])
    assert int(restored["step"]) == 2
    assert meta == {"iteration": 2, "torso": torso}
    assert rd.read_checkpoint_meta(1)["torso"] == torso
    rd.close()
    assert not rd.is_done()
    rd.write_summary({"final_return": np.array([1.5, 2.0]), "best_return": [2.0, 2.0]})
    assert rd.is_done()
    assert json.load(open(rd.path("summary.json")))["final_return"] == [1.5, 2.0]


def test_check_finite_names_metric_and_checkpoint(tmp_path):
    rd = rundir_lib.RunDir(str(tmp_path))
    rd.save_checkpoint(0, {"x": jnp.zeros(2)}, {})
    rundir_lib.check_finite({"loss": np.array([0.1, 0.2])}, iteration=1, step=10, rundir=rd)
    with pytest.raises(
        errors.NonFiniteLossError, match=r"'loss'.*iteration 1.*checkpoint, iteration 0,"
    ):
        rundir_lib.check_finite({"loss": np.array([0.1, np.nan])}, iteration=1, step=10, rundir=rd)
    rd.close()


def test_nan_stop_names_the_diverged_seed_and_the_last_good_checkpoint(tmp_path):
    rd = rundir_lib.RunDir(str(tmp_path / "run"))
    loss = np.array([0.1, np.nan, 0.3])  # seeds 4, 5, 6 of a run with config seed 4
    with pytest.raises(errors.NonFiniteLossError) as e:
        rundir_lib.check_finite({"loss": loss}, iteration=0, step=5, rundir=rd, seeds=[4, 5, 6])
    msg = str(e.value)
    assert "for seed 5 (the other seeds of this run stop with it" in msg
    assert "No checkpoint was saved before it" in msg and "None" not in msg
    for it in (0, 1, 2):
        rd.save_checkpoint(it, {"x": jnp.zeros(2)}, {})
    with pytest.raises(errors.NonFiniteLossError) as e:
        rundir_lib.check_finite({"loss": np.array([[np.inf, 0.0], [np.nan, 1.0]])},
                                iteration=3, step=40, rundir=rd, seeds=[0, 1])  # fmt: skip
    msg = str(e.value)
    assert "for seeds 0, 1 at iteration 3, step 40" in msg and "other seed" not in msg
    assert "The last good checkpoint, iteration 2, is kept" in msg
    rd.close()
