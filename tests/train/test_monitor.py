"""TensorBoard event files of a run directory, their truncation on resume, the progress line."""

import sys
import types

import numpy as np
import pytest

from offline_moe.train import monitor
from offline_moe.train.progress import Progress, fmt_time


def read_scalars(workdir):
    """{tag: [(step, value), ...]} of all event files in `workdir`, via TensorBoard's reader.

    TensorBoard reads through TensorFlow when it is importable; the `notf` marker module makes
    it use its own file reader (as in a TensorFlow-free install), which saves a TF import.
    """
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("notf"))
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(workdir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_scalars_of_names_means_seeds_and_vector_entries():
    record = {
        "iteration": 0,
        "step": 40,
        "loss": [1.0, 3.0],
        "updates_per_s": 12.5,
        "torso/expert_usage": [[0.25, 0.75], [0.75, 0.25]],
        "train_episode_returns": [[1.0, 2.0], [3.0]],  # ragged: skipped
        "note": "text",
    }
    assert monitor.scalars_of(record, "train") == {
        "train/loss": 2.0,
        "train/loss/seed_0": 1.0,
        "train/loss/seed_1": 3.0,
        "train/updates_per_s": 12.5,
        "torso/expert_usage/0": 0.5,
        "torso/expert_usage/1": 0.5,
    }
    assert monitor.scalars_of({"step": 1, "returns": [4.0], "repr/srank": [7]}, "eval") == {
        "eval/returns": 4.0,
        "repr/srank": 7.0,
    }


def test_event_files_hold_the_scalars_and_truncate_to_a_step(tmp_path):
    mon = monitor.Monitor(str(tmp_path))
    for step in (10, 20, 30, 40):
        mon.log({"iteration": step // 20, "step": step, "loss": [step / 10.0]}, "train")
    mon.log({"iteration": 1, "step": 40, "returns": [5.0, 7.0]}, "eval")
    scalars = read_scalars(tmp_path)  # on disk when log() returns (a kill loses nothing)
    mon.close()
    assert scalars["train/loss"] == [(10, 1.0), (20, 2.0), (30, 3.0), (40, 4.0)]
    assert scalars["eval/returns"] == [(40, 6.0)]
    assert scalars["eval/returns/seed_1"] == [(40, 7.0)]

    # A kill in the middle of writing a record leaves a cut record: dropped with the rest.
    (path,) = monitor.event_files(str(tmp_path))
    with open(path, "ab") as f:
        f.write(b"\x40\x00\x00\x00\x00\x00\x00\x00\x01\x02")
    monitor.truncate_event_files(str(tmp_path), 20)
    scalars = read_scalars(tmp_path)
    assert scalars["train/loss"] == [(10, 1.0), (20, 2.0)]
    assert "eval/returns" not in scalars
    # A second writer (the resumed process) continues after the cut.
    mon = monitor.Monitor(str(tmp_path))
    mon.log({"iteration": 1, "step": 30, "loss": [9.0]}, "train")
    mon.close()
    assert read_scalars(tmp_path)["train/loss"] == [(10, 1.0), (20, 2.0), (30, 9.0)]
    monitor.truncate_event_files(str(tmp_path), None)
    assert monitor.event_files(str(tmp_path)) == []


def test_wandb_is_never_imported_unless_asked(tmp_path, monkeypatch):
    monitor.Monitor(str(tmp_path)).log({"step": 1, "loss": 1.0}, "train")
    assert "wandb" not in sys.modules
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed
    monitor.configure(wandb_project="grid")
    try:
        with pytest.raises(SystemExit, match="pip install wandb"):
            monitor.Monitor(str(tmp_path)).log({"step": 2, "loss": 1.0}, "train")
    finally:
        monitor.configure()


def test_progress_eta_counts_training_and_evaluation_time():
    p = Progress(total=1000, evals_total=4, evals_done=1, unit="update", num_seeds=2)
    assert p.eta(0) is None
    p.block(100, 50.0)  # includes compiling: used only until a later block is timed
    assert p.eta(100) == pytest.approx(900 * 0.5)
    assert "(incl. compile)" in p.line(1, 4, 100, 0.5, {"updates/s": 2.0})
    assert p.line(1, 4, 100, 0.5, {"updates/s": 2.0}).endswith("ETA 7m30s + eval")
    p.block(100, 10.0)
    p.evaluation(30.0)
    # 800 updates at 0.1 s + 2 evaluations left at 30 s
    assert p.eta(200) == pytest.approx(80.0 + 60.0)
    line = p.line(2, 4, 200, 0.25, {"agent steps/s": 40.0, "updates/s": 10.0})
    assert line == (
        "it 2/4 update 200/1,000 loss 0.2500 | 40.0 agent steps/s 10.0 updates/s x2 seeds "
        "| ETA 2m20s"
    )
    assert fmt_time(3725) == "1h02m" and fmt_time(-3) == "0m00s"
    assert np.isfinite(p.seconds_per_step())
