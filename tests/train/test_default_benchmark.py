"""`./run.sh`'s MinAtar mini-grid at a tiny size: shipped data in, normalised scores out."""

import json
import os

import pytest

from offline_moe import default_benchmark
from offline_moe.analysis.stats import reference_score


def test_minatar_mini_grid_tiny(tmp_path, capsys):
    runs = tmp_path / "runs"
    result = default_benchmark.main(
        ["default_benchmark", "--budget=8", "--torsos=baseline", "--num_seeds=2", "--noreport",
         "--eval_steps=40",
         f"--data_dir={tmp_path / 'data'}", f"--runs_dir={runs}"]
    )  # fmt: skip
    ref = reference_score("MinAtarBreakout")
    assert result["game"] == "MinAtarBreakout" and (result["random"], result["behaviour"]) == (
        ref.random,
        ref.human,
    )
    (row,) = result["runs"]
    summary = json.loads((runs / "MinAtarBreakout" / "cql_baseline" / "summary.json").read_text())
    assert summary["done"] and len(summary["final_return"]) == 2
    want = [(r - ref.random) / (ref.human - ref.random) for r in summary["final_return"]]
    assert row["normalised"] == pytest.approx(want)
    assert row["normalised_mean"] == pytest.approx(sum(want) / 2)
    # The shipped cache was unpacked under --data_dir, and results.json repeats the result.
    assert os.path.isfile(tmp_path / "data" / "cache" / "MinAtarBreakout_run1_5pct" / "meta.json")
    assert (
        json.loads((runs / "results.json").read_text())["runs"][0]["normalised"]
        == (row["normalised"])
    )
    out = capsys.readouterr().out
    assert "normalised" in out and "baseline" in out


def test_minatar_mini_grid_refuses_an_atari_game(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        default_benchmark.main(["default_benchmark", "--game=Pong", f"--runs_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "not a MinAtar game" in err
    assert err.startswith("[default_benchmark] error: ") and err.count("\n") == 1
