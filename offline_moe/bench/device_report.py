"""What the accelerator check keeps and shows: device.json's learning records, the learning
curve, and device.md (`markdown`).
"""

from __future__ import annotations

import json
import os
import statistics


def learning_record(line: dict, out_dir: str) -> dict:
    """What device.json keeps of one `bench learning` line (plus the training rate)."""
    rates = []
    metrics = os.path.join(line["workdir"], "metrics.jsonl")
    if os.path.exists(metrics):
        with open(metrics) as f:
            rates = [json.loads(x)["updates_per_s"] for x in f if x.strip()]
    keep = ("torso", "seeds", "budget", "steps", "mean_return", "final", "finished")
    return {
        **{k: line[k] for k in keep},
        "returns": line["returns"],
        # Updates per seed per second (all seeds train together), over the logged blocks but
        # the first, which holds the compile.
        "updates_per_s_median": statistics.median(rates[1:]) if len(rates) > 1 else None,
        "workdir": os.path.relpath(line["workdir"], out_dir),
    }


def plot_learning(res: dict, path: str) -> None:
    """The evaluation curves (mean over seeds, with each seed's) of the learning section."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for torso, run in res["runs"].items():
        if not run["steps"]:
            continue
        (line,) = ax.plot(run["steps"], run["mean_return"], label=torso, lw=2)
        for s in range(len(run["seeds"])):
            seed_curve = [r[s] for r in run["returns"]]
            ax.plot(run["steps"], seed_curve, color=line.get_color(), lw=0.5, alpha=0.4)
    random = res.get("random_score", {}).get("mean")
    if random is not None:
        ax.axhline(random, color="grey", ls="--", lw=1, label="random")
    ax.set_xlabel("updates (per seed)")
    ax.set_ylabel(f"{res['game']} return (capped episodes)")
    ax.set_title(f"CQL on {res['game']}, {res['data']['policy']} data")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fmt(x, digits=1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _gib(b) -> str:
    return "-" if b is None else f"{b / 2**30:.2f}"


def markdown(r: dict) -> str:
    env = r.get("env", {})
    lines = [
        f"# offline_moe accelerator check ({r['started_utc']})",
        "",
        f"Device: {env.get('device_kind', '?')} ({env.get('platform', '?')}, "
        f"{env.get('device_count', '?')} device(s)), host CPUs {env.get('host_cpus', '?')}; "
        f"size `{r['size']}`, budget {r['minutes']} min, elapsed {r.get('elapsed_s', 0):.0f} s"
        f"{'' if r.get('finished') else ' (not finished)'}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
        "",
    ]
    if r.get("learner"):
        lines += [
            "## Learner (end to end: sampling inside the fused scan)",
            "",
            "| agent | torso | dtype | seeds | seed-updates/s | per seed | compile s | params | "
            "state GiB | peak mem GiB |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for x in r["learner"]:
            lines.append(
                f"| {x['agent']} | {x['torso']} | {x.get('compute_dtype', 'float32')} | "
                f"{x['num_seeds']} | {_fmt(x['updates_per_s'])} "
                f"| {_fmt(x['per_seed_updates_per_s'])} | {_fmt(x['compile_s'])} | "
                f"{_fmt(x['params'])} | {_gib(x['state_bytes'])} | "
                f"{_gib(x['memory'].get('peak_bytes_in_use'))} |"
            )
        lines += [
            "",
            "Target: >= 6,000 seed-updates/s at 5 seeds (a 5-seed run of 12.5M updates per seed "
            "in under 3 hours).",
            "",
        ]
    if r.get("learning", {}).get("runs"):
        x = r["learning"]
        d = x.get("data", {})
        rnd = x.get("random_score", {})
        lines += [
            f"## Learning: CQL on {x['game']} ({d.get('policy')} data)",
            "",
            f"Data: {d.get('agent_steps', 0):,} agent steps in {d.get('checkpoints')} "
            f"checkpoints, recorded in {d.get('record_s')} s by {d.get('processes')} processes "
            f"({_fmt(d.get('agent_steps_per_s'))} agent steps/s). Random policy: "
            f"{_fmt(rnd.get('mean'), 2)} ({rnd.get('how', '')}).",
            "",
            "| torso | seeds | updates per seed | final return (mean) | 95% CI "
            "| updates/s per seed | finished |",
            "|---|---:|---:|---:|---|---:|---:|",
        ]
        for torso, run in x["runs"].items():
            final = run.get("final") or {}
            ci = final.get("ci95")
            lines.append(
                f"| {torso} | {len(run['seeds'])} | {_fmt(run['steps'][-1] if run['steps'] else 0)}"
                f" | {_fmt(final.get('mean'), 2)} | "
                f"{'-' if not ci else f'[{ci[0]:.2f}, {ci[1]:.2f}]'} | "
                f"{_fmt(run.get('updates_per_s_median'))} | {run.get('finished')} |"
            )
        lines += ["", "Evaluation curves (mean over seeds):", ""]
        for torso, run in x["runs"].items():
            pts = ", ".join(f"{s:,}: {m:.2f}" for s, m in zip(run["steps"], run["mean_return"]))
            lines.append(f"- {torso}: {pts}")
        lines.append("")
    if r.get("replay"):
        x = r["replay"]
        lines += [
            "## Replay",
            "",
            f"DeviceReplay of {x['rows']:,} rows ({x['scale']:.3g} x the paper's 5%): "
            f"{_gib(x['bytes'])} GiB ({x['bytes_per_row']:,.0f} B/row; 5% projected "
            f"{_gib(x['paper_5pct_bytes_projected'])} GiB), built in {x['build_s']} s.",
            "",
        ]
    if r.get("replay_sampling"):
        lines += ["| replay | n-step | transitions/s |", "|---|---:|---:|"]
        for x in r["replay_sampling"]:
            lines.append(f"| {x['replay']} | {x['n_step']} | {_fmt(x['transitions_per_s'])} |")
        lines.append("")
    if r.get("online"):
        x = r["online"]
        lines += [
            "## Online (DER, emulator included)",
            "",
            f"{x['torso']}: {x['agent_steps_per_s']:,.1f} agent steps/s (jitted call "
            f"{x['jitted_call_ms']:.1f} ms, emulator {x['emulator_ms']:.1f} ms per step); "
            f"100k steps in {x['projected_100k_minutes']:.1f} min.",
            "",
        ]
    if r.get("eval"):
        lines += [
            "## Evaluation (emulators + batched acting)",
            "",
            "| backend | seeds x envs | agent steps/s | cores | per core | 5-seed paper run h |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for x in r["eval"]:
            lines.append(
                f"| {x['backend']} | {x['seeds']} x {x['envs_per_seed']} | "
                f"{_fmt(x['agent_steps_per_s'])} | {x['cores_used']} | "
                f"{_fmt(x['agent_steps_per_s_per_core'])} | {x['paper_5seed_run_eval_hours']} |"
            )
        if "eval_backends_identical" in r:
            lines.append("")
            same = r["eval_backends_identical"]
            lines.append(f"Same episode returns from both backends: {same}.")
        lines.append("")
    if r.get("errors"):
        lines += ["## Errors", ""] + [f"- {e['section']}: {e['error']}" for e in r["errors"]] + [""]
    if r.get("skipped"):
        lines += ["## Skipped", ""] + [f"- {s['what']}: {s['why']}" for s in r["skipped"]] + [""]
    return "\n".join(lines)
