"""`./run.sh`'s MinAtar mini-grid at a tiny size: shipped data in, normalised scores out."""

import json
import os

import pytest

from offline_moe import default_benchmark
from offline_moe.analysis.stats import reference_score


def test_minatar_mini_grid_tiny(tmp_path, capsys):
    runs = tmp_path / "runs"
    result = default_benchmark.main(
        ["--budget=8", "--torsos=baseline", "--num_seeds=2", "--report=0", "--eval_steps=40",
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


def test_minatar_mini_grid_refuses_an_atari_game(tmp_path):
    with pytest.raises(SystemExit, match="not a MinAtar game"):
        default_benchmark.main(["--game=Pong", f"--runs_dir={tmp_path}"])
