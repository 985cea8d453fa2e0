"""Results report: tables, aggregate statistics, plots and a verdict against the paper.

The command is `python -m offline_moe.report --runs=runs/ --out=report/`.

Reads every run directory below ``--runs`` (a directory holding ``config.json``; layout in
``offline_moe/train/rundir.py``) and writes to ``--out``:

- ``results.md``: warnings, then per (agent, protocol) group the aggregate table (IQM, median,
  mean, optimality gap of human-normalised scores with 95% stratified-bootstrap CIs, and the
  probability of improvement over the baseline torso), the per-game table and a verdict that
  compares the measured torso ordering with the paper's reported finding.
- ``results.csv``: one row per (agent, protocol, game, variant): seeds, final and best raw
  score (mean, std over seeds), human-normalised means.
- ``aggregates.csv``: one row per (agent, protocol, variant, score kind, metric).
- PNG plots: ``iqm_<group>.png`` (aggregate IQM with CIs per variant), ``curves_<group>.png``
  (training curves per game), ``profile_<group>.png`` (performance profiles) and
  ``iqm_vs_experts_<group>.png`` when the runs vary the number of experts.

Score rule (per seed): **final** = the mean evaluation return of the run's last evaluation
(``summary.json`` ``final_return``, else the last ``eval.jsonl`` line); **best** = the highest
mean evaluation return over all evaluations of the run (``summary.json`` ``best_return``, else
the max over ``eval.jsonl``). Best is selected on the evaluation itself and therefore
optimistic; it is reported beside final because offline CQL on Atari is known to peak and then
collapse late in training.

Nothing is averaged silently: unfinished runs are left out of aggregates (listed with their
last evaluation in the per-game table and warned about), games without reference scores are
reported raw only, variants missing some games are aggregated on the common games with a
warning, and runs whose protocol differs (data fraction, environment protocol, number of
evaluations) are split into separate groups with a warning.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from offline_moe.analysis import stats

METRIC_NAMES = {
    "iqm": "IQM",
    "median": "Median",
    "mean": "Mean",
    "optimality_gap": "Opt. gap",
}
BASELINE = "baseline"
FINDINGS_JSON = "paper_findings.json"
PUBLISHED_100K_JSON = "atari100k_published.json"


# ---------------------------------------------------------------------------------------------
# Reading run directories.


@dataclasses.dataclass
class Run:
    """One run directory, read.

    Attributes:
      path: the run directory.
      agent: config 'agent'.
      game: config 'game'.
      torso: config 'torso' dict ('name' plus keyword arguments).
      seeds: the seed of each vmapped member (config seed .. seed + num_seeds - 1).
      evals: eval.jsonl records in order.
      summary: summary.json, or None when absent.
      protocol: (key, value) settings that must match for runs to share a table.
      variant: display label, set by `assign_variants`.
    """

    path: Path
    agent: str
    game: str
    torso: dict
    seeds: list[int]
    evals: list[dict]
    summary: dict | None
    protocol: tuple[tuple[str, str], ...]
    variant: str = ""

    @property
    def done(self) -> bool:
        return bool(self.summary and self.summary.get("done"))

    @property
    def torso_name(self) -> str:
        return str(self.torso.get("name", "?"))

    def final_scores(self) -> np.ndarray | None:
        """[num_seeds] final returns (rule in the module docstring), or None without evals."""
        if self.summary and self.summary.get("final_return") is not None:
            return _floats(self.summary["final_return"])
        return _floats(self.evals[-1]["returns"]) if self.evals else None

    def best_scores(self) -> np.ndarray | None:
        """[num_seeds] best returns over evaluations, or None without evals."""
        if self.summary and self.summary.get("best_return") is not None:
            return _floats(self.summary["best_return"])
        if not self.evals:
            return None
        return np.max(np.stack([_floats(e["returns"]) for e in self.evals]), axis=0)

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps [E], returns [E, num_seeds]) from eval.jsonl."""
        steps = np.array(
            [float(e.get("step", e.get("iteration", i))) for i, e in enumerate(self.evals)]
        )
        rets = (
            np.stack([_floats(e["returns"]) for e in self.evals])
            if self.evals
            else np.zeros((0, 0))
        )
        return steps, rets


def _floats(values) -> np.ndarray:
    return np.array([float(v) for v in np.atleast_1d(values)], dtype=np.float64)


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    if path.is_file():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a half-written last line of a killed run
    return out


def _find_key(tree, key: str):
    """First value of `key` in a nested dict (breadth-first), or None."""
    queue = [tree]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            if key in node:
                return node[key]
            queue.extend(v for v in node.values() if isinstance(v, dict))
    return None


def protocol_of(config: dict) -> tuple[tuple[str, str], ...]:
    """The settings that must agree for runs to share a table: the data fraction, the
    environment protocol and the smoke flag, wherever the config nests them."""
    items = {}
    for key in ("percent", "protocol", "smoke"):
        value = _find_key(config, key)
        if value is not None:
            items[key] = str(value)
    return tuple(sorted(items.items()))


def find_run_dirs(root: str | os.PathLike) -> list[Path]:
    """Every directory under `root` (itself included) that holds a config.json."""
    root = Path(root)
    return sorted(p.parent for p in root.rglob("config.json") if "checkpoints" not in p.parts)


def load_run(path: str | os.PathLike) -> Run:
    """Reads one run directory (raises ValueError naming the file on a malformed config)."""
    path = Path(path)
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path / 'config.json'}: unreadable ({e})") from e
    missing = [k for k in ("agent", "game") if k not in config]
    if missing:
        raise ValueError(f"{path / 'config.json'}: missing fields {missing}")
    torso = config.get("torso") or {}
    if isinstance(torso, str):
        torso = {"name": torso}
    seed = int(config.get("seed", 0))
    num_seeds = int(config.get("num_seeds", 1))
    evals = _read_jsonl(path / "eval.jsonl")
    summary = None
    if (path / "summary.json").is_file():
        try:
            summary = json.loads((path / "summary.json").read_text())
        except ValueError:
            summary = None
    return Run(
        path=path,
        agent=str(config["agent"]),
        game=str(config["game"]),
        torso=dict(torso),
        seeds=list(range(seed, seed + num_seeds)),
        evals=evals,
        summary=summary,
        protocol=protocol_of(config),
    )


def load_runs(root: str | os.PathLike, warnings: list[str] | None = None) -> list[Run]:
    """All readable runs under `root`; unreadable ones become warnings."""
    runs = []
    for path in find_run_dirs(root):
        try:
            runs.append(load_run(path))
        except ValueError as e:
            if warnings is not None:
                warnings.append(f"skipped unreadable run: {e}")
    return runs


def missing_from_grid(grid_file: Path) -> list[str]:
    """Warnings for runs listed in a sweep's grid file whose directory has no config.json."""
    try:
        entries = json.loads(Path(grid_file).read_text())["runs"]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"unreadable sweep grid file {grid_file}"]
    missing = [
        e["workdir"]
        for e in entries
        if not (grid_file.parent / e["workdir"] / "config.json").is_file()
    ]
    if not missing:
        return []
    shown = ", ".join(missing[:10]) + (
        f", ... ({len(missing)} in all)" if len(missing) > 10 else ""
    )
    return [
        f"missing runs: {len(missing)} of the {len(entries)} runs in {grid_file} "
        f"never started: {shown}"
    ]


def assign_variants(runs: Sequence[Run]) -> None:
    """Labels each run by torso name plus the torso kwargs that vary among runs of that name
    within one agent, e.g. 'soft_moe[num_experts=4]'."""
    by_key = defaultdict(list)
    for run in runs:
        by_key[(run.agent, run.torso_name)].append(run)
    for group in by_key.values():
        keys = sorted({k for r in group for k in r.torso if k != "name"})
        varying = [k for k in keys if len({json.dumps(r.torso.get(k)) for r in group}) > 1]
        for run in group:
            extra = ",".join(f"{k}={run.torso.get(k)}" for k in varying)
            run.variant = f"{run.torso_name}[{extra}]" if extra else run.torso_name


# ---------------------------------------------------------------------------------------------
# Tables.


@dataclasses.dataclass
class Cell:
    """Scores of one (game, variant) inside a group: per-seed arrays over its runs."""

    final: np.ndarray
    best: np.ndarray
    runs: list[Run]
    unfinished: int


def _protocol_str(protocol) -> str:
    return ", ".join(f"{k}={v}" for k, v in protocol) or "default"


def _group_label(agent: str, protocol) -> str:
    label = agent + "".join(f"_{k}{v}" for k, v in protocol)
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in label)


def build_groups(runs: Sequence[Run], *, include_unfinished: bool, warnings: list[str]):
    """{(agent, protocol): {game: {variant: Cell}}} with warnings for everything dropped."""
    by_agent = defaultdict(list)
    for run in runs:
        by_agent[run.agent].append(run)
    groups = {}
    for agent, agent_runs in sorted(by_agent.items()):
        protocols = sorted({r.protocol for r in agent_runs})
        if len(protocols) > 1:
            warnings.append(
                f"mixed protocols for agent {agent}: "
                + "; ".join(f"[{_protocol_str(p)}]" for p in protocols)
                + " -- reported as separate tables, never averaged together"
            )
        for protocol in protocols:
            cells: dict = defaultdict(dict)
            seen = {}
            members = [r for r in agent_runs if r.protocol == protocol]
            assign_variants(members)  # labels only show what varies inside this table
            members.sort(key=lambda r: (not r.done, str(r.path)))  # finished runs win duplicates
            for run in members:
                if not run.done:
                    last = run.evals[-1].get("iteration") if run.evals else None
                    warnings.append(
                        f"unfinished run {run.path} (no summary.json; last evaluation: "
                        f"iteration {last})"
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
                    cell = cells[run.game][run.variant] = Cell(np.zeros(0), np.zeros(0), [], 0)
                cell.runs.append(run)
                if use:
                    cell.final = np.concatenate([cell.final, final[keep]])
                    cell.best = np.concatenate([cell.best, best[keep]])
                else:
                    cell.unfinished += len(run.seeds)
            lengths = {
                r.evals[-1].get("step")
                for r in agent_runs
                if r.protocol == protocol and r.done and r.evals
            }
            if len(lengths) > 1:
                warnings.append(
                    f"{agent} ({_protocol_str(protocol)}): finished runs end at different steps "
                    f"{sorted(lengths, key=str)} -- final scores compare different training lengths"
                )
            groups[(agent, protocol)] = dict(cells)
    return groups


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.{digits}f}"


def _fmt_ci(point, lo, hi) -> str:
    return f"{_fmt(point)} [{_fmt(lo)}, {_fmt(hi)}]"


def _order_variants(variants) -> list[str]:
    def key(v):
        n = _experts_of_label(v)
        return (v.split("[")[0] != BASELINE, v.split("[")[0], n if n is not None else -1, v)

    return sorted(variants, key=key)


def _experts_of_label(label: str) -> int | None:
    if "num_experts=" not in label:
        return None
    try:
        return int(label.split("num_experts=")[1].split(",")[0].rstrip("]"))
    except ValueError:
        return None


@dataclasses.dataclass
class GroupResult:
    """Everything computed for one (agent, protocol) group."""

    agent: str
    protocol: tuple
    label: str
    games: list[str]  # games aggregated (all variants, reference scores known)
    variants: list[str]
    aggregates: dict  # {(variant, kind): {metric: (point, lo, hi)}}
    poi: dict  # {(variant, kind): (point, lo, hi)} vs baseline
    matrices: dict  # {(variant, kind): [R, T]}
    cells: dict
    baseline: str | None = None  # the variant P(improvement) compares against


def analyse_group(agent, protocol, cells, *, reps, seed, warnings, scores) -> GroupResult:
    """Aggregates of one group: common games, normalised matrices, CIs, P(improvement)."""
    variants = _order_variants({v for g in cells.values() for v in g})
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
    aggregates, poi, matrices = {}, {}, {}
    if games:
        for v in variants:
            for kind in ("final", "best"):
                m = _normalised_matrix_with(cells, games, v, kind, scores)
                matrices[(v, kind)] = m
                aggregates[(v, kind)] = stats.aggregate_table(m, reps=reps, seed=seed)
        base = pick_baseline(variants)
        if base is None:
            warnings.append(f"{agent}: no '{BASELINE}' torso runs; no probability of improvement")
        else:
            for v in variants:
                if v == base:
                    continue
                for kind in ("final", "best"):
                    poi[(v, kind)] = stats.probability_of_improvement_ci(
                        matrices[(v, kind)], matrices[(base, kind)], reps=min(reps, 5000), seed=seed
                    )
    return GroupResult(
        agent=agent,
        protocol=protocol,
        label=_group_label(agent, protocol),
        games=games,
        variants=variants,
        aggregates=aggregates,
        poi=poi,
        matrices=matrices,
        cells=cells,
        baseline=base if games else None,
    )


def pick_baseline(variants: Sequence[str]) -> str | None:
    """The reference variant for P(improvement): 'baseline', else the unscaled (width=1)
    baseline, else the first baseline variant; None without baseline runs."""
    candidates = [v for v in variants if v.split("[")[0] == BASELINE]
    if BASELINE in candidates:
        return BASELINE
    unscaled = [v for v in candidates if "width=1.0" in v or "width=1]" in v or "width=1," in v]
    return (unscaled or candidates or [None])[0]


def _normalised_matrix_with(cells, games, variant, kind, scores) -> np.ndarray:
    """[R, T] human-normalised scores; R = the fewest seeds among the games."""
    cols = [stats.human_normalize(g, getattr(cells[g][variant], kind), scores) for g in games]
    r = min(len(c) for c in cols)
    return np.stack([c[:r] for c in cols], axis=1)


# ---------------------------------------------------------------------------------------------
# Verdict against the paper.


def _load_json(name: str) -> dict:
    path = stats.BASELINES_DIR / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _same_number(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def verdict(result: GroupResult) -> list[str]:
    """Markdown lines comparing the measured ordering with the paper's stated finding."""
    findings = _load_json(FINDINGS_JSON)
    percent = dict(result.protocol).get("percent")
    entries = [
        f
        for f in findings.get("offline", []) + findings.get("low_data", [])
        if f.get("agent") == result.agent
        and (percent is None or "percent" not in f or _same_number(f["percent"], percent))
    ]
    lines = []
    if not result.aggregates:
        return ["- Nothing to compare: no game has finished runs of every variant."]
    # Measured ordering by IQM of final scores.
    iqm = {v: result.aggregates[(v, "final")]["iqm"] for v in result.variants}
    order = sorted(result.variants, key=lambda v: -iqm[v][0])
    text = f"{order[0]} ({_fmt(iqm[order[0]][0])})"
    for prev, v in zip(order, order[1:]):
        text += (" > " if iqm[prev][0] > iqm[v][0] else " = ") + f"{v} ({_fmt(iqm[v][0])})"
    lines.append("- Measured ordering (IQM of final scores): " + text)
    top = order[0]
    if len(order) > 1:
        separated = all(iqm[top][1] > iqm[v][2] for v in order[1:])
        lines.append(
            f"- Top variant `{top}`: its IQM CI "
            + ("lies above every other variant's CI (confident)." if separated
               else "overlaps another variant's CI (not a confident ranking).")
        )  # fmt: skip
    if not entries:
        where = f"percent={percent}" if percent is not None else "this protocol"
        lines.append(f"- The paper states no finding for {result.agent} at {where}.")
        return lines
    for f in entries:
        fig = f.get("figure", "?")
        best = f.get("best")
        for key, when in (("claims_at_100k", "at 100k steps"), ("claims_long", "longer runs")):
            if f.get(key):
                lines.append(f"- Paper ({fig}), {when}: {f[key]}.")
        if best:
            labels = [v for v in result.variants if v.split("[")[0] == best]
            if not labels:
                lines.append(f"- Paper ({fig}): `{best}` best -- not run here, cannot compare.")
            else:
                agrees = top in labels
                lines.append(
                    f"- Paper ({fig}): `{best}` best. Measured: `{top}` best -> "
                    + ("**agrees**" if agrees else "**disagrees**")
                    + (
                        " (confident)"
                        if len(order) > 1 and separated
                        else " (weak: the CIs overlap)"
                    )
                    + "."
                )
        for claim in f.get("claims", []):
            v, vs, better = claim["variant"], claim["vs"], claim["better"]
            key = next((k for k in result.poi if k[0].split("[")[0] == v and k[1] == "final"), None)
            if key is None or vs != BASELINE:
                lines.append(f"- Paper ({fig}): {claim['text']} -- not measurable here.")
                continue
            p, lo, hi = result.poi[key]
            if lo > 0.5:
                measured = "better than baseline (P(improve) CI above 0.5)"
                ok = better
            elif hi < 0.5:
                measured = "worse than baseline (P(improve) CI below 0.5)"
                ok = not better
            else:
                measured = "not distinguishable from baseline (P(improve) CI contains 0.5)"
                ok = None
            status = {True: "**agrees**", False: "**disagrees**", None: "**inconclusive**"}[ok]
            lines.append(
                f"- Paper ({fig}): {claim['text']} Measured: `{key[0]}` "
                f"P(improve over baseline) = {_fmt_ci(p, lo, hi)}, {measured} -> {status}."
            )
    published = _load_json(PUBLISHED_100K_JSON).get("aggregates", {})
    name = published.get("agent_of", {}).get(result.agent)
    if name and (result.baseline, "final") in result.aggregates:
        ours = result.aggregates[(result.baseline, "final")]["iqm"]
        lines.append(
            f"- Published Atari 100k IQM of {name}: {published['iqm'][name]:.3f} (BBF Table A.1, "
            f"26 games); measured baseline: {_fmt_ci(*ours)} on {len(result.games)} games "
            "(comparable only for the full 26-game suite at 100k steps)."
        )
    return lines


# ---------------------------------------------------------------------------------------------
# Plots.


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_iqm(result: GroupResult, path: Path) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.8 + 1.3 * len(result.variants), 3.6))
    x = np.arange(len(result.variants))
    for i, kind in enumerate(("final", "best")):
        pts = np.array([result.aggregates[(v, kind)]["iqm"] for v in result.variants])
        err = np.stack([pts[:, 0] - pts[:, 1], pts[:, 2] - pts[:, 0]])
        ax.bar(x + (i - 0.5) * 0.38, pts[:, 0], 0.38, yerr=err, capsize=4, label=kind,
               color=("C0", "C1")[i], alpha=0.85)  # fmt: skip
    ax.set_xticks(x, result.variants, rotation=20, ha="right")
    ax.set_ylabel("IQM human-normalised score")
    ax.set_title(
        f"{result.label}\nIQM, 95% stratified-bootstrap CI ({len(result.games)} games)", fontsize=9
    )
    ax.axhline(0.0, color="k", lw=0.5)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_curves(result: GroupResult, path: Path) -> None:
    plt = _plt()
    games = sorted(result.cells)
    cols = min(4, len(games))
    rows = math.ceil(len(games) / cols)
    width = 3.6 * cols + 1.8  # room on the right for the legend
    fig, axes = plt.subplots(rows, cols, figsize=(width, 2.8 * rows), squeeze=False)
    for ax, game in zip(axes.flat, games):
        for i, variant in enumerate(_order_variants(result.cells[game])):
            cell = result.cells[game][variant]
            runs = [r for r in cell.runs if r.evals and r.done]
            runs = runs or [r for r in cell.runs if r.evals]  # unfinished only: still show it
            if not runs:
                continue
            n = min(len(r.evals) for r in runs)
            steps = runs[0].curve()[0][:n]
            rets = np.concatenate([r.curve()[1][:n] for r in runs], axis=1)  # [n, seeds]
            mean, std = rets.mean(axis=1), rets.std(axis=1)
            ax.plot(steps, mean, color=f"C{i}", label=variant, marker="." if n < 3 else None)
            ax.fill_between(steps, mean - std, mean + std, color=f"C{i}", alpha=0.2)
        ax.set_title(game)
        ax.set_xlabel("step")
        ax.set_ylabel("return")
    for ax in list(axes.flat)[len(games) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.suptitle(f"{result.label}\nevaluation return (mean +- std over seeds)", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1 - 1.8 / width, 1))
    fig.legend(handles, labels, loc="center right", fontsize=7)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_profiles(result: GroupResult, path: Path) -> None:
    plt = _plt()
    all_scores = np.concatenate(
        [m.ravel() for (v, k), m in result.matrices.items() if k == "final"]
    )
    hi = max(2.0, float(np.nanmax(all_scores)) if all_scores.size else 2.0)
    taus = np.linspace(min(0.0, float(np.nanmin(all_scores))), hi, 101)
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for i, v in enumerate(result.variants):
        m = result.matrices[(v, "final")]
        prof, lo, hi_band = stats.performance_profile_ci(m, taus, reps=500)
        ax.plot(taus, prof, color=f"C{i}", label=v)
        ax.fill_between(taus, lo, hi_band, color=f"C{i}", alpha=0.15)
    ax.set_xlabel("human-normalised score tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_title(f"{result.label}\nperformance profile (final, 95% bands)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_iqm_vs_experts(result: GroupResult, path: Path) -> bool:
    """IQM against num_experts per torso name; False (no file) unless some torso varies it."""
    series = defaultdict(list)
    for v in result.variants:
        n = _experts_of_label(v)
        if n is not None:
            series[v.split("[")[0]].append((n, result.aggregates[(v, "final")]["iqm"]))
    series = {k: sorted(s) for k, s in series.items() if len(s) > 1}
    if not series:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for i, (name, pts) in enumerate(sorted(series.items())):
        n = np.array([p[0] for p in pts])
        est = np.array([p[1] for p in pts])
        ax.errorbar(n, est[:, 0], yerr=[est[:, 0] - est[:, 1], est[:, 2] - est[:, 0]],
                    marker="o", capsize=4, color=f"C{i}", label=name)  # fmt: skip
    if (result.baseline, "final") in result.aggregates:
        b = result.aggregates[(result.baseline, "final")]["iqm"]
        ax.axhline(b[0], color="k", ls="--", lw=1, label=result.baseline)
        ax.axhspan(b[1], b[2], color="k", alpha=0.08)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("number of experts")
    ax.set_ylabel("IQM human-normalised score (final)")
    ax.set_title(f"{result.label}\nIQM vs number of experts", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------
# Writing.


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _aggregate_md(result: GroupResult) -> str:
    rows = []
    for v in result.variants:
        for kind in ("final", "best"):
            agg = result.aggregates[(v, kind)]
            m = result.matrices[(v, kind)]
            poi = result.poi.get((v, kind))
            rows.append(
                [f"`{v}`", kind, f"{m.shape[1]} x {m.shape[0]}"]
                + [_fmt_ci(*agg[name]) for name in METRIC_NAMES]
                + [_fmt_ci(*poi) if poi else "--"]
            )
    header = ["variant", "score", "games x seeds"] + list(METRIC_NAMES.values())
    return _md_table(header + [f"P(> {result.baseline or BASELINE})"], rows)


def _per_game_rows(result: GroupResult, scores):
    rows = []
    for game in sorted(result.cells):
        for v in _order_variants(result.cells[game]):
            cell = result.cells[game][v]
            n = len(cell.final)
            row = {
                "agent": result.agent,
                "protocol": _protocol_str(result.protocol),
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
            if n:
                try:
                    row["final_hns"] = float(
                        np.mean(stats.human_normalize(game, cell.final, scores))
                    )
                    row["best_hns"] = float(np.mean(stats.human_normalize(game, cell.best, scores)))
                except stats.UnknownGameError:
                    pass
            if not n and cell.runs:  # unfinished only: show the last evaluation, marked
                last = np.concatenate([r.final_scores() for r in cell.runs if r.evals])
                row["final_mean"] = float(np.mean(last))
            rows.append(row)
    return rows


def write_report(
    runs: str | os.PathLike | Sequence[Run],
    out: str | os.PathLike,
    *,
    reps: int = 50_000,
    seed: int = 0,
    include_unfinished: bool = False,
    scores: stats.ScorePaths = None,
    plots: bool = True,
) -> str:
    """Writes results.md, results.csv, aggregates.csv and the plots; returns the markdown.

    Args:
      runs: a directory to search for run directories, or already-loaded runs.
      out: output directory (created).
      reps: bootstrap replicates for the CIs.
      seed: bootstrap seed (the report is deterministic for a given seed).
      include_unfinished: aggregate unfinished runs at their last evaluation.
      scores: reference-score CSV(s); default baselines/atari_scores.csv.
      plots: write the PNG plots.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    warnings: list[str] = []
    if isinstance(runs, str | os.PathLike):
        root = Path(runs)
        runs = load_runs(root, warnings)
        if not runs:
            warnings.append(f"no run directories (config.json) found under {root}")
        for grid in sorted(root.rglob("sweep_grid.json")):
            warnings += missing_from_grid(grid)
    runs = list(runs)
    groups = build_groups(runs, include_unfinished=include_unfinished, warnings=warnings)
    results = [
        analyse_group(a, p, cells, reps=reps, seed=seed, warnings=warnings, scores=scores)
        for (a, p), cells in groups.items()
    ]

    md = ["# offline_moe results", ""]
    md.append(
        f"{len(runs)} run directories, {sum(r.done for r in runs)} finished. Scores are "
        "human-normalised ((score - random) / (human - random), baselines/atari_scores.csv). "
        "**final** = mean return of the last evaluation; **best** = highest mean evaluation "
        "return over training (optimistic: chosen on the evaluation itself). Aggregates: IQM, "
        "median, mean and optimality gap over the games x seeds matrix with 95% stratified-"
        f"bootstrap CIs ({reps} replicates); P(> {BASELINE}) = probability of improvement over "
        "the baseline torso (Agarwal et al. 2021)."
    )
    md.append("")
    if warnings:
        md += ["## Warnings", ""] + [f"- {w}" for w in warnings] + [""]
    csv_rows, agg_rows = [], []
    for res in results:
        md += [f"## {res.agent} ({_protocol_str(res.protocol)})", ""]
        if res.aggregates:
            md += [f"Aggregated over {len(res.games)} games: {', '.join(res.games)}.", ""]
            md += [_aggregate_md(res), ""]
        else:
            md += ["No aggregate: no game has reference scores and finished runs of every "
                   "variant.", ""]  # fmt: skip
        rows = _per_game_rows(res, scores)
        csv_rows += rows
        md += [
            _md_table(
                [
                    "game",
                    "variant",
                    "seeds",
                    "final (mean +- std)",
                    "best (mean +- std)",
                    "final HNS",
                    "best HNS",
                ],  # fmt: skip
                [
                    [
                        r["game"],
                        f"`{r['variant']}`",
                        str(r["seeds"])
                        + (
                            f" (+{r['unfinished_seeds']} unfinished)"
                            if r["unfinished_seeds"]
                            else ""
                        ),
                        f"{_fmt(r['final_mean'], 1)} +- {_fmt(r['final_std'], 1)}",
                        f"{_fmt(r['best_mean'], 1)} +- {_fmt(r['best_std'], 1)}",
                        _fmt(r["final_hns"]),
                        _fmt(r["best_hns"]),
                    ]
                    for r in rows
                ],
            ),
            "",
        ]
        md += ["### Verdict", ""] + verdict(res) + [""]
        for (v, kind), agg in res.aggregates.items():
            for metric, (p, lo, hi) in agg.items():
                agg_rows.append([res.agent, _protocol_str(res.protocol), v, kind, metric, p, lo, hi,
                                 len(res.games)])  # fmt: skip
            if (v, kind) in res.poi:
                p, lo, hi = res.poi[(v, kind)]
                agg_rows.append([res.agent, _protocol_str(res.protocol), v, kind,
                                 f"poi_vs_{BASELINE}", p, lo, hi, len(res.games)])  # fmt: skip
        if plots and res.aggregates:
            plot_iqm(res, out / f"iqm_{res.label}.png")
            plot_profiles(res, out / f"profile_{res.label}.png")
            plot_iqm_vs_experts(res, out / f"iqm_vs_experts_{res.label}.png")
        if plots and res.cells:
            plot_curves(res, out / f"curves_{res.label}.png")
    text = "\n".join(md).rstrip() + "\n"
    (out / "results.md").write_text(text)
    fields = list(csv_rows[0]) if csv_rows else ["agent", "protocol", "game", "variant"]
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(csv_rows)
    with open(out / "aggregates.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["agent", "protocol", "variant", "score", "metric", "point", "ci_low",
                         "ci_high", "games"])  # fmt: skip
        writer.writerows(agg_rows)
    return text


def print_report(runs_root: str | os.PathLike, out: str | os.PathLike | None = None,
                 *, reps: int = 10_000, file=None) -> str:  # fmt: skip
    """Writes the report (to `out`, default RUNS_ROOT/report) and prints its markdown."""
    text = write_report(runs_root, out or Path(runs_root) / "report", reps=reps)
    print(text, file=file or sys.stdout)
    return text
