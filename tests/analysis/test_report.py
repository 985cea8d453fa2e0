"""Tests for offline_moe.report on fabricated run directories (layout: train/rundir.py)."""

import csv
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

import offline_moe.report as report_cli
from offline_moe.analysis import report, stats, suites
from offline_moe.train import protocol

# Reference pairs used below: Pong (-20.7, 14.6), Breakout (1.7, 30.5).


def make_run(
    root,
    agent,
    game,
    torso,
    seed,
    returns,
    *,
    done=True,
    percent=5,
    extra_torso=None,
    source="tfds",
    encoder="impala",
    iterations=None,
    per_iteration=62_500,
    eval_cap=27_000,
    config_extra=None,
    online=False,
):
    """Writes a run dir as the trainers do; returns is [evaluations, seeds] of mean returns.

    The protocol block says what the run was (data, torso, budget, evaluation); evaluations
    are spread evenly over `iterations` (default: one per iteration).
    """
    returns = np.asarray(returns, dtype=float)
    num_evals = returns.shape[0]
    iterations = iterations or num_evals
    kwargs = {"encoder": encoder}
    kwargs.update({"width": 1.0} if torso == "baseline" else {"num_experts": 8})
    kwargs.update(extra_torso or {})
    label = torso + "".join(f"_{k}{v}" for k, v in (extra_torso or {}).items())
    workdir = Path(root) / agent / game / label / f"seeds_{seed}"
    workdir.mkdir(parents=True)
    config = {
        "agent": agent,
        "game": game,
        "seed": seed,
        "num_seeds": returns.shape[1],
        "torso": {"name": torso, **kwargs},
        "data": {"percent": percent},
        **(config_extra or {}),
    }
    (workdir / "config.json").write_text(json.dumps(config))
    unit = "agent_steps" if online else "updates"
    block = protocol.protocol_block(
        track="online" if online else "offline",
        agent=agent,
        game=game,
        data={"source": "online", "percent": None, "cache": None}
        if online
        else {"source": source, "percent": percent, "cache": None},
        encoder=encoder,
        torso={"name": torso, "kwargs": kwargs},
        budget={"iterations": iterations, "steps_per_iteration": per_iteration, "unit": unit},
        evaluation={
            "protocol": "dqn_replay",
            "epsilon": 0.001,
            "max_episode_steps": eval_cap,
            "standard_max_episode_steps": 27_000,
            "min_steps": None if online else 125_000,
            "episodes": 100 if online else None,
            "interval": 1,
        },
        sticky_actions=0.25,
    )
    (workdir / "protocol.json").write_text(json.dumps(block))
    with open(workdir / "eval.jsonl", "w") as f:
        for i, r in enumerate(returns):
            it = round((i + 1) * iterations / num_evals)
            rec = {
                "iteration": it - 1,
                "step": it * per_iteration,
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
    make_run(root, "cql", "Pong", "soft_moe", 2, [[0.0], [1.0]], done=False, iterations=3)
    make_run(root, "cql", "AirRaid", "baseline", 0, [[100.0, 200.0]] * 3)
    return root


def test_report_writes_every_file(fabricated, tmp_path):
    out = tmp_path / "report"
    text = report.write_report(fabricated, out, reps=300)
    for name in ("results.md", "results.csv", "aggregates.csv"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    label = "cql_tfds5pct_3x62500"
    for kind in ("iqm_curve", "intervals", "curves", "profile"):
        w, h = png_size(out / f"{kind}_{label}.png")
        assert w > 100 and h > 100
        assert png_pixels_vary(out / f"{kind}_{label}.png")
        assert png_dpi(out / f"{kind}_{label}.png") == pytest.approx((150, 150), abs=0.1)
        assert (out / f"{kind}_{label}.pdf").read_bytes()[:5] == b"%PDF-"
    assert not (out / f"iqm_vs_experts_{label}.png").exists()  # experts never varied
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
    report.write_report(root, out, reps=200, plots=False)
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
    assert "## cql (5% of DQN-Replay (TFDS), 1 x 62,500 updates" in text
    assert "## cql (10% of DQN-Replay (TFDS), 1 x 62,500 updates" in text


def test_iqm_vs_experts_plot_and_variant_labels(tmp_path):
    root = tmp_path / "runs"
    for game in ("Pong", "Breakout"):
        make_run(root, "cql", game, "baseline", 0, [[0.0, 1.0]])
        for n in (1, 2, 4):
            make_run(root, "cql", game, "soft_moe", 0, [[float(n), n + 1.0]],
                     extra_torso={"num_experts": n})  # fmt: skip
    from offline_moe.analysis.report import plots

    text = report.write_report(root, tmp_path / "out", reps=100, plots=False)
    assert "`soft_moe[num_experts=4]`" in text
    res = _group(root, reps=100)
    png, pdf = plots.save(plots.figure_iqm_vs_experts(res), tmp_path / "experts")
    w, h = png_size(png)
    assert w > 100 and h > 100 and pdf.is_file()
    assert res.label == "cql_tfds5pct_1x62500"


def test_a_kwarg_a_run_did_not_record_counts_as_its_default(tmp_path):
    """Runs written before soft_moe had phi_init_scale share a variant with runs that record
    its default; a run with another value is its own variant."""
    root = tmp_path / "runs"
    for game in ("Pong", "Breakout"):
        make_run(root, "cql", game, "baseline", 0, [[0.0, 1.0]])
        make_run(root, "cql", game, "soft_moe", 0, [[1.0, 2.0]])  # no phi_init_scale
        make_run(root, "cql", game, "soft_moe", 2, [[1.0, 2.0]],
                 extra_torso={"phi_init_scale": 1.0})  # fmt: skip
    runs = report.load_runs(root)
    report.groups.assign_variants(runs)
    assert {r.variant for r in runs} == {"baseline", "soft_moe"}
    make_run(root, "cql", "Pong", "soft_moe", 4, [[1.0, 2.0]], extra_torso={"phi_init_scale": 30.0})
    runs = report.load_runs(root)
    report.groups.assign_variants(runs)
    assert {r.variant for r in runs} == {
        "baseline", "soft_moe[phi_init_scale=1.0]", "soft_moe[phi_init_scale=30.0]"
    }  # fmt: skip


def test_print_report_and_cli(fabricated, tmp_path, capsys):
    text = report.print_report(fabricated, tmp_path / "printed", reps=100, plots=False)
    assert "## cql" in capsys.readouterr().out
    assert text.startswith("# offline_moe results")
    rc = report_cli.main(["report", f"--runs_dir={fabricated}",
                          f"--report_dir={tmp_path / 'cli'}", "--reps=100", "--noplots",
                          "--quiet"])  # fmt: skip
    assert rc == 0 and (tmp_path / "cli" / "results.md").is_file()
    assert not list((tmp_path / "cli").glob("*.png"))


def test_empty_root_warns(tmp_path):
    (tmp_path / "empty").mkdir()
    text = report.write_report(tmp_path / "empty", tmp_path / "out", reps=10)
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
    assert "The paper states no finding for cql with 10% of DQN-Replay (TFDS)." in cql
    # Two games trained for one iteration are no test of a 17-game, 200-iteration finding.
    assert "Paper (Fig. 17 (appendix)): `soft_moe` best. -- **not comparable**: budget" in c51
    assert "**agrees**" not in c51 and "**disagrees**" not in c51


def test_scaled_baselines_pick_the_unscaled_one():
    assert report.pick_baseline(["baseline[width=1.0]", "baseline[width=8.0]", "soft_moe"]) == (
        "baseline[width=1.0]"
    )
    assert report.pick_baseline(["baseline", "soft_moe"]) == "baseline"
    assert report.pick_baseline(["soft_moe"]) is None


def hns_to_raw(game, hns):
    ref = stats.reference_score(game)
    return ref.random + np.asarray(hns, dtype=float) * (ref.human - ref.random)


def _group(root, reps=200, **kwargs):
    warnings = []
    runs = report.load_runs(root, warnings)
    groups = report.build_groups(runs, include_unfinished=False, warnings=warnings)
    (key, cells), *rest = groups.items()
    assert not rest, list(groups)
    return report.analyse_group(*key, cells, reps=reps, seed=0, warnings=warnings,
                                scores=None, **kwargs)  # fmt: skip


def test_iqm_curve_equals_iqm_of_each_iteration(tmp_path):
    root = tmp_path / "runs"
    # HNS [evaluation, seed] per game; evaluations at iterations 1, 2, 3 (x 100 updates).
    pong = np.array([[0.0, 0.2, 0.4], [0.5, 0.5, 0.9], [1.0, 0.1, 0.3]])
    brk = np.array([[1.0, 0.8, 0.6], [0.0, 0.7, 0.2], [0.4, 0.4, 0.4]])
    for game, hns in (("Pong", pong), ("Breakout", brk)):
        make_run(root, "cql", game, "soft_moe", 0, hns_to_raw(game, hns), per_iteration=100)
    res = _group(root)
    curve = res.curves["soft_moe"]
    assert curve.iterations.tolist() == [1, 2, 3] and curve.runs == 3
    # Iteration 1 pools {0, .2, .4, 1, .8, .6}: drop one score at each end -> mean(.2..0.8) = .5
    assert curve.point[0] == pytest.approx(0.5)
    for i in range(3):
        m = np.stack([brk[i], pong[i]], axis=1)  # [seeds, games], games sorted
        assert curve.point[i] == pytest.approx(float(stats.iqm(m)))
        point, lo, hi = stats.stratified_bootstrap_ci(m, stats.iqm, reps=200, seed=0)
        assert (curve.lower[i], curve.upper[i]) == pytest.approx((lo, hi))
    # The last point of the curve is the final-score IQM of the aggregate table.
    assert curve.point[-1] == pytest.approx(res.aggregates[("soft_moe", "final")]["iqm"][0])


def _paper_suite(root, variants, *, games=suites.OFFLINE_PAPER, offsets=(0.0, 0.01, 0.02),
                 **kwargs):  # fmt: skip
    """One run per (game, variant), one seed per offset, at HNS level + the seed's offset."""
    for game in games:
        for torso, extra, level in variants:
            hns = level + np.array([offsets])
            make_run(root, "cql", game, torso, 0, hns_to_raw(game, hns), extra_torso=extra,
                     iterations=200, **kwargs)  # fmt: skip


def test_verdict_uses_the_variant_with_the_papers_number_of_experts(tmp_path):
    root = tmp_path / "runs"
    variants = [("baseline", None, 0.3), ("soft_moe", {"num_experts": 1}, 0.1),
                ("soft_moe", {"num_experts": 8}, 0.6)]  # fmt: skip
    _paper_suite(root, variants)
    text = report.write_report(root, tmp_path / "out", reps=200, plots=False)
    section = text.split("### Verdict")[1]
    assert "`soft_moe[num_experts=8]` P(improve over `baseline`) = 1.000" in section
    assert "Paper (Fig. 11 (left)): `soft_moe` best." in section and "**agrees**" in section
    assert "**disagrees**" not in section
    # top1_moe was not run: that claim is not comparable, the others still are.
    assert "Top1-MoE does not improve CQL. -- **not comparable**: no top1_moe runs." in section


def test_verdict_not_comparable_when_settings_differ(tmp_path):
    root = tmp_path / "runs"
    variants = [("baseline", None, 0.3), ("soft_moe", {"num_experts": 2}, 0.6)]
    _paper_suite(root, variants, games=suites.OFFLINE_PAPER[:6], encoder="nature",
                 per_iteration=100)  # fmt: skip
    text = report.write_report(root, tmp_path / "out", reps=100, plots=False)
    section = text.split("### Verdict")[1]
    assert "**agrees**" not in section and "**disagrees**" not in section
    assert "**inconclusive**" not in section
    lines = [x for x in section.splitlines() if "Paper (Fig. 11 (left))" in x]
    assert len(lines) == 3 and all("**not comparable**" in x for x in lines)
    assert "budget 200 x 100 updates vs the paper's 200 x 62,500 updates" in lines[0]
    assert "6 games aggregated vs the paper's 17 (offline_paper)" in lines[0]
    assert "no soft_moe run with encoder=impala, num_experts=8" in lines[0]
    assert "encoder=nature, num_experts=2" in lines[0]


def test_capped_evaluation_is_flagged_and_left_out_of_aggregates(tmp_path):
    root = tmp_path / "runs"
    # Pong -4 from episodes cut at 200 steps would read as HNS 0.473.
    for torso in ("baseline", "soft_moe"):
        make_run(root, "cql", "Pong", torso, 0, [[-4.0, -4.0]], eval_cap=200)
    text = report.write_report(root, tmp_path / "out", reps=100, plots=False)
    assert "capped at 200 agent steps" in text and "left out of normalised aggregates" in text
    assert "No normalised aggregate" in text and "0.473" not in text
    assert "| Pong | `baseline` | 2 | -4.0 +- 0.0 | -4.0 +- 0.0 | capped | capped |" in text
    asked = report.write_report(root, tmp_path / "out2", reps=100, plots=False,
                                include_capped=True)  # fmt: skip
    assert "normalised anyway (--include_capped)" in asked and "0.473" in asked


def test_groups_come_from_the_protocol_block_not_config_keys(tmp_path):
    root = tmp_path / "runs"
    # Configs that differ in keys the old report searched (percent, protocol, smoke) but
    # share a protocol block: one table. Configs alike but protocols apart: two tables.
    make_run(root / "a", "cql", "Pong", "baseline", 0, [[0.0]], percent=10,
             config_extra={"data": {"percent": 5}, "smoke": True})  # fmt: skip
    make_run(root / "b", "cql", "Breakout", "baseline", 0, [[2.0]], percent=10,
             config_extra={"data": {"percent": 50}, "protocol": "atari100k"})  # fmt: skip
    text = report.write_report(root, tmp_path / "out", reps=100, plots=False)
    assert "mixed protocols" not in text
    assert "## cql (10% of DQN-Replay (TFDS), 1 x 62,500 updates" in text
    make_run(root / "c", "cql", "Pong", "baseline", 0, [[0.0]], percent=10, eval_cap=200)
    text = report.write_report(root, tmp_path / "out", reps=100, plots=False)
    assert "mixed protocols for agent cql" in text and "cap 200 steps (CAPPED)" in text


def test_missing_runs_root_is_an_error(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="nothing is not a directory"):
        report.write_report(tmp_path / "nothing", tmp_path / "out", reps=10)
    assert not (tmp_path / "out").exists()
    argv = ["report", f"--runs_dir={tmp_path / 'nothing'}", f"--report_dir={tmp_path / 'o'}"]
    with pytest.raises(SystemExit) as exit_:
        report_cli.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "nothing does not exist" in err and "--runs_dir=" in err
    assert err.startswith("[report] error: ") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def png_dpi(path):
    """Dots per inch from the pHYs chunk (pixels per metre)."""
    data = Path(path).read_bytes()
    at = data.index(b"pHYs")
    ppm_x, ppm_y, unit = struct.unpack(">IIB", data[at + 4 : at + 13])
    assert unit == 1  # metres
    return ppm_x * 0.0254, ppm_y * 0.0254


def test_figure_titles_say_what_was_run_and_legends_stay_outside(fabricated):
    from offline_moe.analysis.report import plots

    res = _group(fabricated, reps=100)
    figs = [plots.figure_iqm_curves(res), plots.figure_profiles(res, reps=100),
            plots.figure_game_curves(res)]  # fmt: skip
    # The interval-estimate bars span exactly the aggregate CIs, with the point marked.
    intervals = plots.figure_intervals(res)
    iqm_final = intervals.axes[0]
    assert iqm_final.get_title() == "IQM (final)"
    for bar, v in zip(iqm_final.patches, res.variants):
        point, lo, hi = res.aggregates[(v, "final")]["iqm"]
        assert (bar.get_x(), bar.get_width()) == pytest.approx((lo, hi - lo))
    plots._plt().close(intervals)
    head = figs[0].get_suptitle().splitlines()[0]
    assert head == "CQL, 5% of DQN-Replay (TFDS), Impala encoder, 8 experts, 2 games, 2 seeds"
    for fig in figs:
        fig.canvas.draw()
        (legend,) = fig.legends
        box = legend.get_window_extent()
        assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes if ax.axison)
        plots._plt().close(fig)


@pytest.mark.parametrize(
    "online, per_iteration, label",
    [
        (False, 62_500, "training iteration (1 = 62,500 updates)"),
        (True, 10_000, "training iteration (1 = 10,000 agent steps)"),
    ],
)
def test_both_tracks_plot_against_iterations_labelled_with_their_unit(
    tmp_path, online, per_iteration, label
):
    """One step axis for both tracks: x is the iterations completed at each evaluation (the
    evaluation's step / steps per iteration), never raw updates or agent steps; the label says
    what one iteration is on the run's track. Evaluations after iterations 3, 7 and 10."""
    from offline_moe.analysis.report import plots

    root = tmp_path / "runs"
    agent = "der" if online else "cql"
    for game in ("Pong", "Breakout"):
        for torso, level in (("baseline", 0.2), ("soft_moe", 0.3)):
            hns = [[level, level], [level + 0.1, level], [level + 0.2, level + 0.1]]
            make_run(root, agent, game, torso, 0, hns_to_raw(game, hns), online=online,
                     iterations=10, per_iteration=per_iteration)  # fmt: skip
    res = _group(root, reps=100)
    for fig in (plots.figure_iqm_curves(res), plots.figure_game_curves(res)):
        axes = [ax for ax in fig.axes if ax.lines]
        assert axes
        for ax in axes:
            assert ax.get_xlabel() == label
            for line in ax.lines:
                assert list(line.get_xdata()) == [3, 7, 10]
        plots._plt().close(fig)


def test_profile_axis_spans_the_data_and_uses_rlibles_counts(fabricated, monkeypatch, tmp_path):
    from offline_moe.analysis.report import plots

    res = _group(fabricated, reps=100)
    scores = np.concatenate([m.ravel() for (v, k), m in res.matrices.items() if k == "final"])
    taus = plots.profile_taus(res)
    span = scores.max() - scores.min()
    assert taus[0] == pytest.approx(scores.min() - 0.05 * span)
    assert taus[-1] == pytest.approx(scores.max() + 0.05 * span)
    assert taus[-1] < 1.0  # fabricated scores stay below 0.7: no fixed [0, 2] axis
    seen = []
    real = stats.performance_profile_ci

    def spy(m, t, *, reps, seed):
        seen.append(reps)
        return real(m, t, reps=reps, seed=seed)

    monkeypatch.setattr(stats, "performance_profile_ci", spy)
    monkeypatch.setattr(plots, "save", lambda fig, stem: plots._plt().close(fig) or [])
    plots.write_figures(res, tmp_path, reps=50_000)
    assert seen and set(seen) == {2_000}  # rliable's create_performance_profile count


def test_online_verdict_and_published_iqm_say_how_the_runs_differ(tmp_path):
    root = tmp_path / "runs"
    for game in ("Pong", "Breakout"):
        for torso, level in (("baseline", 0.2), ("soft_moe", 0.3)):
            make_run(root, "der", game, torso, 0, hns_to_raw(game, [[level, level + 0.01]]),
                     online=True, iterations=10, per_iteration=10_000)  # fmt: skip
    text = report.write_report(root, tmp_path / "out", reps=100, plots=False)
    assert "## der (online interaction, 10 x 10,000 agent steps, eval dqn_replay" in text
    diff = "**not comparable**: 2 games aggregated vs the paper's 26 (atari100k)"
    assert (
        f"at 100k agent steps (400k frames): no real difference between variants -- {diff}" in text
    )
    assert "Published Atari 100k IQM of DER: 0.183" in text and f"2 games -- {diff}" in text


def test_one_seed_per_game_gets_numbers_but_no_verdict(tmp_path):
    """1 seed per game: the ordering and the claims show their numbers, but nothing is called
    confident, agreeing or disagreeing; the header states the rule. 3 seeds: verdicts."""
    root = tmp_path / "runs"
    variants = [("baseline", None, 0.3), ("soft_moe", None, 0.6), ("top1_moe", None, 0.1)]
    _paper_suite(root, variants, offsets=(0.0,))
    text = report.write_report(root, tmp_path / "out", reps=100, plots=False)
    assert "at least 3 seeds of every variant and the 95% CIs separate" in text.split("## ")[0]
    section = text.split("### Verdict")[1]
    assert "Top variant `soft_moe`: too few seeds for a verdict (1 seed(s)" in section
    for word in ("confident", "**agrees**", "**disagrees**", "**inconclusive**"):
        assert word not in section.replace("not a confident", "")
    assert section.count("too few seeds for a verdict") == 4  # top line, best, two claims
    assert "P(improve over `baseline`) = 1.000" in section  # the numbers are still there
    root3 = tmp_path / "runs3"
    _paper_suite(root3, variants)
    section = report.write_report(root3, tmp_path / "out3", reps=100, plots=False)
    section = section.split("### Verdict")[1]
    assert "(confident)" in section and "**agrees**" in section and "too few" not in section


def test_no_improvement_claim_agrees_inside_the_equivalence_margin(tmp_path):
    """ "Top1-MoE does not improve CQL" with top1_moe scoring exactly the baseline: P(improve)
    = 0.5 with a point CI, inside [0.4, 0.6] -> agrees (it was inconclusive). The rule's other
    cases are checked on their CIs."""
    root = tmp_path / "runs"
    variants = [("baseline", None, 0.3), ("soft_moe", None, 0.6), ("top1_moe", None, 0.3)]
    _paper_suite(root, variants, offsets=(0.0, 0.0, 0.0))
    section = report.write_report(root, tmp_path / "out", reps=100, plots=False)
    line = [x for x in section.splitlines() if "Top1-MoE does not improve CQL." in x][0]
    assert "0.500 [0.500, 0.500]" in line and line.endswith("**agrees**.")
    assert "inside the margin [0.4, 0.6]" in line
    from offline_moe.analysis.report.verdict import claim_status

    assert claim_status(False, 0.2, 0.45)[1] is True  # worse: no improvement
    assert claim_status(False, 0.42, 0.58)[1] is True  # equivalent
    assert claim_status(False, 0.55, 0.9)[1] is False  # improves
    assert claim_status(False, 0.3, 0.7)[1] is None  # too wide: absence of evidence
    assert claim_status(True, 0.55, 0.9)[1] is True and claim_status(True, 0.4, 0.6)[1] is None


def test_low_data_statements_meet_runs_at_their_own_budget(tmp_path):
    """A preset=fig12,frames=50000000 run (50 x 250,000 agent steps, ResNet, 8 experts) meets
    the 50M-frame statement of Fig. 12 without a budget difference, and is not comparable with
    the 100k statement or Fig. 16 (4 experts); a 100k run is the other way round."""
    for budget, (its, per) in {"long": (50, 250_000), "100k": (10, 10_000)}.items():
        root = tmp_path / budget
        for game in ("Pong", "Breakout"):
            for torso, level in (("baseline", 0.2), ("soft_moe", 0.3)):
                make_run(root, "der", game, torso, 0, hns_to_raw(game, [[level] * 3]),
                         online=True, iterations=its, per_iteration=per)  # fmt: skip
        text = report.write_report(root, tmp_path / f"out{budget}", reps=100, plots=False)
        lines = {}
        for x in text.splitlines():
            for key in ("Fig. 12 / Fig. 16)", "Fig. 12)", "Fig. 16)"):
                if f"Paper ({key}" in x:
                    lines[key] = x
        budget_diff = {k: "budget" in v for k, v in lines.items()}
        if budget == "long":
            assert budget_diff == {"Fig. 12 / Fig. 16)": True, "Fig. 12)": False,
                                   "Fig. 16)": False}  # fmt: skip
            assert "50M frames" in lines["Fig. 12)"] and "num_experts=8" not in lines["Fig. 12)"]
            assert "no soft_moe run with encoder=impala, num_experts=4" in lines["Fig. 16)"]
        else:
            assert budget_diff == {"Fig. 12 / Fig. 16)": False, "Fig. 12)": True,
                                   "Fig. 16)": True}  # fmt: skip
            assert "vs the paper's 50 x 250,000 agent steps" in lines["Fig. 12)"]


def test_minatar_runs_get_a_separate_labelled_comparison_at_their_scale(tmp_path):
    """MinAtar runs (their own encoder, budget and games) are not comparable with the Atari
    finding like for like; the same claims, matched on data source, percent and number of
    experts only, come in a block labelled "At MinAtar scale". An Atari group gets no such
    block."""
    root = tmp_path / "runs"
    variants = [("baseline", None, 0.3), ("soft_moe", None, 0.6), ("top1_moe", None, 0.3)]
    for game in suites.MINATAR:
        for torso, extra, level in variants:
            make_run(root, "cql", game, torso, 0, hns_to_raw(game, [[level] * 3]),
                     extra_torso=extra, source="dqn_replay", encoder="minatar", iterations=10,
                     per_iteration=5_000)  # fmt: skip
    _paper_suite(root, variants, games=suites.OFFLINE_PAPER[:2])
    text = report.write_report(root, tmp_path / "out", reps=100, plots=False)
    groups = [s for s in text.split("\n## ")[1:] if "### Verdict" in s]
    assert len(groups) == 2
    minatar, atari = sorted(groups, key=lambda s: "10 x 5,000 updates" not in s.split("\n")[0])
    verdict = minatar.split("### Verdict")[1]
    like = [x for x in verdict.splitlines() if x.startswith("- Paper (Fig. 11 (left))")]
    assert len(like) == 3 and all("**not comparable**" in x for x in like)
    assert "5 games aggregated vs the paper's 17 (offline_paper)" in like[0]
    assert "budget 10 x 5,000 updates vs the paper's 200 x 62,500 updates" in like[0]
    block = verdict.split("**At MinAtar scale**")[1].splitlines()
    scale = [x.strip() for x in block if "At MinAtar scale (paper's Fig. 11 (left))" in x]
    assert len(scale) == 3, block
    assert "`soft_moe` best." in scale[0] and "**agrees**" in scale[0]
    assert "P(improve over `baseline`) = 1.000" in scale[1] and "**agrees**" in scale[1]
    assert "Top1-MoE does not improve CQL." in scale[2] and scale[2].endswith("**agrees**.")
    assert "not comparable" not in "".join(scale)
    assert "At MinAtar scale" not in atari
    intro = text.split("\n## ")[0]
    assert "minatar_scores.csv" in intro and "min-max" in intro


def test_minatar_scale_gives_no_verdict_on_part_of_the_suite(tmp_path):
    """The same separation on 2 of the 5 MinAtar games: the numbers are shown, the verdict is
    "too few games for a verdict", naming the missing games (one game's ordering is not the
    suite's)."""
    root = tmp_path / "runs"
    for game in ("MinAtarBreakout", "MinAtarSpaceInvaders"):
        for torso, level in (("baseline", 0.3), ("soft_moe", 0.6)):
            make_run(root, "cql", game, torso, 0, hns_to_raw(game, [[level] * 3]),
                     source="dqn_replay", encoder="minatar", iterations=10,
                     per_iteration=5_000)  # fmt: skip
    text = report.write_report(root, tmp_path / "out", reps=100, plots=False)
    block = text.split("**At MinAtar scale**")[1].splitlines()
    scale = [x.strip() for x in block if "At MinAtar scale (paper's Fig. 11 (left))" in x]
    assert len(scale) == 3, block
    assert "`soft_moe` (" in scale[0] and "> `baseline` (" in scale[0]
    assert "P(improve over `baseline`) = 1.000" in scale[1]
    for line in scale[:2]:
        assert "agrees" not in line, line
        missing = "missing MinAtarAsterix, MinAtarFreeway, MinAtarSeaquest"
        assert f"too few games for a verdict (2 of the 5 games; {missing})" in line, line


def test_representation_table_reads_the_logged_metrics_first_and_last(tmp_path):
    root = tmp_path / "runs"
    returns = [[-20.7, -20.7], [-3.05, -3.05]]
    logged = {  # per evaluation, per seed
        "baseline": [
            {"repr/srank": [100, 110], "repr/feature_dim": [128, 128]},
            {"repr/srank": [60, 70], "repr/feature_dim": [128, 128]},
        ],
        "soft_moe": [
            {
                "repr/srank": [4, 6],
                "repr/feature_dim": [1024, 1024],
                "repr/router_entropy": [np.log(8), np.log(8)],
                "repr/expert_usage": [[0.125] * 8, [0.125] * 8],
            },
            {
                "repr/srank": [8, 10],
                "repr/feature_dim": [1024, 1024],
                "repr/router_entropy": [np.log(8) / 2, np.log(8) / 4],
                "repr/expert_usage": [[0.5, 0.5] + [0.0] * 6, [0.3] + [0.1] * 7],
            },
        ],
    }
    for torso, records in logged.items():
        run = make_run(root, "cql", "Pong", torso, 0, returns)
        lines = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]
        (run / "eval.jsonl").write_text(
            "".join(json.dumps({**x, **r}) + "\n" for x, r in zip(lines, records, strict=True))
        )
    text = report.write_report(root, tmp_path / "out", reps=200, plots=False)
    assert "| Pong | `baseline` | 105 -> 65 (of 128) |  |  |" in text
    # entropy / ln 8: 1 -> mean(1/2, 1/4); largest share: 1/8 -> mean(0.5, 0.3)
    assert "| Pong | `soft_moe` | 5 -> 9 (of 1024) | 1.000 -> 0.375 | 0.12 -> 0.40 |" in text
    assert "router step" not in text  # no run logs it: no column, no caption


def test_no_representation_table_without_logged_metrics(tmp_path):
    root = tmp_path / "runs"
    for torso in ("baseline", "soft_moe"):
        make_run(root, "cql", "Pong", torso, 0, [[-20.7], [-3.05]])
    text = report.write_report(root, tmp_path / "out", reps=200, plots=False)
    assert "Representation at" not in text


def test_representation_table_shows_the_router_step_where_logged(tmp_path):
    root = tmp_path / "runs"
    returns = [[-20.7, -20.7], [-3.05, -3.05]]
    for torso in ("baseline", "soft_moe"):
        run = make_run(root, "cql", "Pong", torso, 0, returns)
        lines = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]
        extra = {"repr/srank": [4, 6]}
        if torso == "soft_moe":
            extra |= {"repr/router_entropy": [np.log(8), np.log(8)]}
        (run / "eval.jsonl").write_text("".join(json.dumps({**x, **extra}) + "\n" for x in lines))
        if torso == "soft_moe":  # three log lines; the table shows the first and the last
            steps = [[1e-6, 3e-6], [5e-6, 5e-6], [1e-5, 3e-5]]
            (run / "metrics.jsonl").write_text(
                "".join(
                    json.dumps(
                        {
                            "iteration": i,
                            "step": 1000 * (i + 1),
                            "loss": [0.1, 0.1],
                            "torso/router_update_rms": s,
                        }
                    )
                    + "\n"
                    for i, s in enumerate(steps)
                )
            )
    text = report.write_report(root, tmp_path / "out", reps=200, plots=False)
    assert "| largest expert share | router step (RMS per element) |" in text
    assert "router step = RMS per element of the optimizer's step" in text
    assert "| Pong | `soft_moe` | 5 -> 5 | 1.000 -> 1.000 |  | 2.0e-06 -> 2.0e-05 |" in text
    assert "| Pong | `baseline` | 5 -> 5 |  |  |  |" in text


def test_verdict_picks_the_default_variant_beside_a_control(tmp_path):
    """A `soft_moe@normalize_tokens=True` control beside the plain soft_moe does not make the
    claims ambiguous: the paper's Soft MoE is the one at the torso's defaults (False), so the
    control's higher score does not decide the verdict; it stays in the measured ordering."""
    root = tmp_path / "runs"
    variants = [("baseline", None, 0.6), ("soft_moe", None, 0.3), ("top1_moe", None, 0.3),
                ("soft_moe", {"normalize_tokens": True}, 0.9)]  # fmt: skip
    for game in suites.MINATAR:
        for torso, extra, level in variants:
            make_run(root, "cql", game, torso, 0, hns_to_raw(game, [[level] * 3]),
                     extra_torso=extra, source="dqn_replay", encoder="minatar", iterations=10,
                     per_iteration=5_000)  # fmt: skip
    text = report.write_report(root, tmp_path / "out", reps=100, plots=False)
    verdict = text.split("### Verdict")[1]
    assert "`soft_moe[normalize_tokens=True]` (0.900) >" in verdict  # the measured ordering
    scale = [x.strip() for x in verdict.split("**At MinAtar scale**")[1].splitlines()
             if "At MinAtar scale (paper's Fig. 11 (left))" in x]  # fmt: skip
    assert len(scale) == 3 and "several" not in "".join(scale), scale
    assert "`baseline` (0.600) > `soft_moe[normalize_tokens=False]` (0.300)" in scale[0]
    assert scale[0].endswith("**disagrees** (confident).")
    assert "`soft_moe[normalize_tokens=False]` P(improve over `baseline`) = 0.000" in scale[1]


def test_runs_differing_in_a_learner_setting_are_variants_not_duplicate_seeds(tmp_path):
    """Two soft_moe runs of the same seeds, one at Table 3's Adam eps and one at 1e-8 (a
    `--config.learner.adam_eps` override), are two variants labelled by the setting; a real
    rerun (same settings, same seeds) is still a duplicate."""
    root = tmp_path / "runs"
    for sub, eps, level in (("a", 3.125e-4, 0.2), ("b", 1e-8, 0.7), ("c", 1e-8, 0.7)):
        learner = {"learner": {"agent": "cql", "adam_eps": eps, "gamma": 0.99}}
        make_run(root / sub, "cql", "Pong", "soft_moe", 0, hns_to_raw("Pong", [[level] * 2]),
                 config_extra=learner)  # fmt: skip
    make_run(root / "a", "cql", "Pong", "baseline", 0, hns_to_raw("Pong", [[0.5] * 2]))
    warnings = []
    runs = report.load_runs(root, warnings)
    groups = report.build_groups(runs, include_unfinished=False, warnings=warnings)
    (cells,) = groups.values()
    assert sorted(cells["Pong"]) == [
        "baseline",
        "soft_moe[learner.adam_eps=0.0003125]",
        "soft_moe[learner.adam_eps=1e-08]",
    ]
    low = cells["Pong"]["soft_moe[learner.adam_eps=0.0003125]"].final
    assert stats.human_normalize("Pong", low, None) == pytest.approx([0.2, 0.2])
    dups = [w for w in warnings if "duplicate seed" in w]
    assert len(dups) == 2 and all("learner.adam_eps=1e-08" in w for w in dups), warnings


def test_several_roots_read_as_one_tree(tmp_path, capsys):
    """A grid's runs and a later sweep's controls in another directory make one table (the
    control a variant beside the grid's torsos); a root inside another is read once; a root
    that does not exist is a one-line error naming it, before anything is written."""
    grid, controls = tmp_path / "grid", tmp_path / "controls"
    make_run(grid, "cql", "Pong", "baseline", 0, hns_to_raw("Pong", [[0.5, 0.5]]))
    make_run(grid, "cql", "Pong", "soft_moe", 0, hns_to_raw("Pong", [[0.2, 0.2]]))
    make_run(controls, "cql", "Pong", "soft_moe_uniform", 0, hns_to_raw("Pong", [[0.3, 0.3]]))
    warnings = []
    runs = report.load_runs_from([grid, controls, grid / "cql"], warnings)
    assert sorted(r.torso_name for r in runs) == ["baseline", "soft_moe", "soft_moe_uniform"]
    rc = report_cli.main(["report", f"--runs_dir={grid},{controls}",
                          f"--report_dir={tmp_path / 'out'}", "--reps=100", "--noplots",
                          "--quiet"])  # fmt: skip
    text = (tmp_path / "out" / "results.md").read_text()
    assert rc == 0 and "3 run directories, 3 finished" in text and "duplicate" not in text
    rows = [x for x in text.splitlines() if x.startswith("| Pong |")]
    assert [x.split("|")[2].strip() for x in rows] == ["`baseline`", "`soft_moe`",
                                                       "`soft_moe_uniform`"]  # fmt: skip
    capsys.readouterr()
    argv = ["report", f"--runs_dir={grid},{tmp_path / 'nothing'}",
            f"--report_dir={tmp_path / 'o'}"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        report_cli.main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "nothing does not exist" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_compare_pairs_gives_p_of_improvement_between_any_two_variants(tmp_path, capsys):
    """--compare=X:Y adds P(X > Y) on final scores to each group with both; it equals the
    Mann-Whitney probability over the games, a pair in no group is a warning, and a malformed
    pair is a one-line error."""
    root = tmp_path / "runs"
    soft = {"Pong": [0.6, 0.2, 0.5], "Breakout": [0.9, 0.1, 0.4]}
    uniform = {"Pong": [0.3, 0.4, 0.1], "Breakout": [0.5, 0.2, 0.3]}
    for game in ("Pong", "Breakout"):
        make_run(root, "cql", game, "baseline", 0, hns_to_raw(game, [[0.0, 0.0, 0.0]]))
        make_run(root, "cql", game, "soft_moe", 0, hns_to_raw(game, [soft[game]]))
        make_run(root, "cql", game, "soft_moe_uniform", 0, hns_to_raw(game, [uniform[game]]))
    # A control on one game only: compared on that game, though the group's aggregates
    # (games every variant has) then have none.
    make_run(root, "cql", "Pong", "top1_moe", 0, hns_to_raw("Pong", [[0.1, 0.1, 0.1]]))
    pairs = ["--compare=soft_moe:soft_moe_uniform", "--compare=top1_moe:baseline",
             "--compare=tokenized_expert:baseline"]  # fmt: skip
    rc = report_cli.main(["report", f"--runs_dir={root}", f"--report_dir={tmp_path / 'out'}",
                          "--reps=200", "--noplots", "--quiet", *pairs])  # fmt: skip
    text = (tmp_path / "out" / "results.md").read_text()
    assert rc == 0
    # Mann-Whitney per game (ties count 1/2), averaged over games: Pong 6/9, Breakout 6/9.
    expected = np.mean([np.mean([(a > b) + 0.5 * (a == b) for a in soft[g] for b in uniform[g]])
                        for g in soft])  # fmt: skip
    line = next(
        x for x in text.splitlines() if x.startswith("- P(`soft_moe` > `soft_moe_uniform`)")
    )
    assert line.split(" = ")[1].startswith(f"{expected:.3f} [")
    assert line.endswith("(2 games: Breakout, Pong)")
    assert "- P(`top1_moe` > `baseline`) = 1.000 [1.000, 1.000] (1 game: Pong)" in text
    assert "--compare tokenized_expert:baseline: no group has both variants" in text
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        report_cli.main(["report", f"--runs_dir={root}", "--compare=soft_moe"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--compare=soft_moe: expected X:Y" in err
    assert err.count("\n") == 1
