"""Runs -> groups -> score matrices, aggregates with stratified-bootstrap CIs, and IQM curves.

A group holds the runs of one agent under one protocol (`runs.Protocol`: data source and
percent, budget, evaluation); inside it, runs are cells by (game, variant), a variant being a
torso name plus the torso kwargs that vary among the runs of that name ('soft_moe[num_experts=4]').
Scores are human-normalised per game; aggregates (IQM, median, mean, optimality gap) and the
probability of improvement follow Agarwal et al. 2021 (`offline_moe.analysis.stats`), with
rliable's bootstrap counts by default (50,000 replicates for interval estimates and curves,
2,000 for probabilities of improvement and performance profiles).

Nothing is averaged silently: unfinished runs, games without reference scores, variants
missing games, duplicate seeds, and evaluations capped below the protocol's episode cap each
produce a warning, and capped groups are left out of normalised aggregates unless asked for.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from offline_moe.analysis import stats
from offline_moe.analysis.report.runs import Protocol, Run, floats

BASELINE = "baseline"
METRICS = ("iqm", "median", "mean", "optimality_gap")
POI_REPS = 2_000  # rliable's count for probabilities of improvement and profiles
KINDS = ("final", "best")


def assign_variants(runs: Sequence[Run]) -> None:
    """Labels each run by torso name plus the torso kwargs, then the learner settings (config
    'learner', prefixed 'learner.'), that vary among runs of that name within one agent, e.g.
    'soft_moe[num_experts=4]' or 'soft_moe[learner.adam_eps=1e-08]'. Runs differing in a
    learner setting are different variants, not duplicate seeds of one."""
    by_key = defaultdict(list)
    for run in runs:
        by_key[(run.agent, run.torso_name)].append(run)
    for (_, name), group in by_key.items():
        varying = varying_torso_keys(name, [r.torso for r in group])

        def value(run, key, name=name):
            return torso_value(name, run.torso, key)

        learner_keys = sorted({k for r in group for k in r.learner})
        learner_varying = [
            k
            for k in learner_keys
            if len({json.dumps(r.learner.get(k), sort_keys=True) for r in group}) > 1
        ]
        for run in group:
            extra = ",".join(
                [f"{k}={value(run, k)}" for k in varying]
                + [f"learner.{k}={run.learner.get(k)}" for k in learner_varying]
            )
            run.variant = f"{run.torso_name}[{extra}]" if extra else run.torso_name


def torso_value(name: str, torso: dict, key: str):
    """A torso kwarg of a run; one it did not record (written before the torso had it) has
    its default."""
    return torso[key] if key in torso else torso_default(name, key)


def varying_torso_keys(name: str, torsos: Sequence[dict]) -> list[str]:
    """The kwargs (sorted) whose values differ among these runs of torso `name`."""
    keys = sorted({k for t in torsos for k in t if k != "name"})
    return [k for k in keys if len({json.dumps(torso_value(name, t, k)) for t in torsos}) > 1]


@functools.cache
def torso_default(name: str, key: str):
    """The default of a registered torso's field `key` (None when unknown)."""
    from offline_moe.networks.registry import resolve_torso

    try:
        factory = resolve_torso(name)
    except Exception:  # an unregistered or user torso: no default known
        return None
    if not dataclasses.is_dataclass(factory):
        return None
    default = {f.name: f.default for f in dataclasses.fields(factory)}.get(key)
    return None if default is dataclasses.MISSING else default


def torso_name_of(variant: str) -> str:
    return variant.split("[")[0]


@dataclasses.dataclass
class Cell:
    """Scores of one (game, variant) inside a group.

    Attributes:
      final, best: per-seed final / best returns of the counted seeds, over its runs.
      runs: every run of the cell (counted or not).
      members: (run, indices of its counted seeds) for the runs whose seeds count.
      unfinished: seeds of unfinished runs left out.
    """

    final: np.ndarray
    best: np.ndarray
    runs: list[Run]
    members: list[tuple[Run, list[int]]]
    unfinished: int

    def eval_points(self) -> dict[int, np.ndarray]:
        """{iteration: returns of the counted seeds} at the evaluations all counted runs share."""
        per_run = []
        for run, keep in self.members:
            per_run.append({run.iteration_of(e): floats(e["returns"])[keep] for e in run.evals})
        if not per_run:
            return {}
        common = set.intersection(*(set(p) for p in per_run))
        return {x: np.concatenate([p[x] for p in per_run]) for x in sorted(common)}


def build_groups(runs: Sequence[Run], *, include_unfinished: bool, warnings: list[str]):
    """{(agent, protocol): {game: {variant: Cell}}} with warnings for everything dropped."""
    by_agent = defaultdict(list)
    for run in runs:
        by_agent[run.agent].append(run)
    groups = {}
    for agent, agent_runs in sorted(by_agent.items()):
        protocols = sorted({r.protocol for r in agent_runs}, key=Protocol.sort_key)
        if len(protocols) > 1:
            warnings.append(
                f"mixed protocols for agent {agent}: "
                + "; ".join(f"[{p.describe()}]" for p in protocols)
                + " -- reported as separate tables, never averaged together"
            )
        for protocol in protocols:
            members = [r for r in agent_runs if r.protocol == protocol]
            groups[(agent, protocol)] = _cells(agent, members, include_unfinished, warnings)
            lengths = {r.evals[-1].get("step") for r in members if r.done and r.evals}
            if len(lengths) > 1:
                warnings.append(
                    f"{agent} ({protocol.describe()}): finished runs end at different steps "
                    f"{sorted(lengths, key=str)} -- final scores compare different training lengths"
                )
    return groups


def _cells(agent: str, members: list[Run], include_unfinished: bool, warnings: list[str]):
    cells: dict = defaultdict(dict)
    seen = {}
    assign_variants(members)  # labels only show what varies inside this table
    members = sorted(members, key=lambda r: (not r.done, str(r.path)))  # finished runs first
    for run in members:
        if not run.done:
            last = run.evals[-1].get("iteration") if run.evals else None
            warnings.append(
                f"unfinished run {run.path} (no summary.json; last evaluation: iteration {last})"
                + ("" if include_unfinished else " -- left out of aggregates")
            )
        final, best = run.final_scores(), run.best_scores()
        if final is None:
            continue
        if not (np.all(np.isfinite(final)) and np.all(np.isfinite(best))):
            warnings.append(f"{run.path}: non-finite returns {final.tolist()} -- left out")
            continue
        use = run.done or include_unfinished
        if len(final) != len(run.seeds) or len(best) != len(run.seeds):
            warnings.append(
                f"{run.path}: {len(final)} final / {len(best)} best returns for "
                f"{len(run.seeds)} seeds (config num_seeds); using the common prefix"
            )
        keep = []
        for i, s in enumerate(run.seeds[: min(len(final), len(best))]):
            key = (run.game, run.variant, s)
            if key in seen:
                warnings.append(
                    f"duplicate seed {s} for {agent}/{run.game}/{run.variant}: "
                    f"{run.path} and {seen[key]}; keeping the one in {seen[key]}"
                )
            elif use:
                seen[key] = run.path
                keep.append(i)
        cell = cells[run.game].get(run.variant)
        if cell is None:
            cell = cells[run.game][run.variant] = Cell(np.zeros(0), np.zeros(0), [], [], 0)
        cell.runs.append(run)
        if use:
            cell.final = np.concatenate([cell.final, final[keep]])
            cell.best = np.concatenate([cell.best, best[keep]])
            if keep:
                cell.members.append((run, keep))
        else:
            cell.unfinished += len(run.seeds)
    return dict(cells)


def experts_of_label(label: str) -> int | None:
    if "num_experts=" not in label:
        return None
    try:
        return int(label.split("num_experts=")[1].split(",")[0].rstrip("]"))
    except ValueError:
        return None


def order_variants(variants) -> list[str]:
    def key(v):
        n = experts_of_label(v)
        name = torso_name_of(v)
        return (name != BASELINE, name, n if n is not None else -1, v)

    return sorted(variants, key=key)


@dataclasses.dataclass(frozen=True)
class Curve:
    """Aggregate IQM against training iteration, with pointwise 95% CIs.

    Attributes:
      iterations: [E] training iterations completed at each evaluation.
      point, lower, upper: [E] IQM of the human-normalised [R, T] matrix at each evaluation
        and its stratified-bootstrap percentile interval.
      runs: R, the seeds per game used (the fewest any game has).
    """

    iterations: np.ndarray
    point: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    runs: int


@dataclasses.dataclass
class GroupResult:
    """Everything computed for one (agent, protocol) group.

    Attributes:
      agent, protocol: the group.
      label: file-name part of its plots.
      games: games in the normalised aggregates (every variant finished, reference known).
      variants: variant labels in display order.
      aggregates: {(variant, kind): {metric: (point, lo, hi)}}.
      poi: {(variant, kind): (point, lo, hi)} probability of improvement over `baseline`.
      matrices: {(variant, kind): [R, T] human-normalised scores}.
      curves: {variant: Curve} aggregate IQM against iteration.
      cells: {game: {variant: Cell}}.
      baseline: the variant P(improvement) compares against.
      excluded: why normalised aggregates were left out ('' when they were not).
    """

    agent: str
    protocol: Protocol
    label: str
    games: list[str]
    variants: list[str]
    aggregates: dict
    poi: dict
    matrices: dict
    curves: dict
    cells: dict
    baseline: str | None = None
    excluded: str = ""

    def runs_of(self, variant: str) -> list[Run]:
        return [r for g in self.cells.values() if variant in g for r in g[variant].runs]

    def seeds_range(self) -> tuple[int, int]:
        counts = [len(self.cells[g][v].final) for g in self.games for v in self.variants]
        return (min(counts), max(counts)) if counts else (0, 0)


def analyse_group(
    agent: str,
    protocol: Protocol,
    cells: dict,
    *,
    reps: int,
    seed: int,
    warnings: list[str],
    scores: stats.ScorePaths,
    include_capped: bool = False,
    curves: bool = True,
    label: str | None = None,
) -> GroupResult:
    """Aggregates of one group: common games, normalised matrices, CIs, P(improvement), curves."""
    variants = order_variants({v for g in cells.values() for v in g})
    excluded = ""
    if protocol.capped and not include_capped:
        excluded = (
            f"evaluation episodes capped at {protocol.eval_cap:,} agent steps (the protocol's cap "
            f"is {protocol.standard_cap:,}): returns of cut episodes are not comparable with "
            "the human and random scores"
        )
        warnings.append(
            f"{agent} ({protocol.describe()}): {excluded} -- raw scores only, left out of "
            "normalised aggregates (pass --include_capped to aggregate them anyway)"
        )
    elif protocol.capped:
        warnings.append(
            f"{agent} ({protocol.describe()}): evaluation capped at {protocol.eval_cap:,} agent "
            "steps per episode; normalised anyway (--include_capped): not comparable with "
            "published scores"
        )
    known, unknown = [], []
    for game in sorted(cells):
        try:
            stats.reference_score(game, scores)
            known.append(game)
        except stats.UnknownGameError:
            unknown.append(game)
    if unknown:
        warnings.append(
            f"{agent}: no reference (random, human) scores for {', '.join(unknown)} -- "
            "reported raw only, left out of normalised aggregates"
        )
    usable = {g: {v for v, c in cells[g].items() if len(c.final) > 0} for g in known}
    games = [g for g in known if all(v in usable[g] for v in variants)]
    for v in variants:
        missing = [g for g in known if v not in usable[g]]
        if missing:
            warnings.append(
                f"{agent}/{v}: no finished runs for {', '.join(missing)} -- aggregates use "
                f"only the {len(games)} games every variant has"
            )
    seed_counts = {len(cells[g][v].final) for g in games for v in variants}
    if seed_counts and min(seed_counts) < 2:
        warnings.append(
            f"{agent}: a game has a single seed; stratified-bootstrap CIs cannot reflect "
            "seed-to-seed variation there (zero-width where every game has one seed)"
        )
    if len(seed_counts) > 1:
        warnings.append(
            f"{agent}: unequal seeds per game ({sorted(seed_counts)}); each variant's matrix "
            "uses its fewest seeds per game"
        )
    aggregates, poi, matrices, curve_of = {}, {}, {}, {}
    base = pick_baseline(variants)
    if games and not excluded:
        for v in variants:
            for kind in KINDS:
                m = normalised_matrix(cells, games, v, kind, scores)
                matrices[(v, kind)] = m
                aggregates[(v, kind)] = stats.aggregate_table(m, reps=reps, seed=seed)
            if curves:
                curve_of[v] = aggregate_curve(cells, games, v, scores, reps=reps, seed=seed)
        if base is None:
            warnings.append(f"{agent}: no '{BASELINE}' torso runs; no probability of improvement")
        else:
            for v in variants:
                if v == base:
                    continue
                for kind in KINDS:
                    poi[(v, kind)] = stats.probability_of_improvement_ci(
                        matrices[(v, kind)],
                        matrices[(base, kind)],
                        reps=min(reps, POI_REPS),
                        seed=seed,
                    )
    return GroupResult(
        agent=agent,
        protocol=protocol,
        label=label or f"{agent}_{protocol.label()}",
        games=games,
        variants=variants,
        aggregates=aggregates,
        poi=poi,
        matrices=matrices,
        curves=curve_of,
        cells=cells,
        baseline=base if aggregates else None,
        excluded=excluded,
    )


def pick_baseline(variants: Sequence[str]) -> str | None:
    """The reference variant for P(improvement): 'baseline', else the unscaled (width=1)
    baseline, else the first baseline variant; None without baseline runs."""
    candidates = [v for v in variants if torso_name_of(v) == BASELINE]
    if BASELINE in candidates:
        return BASELINE
    unscaled = [v for v in candidates if "width=1.0" in v or "width=1]" in v or "width=1," in v]
    return (unscaled or candidates or [None])[0]


def normalised_matrix(cells, games, variant, kind, scores) -> np.ndarray:
    """[R, T] human-normalised scores; R = the fewest seeds among the games."""
    cols = [stats.human_normalize(g, getattr(cells[g][variant], kind), scores) for g in games]
    r = min(len(c) for c in cols)
    return np.stack([c[:r] for c in cols], axis=1)


def curve_matrices(cells, games, variant, scores) -> tuple[np.ndarray, np.ndarray]:
    """(iterations [E], human-normalised scores [E, R, T]) at the evaluations every game shares.

    R is the fewest counted seeds any game has at every shared evaluation.
    """
    per_game = [cells[g][variant].eval_points() for g in games]
    common = sorted(set.intersection(*(set(p) for p in per_game))) if per_game else []
    if not common:
        return np.zeros(0, np.int64), np.zeros((0, 0, len(games)))
    r = min(len(p[x]) for p in per_game for x in common)
    mats = [
        np.stack([stats.human_normalize(g, p[x][:r], scores) for g, p in zip(games, per_game)], 1)
        for x in common
    ]
    return np.array(common, np.int64), np.stack(mats)


def aggregate_curve(cells, games, variant, scores, *, reps: int, seed: int) -> Curve:
    """IQM of the [R, T] matrix at every shared evaluation, with stratified-bootstrap CIs."""
    its, mats = curve_matrices(cells, games, variant, scores)
    est = [stats.stratified_bootstrap_ci(m, stats.iqm, reps=reps, seed=seed) for m in mats]
    est = np.array(est).reshape(-1, 3)
    return Curve(its, est[:, 0], est[:, 1], est[:, 2], int(mats.shape[1]) if len(mats) else 0)


def resolve_variant(result: GroupResult, name: str) -> str | None:
    """`name` as one of the group's variants: its exact label, else the one variant of that
    torso name (None when absent or ambiguous)."""
    if name in result.variants:
        return name
    named = [v for v in result.variants if torso_name_of(v) == name]
    return named[0] if len(named) == 1 else None


def compare_pairs(
    result: GroupResult, pairs, *, reps: int, seed: int, scores: stats.ScorePaths = None
) -> list[tuple]:
    """P(X > Y) on final normalised scores, with its 95% CI, for each (X, Y) of `pairs` whose
    variants are both in the group, over the games where both have finished runs and reference
    scores (not only the games every variant has: a control run on two games is compared
    with its torso on those two).

    Returns:
      [(index in `pairs`, x, y, games, (point, lo, hi))] in the order of `pairs`.
    """
    out = []
    if result.excluded:
        return out
    for i, (x_name, y_name) in enumerate(pairs):
        x, y = resolve_variant(result, x_name), resolve_variant(result, y_name)
        if x is None or y is None or x == y:
            continue
        games = []
        for game in sorted(result.cells):
            have = result.cells[game]
            if all(v in have and len(have[v].final) > 0 for v in (x, y)):
                try:
                    stats.reference_score(game, scores)
                except stats.UnknownGameError:
                    continue
                games.append(game)
        if not games:
            continue
        mx, my = (normalised_matrix(result.cells, games, v, "final", scores) for v in (x, y))
        r = min(mx.shape[0], my.shape[0])
        ci = stats.probability_of_improvement_ci(
            mx[:r], my[:r], reps=min(reps, POI_REPS), seed=seed
        )
        out.append((i, x, y, games, ci))
    return out
