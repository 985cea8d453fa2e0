"""`python -m offline_moe.bench device`: the accelerator check runs on CPU, writes its figures,
and a second call continues the first; without TensorFlow, as on a bare GPU machine."""

import json
import os
import subprocess
import sys

import pytest

from offline_moe.bench import device

# Run as on a GPU machine with JAX alone: importing TensorFlow, tensorflow-datasets or rlds
# fails there, so it fails here too.
_NO_TF = (
    "import sys\n"
    "for m in ('tensorflow', 'tensorflow_datasets', 'rlds'):\n"
    "    sys.modules[m] = None\n"
    "from offline_moe.bench import device\n"
    "device.main(['bench device'] + sys.argv[1:])\n"
)


def _call(out, minutes: float, sections: str) -> dict:
    args = [f"--report_dir={out}", "--size=tiny", f"--minutes={minutes}", f"--sections={sections}"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", _NO_TF, *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["bench"] == "device"
    return json.loads((out / "device.json").read_text())


@pytest.mark.slow
def test_check_writes_every_section_and_a_second_call_continues(tmp_path):
    # Call 1: a budget too small for everything: the first measurement of each section runs,
    # the rest is listed as skipped, and both learning runs stop after their first iteration.
    sections = ",".join(s for s in device.SHARES if s != "online")  # DER: tests/*/test_online.py
    first = _call(tmp_path, 0.1, sections)
    assert not first["finished"] and first["skipped"]
    assert "errors" not in first, first.get("errors")
    runs = first["learning"]["runs"]
    assert {t: r["steps"] for t, r in runs.items()} == {"baseline": [20], "soft_moe": [20]}
    assert not any(r["finished"] for r in runs.values())
    tiny = device.SIZES["tiny"]
    data = first["learning"]["data"]
    assert data["agent_steps"] == tiny.learn_data_steps and data["processes"] == 2
    meta = json.loads((tmp_path / "cache" / "Pong_scripted_0.25" / "meta.json").read_text())
    assert meta["num_transitions"] == tiny.learn_data_steps and meta["policy"] == "scripted_0.25"
    assert meta["source_detail"]["written_by"].startswith("offline_moe.record --cache")

    # Call 2 continues the learning runs (the learner's continuation: test_learner_plan).
    result = _call(tmp_path, 2.0, "learning")
    assert len(result["calls"]) == 2 and result["finished"] and not result["skipped"]
    assert "errors" not in result, result.get("errors")
    assert result["learner"] == first["learner"]  # call 1's figures kept
    first_rec = result["learner"][0]
    assert (first_rec["agent"], first_rec["torso"]) == ("cql", "soft_moe")  # most important
    for key in ("updates_per_s", "compile_s", "params", "state_bytes"):
        assert first_rec[key] > 0, key
    assert first_rec["memory"]["peak_bytes_in_use"] > 0
    for torso, run in result["learning"]["runs"].items():
        assert run["finished"] and run["steps"] == [20, 40], torso
        assert run["returns"][0] == runs[torso]["returns"][0]  # call 1's evaluation kept
        assert run["final"]["mean"] == pytest.approx(sum(run["returns"][-1]) / len(run["seeds"]))
        assert run["mean_return"][-1] == pytest.approx(run["final"]["mean"])
    assert result["learning"]["random_score"]["mean"] < 0  # Pong: the random policy loses
    assert (tmp_path / "learning_curve.png").stat().st_size > 0

    replay = result["replay"]
    assert replay["rows"] == tiny.replay_rows
    # frames (7,056 B) + action, reward, start_row, valid (4 B each) + 2 flags per row
    assert replay["bytes_per_row"] == pytest.approx(84 * 84 + 4 * 4 + 2, abs=0.5)
    rates = {(r["replay"], r["n_step"]): r["transitions_per_s"] for r in result["replay_sampling"]}
    assert rates[("device", 1)] > 0 and rates[("host", 1)] > 0
    evals = {r["backend"]: r for r in result["eval"]}
    assert evals["pool"]["agent_steps_per_s"] > 0
    assert evals["pool"]["agent_steps_per_s_per_core"] > 0
    if "vector" in evals:
        assert evals["vector"]["agent_steps_per_s"] > 0
        assert result["eval_backends_identical"] is True  # same returns from both emulators
    md = (tmp_path / "device.md").read_text()
    assert "## Learner" in md and "## Evaluation" in md and "cql | soft_moe | float32" in md
    assert "## Learning: CQL on Pong" in md and "| soft_moe | 1 | 40 |" in md


def test_learner_plan_leaves_out_what_an_earlier_call_measured(tmp_path):
    check = device.Check(str(tmp_path), 1.0, "tiny", log=lambda m: None)
    plan = check._learner_plan()
    assert plan[0] == ("cql", "soft_moe", 1, "float32") and len(plan) == 6 + 1
    done = [{"agent": a, "torso": t, "num_seeds": n, "compute_dtype": d} for a, t, n, d in plan[:3]]
    check.result.update(learner=done, skipped=[{"what": "x", "why": "y"}])
    (tmp_path / "device.json").write_text(json.dumps(check.result))  # as call 1 left it
    again = device.Check(str(tmp_path), 1.0, "tiny", log=lambda m: None)
    assert again._learner_plan() == plan[3:]
    assert again.result["learner"] == done and again.result["skipped"] == []
    assert len(again.result["calls"]) == 2


def test_sections_are_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown section.*valid"):
        device.Check("/nonexistent-unused", 1.0, "tiny", sections=["learnr"])
    (tmp_path / "device.json").write_text(json.dumps({"size": "paper"}))
    with pytest.raises(ValueError, match="size 'paper', not 'tiny'; use another --report_dir"):
        device.Check(str(tmp_path), 1.0, "tiny")


def test_imports_no_tensorflow():
    code = (
        "import sys, offline_moe.bench.device, offline_moe.envs.vector, offline_moe.replay.host; "
        "import offline_moe.data.record, offline_moe.data.local, offline_moe.train.offline; "
        "sys.exit(int(any(m.split('.')[0] == 'tensorflow' for m in sys.modules)))"
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
