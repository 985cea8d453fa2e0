"""The report's figures, each written as PDF and PNG (150 dpi).

In the style of the paper's figures and of rliable's plots (Agarwal et al. 2021):

- ``iqm_curve_<group>``: aggregate IQM of human-normalised scores against training iteration
  with 95% stratified-bootstrap bands per variant (the paper's Fig. 11);
- ``intervals_<group>``: interval estimates of IQM, median, mean and optimality gap per
  variant (rliable's ``plot_interval_estimates``), final and best scores;
- ``profile_<group>``: performance profiles (fraction of runs above tau) with 95% bands, on
  an axis that spans the measured scores;
- ``curves_<group>``: raw evaluation return per game against iteration (mean and range over
  seeds);
- ``iqm_vs_experts_<group>``: IQM against the number of experts, when the runs vary it.

Titles say what was run (agent, data, encoder, experts, games, seeds); legends sit outside
the axes, so they never cover data. A variant keeps its colour in every figure of a group.
Both tracks share one training axis: x = training iterations completed (an evaluation's step /
the protocol's steps per iteration), labelled with what one iteration is on that track
(offline: gradient updates; online: agent steps), as `iteration_axis_label` writes it.
"""

from __future__ import annotations

import math
import textwrap
from collections import defaultdict
from pathlib import Path

import numpy as np

from offline_moe.analysis import stats
from offline_moe.analysis.report.groups import (
    BASELINE,
    GroupResult,
    experts_of_label,
    order_variants,
    torso_name_of,
)
from offline_moe.configs.agents import AGENTS

DPI = 150
PROFILE_REPS = 2_000  # rliable's create_performance_profile default
METRIC_TITLES = {
    "iqm": "IQM",
    "median": "Median",
    "mean": "Mean",
    "optimality_gap": "Optimality gap",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, stem: Path) -> list[Path]:
    """Writes `stem`.png (150 dpi) and `stem`.pdf and closes the figure."""
    plt = _plt()
    paths = [Path(f"{stem}.png"), Path(f"{stem}.pdf")]
    fig.savefig(paths[0], dpi=DPI)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def colours(result: GroupResult) -> dict[str, str]:
    """One colour per variant of the group, in display order."""
    names = order_variants({v for g in result.cells.values() for v in g})
    return {v: f"C{i % 10}" for i, v in enumerate(names)}


def _encoders(result: GroupResult) -> str:
    found = sorted(
        {
            str(r.encoder)
            for g in result.cells.values()
            for c in g.values()
            for r in c.runs
            if r.encoder
        }
    )
    if not found:
        return ""
    return "/".join(e.capitalize() for e in found) + (
        " encoder" if len(found) == 1 else " encoders"
    )


def _experts(result: GroupResult) -> str:
    found = sorted(
        {
            r.num_experts
            for g in result.cells.values()
            for c in g.values()
            for r in c.runs
            if torso_name_of(r.variant) != BASELINE and r.num_experts is not None
        }
    )
    if not found:
        return ""
    return "/".join(map(str, found)) + (" expert" if found == [1] else " experts")


def title(result: GroupResult, what: str) -> str:
    """'CQL, 5% of DQN-Replay (TFDS), Impala encoder, 8 experts, 17 games, 5 seeds' + what."""
    p = result.protocol
    games = len(result.games) if result.games else len(result.cells)
    lo, hi = result.seeds_range()
    seeds = f"{lo} seeds" if lo == hi else f"{lo}-{hi} seeds"
    parts = [
        AGENTS[result.agent].display if result.agent in AGENTS else result.agent,
        p.data_text(),
        _encoders(result),
        _experts(result),
        f"{games} game{'s' if games != 1 else ''}",
    ]
    if result.games:
        parts.append(seeds)
    head = ", ".join(x for x in parts if x)
    tail = f"{p.budget_text()}; {p.eval_text()}" if p.known else p.describe()
    return "\n".join([head, what, *textwrap.wrap(tail, 100)])


def _legend_below(fig, handles, labels) -> None:
    """A figure legend under the axes (constrained layout makes room, so it covers nothing)."""
    if handles:
        fig.legend(
            handles,
            labels,
            loc="outside lower center",
            ncols=min(len(labels), 4),
            fontsize=8,
            frameon=False,
        )


def _line_with_band(ax, x, point, lower, upper, colour: str, label: str, alpha: float) -> None:
    marker = "o" if len(x) < 12 else None
    ax.plot(x, point, color=colour, lw=2, marker=marker, ms=4, label=label)
    ax.fill_between(x, lower, upper, color=colour, alpha=alpha, lw=0)


def iteration_axis_label(result: GroupResult) -> str:
    """'training iteration (1 = 62,500 updates)' or '... (1 = 10,000 agent steps)'."""
    p = result.protocol
    if not p.steps_per_iteration:
        return "training iteration"
    unit = (p.unit or "steps").replace("_", " ")
    return f"training iteration (1 = {p.steps_per_iteration:,} {unit})"


def _finish(fig, ax, result: GroupResult, what: str, xlabel: str, ylabel: str):
    """Axis labels, grid, the human title and the legend under the axes."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    fig.suptitle(title(result, what), fontsize=9)
    _legend_below(fig, *ax.get_legend_handles_labels())
    return fig


def figure_iqm_curves(result: GroupResult):
    """Aggregate IQM against training iteration with 95% bands per variant (Fig. 11 style)."""
    plt = _plt()
    col = colours(result)
    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    for v in result.variants:
        c = result.curves.get(v)
        if c is not None and len(c.iterations):
            _line_with_band(ax, c.iterations, c.point, c.lower, c.upper, col[v], v, 0.2)
    ax.xaxis.get_major_locator().set_params(integer=True)  # iterations are whole numbers
    what = "IQM with 95% stratified-bootstrap CIs over training"
    xlabel = iteration_axis_label(result)
    return _finish(fig, ax, result, what, xlabel, "IQM normalised score")


def figure_intervals(result: GroupResult):
    """rliable-style interval estimates: one panel per metric, one row per score kind."""
    plt = _plt()
    col = colours(result)
    variants = result.variants
    kinds = ("final", "best")
    fig, axes = plt.subplots(
        len(kinds),
        len(METRIC_TITLES),
        figsize=(3.1 * len(METRIC_TITLES), 0.9 + 0.45 * len(variants) * len(kinds) + 0.8),
        layout="constrained",
        squeeze=False,
    )
    for r, kind in enumerate(kinds):
        for c, metric in enumerate(METRIC_TITLES):
            ax = axes[r, c]
            for i, v in enumerate(variants):
                point, lo, hi = result.aggregates[(v, kind)][metric]
                ax.barh(i, hi - lo, left=lo, height=0.6, color=col[v], alpha=0.75)
                ax.vlines(point, i - 0.3, i + 0.3, color="k", lw=1.5)
            ax.set_yticks(range(len(variants)), variants if c == 0 else [""] * len(variants))
            ax.invert_yaxis()
            ax.margins(x=0.15)
            ax.grid(axis="x", alpha=0.3)
            ax.set_title(f"{METRIC_TITLES[metric]} ({kind})", fontsize=9)
            ax.set_xlabel("normalised score", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(title(result, "aggregate metrics, 95% stratified-bootstrap CIs"), fontsize=9)
    return fig


def profile_taus(result: GroupResult, num: int = 101) -> np.ndarray:
    """Thresholds spanning every measured final score, with a 5% margin on both sides."""
    scores = np.concatenate([m.ravel() for (v, k), m in result.matrices.items() if k == "final"])
    lo, hi = float(np.min(scores)), float(np.max(scores))
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    return np.linspace(lo - pad, hi + pad, num)


def figure_profiles(result: GroupResult, *, reps: int = PROFILE_REPS, seed: int = 0):
    """Performance profiles of final scores with 95% bands (rliable's score distributions)."""
    plt = _plt()
    col = colours(result)
    taus = profile_taus(result)
    fig, ax = plt.subplots(figsize=(7.0, 4.0), layout="constrained")
    for v in result.variants:
        m = result.matrices[(v, "final")]
        prof, lo, hi = stats.performance_profile_ci(m, taus, reps=reps, seed=seed)
        _line_with_band(ax, taus, prof, lo, hi, col[v], v, 0.15)
    ax.set_xlim(taus[0], taus[-1])
    ax.set_ylim(-0.02, 1.02)
    what = "performance profiles of final scores, 95% CIs"
    return _finish(
        fig,
        ax,
        result,
        what,
        "normalised score \u03c4",
        "fraction of runs with score > \u03c4",
    )


def figure_game_curves(result: GroupResult):
    """Raw evaluation return per game against iteration: mean over seeds, band = min..max."""
    plt = _plt()
    col = colours(result)
    games = sorted(result.cells)
    cols = min(4, len(games))
    rows = math.ceil(len(games) / cols)
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(3.4 * cols + 1.8, 2.7 * rows + 0.8),
        squeeze=False,
        layout="constrained",
    )
    for ax, game in zip(axes.flat, games):
        for v in order_variants(result.cells[game]):
            cell = result.cells[game][v]
            runs = [r for r in cell.runs if r.evals and r.done]
            runs = runs or [r for r in cell.runs if r.evals]  # unfinished only: still show it
            if not runs:
                continue
            its = sorted(set.intersection(*(set(r.curve()[0].tolist()) for r in runs)))
            if not its:
                continue
            rets = np.concatenate(
                [r.curve()[1][np.isin(r.curve()[0], its)] for r in runs], axis=1
            )  # [E, seeds]
            mean = rets.mean(axis=1)
            ax.plot(its, mean, color=col[v], label=v, marker="o" if len(its) < 12 else None, ms=3)
            ax.fill_between(its, rets.min(axis=1), rets.max(axis=1), color=col[v], alpha=0.2, lw=0)
        ax.set_title(game, fontsize=9)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel(iteration_axis_label(result), fontsize=8)
        ax.set_ylabel("return", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(games) :]:
        ax.axis("off")
    handles, labels = {}, {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
            labels[lab] = lab
    _legend_below(fig, list(handles.values()), list(labels))
    fig.suptitle(
        title(result, "raw evaluation return (mean over seeds, band: min to max)"), fontsize=9
    )
    return fig


def figure_iqm_vs_experts(result: GroupResult):
    """IQM against num_experts per torso name; None unless some torso varies it."""
    series = defaultdict(list)
    for v in result.variants:
        n = experts_of_label(v)
        if n is not None:
            series[torso_name_of(v)].append((n, result.aggregates[(v, "final")]["iqm"]))
    series = {k: sorted(s) for k, s in series.items() if len(s) > 1}
    if not series:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.0), layout="constrained")
    for i, (name, pts) in enumerate(sorted(series.items())):
        n = np.array([p[0] for p in pts])
        est = np.array([p[1] for p in pts])
        ax.errorbar(
            n,
            est[:, 0],
            yerr=[est[:, 0] - est[:, 1], est[:, 2] - est[:, 0]],
            marker="o",
            capsize=4,
            color=f"C{i}",
            label=name,
        )
    if (result.baseline, "final") in result.aggregates:
        b = result.aggregates[(result.baseline, "final")]["iqm"]
        ax.axhline(b[0], color="k", ls="--", lw=1, label=result.baseline)
        ax.axhspan(b[1], b[2], color="k", alpha=0.08)
    ax.set_xscale("log", base=2)
    what = "IQM against the number of experts, 95% CIs"
    return _finish(fig, ax, result, what, "number of experts", "IQM normalised score (final)")


def write_figures(result: GroupResult, out: Path, *, reps: int = PROFILE_REPS) -> list[Path]:
    """Every figure of a group under `out`; returns the files written.

    Args:
      result: the group.
      out: output directory.
      reps: bootstrap replicates of the profile bands (at most rliable's 2,000).
    """
    written = []
    if result.cells:
        written += save(figure_game_curves(result), out / f"curves_{result.label}")
    if result.aggregates:
        if any(len(c.iterations) for c in result.curves.values()):
            written += save(figure_iqm_curves(result), out / f"iqm_curve_{result.label}")
        written += save(figure_intervals(result), out / f"intervals_{result.label}")
        written += save(
            figure_profiles(result, reps=min(reps, PROFILE_REPS)), out / f"profile_{result.label}"
        )
        fig = figure_iqm_vs_experts(result)
        if fig is not None:
            written += save(fig, out / f"iqm_vs_experts_{result.label}")
    return written
