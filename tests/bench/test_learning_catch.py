"""Learning tests on Catch: the assembled agents learn a task whose answer is known.

Offline: random-policy Catch episodes written by `offline_moe.record` (RLDS, RL Unplugged
layout) and read by `offline_moe.ingest` (both subprocesses, via `offline_moe.local_data`),
trained by the real trainer (`train_and_evaluate`: DeviceReplay, learner, batched evaluation in
the environment), then `offline_moe.report` over the run directories. Online: the real online
trainer. Settings: `offline_moe.bench.learning.CATCH` (smoke torsos, Catch budgets).

Thresholds: a final evaluation return >= 0.9 after the budget (a random policy scores -0.6,
the optimum is 1.0); seed 0 in CI. The subset here is what could be checked beforehand on
other seeds (README, "Learning evidence"): CQL + baseline reached 1.0 after 600 of the 1,000
updates on seeds 0 and 1 (outside this test, other data seed); DER + baseline reached 1.0 after
1,500 of the 2,000 agent steps on seed 0, but on seeds 1 and 2 (bench learning --seed=1
--seeds=2 --budget=2000) it ended at 0.4 and 1.0: the online threshold holds for seed 0 only and
is not yet robust (an open point of issue 9). The full agent x torso grid is
`python -m offline_moe.bench learning`.
"""

import csv

import pytest

from offline_moe.bench import learning

THRESHOLD = 0.9
OFFLINE_BUDGET = 1000  # gradient updates
ONLINE_BUDGET = 2000  # agent steps


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("learning")
    return {"root": str(root / "runs"), "data_dir": str(root / "data")}


def _check(row, budget):
    assert row["env"] == "Catch" and row["budget"] == budget
    assert len(row["returns"]) == len(row["steps"]) and row["steps"][-1] == budget
    assert -0.7 < row["random_score"]["mean"] < -0.5
    final = row["final_return_mean"]
    assert final >= THRESHOLD, f"{row['agent']}/{row['torso']}: returns {row['returns']}"
    assert row[f"{row['unit']}_to_threshold"] is not None


@pytest.mark.slow
@pytest.mark.parametrize("agent,torso", [("cql", "baseline")])
def test_offline_agents_learn_catch(dirs, agent, torso, tmp_path):
    row = learning.run_one("catch", agent, torso, seeds=1, budget=OFFLINE_BUDGET, **dirs)
    _check(row, OFFLINE_BUDGET)
    # The report reads the run and normalises it with baselines/catch_scores.csv.
    from offline_moe.analysis.report import write_report

    write_report(row["workdir"], tmp_path / "report", reps=100, plots=False)
    rows = list(csv.DictReader(open(tmp_path / "report" / "results.csv")))
    assert [r["game"] for r in rows] == ["Catch"]
    normalised = (row["final_return_mean"] + 0.60012) / (1.0 + 0.60012)
    assert float(rows[0]["final_hns"]) == pytest.approx(normalised, abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("agent,torso", [("der", "baseline")])
def test_online_agents_learn_catch(dirs, agent, torso):
    row = learning.run_one("catch", agent, torso, seeds=1, budget=ONLINE_BUDGET, **dirs)
    _check(row, ONLINE_BUDGET)
