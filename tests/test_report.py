"""Tests for offline_moe.report on fabricated run directories (layout of offline_moe/rundir.py)."""

import csv
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import offline_moe.report as report_cli
from offline_moe.analysis import report, stats

# Reference pairs used below: Pong (-20.7, 14.6), Breakout (1.7, 30.5).


def make_run(root, agent, game, torso, seed, returns, *, done=True, percent=5, extra_torso=None):
    """Writes a run dir; returns is [evaluations, seeds] of mean episode returns."""
    returns = np.asarray(returns, dtype=float)
    torso_cfg = {"name": torso, "num_experts": 8, "encoder": "impala", **(extra_torso or {})}
    label = torso + "".join(f"_{k}{v}" for k, v in (extra_torso or {}).items())
    workdir = Path(root) / agent / game / label / f"seeds_{seed}"
    workdir.mkdir(parents=True)
    config = {
        "agent": agent,
        "game": game,
        "seed": seed,
        "num_seeds": returns.shape[1],
        "torso": torso_cfg,
        "data": {"percent": percent},
    }
    (workdir / "config.json").write_text(json.dumps(config))
    with open(workdir / "eval.jsonl", "w") as f:
        for i, r in enumerate(returns):
            rec = {
                "iteration": i,
                "step": (i + 1) * 100,
                "returns": list(r),
                "episodes": [3] * len(r),
            }
            f.write(json.dumps(rec) + "\n")
    if done:
        summary = {
            "done": True,
            "final_return": list(returns[-1]),
            "best_return": list(returns.max(0)),
        }
        (workdir / "summary.json").write_text(json.dumps(summary))
    return workdir


def png_size(path):
    """(width, height) from the IHDR chunk, after checking the PNG signature."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def png_pixels_vary(path):
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    return float(img[..., :3].std()) > 0.01


@pytest.fixture()
def fabricated(tmp_path):
    root = tmp_path / "runs"
    rng = np.random.default_rng(0)
    for game, (lo, hi) in {"Pong": (-20.7, 14.6), "Breakout": (1.7, 30.5)}.items():
        for torso, level in {"baseline": 0.2, "soft_moe": 0.6, "top1_moe": 0.3}.items():
            hns = level + 0.05 * rng.standard_normal((3, 2))  # 3 evals x 2 seeds
            make_run(root, "cql", game, torso, 0, lo + hns * (hi - lo))
    # One unfinished run and one game without reference scores.
    make_run(root, "cql", "Pong", "soft_moe", 2, [[0.0], [1.0]], done=False)
    make_run(root, "cql", "AirRaid", "baseline", 0, [[100.0, 200.0]] * 3)
    return root


def test_report_writes_every_file(fabricated, tmp_path):
    out = tmp_path / "report"
    text = report.write_report(fabricated, out, reps=300)
    for name in ("results.md", "results.csv", "aggregates.csv"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    for png in ("iqm_cql_percent5.png", "curves_cql_percent5.png", "profile_cql_percent5.png"):
        w, h = png_size(out / png)
        assert w > 100 and h > 100
        assert png_pixels_vary(out / png)
    assert not (out / "iqm_vs_experts_cql_percent5.png").exists()  # experts never varied
    # Warnings: unfinished run, unknown game; the aggregate uses the two known games.
    assert "unfinished run" in text and "seeds_2" in text
    assert "AirRaid" in text and "reported raw only" in text
    assert "Aggregated over 2 games: Breakout, Pong." in text
    assert "### Verdict" in text and "Fig. 11" in text
    assert (out / "results.md").read_text() == text


def test_report_numbers(tmp_path):
    # Exact per-seed values: Pong final HNS 0.5 for both seeds; Breakout best HNS 1.0.
    root = tmp_path / "runs"
    pong = [[-20.7, -20.7], [-3.05, -3.05]]  # HNS 0 then 0.5
    brk = [[30.5, 30.5], [1.7, 1.7]]  # HNS 1 then 0 (collapse: best != final)
    for torso in ("baseline", "soft_moe"):
        make_run(root, "cql_c51", "Pong", torso, 0, pong)
        make_run(root, "cql_c51", "Breakout", torso, 0, brk)
    out = tmp_path / "out"
    report.write_report(root, out, reps=200)
    with open(out / "results.csv") as f:
        rows = {(r["game"], r["variant"]): r for r in csv.DictReader(f)}
    assert float(rows[("Pong", "baseline")]["final_hns"]) == pytest.approx(0.5)
    assert float(rows[("Pong", "baseline")]["best_hns"]) == pytest.approx(0.5)
    assert float(rows[("Breakout", "soft_moe")]["final_hns"]) == pytest.approx(0.0)
    assert float(rows[("Breakout", "soft_moe")]["best_hns"]) == pytest.approx(1.0)
    assert float(rows[("Breakout", "soft_moe")]["best_mean"]) == pytest.approx(30.5)
    with open(out / "aggregates.csv") as f:
        agg = {(r["variant"], r["score"], r["metric"]): r for r in csv.DictReader(f)}
    # final matrix [[0.5, 0.0], [0.5, 0.0]] (games Breakout, Pong order irrelevant):
    # IQM of [0, 0, .5, .5] cut 1 -> mean(0, .5) = 0.25; identical seeds -> CI is a point.
    iqm = agg[("baseline", "final", "iqm")]
    assert float(iqm["point"]) == pytest.approx(0.25)
    assert float(iqm["ci_low"]) == float(iqm["ci_high"]) == pytest.approx(0.25)
    assert float(agg[("soft_moe", "final", "poi_vs_baseline")]["point"]) == pytest.approx(0.5)
    assert float(agg[("baseline", "best", "mean")]["point"]) == pytest.approx(0.75)


def test_mixed_protocols_are_split_and_warned(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "cql", "Pong", "baseline", 0, [[0.0]], percent=5)
    make_run(root / "ten", "cql", "Pong", "baseline", 0, [[10.0]], percent=10)
    text = report.write_report(root, tmp_path / "out", reps=100, plots=False)
    assert "mixed protocols for agent cql" in text
    assert "## cql (percent=5)" in text and "## cql (percent=10)" in text


def test_iqm_vs_experts_plot_and_variant_labels(tmp_path):
    root = tmp_path / "runs"
    for game in ("Pong", "Breakout"):
        make_run(root, "cql", game, "baseline", 0, [[0.0, 1.0]])
        for n in (1, 2, 4):
            make_run(root, "cql", game, "soft_moe", 0, [[float(n), n + 1.0]],
                     extra_torso={"num_experts": n})  # fmt: skip
    out = tmp_path / "out"
    text = report.write_report(root, out, reps=100)
    assert "`soft_moe[num_experts=4]`" in text
    w, h = png_size(out / "iqm_vs_experts_cql_percent5.png")
    assert w > 100 and h > 100


def test_print_report_and_cli(fabricated, tmp_path, capsys):
    text = report.print_report(fabricated, tmp_path / "printed", reps=100)
    assert "## cql" in capsys.readouterr().out
    assert text.startswith("# offline_moe results")
    rc = report_cli.main(["report", f"--runs={fabricated}", f"--out={tmp_path / 'cli'}",
                      "--reps=100", "--no_plots", "--quiet"])  # fmt: skip
    assert rc == 0 and (tmp_path / "cli" / "results.md").is_file()
    assert not list((tmp_path / "cli").glob("*.png"))


def test_empty_root_warns(tmp_path):
    text = report.write_report(tmp_path / "nothing", tmp_path / "out", reps=10)
    assert "no run directories" in text


def test_png_reader_rejects_non_png(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(zlib.compress(b"not a png"))
    with pytest.raises(AssertionError):
        png_size(bad)


def test_unknown_game_error_in_stats_is_what_report_catches():
    assert issubclass(stats.UnknownGameError, KeyError)


def test_verdict_matches_paper_entry_by_agent_and_fraction(tmp_path):
    root = tmp_path / "runs"
    for agent in ("cql", "cql_c51"):
        for game in ("Pong", "Breakout"):
            make_run(root, agent, game, "baseline", 0, [[0.0, 1.0]], percent=10.0)
            make_run(root, agent, game, "soft_moe", 0, [[5.0, 6.0]], percent=10.0)
    text = report.write_report(root, tmp_path / "out", reps=100, plots=False)
    cql, c51 = text.split("## cql_c51")
    assert "The paper states no finding for cql at percent=10.0" in cql
    assert "Paper (Fig. 17 (appendix)): `soft_moe` best" in c51 and "**agrees**" in c51


def test_scaled_baselines_pick_the_unscaled_one():
    assert report.pick_baseline(["baseline[width=1.0]", "baseline[width=8.0]", "soft_moe"]) == (
        "baseline[width=1.0]"
    )
    assert report.pick_baseline(["baseline", "soft_moe"]) == "baseline"
    assert report.pick_baseline(["soft_moe"]) is None
