"""Expand a (game x agent x torso x seed group) grid into run directories and run them.

    python -m offline_moe.sweep --suite=offline_paper --agents=cql,cql_c51 \
        --torsos=baseline,soft_moe,top1_moe --seeds=5 --root=runs/ [--workers=N] [--print]

Run-directory naming, torso variants (``soft_moe@num_experts=4``), resume and local data:
`offline_moe.analysis.sweep`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from offline_moe.analysis import suites
from offline_moe.analysis.sweep import (
    expand_grid,
    record_grid,
    run_sweep,
    trainer_command,
    with_local_data,
)


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offline_moe.sweep", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--suite", default="smoke", help="suite name or Game1,Game2,...")
    parser.add_argument("--agents", default="cql", help="comma-separated agents")
    parser.add_argument(
        "--torsos", default="baseline,soft_moe,top1_moe", help="comma-separated torso variants"
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds per (game, agent, torso)")
    parser.add_argument("--seeds_per_run", type=int, default=None, help="default: all in one")
    parser.add_argument("--first_seed", type=int, default=0)
    parser.add_argument("--root", default="runs", help="root of the run directories")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel")
    parser.add_argument("--smoke", action="store_true", help="use each agent's smoke config")
    parser.add_argument(
        "--local_data_steps",
        type=int,
        default=None,
        help="offline agents: record this many ALE steps per game and train on them instead of "
        "DQN-Replay caches (default: 3000 with --smoke, else off; 0 = off)",
    )
    parser.add_argument("--data_dir", default="data", help="where --local_data_steps data goes")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="config.x=y, passed to every run as --config.x=y (repeatable)",
    )
    parser.add_argument("--print", dest="print_only", action="store_true",
                        help="print one command per run instead of running")  # fmt: skip
    parser.add_argument("--trainer_module", default=None, help="replace the trainer module")
    parser.add_argument(
        "--python", default=None, help="interpreter (default: this one; 'python' with --print)"
    )
    args = parser.parse_args(list(argv[1:]) if argv is not None else None)

    games = suites.get_suite(args.suite)
    agents = _csv(args.agents)
    specs = expand_grid(
        games,
        agents,
        _csv(args.torsos),
        root=args.root,
        seeds=args.seeds,
        seeds_per_run=args.seeds_per_run,
        first_seed=args.first_seed,
        smoke=args.smoke,
        overrides=args.override,
    )
    for agent in agents:
        online_suite = args.suite == "atari100k"
        if online_suite and agent in suites.OFFLINE_AGENTS:
            print(f"[sweep] warning: offline agent {agent} on suite atari100k", file=sys.stderr)
        if args.suite in ("offline_paper", "rlu46") and agent in suites.ONLINE_AGENTS:
            print(f"[sweep] warning: online agent {agent} on offline suite", file=sys.stderr)
    local_steps = args.local_data_steps
    if local_steps is None:
        local_steps = 3000 if args.smoke else 0
    if local_steps > 0:
        # --print only writes commands: the caches are made by the command printed to stderr.
        specs = with_local_data(specs, local_steps, args.data_dir, prepare=not args.print_only)
        games_offline = sorted({s.game for s in specs if s.agent in suites.OFFLINE_AGENTS})
        if args.print_only and games_offline:
            print(
                "[sweep] the offline runs read local caches; make them first with: python -m "
                f"offline_moe.local_data --games={','.join(games_offline)} "
                f"--steps={local_steps} --data_dir={os.path.abspath(args.data_dir)}",
                file=sys.stderr,
            )
    if args.print_only:  # a dry run: commands on stdout, nothing on disk
        for spec in specs:
            python = args.python or "python"
            cmd = trainer_command(spec, python=python, trainer_module=args.trainer_module)
            print(shlex.join(cmd))
        return 0
    record_grid(os.path.abspath(args.root), specs)
    try:
        result = run_sweep(
            specs,
            workers=args.workers,
            python=args.python or sys.executable,
            trainer_module=args.trainer_module,
            log=lambda msg: print(msg, file=sys.stderr, flush=True),
        )
    except KeyboardInterrupt:
        print("[sweep] interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
