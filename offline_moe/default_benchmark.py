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

import argparse
import json
import math
import os
import shutil
import time

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


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--atari",
        action="store_true",
        help="run the Atari pipeline check (record, ingest, smoke-budget CQL) and the Catch grid "
        "instead of the MinAtar mini-grid",
    )
    p.add_argument(
        "--game",
        default=None,
        help=f"MinAtar game with a shipped dataset (default {MINATAR_GAME}); with --atari, the "
        "Atari game to record and evaluate on (default Breakout)",
    )
    p.add_argument(
        "--budget",
        type=int,
        default=MINATAR_BUDGET,
        help=f"gradient updates per MinAtar run, in {MINATAR_ITERATIONS} iterations (the full "
        "grid's budget is 50,000)",
    )
    p.add_argument(
        "--eval_steps",
        type=int,
        default=MINATAR_EVAL_STEPS,
        help="MinAtar: agent steps per seed of each evaluation (whole episodes, 8 games at once)",
    )
    p.add_argument("--steps", type=int, default=3000, help="--atari: agent steps to record")
    p.add_argument("--data_dir", default="data", help="where datasets and caches go")
    p.add_argument(
        "--runs_dir",
        default=None,
        help="where the run directories go (default runs/default_benchmark_minatar; with "
        "--atari runs/default_benchmark)",
    )
    p.add_argument("--torsos", default=",".join(TORSOS), help="comma-separated torso names")
    p.add_argument(
        "--num_seeds",
        type=int,
        default=2,
        help="seeds per torso, trained side by side in one program (>= 2 gives the report CIs)",
    )
    p.add_argument(
        "--report",
        type=int,
        default=1,
        help="1: end with the report (offline_moe.report) over the runs; 0: only the table",
    )
    p.add_argument("--fresh", action="store_true", help="delete previous runs first")
    p.add_argument(
        "--catch_seeds",
        type=int,
        default=1,
        help="--atari: seeds per torso of the Catch grid (0 = skip)",
    )
    p.add_argument(
        "--catch_budget",
        type=int,
        default=600,
        help="gradient updates per Catch run (a multiple of 200; CQL + baseline reaches 1.0 by "
        "400, the MoE torsos need about 1,200, which --catch_budget=1200 shows at about one more "
        "minute; bench learning's default is 2,000)",
    )
    p.add_argument(
        "--catch_runs_dir",
        default=os.path.join("runs", "default_benchmark_catch"),
        help="where the Catch grid's run directories go",
    )
    args = p.parse_args(argv)
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
        raise SystemExit(
            f"default_benchmark: --game={args.game} is not a MinAtar game (MinAtarBreakout, ...);"
            " pass --atari for an Atari game"
        )
    if args.budget % MINATAR_ITERATIONS:
        raise SystemExit(
            f"default_benchmark: --budget={args.budget} must be a multiple of {MINATAR_ITERATIONS}"
        )
    t0 = time.time()
    cache_dir = ensure_shipped_cache(f"{args.game}_run1_5pct", args.data_dir)
    ref = reference_score(args.game)
    rows = []
    for torso in args.torsos.split(","):
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
    for torso in args.torsos.split(","):
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
    for torso in args.torsos.split(","):
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
    main()
