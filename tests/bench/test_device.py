"""`python -m offline_moe.bench device`: the accelerator check runs on CPU, writes its figures."""

import json
import os
import subprocess
import sys

import pytest

from offline_moe.bench import device


@pytest.mark.slow
def test_quick_check_writes_every_section(tmp_path):
    sections = [s for s in device.SHARES if s != "online"]  # DER: tests/*/test_online.py
    result = device.Check(str(tmp_path), 1.0, "tiny", sections=sections, log=lambda m: None).run()
    on_disk = json.loads((tmp_path / "device.json").read_text())
    assert on_disk == json.loads(json.dumps(result))  # the file holds the final state
    assert result["finished"] and result["env"]["versions"]["jax"]
    assert "errors" not in result, result.get("errors")
    assert result["env"]["host_cpus"] >= 1 and result["env"]["device_kind"]
    replay = result["replay"]
    assert replay["rows"] == device.SIZES["tiny"].replay_rows
    # frames (7,056 B) + action, reward, start_row, valid (4 B each) + 2 flags per row
    assert replay["bytes_per_row"] == pytest.approx(84 * 84 + 4 * 4 + 2, abs=0.5)
    first = result["learner"][0]
    assert (first["agent"], first["torso"]) == ("cql", "soft_moe")  # most important first
    for key in ("updates_per_s", "compile_s", "params", "state_bytes"):
        assert first[key] > 0, key
    assert first["memory"]["peak_bytes_in_use"] > 0
    rates = {(r["replay"], r["n_step"]): r["transitions_per_s"] for r in result["replay_sampling"]}
    assert rates[("device", 1)] > 0 and rates[("host", 1)] > 0
    evals = {r["backend"]: r for r in result["eval"]}
    assert evals["pool"]["agent_steps_per_s"] > 0
    assert evals["pool"]["agent_steps_per_s_per_core"] > 0
    if "vector" in evals:
        assert evals["vector"]["agent_steps_per_s"] > 0
        assert result["eval_backends_identical"] is True  # same returns from both emulators
    # Everything not measured is listed with its reason, never dropped silently.
    # 2 agents x 3 torsos per seed count, plus one bfloat16 measurement.
    learner_skips = [s for s in result["skipped"] if s["what"].startswith("learner")]
    assert len(result["learner"]) + len(learner_skips) == 6 * len(device.SIZES["tiny"].seeds) + 1
    md = (tmp_path / "device.md").read_text()
    assert "## Learner" in md and "## Evaluation" in md and "cql | soft_moe | float32" in md


def test_sections_are_checked():
    with pytest.raises(ValueError, match="unknown section.*valid"):
        device.Check("/nonexistent-unused", 1.0, "tiny", sections=["learnr"])


def test_imports_no_tensorflow():
    code = (
        "import sys, offline_moe.bench.device, offline_moe.envs.vector, offline_moe.replay.host; "
        "sys.exit(int(any(m.split('.')[0] == 'tensorflow' for m in sys.modules)))"
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
