"""Tests for offline_moe.analysis.stats: hand-computed aggregates, rliable cross-checks."""

import importlib.util
import sys
import types

import numpy as np
import pytest

from offline_moe.analysis import stats, suites

# A 4 runs x 2 games matrix with hand-computable aggregates.
#   pooled sorted: [0, 1, 2, 3, 4, 5, 6, 7]; N = 8, cut = int(0.25 * 8) = 2
#   IQM = mean([2, 3, 4, 5]) = 3.5
#   per-game means: game0 = (0+1+2+3)/4 = 1.5, game1 = (4+5+6+7)/4 = 5.5
#   median of [1.5, 5.5] = 3.5, mean = 3.5
#   optimality gap (gamma=1): min(x,1) = [0,1,1,1,1,1,1,1] -> mean 7/8 -> gap 1/8
SMALL = np.array([[0.0, 4.0], [1.0, 5.0], [2.0, 6.0], [3.0, 7.0]])


def test_aggregates_hand_computed():
    assert stats.iqm(SMALL) == pytest.approx(3.5)
    assert stats.median(SMALL) == pytest.approx(3.5)
    assert stats.mean(SMALL) == pytest.approx(3.5)
    assert stats.optimality_gap(SMALL) == pytest.approx(0.125)
    # IQM drops outliers: 5 pooled values [0, 0, 1, 1, 100], cut = int(1.25) = 1 -> mean(0,1,1)
    assert stats.iqm(np.array([[0.0], [0.0], [1.0], [1.0], [100.0]])) == pytest.approx(2 / 3)


def test_aggregates_vectorised_over_leading_axes():
    batch = np.stack([SMALL, SMALL + 1.0])  # [2, R, T]
    np.testing.assert_allclose(stats.iqm(batch), [3.5, 4.5])
    np.testing.assert_allclose(stats.median(batch), [3.5, 4.5])


def test_probability_of_improvement_hand_computed():
    # One game: X runs [1, 3], Y runs [2, 2]: pairs (1>2)=0, (1>2)=0, (3>2)=1, (3>2)=1 -> 0.5
    # Second game: X [5, 5], Y [5, 0]: (5>5)=.5, (5>0)=1, twice -> 0.75. Mean = 0.625.
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    y = np.array([[2.0, 5.0], [2.0, 0.0]])
    assert stats.probability_of_improvement(x, y) == pytest.approx(0.625)
    assert stats.probability_of_improvement(x, x) == pytest.approx(0.5)


def test_bootstrap_ci_degenerate_and_bracketing():
    # Every run identical inside each game: every resample equals the data, CI collapses.
    same = np.tile(np.array([[0.2, 0.8, 1.4]]), (5, 1))
    point, lo, hi = stats.stratified_bootstrap_ci(same, stats.iqm, reps=200)
    assert point == lo == hi == pytest.approx(stats.iqm(same))
    # Otherwise the interval brackets the point estimate and is non-trivial.
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(5, 6))
    point, lo, hi = stats.stratified_bootstrap_ci(scores, stats.iqm, reps=500)
    assert lo < point < hi
    # Stratified: per-game resampling can never mix games. With one run per game the
    # bootstrap has nothing to resample, so the CI is a point.
    one = rng.normal(size=(1, 6))
    _, lo, hi = stats.stratified_bootstrap_ci(one, stats.mean, reps=100)
    assert lo == hi == pytest.approx(stats.mean(one))


def test_bootstrap_hand_computed_two_runs_one_game():
    # 2 runs, 1 game, values [0, 1]: a resample has mean 0 (p=1/4), 0.5 (p=1/2) or 1 (p=1/4).
    # The 2.5% / 97.5% percentiles of many replicates are therefore 0 and 1.
    scores = np.array([[0.0], [1.0]])
    point, lo, hi = stats.stratified_bootstrap_ci(scores, stats.mean, reps=4000)
    assert (point, lo, hi) == (0.5, 0.0, 1.0)


def _import_rliable():
    """rliable.library, importing arch.bootstrap without arch/__init__.

    arch 7.2 fails to import under pandas 3 (its univariate module); rliable only needs
    arch.bootstrap, so a bare package object stands in for the top-level module.
    """
    if "arch" not in sys.modules:
        spec = importlib.util.find_spec("arch")
        if spec is None:
            pytest.skip("arch (rliable dependency) not installed")
        pkg = types.ModuleType("arch")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["arch"] = pkg
    library = pytest.importorskip("rliable.library")
    metrics = pytest.importorskip("rliable.metrics")
    return library, metrics


def test_point_estimates_match_rliable():
    _, metrics = _import_rliable()
    rng = np.random.default_rng(1)
    x = rng.normal(1.0, 2.0, size=(5, 17))
    y = rng.normal(1.2, 2.0, size=(3, 17))
    assert stats.iqm(x) == pytest.approx(metrics.aggregate_iqm(x))
    assert stats.median(x) == pytest.approx(metrics.aggregate_median(x))
    assert stats.mean(x) == pytest.approx(metrics.aggregate_mean(x))
    assert stats.optimality_gap(x) == pytest.approx(metrics.aggregate_optimality_gap(x))
    assert stats.probability_of_improvement(x, y) == pytest.approx(
        metrics.probability_of_improvement(x, y)
    )


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_bootstrap_ci_matches_rliable_exactly():
    library, metrics = _import_rliable()
    rng = np.random.default_rng(2)
    scores = rng.gamma(2.0, 0.5, size=(5, 7))
    reps, seed = 300, 123
    for ours, theirs in [
        (stats.iqm, metrics.aggregate_iqm),
        (stats.median, metrics.aggregate_median),
    ]:
        np.random.seed(seed)  # noqa: NPY002 -- rliable draws run indices from numpy's global RNG
        point, ci = library.get_interval_estimates(
            {"x": scores}, lambda s, f=theirs: np.array([f(s)]), reps=reps
        )
        p, lo, hi = stats.stratified_bootstrap_ci(scores, ours, reps=reps, seed=seed, chunk=64)
        assert p == pytest.approx(point["x"][0])
        assert lo == pytest.approx(ci["x"][0, 0], rel=1e-12)
        assert hi == pytest.approx(ci["x"][1, 0], rel=1e-12)


def test_human_normalize_uses_the_right_pair():
    # Pong: random -20.7, human 14.6.  Breakout: random 1.7, human 30.5.
    assert stats.human_normalize("Pong", 14.6) == pytest.approx(1.0)
    assert stats.human_normalize("Pong", -20.7) == pytest.approx(0.0)
    assert stats.human_normalize("pong", -3.05) == pytest.approx(0.5)
    assert stats.human_normalize("Breakout", 30.5) == pytest.approx(1.0)
    assert stats.human_normalize("ms_pacman", 307.3) == pytest.approx(0.0)
    assert stats.human_normalize("MsPacman", 6951.6) == pytest.approx(1.0)
    np.testing.assert_allclose(stats.human_normalize("UpNDown", [533.4, 11693.2]), [0.0, 1.0])
    ref = stats.reference_score("VideoPinball")
    assert (ref.random, ref.human) == (16256.9, 17667.9)


def test_catch_min_max_normalised():
    # Catch: measured random mean -0.60012 -> 0, the optimum 1.0 -> 1 (baselines/catch_scores.csv).
    np.testing.assert_allclose(stats.human_normalize("catch", [-0.60012, 1.0, 0.2]),
                               [0.0, 1.0, 0.80012 / 1.60012])  # fmt: skip
    assert stats.reference_score("Catch").source == "measured"


def test_unknown_game_names_it():
    with pytest.raises(stats.UnknownGameError, match="NotAGame"):
        stats.human_normalize("NotAGame", 1.0)
    # AirRaid has no standard human score: unknown unless the unofficial table is added.
    with pytest.raises(stats.UnknownGameError, match="AirRaid"):
        stats.reference_score("AirRaid")
    paths = [
        stats.BASELINES_DIR / "atari_scores.csv",
        stats.BASELINES_DIR / "atari_scores_unofficial.csv",
    ]
    assert stats.reference_score("AirRaid", paths).random == pytest.approx(579.25)


def test_reference_table_covers_suites():
    table = stats.reference_table()
    assert len(table) == 64  # the 57 Atari games, Catch, CatchBoard and the 5 MinAtar games
    missing = {
        g
        for name in ("offline_paper", "atari100k", "paper20", "smoke", "minatar")
        for g in suites.SUITES[name]
        if stats.canonical_key(g) not in table
    }
    assert missing == {"AirRaid"}
    rlu_missing = {g for g in suites.RLU46 if stats.canonical_key(g) not in table}
    assert rlu_missing == {"Carnival", "Pooyan"}
    # MinAtar rows are min-max between random and the behaviour DQN: behaviour above random.
    for g in suites.MINATAR:
        ref = table[stats.canonical_key(g)]
        assert ref.human > ref.random, g


def test_suites():
    assert len(suites.OFFLINE_PAPER) == 17 and set(suites.OFFLINE_PAPER) <= set(suites.RLU46)
    assert len(suites.RLU46) == 46 and len(set(suites.RLU46)) == 46
    assert len(suites.ATARI100K) == 26 and len(suites.PAPER20) == 20
    assert suites.get_suite("Pong,Breakout") == ("Pong", "Breakout")
    with pytest.raises(KeyError, match="offline_paper"):
        suites.get_suite("nope")


def test_performance_profile():
    # Pooled SMALL scores 0..7: fraction > 2.5 is 5/8, > -1 is 1, > 7 is 0.
    np.testing.assert_allclose(stats.performance_profile(SMALL, [-1.0, 2.5, 7.0]), [1, 5 / 8, 0])
    prof, lo, hi = stats.performance_profile_ci(SMALL, [2.5], reps=200)
    assert lo[0] <= prof[0] <= hi[0]
