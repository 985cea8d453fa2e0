"""The embedded default benchmark behind `./run.sh` (no arguments).

    python -m offline_moe.default_benchmark [--game=Breakout] [--steps=3000] [--fresh]

1. Records a small local Atari dataset in real ALE with `offline_moe.record` (uniformly random
   policy, DQN-Replay protocol) under ./data/rlds, unless it exists;
2. ingests it into a replay cache with `offline_moe.ingest` under ./data/cache (both steps run
   in a subprocess, so TensorFlow never enters the training process);
3. trains CQL with the baseline, soft_moe and top1_moe torsos on the `smoke` budget
   (offline_moe/configs/cql.py:smoke), each evaluated in the real game;
4. prints a comparison table (score and updates/s per torso) and the report;
5. the Catch grid: CQL with the same three torsos on the known-answer env Catch
   (`offline_moe.envs.catch`), through the same record -> ingest -> train -> evaluate -> report
   path with Catch's settings (`offline_moe.launch.experiments.CATCH`), where the answer is known:
   a random policy scores -0.6, the optimum is 1.0, and an agent that learns reaches >= 0.9;
6. ends with both tables.

Run directories go to ./runs/default_benchmark/cql_<torso> and
./runs/default_benchmark_catch/Catch/cql/<torso>/...; a finished run is not re-run (pass
--fresh to start over). The Atari smoke budget shows the pipeline working end to end; it is
far too small to show the paper's effects (its scores are noise around the random level). The
Catch grid shows the assembled agents learning. The paper-scale setting (DQN-Replay data,
5% / 10%, 200 x 62,500 updates, 5 seeds) is described in docs/offline.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

from offline_moe.data.local import ensure_local_cache

TORSOS = ("baseline", "soft_moe", "top1_moe")


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
    p.add_argument("--game", default="Breakout", help="Atari game to record and evaluate on")
    p.add_argument("--steps", type=int, default=3000, help="agent steps to record")
    p.add_argument("--data_dir", default="data", help="where datasets and caches go")
    p.add_argument(
        "--runs_dir",
        default=os.path.join("runs", "default_benchmark"),
        help="where the run directories go",
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
        "--catch_seeds", type=int, default=1, help="seeds per torso of the Catch grid (0 = skip)"
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
