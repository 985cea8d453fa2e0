"""The embedded default benchmark behind `./run.sh` (no arguments): a MinAtar mini-grid.

    python -m offline_moe.default_benchmark [--game=MinAtarBreakout] [--budget=10000] [--fresh]
    python -m offline_moe.default_benchmark --atari   # the Atari pipeline check + Catch grid

Default (MinAtar, Young & Tian 2019): CQL with the baseline, soft_moe and top1_moe torsos,
2 seeds each, trained on the shipped offline dataset of one game (datasets/minatar/: 5% of
each of the 10 replay checkpoints of a 1M-step behaviour DQN, unpacked into ./data/cache) with
the `minatar` preset (offline_moe/configs/common.py, `apply_minatar_offline`) shortened to
`--budget` updates, each evaluated in MinAtar itself. It prints, per torso, the final return
and its min-max normalised score between the uniform-random policy (0) and the behaviour DQN
that made the data (1) (baselines/minatar_scores.csv), then the report over the runs. The full
grid is `python -m offline_moe.sweep --suite=minatar` (docs/minatar.md).

With --atari, the earlier default: records a small random-policy Atari dataset in real ALE
(`offline_moe.record`, then `offline_moe.ingest`, both in subprocesses so TensorFlow never
enters the training process), trains CQL x the three torsos on the `smoke` budget (a pipeline
check: its scores are noise around the random level), then the Catch grid, where the answer is
known (random -0.6, optimum 1.0; `offline_moe.launch.experiments.CATCH`).

Run directories go to ./runs/default_benchmark_minatar/{game}/cql_<torso> (--atari:
./runs/default_benchmark/cql_<torso> and ./runs/default_benchmark_catch/...); a finished run is
not re-run (pass --fresh to start over).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from types import SimpleNamespace

from absl import flags

from offline_moe.flags_common import define_data_dir, fail, parse

TORSOS = ("baseline", "soft_moe", "top1_moe")
MINATAR_GAME = "MinAtarBreakout"
MINATAR_BUDGET = 10_000
MINATAR_ITERATIONS = 4
MINATAR_EVAL_STEPS = 5_000


def format_table(rows: list[dict]) -> str:
    head = (
        f"{'torso':<10} {'params':>10} {'final return':>13} {'best return':>12} "
        f"{'updates/s':>10} {'wall s':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['torso']:<10} {r['params']:>10,} {r['final_return']:>13.2f} "
            f"{r['best_return']:>12.2f} {r['updates_per_s']:>10.1f} {r['wall_s']:>7.1f}"
        )
    return "\n".join(lines)


def define_flags(fv: flags.FlagValues) -> None:
    """The command's flags, in `fv`."""
    kw = dict(flag_values=fv)
    flags.DEFINE_boolean(
        "atari",
        False,
        "Run the Atari pipeline check (record, ingest, smoke-budget CQL) and the Catch grid "
        "instead of the MinAtar mini-grid.",
        **kw,
    )
    flags.DEFINE_string(
        "game",
        None,
        f"Game: a MinAtar game with a shipped dataset (default {MINATAR_GAME}); with --atari, "
        "the Atari game to record and evaluate on (default Breakout).",
        **kw,
    )
    flags.DEFINE_integer(
        "budget",
        MINATAR_BUDGET,
        f"Gradient updates per MinAtar run, in {MINATAR_ITERATIONS} iterations (the full "
        "grid's budget is 50,000).",
        lower_bound=1,
        **kw,
    )
    flags.DEFINE_integer(
        "eval_steps",
        MINATAR_EVAL_STEPS,
        "MinAtar: agent steps per seed of each evaluation (whole episodes, 8 games at once).",
        lower_bound=1,
        **kw,
    )
    flags.DEFINE_integer("steps", 3000, "With --atari: agent steps to record.", lower_bound=1, **kw)
    define_data_dir(fv)
    flags.DEFINE_string(
        "runs_dir",
        None,
        "Root of the run directories (default runs/default_benchmark_minatar; with --atari "
        "runs/default_benchmark).",
        **kw,
    )
    flags.DEFINE_list("torsos", list(TORSOS), "Torso names, comma-separated.", **kw)
    flags.DEFINE_integer(
        "num_seeds",
        2,
        "Seeds per torso, trained side by side in one program (>= 2 gives the report CIs).",
        lower_bound=1,
        **kw,
    )
    flags.DEFINE_boolean(
        "report",
        True,
        "End with the report (offline_moe.report) over the runs (--noreport: only the table).",
        **kw,
    )
    flags.DEFINE_boolean("fresh", False, "Delete previous runs first.", **kw)
    flags.DEFINE_integer(
        "catch_seeds",
        1,
        "With --atari: seeds per torso of the Catch grid (0 = skip).",
        lower_bound=0,
        **kw,
    )
    flags.DEFINE_integer(
        "catch_budget",
        600,
        "Gradient updates per Catch run (a multiple of 200; CQL + baseline reaches 1.0 by "
        "400, the MoE torsos need about 1,200, which --catch_budget=1200 shows at about one more "
        "minute; bench learning's default is 2,000).",
        lower_bound=1,
        **kw,
    )
    flags.DEFINE_string(
        "catch_runs_dir",
        os.path.join("runs", "default_benchmark_catch"),
        "Root of the Catch grid's run directories.",
        **kw,
    )


def main(argv=None) -> dict:
    fv = parse(argv, define_flags, prog="default_benchmark", doc=__doc__)
    args = SimpleNamespace(**fv.flag_values_dict())
    if args.atari:
        args.game = args.game or "Breakout"
        args.runs_dir = args.runs_dir or os.path.join("runs", "default_benchmark")
        return run_atari(args)
    args.game = args.game or MINATAR_GAME
    args.runs_dir = args.runs_dir or os.path.join("runs", "default_benchmark_minatar")
    return run_minatar(args)


def run_minatar(args) -> dict:
    """CQL x the torsos on one MinAtar game from its shipped dataset; normalised scores."""
    from offline_moe.analysis.stats import reference_score
    from offline_moe.configs import cql
    from offline_moe.data.shipped import ensure_shipped_cache
    from offline_moe.envs.registry import is_minatar
    from offline_moe.train.offline import train_and_evaluate

    if not is_minatar(args.game):
        fail(
            "default_benchmark",
            f"--game={args.game} is not a MinAtar game (MinAtarBreakout, ...); pass --atari for "
            "an Atari game",
        )
    if args.budget % MINATAR_ITERATIONS:
        fail(
            "default_benchmark",
            f"--budget={args.budget} must be a multiple of {MINATAR_ITERATIONS}",
        )
    t0 = time.time()
    cache_dir = ensure_shipped_cache(f"{args.game}_run1_5pct", args.data_dir)
    ref = reference_score(args.game)
    rows = []
    for torso in args.torsos:
        workdir = os.path.join(args.runs_dir, args.game, f"cql_{torso}")
        if args.fresh:
            shutil.rmtree(workdir, ignore_errors=True)
        config = cql.get_config(f"game={args.game},torso={torso}")
        config.data.cache_dir = cache_dir
        config.num_seeds = args.num_seeds
        config.num_iterations = MINATAR_ITERATIONS
        upi = args.budget // MINATAR_ITERATIONS
        config.updates_per_iteration = upi
        config.scan_steps = math.gcd(config.scan_steps, upi)
        config.log_interval = math.gcd(config.log_interval, upi)
        config.eval.steps = args.eval_steps
        print(f"[default_benchmark] CQL + {torso} on {args.game} -> {workdir}", flush=True)
        t1 = time.time()
        summary = train_and_evaluate(config, workdir)
        final = [(r - ref.random) / (ref.human - ref.random) for r in summary["final_return"]]
        rows.append(
            {
                "torso": torso,
                "params": summary["params"],
                "final_return": sum(summary["final_return"]) / len(summary["final_return"]),
                "best_return": sum(summary["best_return"]) / len(summary["best_return"]),
                "normalised": final,
                "normalised_mean": sum(final) / len(final),
                "updates_per_s": summary["updates_per_s"] or float("nan"),
                "wall_s": summary.get("wall_s", time.time() - t1),
                "workdir": workdir,
            }
        )
    result = {
        "game": args.game,
        "cache_dir": cache_dir,
        "budget": args.budget,
        "num_seeds": args.num_seeds,
        "random": ref.random,
        "behaviour": ref.human,
        "total_s": time.time() - t0,
        "runs": rows,
    }
    os.makedirs(args.runs_dir, exist_ok=True)
    with open(os.path.join(args.runs_dir, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    if args.report:
        _report(args.runs_dir)
    print(
        f"\nDefault benchmark: CQL on {args.game} (shipped dataset: 5% of a 1M-step behaviour "
        f"DQN's replay), {args.budget:,} updates, {args.num_seeds} seed(s) per torso; normalised "
        f"= (return - random {ref.random:g}) / (behaviour DQN {ref.human:g} - random)"
    )
    print(format_minatar_table(rows))
    print(
        f"\ntotal {result['total_s']:.0f}s; results in "
        f"{os.path.join(args.runs_dir, 'results.json')}; the full grid and its results: "
        "docs/minatar.md, docs/results/minatar-offline.md"
    )
    return result


def format_minatar_table(rows: list[dict]) -> str:
    head = (
        f"{'torso':<10} {'params':>8} {'final return':>13} {'normalised':>11} "
        f"{'per seed':>14} {'updates/s':>10} {'wall s':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        seeds = " ".join(f"{x:.2f}" for x in r["normalised"])
        lines.append(
            f"{r['torso']:<10} {r['params']:>8,} {r['final_return']:>13.2f} "
            f"{r['normalised_mean']:>11.2f} {seeds:>14} {r['updates_per_s']:>10.1f} "
            f"{r['wall_s']:>7.1f}"
        )
    return "\n".join(lines)


def run_atari(args) -> dict:
    """The Atari pipeline check (record, ingest, smoke-budget CQL x torsos), then Catch."""
    from offline_moe.data.local import ensure_local_cache

    t0 = time.time()
    cache_dir = ensure_local_cache(args.game, args.steps, args.data_dir)
    t_data = time.time() - t0

    from offline_moe.configs import cql
    from offline_moe.train.offline import train_and_evaluate

    rows = []
    for torso in args.torsos:
        workdir = os.path.join(args.runs_dir, f"cql_{torso}")
        if args.fresh:
            shutil.rmtree(workdir, ignore_errors=True)
        config = cql.get_config(f"smoke,game={args.game},torso={torso}")
        config.data.cache_dir = cache_dir
        config.num_seeds = args.num_seeds
        print(f"[default_benchmark] CQL + {torso} -> {workdir}", flush=True)
        t1 = time.time()
        summary = train_and_evaluate(config, workdir)
        rows.append(
            {
                "torso": torso,
                "params": summary["params"],
                # Mean over the seeds; the report below gives the spread and CIs.
                "final_return": sum(summary["final_return"]) / len(summary["final_return"]),
                "best_return": sum(summary["best_return"]) / len(summary["best_return"]),
                "updates_per_s": summary["updates_per_s"] or float("nan"),
                "wall_s": summary.get("wall_s", time.time() - t1),
                "workdir": workdir,
            }
        )
    result = {
        "game": args.game,
        "cache_dir": cache_dir,
        "data_s": t_data,
        "total_s": time.time() - t0,
        "runs": rows,
    }
    os.makedirs(args.runs_dir, exist_ok=True)
    with open(os.path.join(args.runs_dir, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    print()
    c = cql.get_config("smoke")
    print(
        f"Default benchmark: CQL on {args.game} ({args.steps:,} random-policy steps recorded), "
        f"smoke budget ({c.num_iterations} iterations x {c.updates_per_iteration} updates, "
        f"batch {c.learner.batch_size}, {c.torso.builtin.encoder} encoder), evaluated in ALE "
        f"(sticky actions, eps {c.eval.epsilon}, >= {c.eval.steps} agent steps, episodes capped at "
        f"{c.eval.max_episode_steps} steps)"
    )
    print(format_table(rows))
    print(
        f"\ndata {t_data:.0f}s, total {result['total_s']:.0f}s; results in "
        f"{os.path.join(args.runs_dir, 'results.json')}"
    )
    print(
        "The smoke budget only shows the pipeline working; full-scale (paper) runs are "
        "described in docs/offline.md (the documentation site: mkdocs serve)."
    )
    if args.report:
        _report(args.runs_dir)
    atari_title = (
        f"CQL on {args.game}, smoke budget (pipeline check; scores at the random level are "
        "expected):"
    )
    atari_table = format_table(rows)
    if args.catch_seeds > 0:
        result["catch"] = run_catch_grid(args)
        print(f"\n{atari_title}\n{atari_table}")
        print(f"\n{result['catch']['title']}\n{result['catch']['table']}")
        with open(os.path.join(args.runs_dir, "results.json"), "w") as f:
            json.dump(result, f, indent=2)
    return result


def _report(runs_dir: str) -> None:
    from offline_moe.analysis.report import print_report

    report_dir = os.path.join(runs_dir, "report")
    print(f"\n[default_benchmark] report over {runs_dir} -> {report_dir}\n", flush=True)
    print_report(runs_dir, report_dir)


def run_catch_grid(args) -> dict:
    """CQL x the torsos on Catch (known answer), then the report over those runs."""
    from offline_moe.bench.learning import format_table
    from offline_moe.launch import experiments

    hook = experiments.CATCH
    budget = args.catch_budget
    random_score = hook.random_score(0)
    rows = []
    for torso in args.torsos:
        print(f"[default_benchmark] Catch: CQL + {torso}", flush=True)
        rows.append(
            experiments.run_one(
                "catch",
                "cql",
                torso,
                seeds=args.catch_seeds,
                budget=budget,
                root=args.catch_runs_dir,
                data_dir=args.data_dir,
                random_score=random_score,
                fresh=args.fresh,
            )
        )
    if args.report:
        _report(args.catch_runs_dir)
    title = (
        f"CQL on Catch (known answer: random policy {random_score['mean']:.2f}, optimum 1.0, "
        f"learned = {hook.threshold}), {budget:,} updates, {args.catch_seeds} seed(s) per torso, "
        f"{hook.data_steps:,} random-policy steps recorded:"
    )
    return {"title": title, "table": format_table(rows), "runs": rows}


if __name__ == "__main__":
    from offline_moe.flags_common import run_main

    run_main(main, "default_benchmark")
