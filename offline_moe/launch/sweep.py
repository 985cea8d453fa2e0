"""Expand a (game x agent x torso x seed group) grid into run directories and run them.

The command is `python -m offline_moe.sweep` (`--help` lists its flags).

One run directory per (game, agent, torso variant, seed group):
``ROOT/<agent>/<game>/<variant>/seeds_<first>-<last>``. The seeds of a group train together in
one process (the trainer vmaps them via ``config.num_seeds``); ``--seeds_per_run`` splits them
into several groups. A torso variant (``offline_moe.configs.overrides.TorsoVariant``) is a
registered name or ``'pkg.module:Name'``, optionally with keyword overrides after ``@``:
``soft_moe@num_experts=4`` (several: ``@a=1@b=2``), which is how a sweep over the number of
experts is written.

A finished run (``summary.json`` with ``"done": true``) is skipped. Any other run is started,
or resumed: the trainer resumes from the last checkpoint when re-invoked with the same
``--workdir``. Paths given to the sweep (``--runs_dir``, ``--data_dir``, path overrides such as
``config.data.cache_dir``) are made absolute before any run starts, so a sweep started from any
directory puts its runs where its paths say, and checks them there. ``--print`` is a dry run:
it writes one shell command per run (the whole grid, finished or not) to stdout for a cluster
scheduler and nothing to disk; every path in the commands is absolute (the config file is the
installed package's), so they run from any directory. The trainers run in the sweep's own
working directory. Before the first run, `validate_grid` checks the whole grid (agents,
games, torso names and keywords, overrides), so a typo ends in one line, not in a failed run.
Logs of local runs go to ``ROOT/_logs/``; a sweep that runs
records its grid in ``ROOT/sweep_grid.json`` so the report can name runs that never started.

Offline agents read replay caches. Without the public DQN-Replay data at hand (e.g. the smoke
suite on a laptop), ``--local_data_steps=N`` records N random-policy steps of every game in
real ALE, ingests them (``offline_moe.local_data``) and points each offline run at its game's
cache; ``--smoke`` turns this on with N = 3000 unless ``--local_data_steps=0``.

The known-answer env Catch (``--suite=catch``) always runs with its own settings
(``with_env_settings``: the agents' smoke configs with ``offline_moe.launch.experiments.CATCH``'s
overrides and its recorded random-policy data), so a Catch sweep shows every agent learning.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from offline_moe import errors
from offline_moe.configs import agents as agent_table
from offline_moe.configs.overrides import TorsoVariant, split_override
from offline_moe.launch.experiments import known_answer_hook

# The directory that holds the package (the checkout, or site-packages): put on the trainers'
# PYTHONPATH, so they import the package the sweep runs from whatever their working directory.
PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of the grid.

    Attributes:
      game: CamelCase game name.
      agent: 'cql', 'cql_c51', 'der' or 'drq_eps'.
      torso: torso variant.
      seed: first seed of the group (config.seed).
      num_seeds: seeds trained together (config.num_seeds).
      workdir: run directory.
      smoke: use the agent's `smoke` config.
      overrides: extra 'config.x=y' flags, passed as --config.x=y.
      config_arg: extra tokens of the config-file argument ('preset=fig12,frames=50000000').
    """

    game: str
    agent: str
    torso: TorsoVariant
    seed: int
    num_seeds: int
    workdir: Path
    smoke: bool = False
    overrides: tuple[str, ...] = ()
    config_arg: str = ""


def seed_groups(num_seeds: int, seeds_per_run: int | None, first_seed: int = 0):
    """[(seed, count), ...]: consecutive groups of at most `seeds_per_run` seeds."""
    per = seeds_per_run or num_seeds
    if num_seeds < 1 or per < 1:
        raise errors.InputError(f"need seeds >= 1 and seeds_per_run >= 1, got {num_seeds}, {per}")
    return [(first_seed + s, min(per, num_seeds - s)) for s in range(0, num_seeds, per)]


# Overrides whose value is a path: made absolute like --runs_dir (the trainers run elsewhere).
DQN_REPLAY_RUNS = 5  # runs per game in DQN-Replay (Agarwal et al. 2020)
PATH_OVERRIDES = ("config.data.cache_dir", "config.export_replay")


def absolute_override(override: str) -> str:
    """'config.data.cache_dir=rel' -> 'config.data.cache_dir=/abs/rel' (other overrides as is)."""
    key, _, value = override.partition("=")
    if key in PATH_OVERRIDES and value:
        return f"{key}={os.path.abspath(os.path.expanduser(value))}"
    return override


def expand_grid(
    games: Sequence[str],
    agents: Sequence[str],
    torsos: Sequence[str | TorsoVariant],
    *,
    root: str | os.PathLike,
    seeds: int = 5,
    seeds_per_run: int | None = None,
    first_seed: int = 0,
    smoke: bool = False,
    overrides: Sequence[str] = (),
    runs_per_seed: bool = False,
    config_arg: str = "",
) -> list[RunSpec]:
    """All runs of the grid, in (agent, game, torso, seed group) order.

    `root` and path overrides (`PATH_OVERRIDES`) become absolute here, relative to the
    current directory. `config_arg` is added to every run's config-file argument (presets and
    budgets: 'preset=fig12,frames=50000000'). With `runs_per_seed`, seed s of an offline
    agent reads DQN-Replay run s + 1 (`--config.data.run`), as Agarwal et al. (2020) give each
    of 5 seeds its own run; each seed is then its own run directory (seeds_per_run must be 1
    or unset).
    """
    taken = {t.partition("=")[0] for t in config_arg.split(",") if t}
    if taken & {"smoke", "game", "seed", "num_seeds", "torso"}:
        raise errors.InputError(
            f"config_arg {config_arg!r}: smoke, game, seed, num_seeds and torso come from the "
            "grid (--smoke, --suite, --num_seeds, --torsos)"
        )
    if runs_per_seed:
        if seeds_per_run not in (None, 1):
            raise errors.InputError(
                f"runs_per_seed: seeds read different data, so each is its own run; got "
                f"seeds_per_run={seeds_per_run} (use 1 or leave it unset)"
            )
        if first_seed + seeds > DQN_REPLAY_RUNS:
            raise errors.InputError(
                f"runs_per_seed: seeds {first_seed}..{first_seed + seeds - 1} would read runs "
                f"up to {first_seed + seeds}; DQN-Replay has runs 1..{DQN_REPLAY_RUNS}"
            )
        seeds_per_run = 1
    for agent in agents:
        agent_table.get(agent)  # raises for an unknown agent, naming the valid ones
    for ov in overrides:
        split_override(ov)  # raises for a malformed override
    variants = [t if isinstance(t, TorsoVariant) else TorsoVariant.parse(t) for t in torsos]
    labels = [v.label for v in variants]
    if len(set(labels)) != len(labels):
        raise errors.InputError(f"duplicate torso variants: {labels}")
    root = Path(os.path.abspath(os.path.expanduser(root)))
    overrides = [absolute_override(ov) for ov in overrides]
    specs = []
    for agent in agents:
        for game in games:
            for variant in variants:
                for seed, count in seed_groups(seeds, seeds_per_run, first_seed):
                    workdir = (
                        root / agent / game / variant.label / f"seeds_{seed}-{seed + count - 1}"
                    )
                    extra = list(overrides)
                    if runs_per_seed and agent in agent_table.OFFLINE_AGENTS:
                        extra.append(f"config.data.run={seed + 1}")
                    specs.append(
                        RunSpec(
                            game,
                            agent,
                            variant,
                            seed,
                            count,
                            workdir,
                            smoke,
                            tuple(extra),
                            config_arg,
                        )  # fmt: skip
                    )
    return specs


def validate_grid(specs: Sequence[RunSpec]) -> None:
    """Checks every run of the grid before any starts: its agent, game, torso name and
    keywords, config argument and overrides, as its trainer would (`configs.check`).

    Each distinct (agent, game, torso variant) builds its config once (no network, no env).

    Raises:
      InputError: the first invalid value, naming the nearest valid one.
    """
    import importlib

    from offline_moe.configs.check import check_config
    from offline_moe.configs.overrides import apply_overrides

    seen = set()
    for spec in specs:
        key = (spec.agent, spec.game, spec.torso, spec.smoke, spec.overrides, spec.config_arg)
        if key in seen:
            continue
        seen.add(key)
        agent = agent_table.get(spec.agent)
        module = importlib.import_module(agent.config_module)
        arg = ",".join((["smoke"] if spec.smoke else []) + [f"game={spec.game}"])
        arg += f",{spec.config_arg}" if spec.config_arg else ""
        where = f"run {spec.agent}/{spec.game}/{spec.torso.label}"
        try:
            config = module.get_config(arg)
        except ValueError as e:  # the config argument: --config_arg's part of it
            flag = f"--config_arg={spec.config_arg}: " if spec.config_arg else ""
            raise errors.InputError(f"{flag}{where}: {e}") from None
        try:
            apply_overrides(config, [*spec.torso.overrides(), *spec.overrides])
        except (KeyError, AttributeError):  # a field the config does not have
            ovs = [*spec.torso.overrides(), *spec.overrides]
            raise _unknown_field(config, ovs, where, user=spec.overrides) from None
        except ValueError as e:
            raise errors.InputError(f"{where}: {e}") from None
        try:
            check_config(config)
        except errors.InputError as e:
            raise e.with_prefix(where) from None


def _unknown_field(
    config, overrides: Sequence[str], where: str, user: Sequence[str] = ()
) -> Exception:
    """The InputError for the first override naming a field `config` does not have."""
    for ov in overrides:
        node, path = config, ["config"]
        for key in split_override(ov)[0].split("."):
            if not hasattr(node, "keys") or key not in node:
                keys = [k for k in getattr(node, "keys", list)() if k != "builtin"]
                kind = (
                    "torso keyword" if path == ["config", "torso"] else f"field of {'.'.join(path)}"
                )
                flag = "--override=" if ov in user else ""
                return errors.unknown(kind, key, keys).with_prefix(f"{where}: {flag}{ov}")
            node, path = node[key], [*path, key]
    return errors.InputError(f"{where}: an override names a field the config does not have")


def child_env(env: dict | None = None) -> dict:
    """The trainers' environment: `env` (default this process's) with the package's parent
    directory first on PYTHONPATH, so they import the package the sweep imported."""
    env = dict(os.environ if env is None else env)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if PACKAGE_PARENT not in paths:
        env["PYTHONPATH"] = os.pathsep.join([PACKAGE_PARENT, *paths])
    return env


def with_env_settings(
    specs: Sequence[RunSpec], data_dir: str = "data", *, prepare: bool = True
) -> list[RunSpec]:
    """Gives the runs on a known-answer env (Catch) that env's settings.

    Such a run uses its agent's smoke config with the env's overrides
    (`offline_moe.launch.experiments.HOOKS`, e.g. `CATCH`), at the env's default budget, and an
    offline run reads a local cache of the env's recorded random-policy data (made now with
    `prepare`; `data_dir` becomes absolute). Overrides given to the sweep come after and win.
    Other runs are unchanged.
    """
    from offline_moe.data.local import ensure_local_cache, local_cache_dir

    data_dir = os.path.abspath(os.path.expanduser(data_dir))  # the trainers get absolute paths
    out = []
    for spec in specs:
        hook = known_answer_hook(spec.game)
        if hook is not None:
            extra = hook.overrides(spec.agent, hook.budgets[spec.agent])
            if spec.agent in agent_table.OFFLINE_AGENTS:
                make = ensure_local_cache if prepare else local_cache_dir
                extra.append(f"config.data.cache_dir={make(hook.game, hook.data_steps, data_dir)}")
            spec = dataclasses.replace(spec, smoke=True, overrides=(*extra, *spec.overrides))
        out.append(spec)
    return out


def with_local_data(
    specs: Sequence[RunSpec], steps: int, data_dir: str = "data", *, prepare: bool = True
) -> list[RunSpec]:
    """Points the offline runs at local caches of `steps` recorded steps per game.

    With `prepare`, records and ingests the caches that do not exist yet (in subprocesses);
    without it, nothing is written. `data_dir` becomes absolute. Known-answer envs are left
    alone (`with_env_settings` gives them their own data).
    """
    from offline_moe.data.local import ensure_local_cache, local_cache_dir

    data_dir = os.path.abspath(os.path.expanduser(data_dir))
    caches: dict[str, str] = {}
    out = []
    for spec in specs:
        if spec.agent in agent_table.OFFLINE_AGENTS and known_answer_hook(spec.game) is None:
            if spec.game not in caches:
                caches[spec.game] = (
                    ensure_local_cache(spec.game, steps, data_dir)
                    if prepare
                    else local_cache_dir(spec.game, steps, data_dir)
                )
            extra = f"config.data.cache_dir={caches[spec.game]}"
            spec = dataclasses.replace(spec, overrides=(*spec.overrides, extra))
        out.append(spec)
    return out


def trainer_command(
    spec: RunSpec, *, python: str = sys.executable, trainer_module: str | None = None
) -> list[str]:
    """The trainer's command line for one run (argv list)."""
    agent = agent_table.get(spec.agent)
    module = trainer_module or agent.trainer_module
    extra = [spec.config_arg] if spec.config_arg else []
    config_arg = ",".join((["smoke"] if spec.smoke else []) + [f"game={spec.game}", *extra])
    cmd = [
        python,
        "-m",
        module,
        f"--config={agent.config_file}:{config_arg}",
        f"--workdir={spec.workdir}",
        f"--{spec.torso.overrides()[0]}",
        f"--config.num_seeds={spec.num_seeds}",
        f"--config.seed={spec.seed}",
    ]
    cmd += [f"--{ov}" for ov in spec.torso.overrides()[1:]]
    cmd += [f"--{ov}" for ov in spec.overrides]
    return cmd


def run_status(workdir: str | os.PathLike) -> str:
    """'done' (summary.json says done), 'partial' (directory has content) or 'new'."""
    workdir = Path(workdir)
    summary = workdir / "summary.json"
    if summary.is_file():
        try:
            if json.loads(summary.read_text()).get("done"):
                return "done"
        except (OSError, ValueError):
            pass
    if workdir.is_dir() and any(workdir.iterdir()):
        return "partial"
    return "new"


_LOCK = threading.Lock()
_CHILDREN: set[subprocess.Popen] = set()


def _run_one(cmd: list[str], log_path: Path, env: dict | None) -> int:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(
            cmd,  # in the sweep's working directory; every path in it is absolute
            env=child_env(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so an interrupt ends all of it
        )
        with _LOCK:
            _CHILDREN.add(proc)
        try:
            return proc.wait()
        finally:
            with _LOCK:
                _CHILDREN.discard(proc)


def _stop_children() -> None:
    with _LOCK:
        children = list(_CHILDREN)
    for proc in children:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def detect_accelerators(environ: dict | None = None) -> list[str]:
    """Accelerator ids of this host: $CUDA_VISIBLE_DEVICES if set, else `nvidia-smi -L`'s."""
    environ = os.environ if environ is None else environ
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, _ in enumerate(x for x in out.splitlines() if x.startswith("GPU "))]


def device_slots(devices: Sequence[str], workers: int, runs_per_device: int = 1):
    """One accelerator id per worker slot (each id `runs_per_device` times), or None (CPU).

    Raises:
      ValueError: more workers than accelerators x runs_per_device.
    """
    if not devices:
        return None
    if runs_per_device < 1:
        raise errors.InputError(f"--runs_per_device must be >= 1, got {runs_per_device}")
    if workers > len(devices) * runs_per_device:
        raise errors.InputError(
            f"--workers={workers} but {len(devices)} accelerator(s) ({','.join(devices)}) at "
            f"--runs_per_device={runs_per_device}: lower --workers, or share accelerators with "
            f"--runs_per_device={-(-workers // len(devices))}"
        )
    return [d for d in devices for _ in range(runs_per_device)]


def run_sweep(
    specs: Sequence[RunSpec],
    *,
    workers: int = 1,
    devices: Sequence[str] | None = None,
    runs_per_device: int = 1,
    python: str = sys.executable,
    trainer_module: str | None = None,
    extra_args: Sequence[str] = (),
    env: dict | None = None,
    log=print,
) -> dict[str, list[RunSpec]]:
    """Runs every unfinished spec through a local process pool.

    Args:
      specs: the grid.
      workers: runs at a time.
      devices: accelerator ids (`detect_accelerators()`); each running trainer sees only its
        own (CUDA_VISIBLE_DEVICES), at most `runs_per_device` runs per accelerator. None or
        empty: no assignment (CPU).
      runs_per_device: runs that may share one accelerator.
      python, trainer_module, extra_args: the trainer command (`trainer_command`, extra flags).
      env: the trainers' environment (default: this process's).
      log: progress printer.

    Returns:
      {'skipped': finished before, 'ok': ran and finished, 'failed': non-zero exit or no
      summary.json afterwards}.
    """
    result = {"skipped": [], "ok": [], "failed": []}
    todo = []
    for spec in specs:
        status = run_status(spec.workdir)
        if status == "done":
            result["skipped"].append(spec)
        else:
            todo.append((spec, status))
    slots = device_slots(devices or [], workers, runs_per_device)
    log(f"[sweep] {len(specs)} runs: {len(result['skipped'])} done, {len(todo)} to run")
    if not todo:
        return result
    free = queue.SimpleQueue()
    for slot in slots or []:
        free.put(slot)

    def job(item):
        spec, status = item
        cmd = [*trainer_command(spec, python=python, trainer_module=trainer_module), *extra_args]
        log_path = log_path_for(spec)
        device = free.get() if slots else None  # a worker holds one slot while its run lasts
        run_env = env
        if device is not None:
            run_env = {**(os.environ if env is None else env), "CUDA_VISIBLE_DEVICES": device}
        verb = "resume" if status == "partial" else "start"
        log(f"[sweep] {verb} {spec.workdir}" + ("" if device is None else f" on device {device}"))
        try:
            rc = _run_one(cmd, log_path, run_env)
        finally:
            if device is not None:
                free.put(device)
        ok = rc == 0 and run_status(spec.workdir) == "done"
        log(f"[sweep] {'ok' if ok else f'FAILED (rc={rc}, log {log_path})'} {spec.workdir}")
        return spec, ok

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        for spec, ok in pool.map(job, todo):
            result["ok" if ok else "failed"].append(spec)
    except BaseException:  # Ctrl-C or an error: stop queued jobs and end running trainers,
        pool.shutdown(wait=False, cancel_futures=True)  # which resume on the next sweep.
        _stop_children()
        pool.shutdown(wait=True)
        raise
    pool.shutdown(wait=True)
    log(
        f"[sweep] finished: {len(result['ok'])} ok, {len(result['failed'])} failed, "
        f"{len(result['skipped'])} skipped"
    )
    return result


GRID_FILE = "sweep_grid.json"


def record_grid(root: str | os.PathLike, specs: Sequence[RunSpec]) -> Path:
    """Adds the specs' run directories to ROOT/sweep_grid.json (merged with earlier sweeps).

    The report reads this file to warn about runs of the grid that never started.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / GRID_FILE
    try:
        entries = {e["workdir"]: e for e in json.loads(path.read_text()).get("runs", [])}
    except (OSError, ValueError, KeyError, TypeError):
        entries = {}
    for spec in specs:
        rel = os.path.relpath(spec.workdir, root)
        entries[rel] = {
            "workdir": rel,
            "agent": spec.agent,
            "game": spec.game,
            "torso": spec.torso.name,
            "torso_kwargs": dict(spec.torso.kwargs),
            "seed": spec.seed,
            "num_seeds": spec.num_seeds,
        }
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(
        json.dumps({"runs": sorted(entries.values(), key=lambda e: e["workdir"])}, indent=1)
    )
    os.replace(tmp, path)
    return path


def log_path_for(spec: RunSpec) -> Path:
    """ROOT/_logs/<agent>__<game>__<variant>__<seeds>.log (workdir = ROOT/a/g/v/seeds)."""
    workdir = Path(spec.workdir)
    root = workdir.parents[3] if len(workdir.parents) >= 4 else workdir.parent
    return root / "_logs" / ("__".join(workdir.parts[-4:]) + ".log")
