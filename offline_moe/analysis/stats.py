"""Score statistics for Atari results: human normalisation and rliable-style aggregates.

Notation: a score matrix is ``[R, T]`` (R runs = seeds, T tasks = games), already
human-normalised. The aggregates follow Agarwal et al. 2021 ("Deep RL at the Edge of the
Statistical Precipice") and match ``rliable.metrics`` exactly:

- IQM: the 25% trimmed mean of all R*T scores pooled (``scipy.stats.trim_mean(x, 0.25,
  axis=None)``: drop ``floor(0.25 * N)`` scores at each end of the sorted list).
- median / mean: median / mean over games of the per-game mean over runs.
- optimality gap: ``gamma - mean(min(score, gamma))`` with gamma = 1 (human level).
- probability of improvement P(X > Y): per game the Mann-Whitney probability that a run of X
  beats a run of Y (ties count one half), averaged over games.

Confidence intervals use the *stratified* bootstrap: each replicate resamples the R runs with
replacement independently inside every game (the games themselves are kept), then the
percentile interval of the replicate statistics is taken. With ``seed`` the draws are those
of ``numpy.random.RandomState(seed).randint``, the same stream ``rliable.library`` consumes
from the global numpy RNG, so the two agree to the last digit when seeded alike (tested).

Reference (random, human) scores live in ``baselines/atari_scores.csv`` (sources there); the
known-answer env Catch has (measured random mean, optimum 1.0) in ``baselines/catch_scores.csv``,
read with it by default, so its "human-normalised" score is min-max normalised; the five MinAtar
games have (measured random mean, final score of the behaviour DQN that made their data) in
``baselines/minatar_scores.csv``, also read by default.
This module has no TensorFlow or JAX dependency.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

# baselines/ sits at the repository root (data, not code); override for installed copies.
BASELINES_DIR = Path(
    os.environ.get("OFFLINE_MOE_BASELINES", Path(__file__).resolve().parents[2] / "baselines")
)
SCORES_CSV = "atari_scores.csv"
# Known-answer envs (Catch): measured random mean and the optimum in the (random, human)
# columns, so the same formula is min-max normalisation there. Read after SCORES_CSV by default.
KNOWN_ANSWER_CSV = "catch_scores.csv"
# MinAtar: measured random mean and the final score of the behaviour DQN that made the data
# (min-max normalisation between the two). Read after KNOWN_ANSWER_CSV by default.
MINATAR_CSV = "minatar_scores.csv"


class UnknownGameError(KeyError):
    """A game has no reference (random, human) scores."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class ReferenceScore:
    """Random and human scores of one game.

    Attributes:
      game: canonical CamelCase ALE name, e.g. 'MsPacman'.
      random: score of the uniform-random policy.
      human: score of the human tester.
      source: short name of the source, explained in baselines/README.md.
    """

    game: str
    random: float
    human: float
    source: str


def canonical_key(game: str) -> str:
    """Lower-case key without separators: 'MsPacman', 'ms_pacman', 'ms-pacman' -> 'mspacman'."""
    return re.sub(r"[^a-z0-9]", "", game.lower())


ScorePaths = str | os.PathLike | Sequence[str | os.PathLike] | None


def _as_paths(paths: ScorePaths) -> tuple[str, ...]:
    if paths is None:
        return tuple(str(BASELINES_DIR / n) for n in (SCORES_CSV, KNOWN_ANSWER_CSV, MINATAR_CSV))
    if isinstance(paths, str | os.PathLike):
        return (str(paths),)
    return tuple(str(p) for p in paths)


@functools.cache
def _load_tables(paths: tuple[str, ...]) -> dict[str, ReferenceScore]:
    table = {}
    for path in paths:
        with open(path, newline="") as f:
            for row in csv.DictReader(line for line in f if not line.startswith("#")):
                try:
                    ref = ReferenceScore(
                        game=row["game"],
                        random=float(row["random"]),
                        human=float(row["human"]),
                        source=row.get("source") or "",
                    )
                except (KeyError, TypeError, ValueError) as e:
                    raise ValueError(
                        f"{path}: bad row {row!r}; expected columns game,random,human,source"
                    ) from e
                if ref.human == ref.random:
                    raise ValueError(f"{path}: game {ref.game} has human == random")
                table[canonical_key(ref.game)] = ref  # later files override earlier ones
    return table


def reference_table(paths: ScorePaths = None) -> dict[str, ReferenceScore]:
    """All reference scores, keyed by `canonical_key(game)`; later CSVs override earlier."""
    return _load_tables(_as_paths(paths))


def reference_score(game: str, paths: ScorePaths = None) -> ReferenceScore:
    """The (random, human) pair of `game`; `UnknownGameError` naming it when absent."""
    table = reference_table(paths)
    ref = table.get(canonical_key(game))
    if ref is None:
        valid = ", ".join(sorted(r.game for r in table.values()))
        raise UnknownGameError(
            f"no reference (random, human) scores for game {game!r} in "
            f"{', '.join(_as_paths(paths))}; known games: {valid}"
        )
    return ref


def human_normalize(game: str, score, paths: ScorePaths = None):
    """(score - random) / (human - random) for `game`; works on floats and arrays."""
    ref = reference_score(game, paths)
    return (np.asarray(score, dtype=np.float64) - ref.random) / (ref.human - ref.random)


# ---------------------------------------------------------------------------------------------
# Aggregates. Each takes scores [..., R, T] and reduces the last two axes, so the bootstrap
# can evaluate all replicates [reps, R, T] in one vectorised call.


def iqm(scores) -> np.ndarray:
    """Interquartile mean: 25% trimmed mean of the R*T pooled scores."""
    x = np.asarray(scores, dtype=np.float64)
    flat = np.sort(x.reshape(*x.shape[:-2], -1), axis=-1)
    n = flat.shape[-1]
    cut = int(0.25 * n)
    return flat[..., cut : n - cut].mean(axis=-1)


def median(scores) -> np.ndarray:
    """Median over games of the per-game mean over runs."""
    return np.median(np.asarray(scores, dtype=np.float64).mean(axis=-2), axis=-1)


def mean(scores) -> np.ndarray:
    """Mean over games of the per-game mean over runs."""
    return np.asarray(scores, dtype=np.float64).mean(axis=(-2, -1))


def optimality_gap(scores, gamma: float = 1.0) -> np.ndarray:
    """gamma - mean(min(score, gamma)): how far below human level (gamma = 1) on average."""
    x = np.asarray(scores, dtype=np.float64)
    return gamma - np.minimum(x, gamma).mean(axis=(-2, -1))


AGGREGATES: dict[str, Callable] = {
    "iqm": iqm,
    "median": median,
    "mean": mean,
    "optimality_gap": optimality_gap,
}


def probability_of_improvement(scores_x, scores_y) -> np.ndarray:
    """P(X > Y): per game the chance a run of X beats a run of Y (ties 1/2), mean over games.

    Args:
      scores_x: [..., Rx, T] scores of algorithm X.
      scores_y: [..., Ry, T] scores of algorithm Y (same games, any number of runs).

    Returns:
      [...] probabilities in [0, 1].
    """
    x = np.asarray(scores_x, dtype=np.float64)[..., :, None, :]  # [..., Rx, 1, T]
    y = np.asarray(scores_y, dtype=np.float64)[..., None, :, :]  # [..., 1, Ry, T]
    wins = (x > y).astype(np.float64) + 0.5 * (x == y)
    return wins.mean(axis=(-3, -2)).mean(axis=-1)


def performance_profile(scores, taus) -> np.ndarray:
    """Fraction of all runs (pooled over games) with normalised score > tau, for each tau."""
    x = np.asarray(scores, dtype=np.float64)
    taus = np.asarray(taus, dtype=np.float64)
    flat = x.reshape(*x.shape[:-2], -1)  # [..., R*T]
    return (flat[..., None, :] > taus[:, None]).mean(axis=-1)  # [..., len(taus)]


# ---------------------------------------------------------------------------------------------
# Stratified bootstrap.


def _resample_runs(rs: np.random.RandomState, scores: np.ndarray, reps: int) -> np.ndarray:
    """[reps, R, T]: run indices drawn with replacement independently in every game."""
    num_runs, num_tasks = scores.shape
    idx = rs.randint(0, num_runs, size=(reps, num_runs, num_tasks))
    return scores[idx, np.arange(num_tasks)]


def stratified_bootstrap_ci(
    scores,
    statistic: Callable = iqm,
    *,
    reps: int = 50_000,
    size: float = 0.95,
    seed: int | None = 0,
    chunk: int = 5_000,
) -> tuple[float, float, float]:
    """Point estimate and percentile CI of `statistic` under the stratified bootstrap.

    Args:
      scores: [R, T] normalised scores (R >= 1 runs of each of T games).
      statistic: vectorised aggregate, [..., R, T] -> [...] (e.g. `iqm`).
      reps: bootstrap replicates (rliable's default 50,000).
      size: coverage of the two-sided interval.
      seed: seed of the RandomState that draws run indices; None draws fresh entropy.
      chunk: replicates evaluated per vectorised call (bounds memory at chunk*R*T floats).

    Returns:
      (point, lower, upper).
    """
    x = np.asarray(scores, dtype=np.float64)
    if x.ndim != 2 or 0 in x.shape:
        raise ValueError(f"scores must be a non-empty [runs, games] matrix, got shape {x.shape}")
    rs = np.random.RandomState(seed)
    values = []
    for start in range(0, reps, chunk):
        values.append(np.asarray(statistic(_resample_runs(rs, x, min(chunk, reps - start)))))
    values = np.concatenate(values)
    alpha = (1.0 - size) / 2
    lower, upper = np.percentile(values, [100 * alpha, 100 * (1 - alpha)])
    return float(statistic(x)), float(lower), float(upper)


def probability_of_improvement_ci(
    scores_x,
    scores_y,
    *,
    reps: int = 2_000,
    size: float = 0.95,
    seed: int | None = 0,
) -> tuple[float, float, float]:
    """P(X > Y) with a CI from resampling the runs of X and of Y independently per game."""
    x = np.asarray(scores_x, dtype=np.float64)
    y = np.asarray(scores_y, dtype=np.float64)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"X and Y must cover the same games: {x.shape} vs {y.shape}")
    rs = np.random.RandomState(seed)
    values = probability_of_improvement(_resample_runs(rs, x, reps), _resample_runs(rs, y, reps))
    alpha = (1.0 - size) / 2
    lower, upper = np.percentile(values, [100 * alpha, 100 * (1 - alpha)])
    return float(probability_of_improvement(x, y)), float(lower), float(upper)


def performance_profile_ci(
    scores, taus, *, reps: int = 2_000, size: float = 0.95, seed: int | None = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-score profile at each tau with pointwise stratified-bootstrap percentile bands.

    Returns:
      (profile [K], lower [K], upper [K]) for K = len(taus).
    """
    x = np.asarray(scores, dtype=np.float64)
    rs = np.random.RandomState(seed)
    values = performance_profile(_resample_runs(rs, x, reps), taus)  # [reps, K]
    alpha = (1.0 - size) / 2
    lower, upper = np.percentile(values, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return performance_profile(x, taus), lower, upper


def aggregate_table(
    scores: np.ndarray,
    *,
    metrics: Sequence[str] = ("iqm", "median", "mean", "optimality_gap"),
    reps: int = 50_000,
    seed: int | None = 0,
) -> dict[str, tuple[float, float, float]]:
    """{metric: (point, lower, upper)} for the named aggregates of one [R, T] matrix."""
    return {
        name: stratified_bootstrap_ci(scores, AGGREGATES[name], reps=reps, seed=seed)
        for name in metrics
    }
