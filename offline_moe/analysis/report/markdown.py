"""The report's text: results.md sections and the rows of results.csv / aggregates.csv."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from offline_moe.analysis import stats
from offline_moe.analysis.report.groups import BASELINE, METRICS, GroupResult, order_variants
from offline_moe.analysis.report.verdict import RULES, fmt, fmt_ci, verdict

METRIC_NAMES = {"iqm": "IQM", "median": "Median", "mean": "Mean", "optimality_gap": "Opt. gap"}
AGGREGATE_FIELDS = [
    "agent",
    "protocol",
    "variant",
    "score",
    "metric",
    "point",
    "ci_low",
    "ci_high",
    "games",
]


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def intro(num_runs: int, num_done: int, reps: int) -> list[str]:
    return [
        "# offline_moe results",
        "",
        f"{num_runs} run directories, {num_done} finished. Scores are human-normalised "
        "((score - random) / (human - random), baselines/atari_scores.csv); Catch and MinAtar "
        "scores are min-max normalised by the same formula, from the measured random policy to "
        "the optimum (Catch, baselines/catch_scores.csv) or to the final score of the DQN that "
        "made the data (MinAtar, baselines/minatar_scores.csv). **final** = mean "
        "return of the last evaluation; **best** = highest mean evaluation return over "
        "training (optimistic: chosen on the evaluation itself). Aggregates: IQM, median, mean "
        "and optimality gap over the games x seeds matrix with 95% stratified-bootstrap CIs "
        f"({reps} replicates); P(> {BASELINE}) = probability of improvement over the baseline "
        "torso (Agarwal et al. 2021). Runs are grouped by their protocol (protocol.json: data, "
        "budget, evaluation); evaluations capped below the protocol's episode cap are left out "
        "of normalised aggregates.",
        "",
        RULES,
        "",
    ]


def aggregate_table(result: GroupResult) -> str:
    rows = []
    for v in result.variants:
        for kind in ("final", "best"):
            agg = result.aggregates[(v, kind)]
            m = result.matrices[(v, kind)]
            poi = result.poi.get((v, kind))
            rows.append(
                [f"`{v}`", kind, f"{m.shape[1]} x {m.shape[0]}"]
                + [fmt_ci(*agg[name]) for name in METRIC_NAMES]
                + [fmt_ci(*poi) if poi else "--"]
            )
    header = ["variant", "score", "games x seeds"] + list(METRIC_NAMES.values())
    return md_table(header + [f"P(> {result.baseline or BASELINE})"], rows)


def curve_table(result: GroupResult) -> str | None:
    """IQM at every shared evaluation (the numbers behind the IQM curve figure)."""
    curves = {v: c for v, c in result.curves.items() if len(c.iterations)}
    if not curves:
        return None
    its = sorted({int(i) for c in curves.values() for i in c.iterations})
    rows = []
    for it in its:
        row = [str(it)]
        for v in result.variants:
            c = curves.get(v)
            hit = np.nonzero(c.iterations == it)[0] if c is not None else []
            row.append(
                fmt_ci(c.point[hit[0]], c.lower[hit[0]], c.upper[hit[0]]) if len(hit) else "--"
            )
        rows.append(row)
    return md_table(["iteration"] + [f"`{v}` IQM" for v in result.variants], rows)


def per_game_rows(result: GroupResult, scores) -> list[dict]:
    """One results.csv row per (game, variant); HNS is NaN where normalising is not allowed."""
    rows = []
    for game in sorted(result.cells):
        for v in order_variants(result.cells[game]):
            cell = result.cells[game][v]
            n = len(cell.final)
            row = {
                "agent": result.agent,
                "protocol": result.protocol.describe(),
                "game": game,
                "variant": v,
                "seeds": n,
                "unfinished_seeds": cell.unfinished,
                "final_mean": float(np.mean(cell.final)) if n else float("nan"),
                "final_std": float(np.std(cell.final)) if n else float("nan"),
                "best_mean": float(np.mean(cell.best)) if n else float("nan"),
                "best_std": float(np.std(cell.best)) if n else float("nan"),
                "final_hns": float("nan"),
                "best_hns": float("nan"),
            }
            if n and not result.excluded:
                try:
                    row["final_hns"] = float(
                        np.mean(stats.human_normalize(game, cell.final, scores))
                    )
                    row["best_hns"] = float(np.mean(stats.human_normalize(game, cell.best, scores)))
                except stats.UnknownGameError:
                    pass
            if not n and cell.runs:  # unfinished only: show the last evaluation, marked
                last = [r.final_scores() for r in cell.runs if r.evals]
                if last:
                    row["final_mean"] = float(np.mean(np.concatenate(last)))
            rows.append(row)
    return rows


def per_game_table(rows: list[dict], excluded: str) -> str:
    hns = "capped" if excluded else None
    return md_table(
        [
            "game",
            "variant",
            "seeds",
            "final (mean +- std)",
            "best (mean +- std)",
            "final norm.",
            "best norm.",
        ],
        [
            [
                r["game"],
                f"`{r['variant']}`",
                str(r["seeds"])
                + (f" (+{r['unfinished_seeds']} unfinished)" if r["unfinished_seeds"] else ""),
                f"{fmt(r['final_mean'], 1)} +- {fmt(r['final_std'], 1)}",
                f"{fmt(r['best_mean'], 1)} +- {fmt(r['best_std'], 1)}",
                hns or fmt(r["final_hns"]),
                hns or fmt(r["best_hns"]),
            ]
            for r in rows
        ],
    )


def _seed_means(run, record: dict, key: str, idx: list[int]) -> list[float]:
    """Per counted seed, the record's `key` (a per-seed list; `expert_usage`: its largest
    share); [] when the record lacks it."""
    values = record.get(key)
    if values is None:
        return []
    if key == "repr/expert_usage":
        return [float(np.max(values[i])) for i in idx]
    return [float(values[i]) for i in idx]


ROUTER_STEP = "torso/router_update_rms"


def _router_steps(cell) -> list[float | None]:
    """The router's step size (metrics.jsonl `torso/router_update_rms`, RMS per element of the
    optimizer's step on Phi or the Top-1 router) in the first and the last record that logs
    it, mean over the counted seeds; [None, None] for runs that predate it or have no router."""
    per_run = [
        (run, idx, [r for r in run.metrics() if ROUTER_STEP in r]) for run, idx in cell.members
    ]
    ends = []
    for pick in (0, -1):
        vals = [
            v
            for run, idx, recs in per_run
            if recs
            for v in _seed_means(run, recs[pick], ROUTER_STEP, idx)
        ]
        ends.append(float(np.mean(vals)) if vals else None)
    return ends


def representation_rows(result: GroupResult) -> list[list[str]]:
    """Per (game, variant): the representation metrics the trainers log at each evaluation
    (`offline_moe/train/repr_metrics.py`, on a fixed replay batch), mean over the counted
    seeds, at the first and the last evaluation: srank, the router entropy as a fraction of
    ln(n) (1 = uniform routing) and the largest expert's share of the routing; then the
    router's step size per update from metrics.jsonl (first and last log line; a column only
    when some run logs it)."""
    rows = []
    for game in sorted(result.cells):
        for variant in result.variants:
            cell = result.cells[game].get(variant)
            if cell is None or not cell.members:
                continue
            cols = {}
            for key in (
                "repr/srank",
                "repr/router_entropy",
                "repr/expert_usage",
                "repr/feature_dim",
            ):
                ends = []
                for pick in (0, -1):
                    vals = [
                        v
                        for run, idx in cell.members
                        if run.evals
                        for v in _seed_means(run, run.evals[pick], key, idx)
                    ]
                    ends.append(float(np.mean(vals)) if vals else None)
                cols[key] = ends
            cols[ROUTER_STEP] = _router_steps(cell)
            if all(v is None for ends in cols.values() for v in ends):
                continue
            n = cell.members[0][0].num_experts
            first, last = cols["repr/router_entropy"]
            ln_n = np.log(n) if n and n > 1 else None

            def ratio(x, ln_n=ln_n):
                return "" if x is None or ln_n is None else f"{x / ln_n:.3f}"

            def num(x, digits=0):
                return "" if x is None else f"{x:.{digits}f}"

            srank = cols["repr/srank"]
            share = cols["repr/expert_usage"]
            step = cols[ROUTER_STEP]
            dim = cols["repr/feature_dim"][1]
            rows.append(
                [
                    game,
                    f"`{variant}`",
                    f"{num(srank[0])} -> {num(srank[1])}"
                    + (f" (of {num(dim)})" if dim is not None else "")
                    if srank[1] is not None
                    else "",
                    f"{ratio(first)} -> {ratio(last)}" if ln_n and last is not None else "",
                    f"{num(share[0], 2)} -> {num(share[1], 2)}" if share[1] is not None else "",
                    f"{step[0]:.1e} -> {step[1]:.1e}" if step[1] is not None else "",
                ]
            )
    return rows


def representation_table(result: GroupResult) -> str | None:
    rows = representation_rows(result)
    if not rows:
        return None
    header = ["game", "variant", "srank", "router entropy / ln n", "largest expert share"]
    if any(row[-1] for row in rows):
        header.append("router step (RMS per element)")
    else:
        rows = [row[:-1] for row in rows]
    return md_table(header, rows)


def group_section(
    result: GroupResult, rows: list[dict], figures: Sequence[str], comparisons=()
) -> list[str]:
    """The markdown of one group: aggregates, IQM per iteration, per-game table, the asked
    comparisons (`groups.compare_pairs`), verdict."""
    md = [f"## {result.agent} ({result.protocol.describe()})", ""]
    if result.aggregates:
        games = "game" if len(result.games) == 1 else "games"
        md += [f"Aggregated over {len(result.games)} {games}: {', '.join(result.games)}.", ""]
        md += [aggregate_table(result), ""]
        curve = curve_table(result)
        if curve:
            md += ["IQM of normalised scores per training iteration (95% CIs):", ""]
            md += [curve, ""]
    elif result.excluded:
        md += [f"No normalised aggregate: {result.excluded}.", ""]
    else:
        md += ["No aggregate: no game has reference scores and finished runs of every variant.", ""]
    md += [per_game_table(rows, result.excluded), ""]
    representation = representation_table(result)
    if representation:
        md += [
            "Representation at the first -> last evaluation (mean over seeds; srank of the "
            "torso's features on a fixed replay batch; router entropy 1.000 = uniform routing; "
            "largest expert share = the most used expert's fraction of the routing, 1/n when "
            "balanced"
            + (
                "; router step = RMS per element of the optimizer's step on the router's "
                "parameters, first -> last log line of metrics.jsonl, where logged"
                if "router step" in representation
                else ""
            )
            + "):",
            "",
            representation,
            "",
        ]
    if figures:
        md += ["Figures: " + ", ".join(f"`{f}`" for f in figures), ""]
    if comparisons:
        md += [
            "Comparisons asked for (--compare): P(X > Y) on final normalised scores over the "
            "games where both have finished runs, 95% CI:",
            "",
        ]
        md += [
            f"- P(`{x}` > `{y}`) = {fmt_ci(*ci)} ({len(games)} "
            f"{'game' if len(games) == 1 else 'games'}: {', '.join(games)})"
            for x, y, games, ci in comparisons
        ] + [""]
    md += ["### Verdict", ""] + verdict(result) + [""]
    return md


def aggregate_rows(result: GroupResult) -> list[list]:
    out = []
    where = result.protocol.describe()
    for (v, kind), agg in result.aggregates.items():
        for metric in METRICS:
            p, lo, hi = agg[metric]
            out.append([result.agent, where, v, kind, metric, p, lo, hi, len(result.games)])
        if (v, kind) in result.poi:
            p, lo, hi = result.poi[(v, kind)]
            out.append(
                [
                    result.agent,
                    where,
                    v,
                    kind,
                    f"poi_vs_{result.baseline}",
                    p,
                    lo,
                    hi,
                    len(result.games),
                ]
            )
    return out
