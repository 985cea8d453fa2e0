"""The verdict: measured torso orderings against the paper's findings, like with like.

Each finding in ``baselines/paper_findings.json`` states the settings it holds for (agent,
data source and percent, encoder, number of experts, budget, game suite, evaluation cap). A
group is compared with a finding only when its protocol matches those settings, and each
torso of the finding is matched to the one variant run with the finding's encoder and number
of experts (e.g. ``soft_moe[num_experts=8]`` in an expert sweep). Otherwise the verdict says
"not comparable: <which settings differ>" instead of agreeing or disagreeing.

Statistical rules (`RULES`, printed in the report's header). A claim "X better than baseline"
is checked with the probability of improvement of X over the matched baseline (final scores)
and its 95% bootstrap CI: it agrees when the CI lies above 0.5, disagrees when it lies below,
and is inconclusive otherwise. A claim "X does not improve on the baseline" agrees when the CI
lies inside the equivalence margin `EQUIVALENCE` = [0.4, 0.6] or below 0.5, disagrees when it
lies above 0.5 and leaves the margin, and is inconclusive when it is wider: absence of evidence
is not agreement. An ordering or an agreement is called confident only when every game has at
least `MIN_SEEDS` = 3 seeds of every variant and the 95% CIs separate; with fewer seeds the
numbers are shown with "too few seeds for a verdict" (Agarwal et al. 2021, "Deep RL at the
Edge of the Statistical Precipice", Sec. 4: few-run point estimates are unreliable).

MinAtar groups (every game one of the five MinAtar games) are never compared with an Atari
finding as if like for like: the like-for-like lines say "not comparable" as for any other
group, and a second, separately labelled block ("At MinAtar scale") applies the same claims
and statistical rules with only the settings MinAtar can share with the paper
(`MINATAR_KEPT`: data source, data percent, number of experts); games, encoder, network
widths, budget and evaluation cap are MinAtar's own. That block reports orderings at a smaller
scale, not a test of the Atari claims, and gives a verdict only over all five games (the paper's
claims are about a suite, never one game): a partial grid shows its numbers with "too few games
for a verdict".
"""

from __future__ import annotations

import json

from offline_moe.analysis import stats, suites
from offline_moe.analysis.report.groups import (
    BASELINE,
    POI_REPS,
    GroupResult,
    torso_default,
    torso_name_of,
    torso_value,
    varying_torso_keys,
)

MIN_SEEDS = 3  # seeds per game below which no verdict is given
EQUIVALENCE = (0.4, 0.6)  # P(improvement) margin that counts as "no improvement"
TOO_FEW = "too few seeds for a verdict"
TOO_FEW_GAMES = "too few games for a verdict"
RULES = (
    f"Verdict rules: an ordering or agreement is confident only when every game has at least "
    f"{MIN_SEEDS} seeds of every variant and the 95% CIs separate; with fewer seeds the numbers "
    f'are shown with "{TOO_FEW}". A claim that X is better than the baseline agrees when the '
    "95% CI of P(improvement) lies above 0.5 and disagrees when it lies below; a claim that X "
    f"does not improve agrees when that CI lies inside [{EQUIVALENCE[0]}, {EQUIVALENCE[1]}] or "
    "below 0.5 and disagrees when it lies above 0.5 outside that margin; any other CI is "
    "inconclusive. A finding is compared only with runs at its stated settings (budget "
    "included); otherwise it is marked not comparable."
)

# Settings of a finding that a MinAtar group must still match in the "At MinAtar scale" block.
MINATAR_KEPT = ("data_sources", "percent", "num_experts")
MINATAR_LABEL = (
    "**At MinAtar scale** (a separate comparison of orderings, not a test of the paper's Atari "
    "claims: games, encoder, widths, budget and evaluation are MinAtar's; matched on "
    + ", ".join(k.replace("_", " ") for k in MINATAR_KEPT)
    + " only)"
)

FINDINGS_JSON = "paper_findings.json"
PUBLISHED_100K_JSON = "atari100k_published.json"


def load_json(name: str) -> dict:
    path = stats.BASELINES_DIR / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def fmt(x, digits: int = 3) -> str:
    try:
        ok = x is not None and float(x) == float(x) and abs(float(x)) != float("inf")
    except (TypeError, ValueError):
        ok = False
    return f"{float(x):.{digits}f}" if ok else "n/a"


def fmt_ci(point, lo, hi) -> str:
    return f"{fmt(point)} [{fmt(lo)}, {fmt(hi)}]"


def _same(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def findings_for(result: GroupResult) -> list[dict]:
    """The paper's findings about this group's agent."""
    findings = load_json(FINDINGS_JSON)
    entries = findings.get("offline", []) + findings.get("low_data", [])
    return [f for f in entries if f.get("agent") == result.agent]


def group_differences(result: GroupResult, settings: dict) -> list[str]:
    """Settings of the group (data, budget, games, evaluation) that differ from a finding's."""
    p, out = result.protocol, []
    if not p.known:
        return ["protocol unknown (the runs have no protocol.json)"]
    sources = settings.get("data_sources")
    if sources and p.data_source not in sources:
        out.append(f"data source {p.data_source} vs the paper's {' / '.join(sources)}")
    if "percent" in settings and not _same(settings["percent"], p.data_percent):
        out.append(f"data percent {p.data_percent} vs the paper's {settings['percent']}")
    budget = settings.get("budget")
    if budget and (
        (p.iterations, p.steps_per_iteration, p.unit)
        != (budget["iterations"], budget["steps_per_iteration"], budget["unit"])
    ):
        out.append(
            f"budget {p.budget_text()} vs the paper's {budget['iterations']} x "
            f"{budget['steps_per_iteration']:,} {budget['unit'].replace('_', ' ')}"
        )
    suite = settings.get("games")
    if suite:
        want = set(suites.get_suite(suite))
        have = set(result.games)
        if have != want:
            missing = sorted(want - have)
            extra = sorted(have - want)
            games = "game" if len(have) == 1 else "games"
            detail = f"{len(have)} {games} aggregated vs the paper's {len(want)} ({suite})"
            if missing and len(missing) <= 5:
                detail += f"; missing {', '.join(missing)}"
            if extra:
                detail += f"; not in the paper's set: {', '.join(extra)}"
            out.append(detail)
    cap = settings.get("eval_max_episode_steps")
    if cap is not None and p.eval_cap is not None and p.eval_cap != cap:
        out.append(f"evaluation episodes capped at {p.eval_cap:,} steps vs the paper's {cap:,}")
    return out


def matching_variant(result: GroupResult, name: str, settings: dict) -> tuple[str | None, str]:
    """The one variant of torso `name` run with the finding's encoder and number of experts.

    Returns:
      (variant, '') or (None, why not).
    """
    candidates = [v for v in result.variants if torso_name_of(v) == name]
    if not candidates:
        return None, f"no {name} runs"
    want = {"encoder": settings.get("encoder")}
    if name != BASELINE:
        want["num_experts"] = settings.get("num_experts")
    want = {k: v for k, v in want.items() if v is not None}

    def props(v):
        run = result.runs_of(v)[0]
        got = {"encoder": run.encoder, "num_experts": run.num_experts}
        if name == BASELINE:
            got["width"] = float(run.torso.get("width", 1.0))
        return got

    ok = [v for v in candidates if all(_same(props(v).get(k), x) for k, x in want.items())]
    if name == BASELINE and len(ok) > 1:
        ok = [v for v in ok if props(v)["width"] == 1.0] or ok  # the unscaled baseline
    if len(ok) > 1:  # e.g. soft_moe beside a normalize_tokens=True control: the paper's is
        ok = _at_defaults(result, name, ok) or ok  # the one with the torso's defaults
    if len(ok) == 1:
        return ok[0], ""
    wanted = ", ".join(f"{k}={x}" for k, x in want.items())
    if not ok:
        seen = "; ".join(
            f"`{v}`: " + ", ".join(f"{k}={props(v).get(k)}" for k in want) for v in candidates
        )
        return None, f"no {name} run with {wanted} (measured {seen})"
    return None, f"several {name} variants match {wanted}: {', '.join(ok)}"


def _at_defaults(result: GroupResult, name: str, variants: list[str]) -> list[str]:
    """The variants whose torso kwargs, where they differ among `variants`, are the registered
    torso's defaults (a kwarg with no known default counts as changed)."""
    torsos = {v: result.runs_of(v)[0].torso for v in variants}
    varying = varying_torso_keys(name, list(torsos.values()))
    return [
        v
        for v, t in torsos.items()
        if all(
            torso_default(name, k) is not None
            and _same(torso_value(name, t, k), torso_default(name, k))
            for k in varying
        )
    ]


def _poi(result: GroupResult, variant: str, base: str):
    if base == result.baseline and (variant, "final") in result.poi:
        return result.poi[(variant, "final")]
    return stats.probability_of_improvement_ci(
        result.matrices[(variant, "final")],
        result.matrices[(base, "final")],
        reps=POI_REPS,
        seed=0,
    )


def measured_ordering(result: GroupResult, variants: list[str]) -> tuple[list[str], str, bool]:
    """(variants by IQM of final scores, the ordering as text, top CI above all others)."""
    iqm = {v: result.aggregates[(v, "final")]["iqm"] for v in variants}
    order = sorted(variants, key=lambda v: -iqm[v][0])
    text = f"`{order[0]}` ({fmt(iqm[order[0]][0])})"
    for prev, v in zip(order, order[1:]):
        text += (" > " if iqm[prev][0] > iqm[v][0] else " = ") + f"`{v}` ({fmt(iqm[v][0])})"
    separated = len(order) > 1 and all(iqm[order[0]][1] > iqm[v][2] for v in order[1:])
    return order, text, separated


def enough_seeds(result: GroupResult) -> bool:
    """Every game has at least MIN_SEEDS seeds of every variant."""
    return result.seeds_range()[0] >= MIN_SEEDS


def _too_few(result: GroupResult) -> str:
    return f"{TOO_FEW} ({result.seeds_range()[0]} seed(s) on some game; {MIN_SEEDS} needed)"


def no_verdict_reason(result: GroupResult, all_games: tuple[str, ...] = ()) -> str | None:
    """Why the group gives no verdict (too few seeds; or, when `all_games` is given, some of
    those games missing: one game's ordering is not the suite's), else None."""
    if not enough_seeds(result):
        return _too_few(result)
    missing = sorted(set(all_games) - set(result.games))
    if missing:
        return (
            f"{TOO_FEW_GAMES} ({len(all_games) - len(missing)} of the {len(all_games)} games; "
            f"missing {', '.join(missing)})"
        )
    return None


def claim_status(better: bool, lo: float, hi: float) -> tuple[str, bool | None]:
    """(what the P(improvement) CI [lo, hi] shows, whether it agrees with the claim or None).

    See the module docstring: "better" claims need the CI above 0.5; "no improvement" claims
    need it inside EQUIVALENCE or below 0.5.
    """
    if better:
        if lo > 0.5:
            return "better (P(improve) CI above 0.5)", True
        if hi < 0.5:
            return "worse (P(improve) CI below 0.5)", False
        return "not distinguishable (CI contains 0.5)", None
    margin = f"[{EQUIVALENCE[0]}, {EQUIVALENCE[1]}]"
    if hi < 0.5:
        return "worse (P(improve) CI below 0.5)", True
    if EQUIVALENCE[0] <= lo and hi <= EQUIVALENCE[1]:
        return f"equivalent (P(improve) CI inside the margin {margin})", True
    if lo > 0.5:
        return f"better (P(improve) CI above 0.5 and outside {margin})", False
    return f"undetermined (P(improve) CI wider than the margin {margin})", None


def verdict(result: GroupResult) -> list[str]:
    """Markdown lines comparing the measured orderings with the paper's stated findings."""
    if not result.aggregates:
        why = result.excluded or "no game has finished runs of every variant"
        return [f"- Nothing to compare: {why}."]
    lines = []
    order, text, separated = measured_ordering(result, result.variants)
    lines.append("- Measured ordering (IQM of final scores): " + text)
    if len(order) > 1 and not enough_seeds(result):
        lines.append(f"- Top variant `{order[0]}`: {_too_few(result)}.")
    elif len(order) > 1:
        lines.append(
            f"- Top variant `{order[0]}`: its IQM CI "
            + (
                "lies above every other variant's CI (confident)."
                if separated
                else "overlaps another variant's CI (not a confident ranking)."
            )
        )
    entries = findings_for(result)
    same_data = [
        f
        for f in entries
        if "percent" not in f["settings"]
        or _same(f["settings"]["percent"], result.protocol.data_percent)
    ]
    if not same_data:
        lines.append(
            f"- The paper states no finding for {result.agent} with {result.protocol.data_text()}."
        )
    for f in same_data:
        lines += _finding_lines(result, f)
    lines += _published_lines(result)
    if is_minatar_group(result):
        lines += minatar_scale_lines(result, same_data)
    return lines


def is_minatar_group(result: GroupResult) -> bool:
    """Every game of the group is a MinAtar game."""
    return bool(result.games) and set(result.games) <= set(suites.MINATAR)


def minatar_scale_lines(result: GroupResult, findings: list[dict]) -> list[str]:
    """The paper's claims applied at MinAtar scale, under their own label (module docstring)."""
    lines = []
    for f in findings:
        if f.get("claims") or f.get("best"):
            kept = {k: v for k, v in f["settings"].items() if k in MINATAR_KEPT}
            lines += _finding_lines(
                result, {**f, "settings": kept}, label="At MinAtar scale", all_games=suites.MINATAR
            )
    if not lines:
        return []
    return [f"- {MINATAR_LABEL}:"] + ["  " + line for line in lines]


def _finding_lines(
    result: GroupResult, f: dict, label: str = "Paper", all_games: tuple[str, ...] = ()
) -> list[str]:
    settings, fig = f["settings"], f.get("figure", "?")
    fig = fig if label == "Paper" else f"paper's {fig}"
    shared = group_differences(result, settings)  # apply to every statement
    lines = []
    # A statement without a measurable claim, shown for context with how the runs differ
    # (its budget, and for a stated encoder / number of experts, whether an MoE run has them).
    if f.get("statement"):
        diffs = list(shared)
        if settings.get("encoder") or settings.get("num_experts"):
            moes = sorted({torso_name_of(v) for v in result.variants} - {BASELINE})
            found = [matching_variant(result, name, settings) for name in moes]
            if not any(v for v, _ in found):
                diffs.append("; ".join(why for _, why in found) or "no MoE runs")
        note = f" -- **not comparable**: {'; '.join(diffs)}" if diffs else " (comparable settings)"
        lines.append(f"- {label} ({fig}), {f['when']}: {f['statement']}{note}.")
    claims = f.get("claims", [])
    names = {c["variant"] for c in claims} | {c["vs"] for c in claims}
    if f.get("best"):
        names |= {f["best"], BASELINE}
    chosen, missing = {}, {}
    for name in sorted(names):
        chosen[name], missing[name] = matching_variant(result, name, settings)

    def not_comparable(statement: str, needs) -> str | None:
        diffs = shared + [missing[n] for n in needs if chosen[n] is None]
        if diffs:
            return f"- {label} ({fig}): {statement} -- **not comparable**: {'; '.join(diffs)}."
        return None

    if f.get("best"):
        statement = f"`{f['best']}` best."
        line = not_comparable(statement, [f["best"], BASELINE])
        if line is None:
            matched = [chosen[n] for n in sorted(names) if chosen[n] is not None]
            order, text, separated = measured_ordering(result, matched)
            agrees = order[0] == chosen[f["best"]]
            line = (
                f"- {label} ({fig}): {statement} Measured among the matching variants: {text} -> "
            )
            blocked = no_verdict_reason(result, all_games)
            if blocked:
                line += f"{blocked}."
            else:
                line += ("**agrees**" if agrees else "**disagrees**") + (
                    " (confident)." if separated else " (weak: the CIs overlap)."
                )
        lines.append(line)
    for claim in claims:
        line = not_comparable(claim["text"], [claim["variant"], claim["vs"]])
        if line is None:
            v, base = chosen[claim["variant"]], chosen[claim["vs"]]
            p, lo, hi = _poi(result, v, base)
            measured, ok = claim_status(bool(claim["better"]), lo, hi)
            status = {True: "**agrees**", False: "**disagrees**", None: "**inconclusive**"}[ok]
            status = no_verdict_reason(result, all_games) or status
            line = (
                f"- {label} ({fig}): {claim['text']} Measured: `{v}` P(improve over `{base}`) = "
                f"{fmt_ci(p, lo, hi)}, {measured} -> {status}."
            )
        lines.append(line)
    return lines


def _published_lines(result: GroupResult) -> list[str]:
    published = load_json(PUBLISHED_100K_JSON).get("aggregates", {})
    name = published.get("agent_of", {}).get(result.agent)
    if not name or (result.baseline, "final") not in result.aggregates:
        return []
    ours = result.aggregates[(result.baseline, "final")]["iqm"]
    settings = {
        "games": "atari100k",
        "budget": {"iterations": 10, "steps_per_iteration": 10_000, "unit": "agent_steps"},
        "eval_max_episode_steps": 27_000,
    }
    diffs = group_differences(result, settings)
    return [
        f"- Published Atari 100k IQM of {name}: {published['iqm'][name]:.3f} (BBF Table A.1, "
        f"26 games); measured `{result.baseline}`: {fmt_ci(*ours)} on {len(result.games)} games"
        + (f" -- **not comparable**: {'; '.join(diffs)}." if diffs else " (comparable settings).")
    ]
