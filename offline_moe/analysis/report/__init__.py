"""Results report: tables, aggregate statistics, curves, plots and a verdict against the paper.

The command is `python -m offline_moe.report --runs_dir=runs/ --report_dir=report/`.

Reads every run directory below ``--runs`` (a directory holding ``config.json``; layout in
``offline_moe/train/rundir.py``) and writes to ``--out``:

- ``results.md``: warnings, then per (agent, protocol) group the aggregate table (IQM, median,
  mean, optimality gap of human-normalised scores with 95% stratified-bootstrap CIs, and the
  probability of improvement over the baseline torso), the IQM per training iteration, the
  per-game table, the representation metrics the trainers logged (srank, router entropy,
  largest expert share, at the first and last evaluation; when logged) and a verdict that
  compares the measured torso ordering with the paper's finding for the same settings (or
  says which settings differ).
- ``results.csv``: one row per (agent, protocol, game, variant): seeds, final and best raw
  score (mean, std over seeds), human-normalised means.
- ``aggregates.csv``: one row per (agent, protocol, variant, score kind, metric).
- figures, each as PDF and PNG (`offline_moe.analysis.report.plots`).

Score rule (per seed): **final** = the mean evaluation return of the run's last evaluation
(``summary.json`` ``final_return``, else the last ``eval.jsonl`` line); **best** = the highest
mean evaluation return over all evaluations of the run (``summary.json`` ``best_return``, else
the max over ``eval.jsonl``). Best is selected on the evaluation itself and therefore
optimistic; it is reported beside final because offline CQL on Atari is known to peak and then
collapse late in training.

The modules follow rliable's split of the work: `runs` (reading run directories and their
protocol blocks), `groups` (score matrices, aggregates, curves), `verdict` (the paper's
findings, like with like), `plots` and `markdown`.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from offline_moe.analysis import stats
from offline_moe.analysis.report.groups import (
    BASELINE,
    Cell,
    Curve,
    GroupResult,
    aggregate_curve,
    analyse_group,
    assign_variants,
    build_groups,
    compare_pairs,
    curve_matrices,
    pick_baseline,
)
from offline_moe.analysis.report.markdown import (
    AGGREGATE_FIELDS,
    aggregate_rows,
    group_section,
    intro,
    per_game_rows,
)
from offline_moe.analysis.report.plots import write_figures
from offline_moe.analysis.report.runs import (
    Protocol,
    Run,
    find_run_dirs,
    load_run,
    load_runs,
    load_runs_from,
    missing_from_grid,
)
from offline_moe.analysis.report.verdict import verdict

__all__ = [
    "BASELINE",
    "Cell",
    "Curve",
    "GroupResult",
    "Protocol",
    "Run",
    "aggregate_curve",
    "analyse_group",
    "assign_variants",
    "build_groups",
    "compare_pairs",
    "curve_matrices",
    "find_run_dirs",
    "load_run",
    "load_runs",
    "load_runs_from",
    "missing_from_grid",
    "pick_baseline",
    "print_report",
    "verdict",
    "write_report",
]


def _labels(keys) -> dict:
    """A distinct file-name label per (agent, protocol) group."""
    out, used = {}, {}
    for agent, protocol in keys:
        base = f"{agent}_{protocol.label()}"
        used[base] = used.get(base, 0) + 1
        out[(agent, protocol)] = base if used[base] == 1 else f"{base}_{used[base]}"
    return out


def write_report(
    runs: str | os.PathLike | Sequence[Run],
    out: str | os.PathLike,
    *,
    reps: int = 50_000,
    seed: int = 0,
    include_unfinished: bool = False,
    include_capped: bool = False,
    scores: stats.ScorePaths = None,
    plots: bool = True,
    compare: Sequence[tuple[str, str]] = (),
) -> str:
    """Writes results.md, results.csv, aggregates.csv and the figures; returns the markdown.

    Args:
      runs: a directory to search for run directories, several (read as one tree: e.g. a
        grid's runs and a later sweep's controls), or already-loaded runs.
      out: output directory (created).
      reps: bootstrap replicates for the CIs and IQM curves (rliable's 50,000 by default;
        probabilities of improvement and profile bands use at most rliable's 2,000).
      seed: bootstrap seed (the report is deterministic for a given seed).
      include_unfinished: aggregate unfinished runs at their last evaluation.
      include_capped: aggregate evaluations capped below the protocol's episode cap.
      scores: reference-score CSV(s); default baselines/atari_scores.csv.
      plots: write the figures.
      compare: (X, Y) pairs of variants (a label, or a torso name with one variant in the
        group): each group holding both gets P(X > Y) on final scores with its CI; a pair
        found in no group is a warning.

    Raises:
      FileNotFoundError: `runs` is a path that is not a directory.
    """
    warnings: list[str] = []
    if isinstance(runs, str | os.PathLike):
        runs = [runs]
    runs = list(runs)
    if runs and all(isinstance(r, str | os.PathLike) for r in runs):
        roots = [Path(r) for r in runs]
        runs = load_runs_from(roots, warnings)  # raises before anything is written
        if not runs:
            where = ", ".join(str(r) for r in roots)
            warnings.append(f"no run directories (config.json) found under {where}")
        grids = {}  # one grid file reached from two roots is read once, named as found
        for root in roots:
            for grid in sorted(root.rglob("sweep_grid.json")):
                grids.setdefault(grid.resolve(), grid)
        for grid in grids.values():
            warnings += missing_from_grid(grid)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    groups = build_groups(runs, include_unfinished=include_unfinished, warnings=warnings)
    labels = _labels(groups)
    results = [
        analyse_group(
            a,
            p,
            cells,
            reps=reps,
            seed=seed,
            warnings=warnings,
            scores=scores,
            include_capped=include_capped,
            label=labels[(a, p)],
        )
        for (a, p), cells in groups.items()
    ]
    compared = {
        res.label: compare_pairs(res, compare, reps=reps, seed=seed, scores=scores)
        for res in results
    }
    answered = {i for pairs in compared.values() for i, *_ in pairs}
    for i, (x, y) in enumerate(compare):
        if i not in answered:
            warnings.append(
                f"--compare {x}:{y}: no group has both variants on a common game (variants "
                "are labels such as soft_moe[normalize_tokens=True], or a torso name with "
                "one variant)"
            )
    md = intro(len(runs), sum(r.done for r in runs), reps)
    if warnings:
        md += ["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]
    csv_rows, agg_rows = [], []
    for res in results:
        figures = write_figures(res, out, reps=reps) if plots else []
        rows = per_game_rows(res, scores)
        csv_rows += rows
        agg_rows += aggregate_rows(res)
        pngs = [p.name for p in figures if p.suffix == ".png"]
        md += group_section(res, rows, pngs, [c[1:] for c in compared[res.label]])
    text = "\n".join(md).rstrip() + "\n"
    (out / "results.md").write_text(text)
    fields = list(csv_rows[0]) if csv_rows else ["agent", "protocol", "game", "variant"]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(csv_rows)
    with open(out / "aggregates.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(AGGREGATE_FIELDS)
        writer.writerows(agg_rows)
    return text


def print_report(
    runs_root: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    reps: int = 10_000,
    plots: bool = True,
    file=None,
) -> str:
    """Writes the report (to `out`, default RUNS_ROOT/report) and prints its markdown."""
    text = write_report(runs_root, out or Path(runs_root) / "report", reps=reps, plots=plots)
    print(text, file=file or sys.stdout)
    return text
