"""Run directories written before both trainers shared `offline_moe.train.loop` still load.

Then the online trainer numbered iterations from 1 and named its rate `steps_per_sec`; the
offline trainer numbered from 0. Neither wrote "iteration_base" to protocol.json.
"""

import json

import numpy as np

from offline_moe.analysis import report
from offline_moe.analysis.report.runs import load_run
from offline_moe.train import protocol as protocol_lib


def _write(workdir, name, lines):
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / name, "w") as f:
        for rec in lines:
            f.write(json.dumps(rec) + "\n")


def _old_online_run(workdir, with_protocol=True):
    """2 iterations of 40 agent steps, written by the online trainer of commit 4c51b5d."""
    config = {"agent": "der", "game": "Breakout", "seed": 0, "num_seeds": 2,
              "total_steps": 80, "iteration_steps": 40, "torso": {"name": "baseline"}}  # fmt: skip
    workdir.mkdir(parents=True)
    (workdir / "config.json").write_text(json.dumps(config))
    if with_protocol:
        block = protocol_lib.protocol_block(
            track="online",
            agent="der",
            game="Breakout",
            data={"source": "online", "percent": None, "cache": None},
            encoder="nature",
            torso={"name": "baseline", "kwargs": {}},
            budget={"iterations": 2, "steps_per_iteration": 40, "unit": "agent_steps"},
            evaluation={
                "protocol": "atari100k",
                "epsilon": 0.001,
                "max_episode_steps": 27_000,
                "standard_max_episode_steps": 27_000,
                "min_steps": None,
                "episodes": 100,
                "interval": 1,
            },  # fmt: skip
            sticky_actions=0.0,
        )
        (workdir / "protocol.json").write_text(json.dumps(block))
    _write(workdir, "metrics.jsonl", [
        {"iteration": 1, "step": 40, "steps_per_sec": 50.0, "loss": [0.5, 0.4]},
        {"iteration": 2, "step": 80, "steps_per_sec": 60.0, "loss": [0.3, 0.2]},
    ])  # fmt: skip
    _write(workdir, "eval.jsonl", [
        {"iteration": 1, "step": 40, "returns": [1.0, 2.0], "episodes": [100, 100]},
        {"iteration": 2, "step": 80, "returns": [3.0, 4.0], "episodes": [100, 100]},
    ])  # fmt: skip
    summary = {"done": True, "final_return": [3.0, 4.0], "best_return": [3.0, 4.0]}
    (workdir / "summary.json").write_text(json.dumps(summary))
    return workdir


def test_old_online_run_dirs_load_with_iterations_from_zero_and_the_new_rate_name(tmp_path):
    for with_protocol in (True, False):
        run = load_run(_old_online_run(tmp_path / f"protocol_{with_protocol}", with_protocol))
        assert run.iteration_base == 1
        assert [e["iteration"] for e in run.evals] == [0, 1]
        metrics = run.metrics()
        assert [m["iteration"] for m in metrics] == [0, 1]
        assert [m["agent_steps_per_s"] for m in metrics] == [50.0, 60.0]
        assert all("steps_per_sec" not in m for m in metrics)
        its, returns = run.curve()  # iterations completed at each evaluation
        assert its.tolist() == [1, 2]
        np.testing.assert_array_equal(returns, [[1.0, 2.0], [3.0, 4.0]])


def test_old_offline_run_dir_keeps_its_numbering(tmp_path):
    workdir = tmp_path / "offline"
    workdir.mkdir()
    config = {"agent": "cql", "game": "Pong", "seed": 0, "num_seeds": 1}
    (workdir / "config.json").write_text(json.dumps(config))
    _write(workdir, "eval.jsonl", [{"iteration": 0, "step": 4, "returns": [1.0], "episodes": [2]}])
    _write(workdir, "metrics.jsonl", [{"iteration": 0, "step": 4, "updates_per_s": 9.0}])
    run = load_run(workdir)
    assert run.iteration_base == 0 and run.evals[0]["iteration"] == 0
    assert run.metrics()[0]["updates_per_s"] == 9.0
    assert run.curve()[0].tolist() == [1]  # no protocol: iterations done = index + 1


def test_report_over_old_run_dirs(tmp_path):
    root = tmp_path / "runs"
    _old_online_run(root / "der" / "baseline")
    text = report.write_report(root, tmp_path / "out", reps=50, plots=False)
    assert "der" in text and "Breakout" in text
