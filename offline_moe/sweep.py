"""Expand a (game x agent x torso x seed group) grid into run directories and run them.

    python -m offline_moe.sweep --suite=offline_paper --agents=cql,cql_c51 \
        --torsos=baseline,soft_moe,top1_moe --num_seeds=5 --runs_dir=runs/ [--workers=N] [--print]

Run-directory naming, torso variants (``soft_moe@num_experts=4``), resume and local data:
`offline_moe.launch.sweep`.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Sequence

from absl import flags

from offline_moe.analysis import suites
from offline_moe.configs.agents import OFFLINE_AGENTS, ONLINE_AGENTS
from offline_moe.flags_common import define_data_dir, define_grid_flags, fail, parse
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


def define_flags(fv: flags.FlagValues) -> None:
    """The command's flags, in `fv`."""
    kw = dict(flag_values=fv)
    define_grid_flags(fv, torsos=["baseline", "soft_moe", "top1_moe"], num_seeds=5)
    flags.DEFINE_integer(
        "seeds_per_run", None, "Seeds per run directory (default: all in one).", lower_bound=1, **kw
    )
    flags.DEFINE_integer("first_seed", 0, "Seed of the first run.", lower_bound=0, **kw)
    flags.DEFINE_string(
        "config_arg",
        "",
        "Extra config-file argument for every run, e.g. preset=fig12,frames=50000000 "
        "(the agent configs' presets and budgets; see offline_moe/configs/common.py).",
        **kw,
    )
    flags.DEFINE_boolean(
        "runs_per_seed",
        False,
        "Offline agents: seed s reads DQN-Replay run s+1 (--config.data.run), one run "
        "directory per seed, as Agarwal et al. 2020 give each of 5 seeds its own run "
        "(default: every seed reads the config's run, 1).",
        **kw,
    )
    flags.DEFINE_string("runs_dir", "runs", "Root of the run directories.", **kw)
    flags.DEFINE_integer("workers", 1, "Runs in parallel.", lower_bound=1, **kw)
    flags.DEFINE_boolean("smoke", False, "Use each agent's smoke config.", **kw)
    flags.DEFINE_integer(
        "local_data_steps",
        None,
        "Offline agents: record this many ALE steps per game and train on them instead of "
        "DQN-Replay caches (default: 3000 with --smoke, else off; 0 = off).",
        lower_bound=0,
        **kw,
    )
    define_data_dir(fv)
    flags.DEFINE_multi_string(
        "override", [], "config.x=y, passed to every run as --config.x=y (repeatable).", **kw
    )
    flags.DEFINE_boolean(
        "print", False, "Print one command per run instead of running (a dry run).", **kw
    )
    flags.DEFINE_enum(
        "backend",
        "local",
        ["local", "ray"],
        "local: a process pool on this machine; ray: one Ray task per run directory "
        "(offline_moe.launch.ray_backend; needs the 'cluster' extra).",
        **kw,
    )
    flags.DEFINE_string(
        "devices",
        "auto",
        "Local backend: accelerator ids to hand out, one per worker (CUDA_VISIBLE_DEVICES): "
        "'auto' (this process's CUDA_VISIBLE_DEVICES, else nvidia-smi's GPUs, else none), "
        "'none', or e.g. 0,1,2,3.",
        **kw,
    )
    flags.DEFINE_integer(
        "runs_per_device",
        1,
        "Local backend: runs that may share one accelerator (default 1: never two).",
        lower_bound=1,
        **kw,
    )
    flags.DEFINE_string(
        "address",
        None,
        "Ray backend: cluster address ('auto', 'ray://host:10001', host:6379); "
        "default: start a local Ray instance for this sweep.",
        **kw,
    )
    flags.DEFINE_float(
        "gpus_per_run",
        None,
        "Ray backend: accelerators per run (default 1 if the cluster has GPUs, else 0).",
        lower_bound=0.0,
        **kw,
    )
    flags.DEFINE_float(
        "cpus_per_run",
        None,
        "Ray backend: CPU cores per run (default 1 + one evaluation worker per seed, "
        "capped at the largest node).",
        lower_bound=0.0,
        **kw,
    )
    flags.DEFINE_float(
        "memory_per_run_gb",
        None,
        "Ray backend: host memory per run in GiB (default 2 + the replay's size; 0 = no "
        "memory request).",
        lower_bound=0.0,
        **kw,
    )
    flags.DEFINE_integer(
        "max_retries",
        2,
        "Ray backend: retries of a failed or preempted run (each resumes its checkpoint).",
        lower_bound=0,
        **kw,
    )
    flags.DEFINE_integer(
        "ray_num_cpus",
        None,
        "Ray backend without --address: CPUs of the local Ray instance (default: all).",
        lower_bound=1,
        **kw,
    )
    flags.DEFINE_float(
        "status_every",
        30.0,
        "Ray backend: seconds between status tables (also printed on every change).",
        lower_bound=0.1,
        **kw,
    )
    flags.DEFINE_string(
        "wandb_project",
        "",
        "Also log the run's scalars to this Weights & Biases project ('' = off; passed to "
        "every trainer).",
        **kw,
    )
    flags.DEFINE_string("trainer_module", None, "Replace the trainer module.", **kw)
    flags.DEFINE_string(
        "python", None, "Interpreter (default: this one; 'python' with --print).", **kw
    )

    flags.register_validator(
        "devices",
        lambda v: v in ("auto", "none") or all(d.strip().isdigit() for d in v.split(",")),
        "expected auto, none or accelerator ids such as 0,1",
        flag_values=fv,
    )
    flags.register_validator(
        "python",
        lambda v: v is None or shutil.which(v) is not None,
        "no such interpreter: give a path or a command on PATH",
        flag_values=fv,
    )
    flags.register_validator(
        "trainer_module",
        lambda v: v is None or _module_exists(v),
        "no such module (a dotted module path that python -m can run)",
        flag_values=fv,
    )
    flags.register_multi_flags_validator(
        ["address", "backend"],
        lambda d: d["address"] is None or d["backend"] == "ray",
        "--address is a Ray cluster address: give --backend=ray too",
        flag_values=fv,
    )


def _module_exists(name: str) -> bool:
    """Whether the runs can import `name`: its top-level package on this process's path or on
    the PYTHONPATH they inherit."""
    import importlib.machinery

    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    paths += [p or os.getcwd() for p in sys.path]
    top = name.split(".")[0]
    if not top.isidentifier():
        return False
    return top in sys.builtin_module_names or (
        importlib.machinery.PathFinder.find_spec(top, paths) is not None
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv, define_flags, prog="sweep", doc=__doc__)
    print_only = args.print

    games = suites.get_suite(args.suite)
    agents = args.agents
    specs = expand_grid(
        games,
        agents,
        args.torsos,
        root=args.runs_dir,
        seeds=args.num_seeds,
        seeds_per_run=args.seeds_per_run,
        first_seed=args.first_seed,
        smoke=args.smoke,
        overrides=args.override,
        runs_per_seed=args.runs_per_seed,
        config_arg=args.config_arg,
    )
    validate_grid(specs)  # the whole grid, before any data is made or any run starts
    specs = with_env_settings(specs, args.data_dir, prepare=not print_only)
    offline_games = {s.game for s in specs if s.agent in OFFLINE_AGENTS}
    if print_only:
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
        fail("sweep", "--runs_per_seed selects DQN-Replay runs; local data has none (--smoke "
             "records local data unless --local_data_steps=0)")  # fmt: skip
    if local_steps > 0:
        # --print only writes commands: the caches are made by the command printed to stderr.
        # Ray tasks prepare missing caches on their nodes (once per cache, under a lock).
        prepare = not print_only and args.backend == "local"
        specs = with_local_data(specs, local_steps, args.data_dir, prepare=prepare)
        games_offline = sorted({s.game for s in specs if s.agent in OFFLINE_AGENTS})
        if print_only and games_offline:
            print(
                "[sweep] the offline runs read local caches; make them first with: python -m "
                f"offline_moe.local_data --games={','.join(games_offline)} "
                f"--steps={local_steps} --data_dir={os.path.abspath(args.data_dir)}",
                file=sys.stderr,
            )
    if print_only:  # a dry run: commands on stdout, nothing on disk
        for spec in specs:
            python = args.python or "python"
            cmd = trainer_command(spec, python=python, trainer_module=args.trainer_module)
            print(shlex.join(cmd))
        return 0
    record_grid(os.path.abspath(args.runs_dir), specs)
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
    from offline_moe.flags_common import run_main

    sys.exit(run_main(main, "sweep"))
