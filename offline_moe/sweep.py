"""Expand a (game x agent x torso x seed group) grid into run directories and run them.

    python -m offline_moe.sweep --suite=offline_paper --agents=cql,cql_c51 \
        --torsos=baseline,soft_moe,top1_moe --seeds=5 --root=runs/ [--workers=N] [--print]

Run-directory naming, torso variants (``soft_moe@num_experts=4``), resume and local data:
`offline_moe.launch.sweep`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence

from offline_moe.analysis import suites
from offline_moe.configs.agents import OFFLINE_AGENTS, ONLINE_AGENTS
from offline_moe.launch.experiments import known_answer_hook
from offline_moe.launch.sweep import (
    detect_accelerators,
    expand_grid,
    record_grid,
    run_sweep,
    trainer_command,
    validate_grid,
    with_env_settings,
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
    parser.add_argument("--first_seed", type=int, default=0, help="seed of the first run")
    parser.add_argument(
        "--config_arg",
        default="",
        help="extra config-file argument for every run, e.g. preset=fig12,frames=50000000 "
        "(the agent configs' presets and budgets; see offline_moe/configs/common.py)",
    )
    parser.add_argument(
        "--runs_per_seed",
        action="store_true",
        help="offline agents: seed s reads DQN-Replay run s+1 (--config.data.run), one run "
        "directory per seed, as Agarwal et al. 2020 give each of 5 seeds its own run "
        "(default: every seed reads the config's run, 1)",
    )
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
    parser.add_argument(
        "--backend",
        default="local",
        choices=("local", "ray"),
        help="local: a process pool on this machine; ray: one Ray task per run directory "
        "(offline_moe.launch.ray_backend; needs the 'cluster' extra)",
    )
    parser.add_argument(
        "--devices",
        default="auto",
        help="local backend: accelerator ids to hand out, one per worker (CUDA_VISIBLE_DEVICES): "
        "'auto' (this process's CUDA_VISIBLE_DEVICES, else nvidia-smi's GPUs, else none), "
        "'none', or e.g. 0,1,2,3",
    )
    parser.add_argument(
        "--runs_per_device",
        type=int,
        default=1,
        help="local backend: runs that may share one accelerator (default 1: never two)",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="ray backend: cluster address ('auto', 'ray://host:10001', host:6379); "
        "default: start a local Ray instance for this sweep",
    )
    parser.add_argument(
        "--gpus_per_run",
        type=float,
        default=None,
        help="ray backend: accelerators per run (default 1 if the cluster has GPUs, else 0)",
    )
    parser.add_argument(
        "--cpus_per_run",
        type=float,
        default=None,
        help="ray backend: CPU cores per run (default 1 + one evaluation worker per seed, "
        "capped at the largest node)",
    )
    parser.add_argument(
        "--memory_per_run_gb",
        type=float,
        default=None,
        help="ray backend: host memory per run in GiB (default 2 + the replay's size; 0 = no "
        "memory request)",
    )
    parser.add_argument(
        "--max_retries",
        type=int,
        default=2,
        help="ray backend: retries of a failed or preempted run (each resumes its checkpoint)",
    )
    parser.add_argument(
        "--ray_num_cpus",
        type=int,
        default=None,
        help="ray backend without --address: CPUs of the local Ray instance (default: all)",
    )
    parser.add_argument(
        "--status_every",
        type=float,
        default=30.0,
        help="ray backend: seconds between status tables (also printed on every change)",
    )
    parser.add_argument(
        "--wandb_project",
        default="",
        help="passed to every trainer: also log to this Weights & Biases project ('' = off)",
    )
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
        runs_per_seed=args.runs_per_seed,
        config_arg=args.config_arg,
    )
    validate_grid(specs)  # the whole grid, before any data is made or any run starts
    specs = with_env_settings(specs, args.data_dir, prepare=not args.print_only)
    offline_games = {s.game for s in specs if s.agent in OFFLINE_AGENTS}
    if args.print_only:
        for game in sorted(g for g in offline_games if known_answer_hook(g)):
            steps = known_answer_hook(game).data_steps
            print(
                f"[sweep] the {game} runs read a local cache; make it first with: python -m "
                f"offline_moe.local_data --games={game} --steps={steps} --data_dir={args.data_dir}",
                file=sys.stderr,
            )
    for agent in agents:
        online_suite = args.suite == "atari100k"
        if online_suite and agent in OFFLINE_AGENTS:
            print(f"[sweep] warning: offline agent {agent} on suite atari100k", file=sys.stderr)
        if args.suite in ("offline_paper", "rlu46") and agent in ONLINE_AGENTS:
            print(f"[sweep] warning: online agent {agent} on offline suite", file=sys.stderr)
    local_steps = args.local_data_steps
    if local_steps is None:
        local_steps = 3000 if args.smoke else 0
    if local_steps > 0 and args.runs_per_seed:
        parser.error("--runs_per_seed selects DQN-Replay runs; local data has none (--smoke "
                     "records local data unless --local_data_steps=0)")  # fmt: skip
    if local_steps > 0:
        # --print only writes commands: the caches are made by the command printed to stderr.
        # Ray tasks prepare missing caches on their nodes (once per cache, under a lock).
        prepare = not args.print_only and args.backend == "local"
        specs = with_local_data(specs, local_steps, args.data_dir, prepare=prepare)
        games_offline = sorted({s.game for s in specs if s.agent in OFFLINE_AGENTS})
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
    extra_args = [f"--wandb_project={args.wandb_project}"] if args.wandb_project else []
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.backend == "ray":
            from offline_moe.launch.ray_backend import run_sweep_ray

            result = run_sweep_ray(
                specs,
                address=args.address,
                gpus_per_run=args.gpus_per_run,
                cpus_per_run=args.cpus_per_run,
                memory_per_run_gb=args.memory_per_run_gb,
                max_retries=args.max_retries,
                num_cpus=args.ray_num_cpus,
                trainer_module=args.trainer_module,
                extra_args=extra_args,
                local_data=(local_steps, os.path.abspath(args.data_dir)) if local_steps else None,
                status_every=args.status_every,
                log=log,
            )
        else:
            if args.devices == "auto":
                devices = detect_accelerators()
            elif args.devices == "none":
                devices = []
            else:
                devices = [d.strip() for d in args.devices.split(",") if d.strip()]
            result = run_sweep(
                specs,
                workers=args.workers,
                devices=devices,
                runs_per_device=args.runs_per_device,
                python=args.python or sys.executable,
                trainer_module=args.trainer_module,
                extra_args=extra_args,
                log=log,
            )
    except KeyboardInterrupt:
        print("[sweep] interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
