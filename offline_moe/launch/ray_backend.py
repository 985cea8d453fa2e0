"""Ray backend of the sweep: one Ray task per run directory, on a cluster or on this machine.

    python -m offline_moe.sweep --suite=offline_paper --agents=cql,cql_c51 --num_seeds=5 \
        --backend=ray --address=auto --gpus_per_run=1 --runs_dir=/shared/runs

Each unfinished run of the grid becomes one Ray task (`ray.remote`) that asks for the run's
resources (`RunResources`: accelerators, CPU cores for the trainer and its evaluation workers,
host memory from the replay size) and runs the usual trainer command in a subprocess on
whichever node Ray places it, with the accelerators Ray assigned to the task
(`CUDA_VISIBLE_DEVICES`, which Ray sets for a task that asks for `num_gpus`). Without
`--address` a local Ray instance is started for the sweep and stopped at its end.

* Retries: a failed attempt (non-zero exit, no finished summary.json, a killed worker or a
  lost node) is retried up to `max_retries` times; the trainer resumes the run directory from
  its last checkpoint, so a retry loses at most one iteration.
* Status: the driver prints a table of every run (queued / running / retrying / done /
  failed, attempt, node, the last updates/s the trainer printed) every `status_every` seconds
  and whenever a run changes state, then a summary. Tasks report to a small status actor, so
  the table does not depend on shared storage.
* Ctrl-C: queued tasks are cancelled and running ones interrupted (`ray.cancel`, which raises
  KeyboardInterrupt in the task; the task then ends its trainer's process group). Every run
  directory stays resumable; run the same command again to go on.
* Data: with `--local_data_steps` the task prepares its game's replay cache if it is missing
  on its node (`offline_moe.data.local.ensure_local_cache`, under a file lock beside the
  cache), so several runs that need one cache prepare it once.

Run directories, logs (`ROOT/_logs/`) and data directories are absolute paths, so they must
mean the same place on every node: put them on shared storage on a multi-node cluster.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from offline_moe.configs import agents as agent_table
from offline_moe.launch import sweep as sweep_lib

GIB = 1024**3
# The trainers' progress lines end in "... 1,234.5 updates/s ..."; the table shows the last one.
RATE_RE = re.compile(r"([\d,]+(?:\.\d+)?) updates/s")
BASE_MEMORY = 2 * GIB  # trainer process: JAX, the emulators, the network and optimizer state


@dataclasses.dataclass(frozen=True)
class RunResources:
    """What one run's Ray task asks for.

    Attributes:
      gpus: accelerators (Ray `num_gpus`); 0 on a CPU-only cluster.
      cpus: CPU cores (Ray `num_cpus`): the trainer plus its evaluation workers.
      memory: host memory in bytes (Ray `memory`), or 0 for no request.
    """

    gpus: float
    cpus: float
    memory: int

    def ray_options(self) -> dict:
        options = {"num_gpus": self.gpus, "num_cpus": self.cpus}
        if self.memory:
            options["memory"] = int(self.memory)
        return options


def _cache_dir_of(spec: sweep_lib.RunSpec) -> str | None:
    for ov in spec.overrides:
        key, _, value = ov.partition("=")
        if key == "config.data.cache_dir":
            return value
    return None


def _dir_bytes(path: str) -> int:
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(dirpath, name))
            except OSError:
                pass
    return total


def estimate_memory(spec: sweep_lib.RunSpec, local_data_steps: int = 0) -> int:
    """Host memory of one run in bytes: BASE_MEMORY plus its replay.

    Offline runs load their replay cache whole (the size of the cache directory; a cache the
    task records itself holds `local_data_steps` frames); online runs allocate
    `replay_capacity` frames per seed.
    """
    if spec.agent in agent_table.OFFLINE_AGENTS:
        cache = _cache_dir_of(spec)
        if cache and os.path.isdir(cache):
            replay = _dir_bytes(cache)
        else:
            replay = local_data_steps * _frame_bytes(spec.game) * 2  # + the other arrays
    else:
        import importlib

        module = importlib.import_module(agent_table.get(spec.agent).config_module)
        config = module.get_config("smoke" if spec.smoke else None)
        replay = int(config.replay.capacity) * _frame_bytes(spec.game) * spec.num_seeds
    return BASE_MEMORY + int(replay * 1.25)


def _frame_bytes(game: str) -> int:
    """One stored frame of `game` (both replays keep single frames; Atari 84 * 84 bytes)."""
    from offline_moe.envs.registry import frame_bytes

    return frame_bytes(game)


def resources_for(
    spec: sweep_lib.RunSpec,
    *,
    gpus_per_run: float,
    cpus_per_run: float | None = None,
    memory_per_run_gb: float | None = None,
    local_data_steps: int = 0,
    max_node_cpus: float | None = None,
) -> RunResources:
    """The resource request of one run.

    Args:
      spec: the run.
      gpus_per_run: accelerators per run.
      cpus_per_run: CPU cores; default one for the trainer plus one evaluation worker per seed
        (the trainers' `eval.workers=-1` uses up to one per seed), capped at `max_node_cpus`.
      memory_per_run_gb: host memory; default `estimate_memory`; 0 = no memory request.
      local_data_steps: size of a locally recorded cache the task may have to make.
      max_node_cpus: the largest node's CPU count (a request above it could never be placed).
    """
    cpus = cpus_per_run if cpus_per_run is not None else 1 + spec.num_seeds
    if cpus_per_run is None and max_node_cpus:
        cpus = min(cpus, max_node_cpus)
    if memory_per_run_gb is None:
        memory = estimate_memory(spec, local_data_steps)
    else:
        memory = int(memory_per_run_gb * GIB)
    return RunResources(gpus=gpus_per_run, cpus=cpus, memory=memory)


# ----- what runs on the node -----


class RunFailed(RuntimeError):
    """An attempt of a run ended without a finished run directory (Ray retries these)."""


def _die_with_parent() -> None:
    """In the child before exec: its own process group, and SIGKILL when the Ray worker dies."""
    os.setsid()
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


def _end_process_group(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_on_node(
    spec: sweep_lib.RunSpec,
    *,
    board=None,
    trainer_module: str | None = None,
    extra_args: Sequence[str] = (),
    env: dict | None = None,
    local_data: tuple[int, str] | None = None,
) -> dict:
    """Body of a run's Ray task: prepare the data if needed, run the trainer, check the result.

    Args:
      spec: the run.
      board: the status actor (None outside Ray).
      trainer_module: replaces the trainer module (tests).
      extra_args: more trainer flags (e.g. --wandb_project=...).
      env: variables added to this worker's environment for the trainer.
      local_data: (steps, data_dir) when offline runs train on locally recorded caches.

    Returns:
      {"workdir", "node", "seconds"}.

    Raises:
      RunFailed: the trainer failed or left no finished summary.json (Ray retries it).
    """
    key = str(spec.workdir)
    node = os.uname().nodename
    devices = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    t0 = time.time()

    def report(**fields):
        if board is not None:
            board.update.remote(key, **fields)

    report(state="running", node=node, devices=devices, attempt_started=t0)
    log_path = sweep_lib.log_path_for(spec)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    if local_data is not None and spec.agent in agent_table.OFFLINE_AGENTS:
        from offline_moe.data.local import ensure_local_cache

        report(state="preparing data")
        ensure_local_cache(spec.game, local_data[0], local_data[1])  # locked, once per cache
        report(state="running")
    cmd = sweep_lib.trainer_command(spec, python=sys.executable, trainer_module=trainer_module)
    cmd += list(extra_args)
    child_env = {**os.environ, **(env or {})}
    with open(log_path, "a") as log:
        log.write(
            f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} ray task on {node}, worker pid "
            f"{os.getpid()}, CUDA_VISIBLE_DEVICES={devices!r}: {' '.join(cmd)}\n"
        )
        log.flush()
        proc = subprocess.Popen(
            cmd,
            env=sweep_lib.child_env(child_env),  # absolute paths: the task's cwd is fine
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            preexec_fn=_die_with_parent,
        )

        def copy_output():  # trainer output -> the run's log; progress lines -> the board
            for line in proc.stdout:
                log.write(line)
                log.flush()
                match = RATE_RE.search(line)
                if match:
                    report(updates_per_s=float(match.group(1).replace(",", "")))

        reader = threading.Thread(target=copy_output, daemon=True)
        reader.start()
        try:
            # Waiting in short steps keeps this thread responsive to ray.cancel, which raises
            # KeyboardInterrupt here (a blocking read of the pipe would hold it off).
            while True:
                try:
                    rc = proc.wait(timeout=0.5)
                    break
                except subprocess.TimeoutExpired:
                    continue
        except BaseException:  # cancelled (or the worker is shutting down): end the trainer
            _end_process_group(proc)
            raise
        finally:
            reader.join(timeout=10.0)
    status = sweep_lib.run_status(spec.workdir)
    if rc != 0 or status != "done":
        report(state="retrying", last_error=f"rc={rc}")
        raise RunFailed(f"{spec.workdir}: trainer exited with {rc} (run {status}); log {log_path}")
    return {"workdir": key, "node": node, "seconds": time.time() - t0}


# ----- the driver -----


def _status_board_class():
    import ray

    @ray.remote(num_cpus=0)
    class StatusBoard:
        """Last reported fields of every run (state, node, updates/s), written by the tasks."""

        def __init__(self):
            self.rows: dict[str, dict] = {}

        def update(self, key: str, **fields) -> None:
            row = self.rows.setdefault(key, {"attempts": 0})
            if fields.get("state") == "running" and "attempt_started" in fields:
                row["attempts"] += 1
            row.update(fields)

        def snapshot(self) -> dict[str, dict]:
            return self.rows

    return StatusBoard


def _connect(address: str | None, num_cpus: int | None, num_gpus: int | None) -> bool:
    """Connects to a cluster (`address`) or starts a small local instance; True if started."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False, logging_level="WARNING")
        return True
    ray.init(
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
        object_store_memory=100 * 1024**2,  # the tasks exchange only small dicts
    )
    return True


def format_table(specs: Sequence[sweep_lib.RunSpec], rows: dict[str, dict], root: Path) -> str:
    """The status table: one line per run (state, attempt, node, devices, updates/s)."""
    header = f"{'run':<48} {'state':<15} {'try':>3} {'node':<14} {'gpus':<6} {'updates/s':>10}"
    lines = [header]
    for spec in specs:
        row = rows.get(str(spec.workdir), {})
        try:
            name = os.path.relpath(spec.workdir, root)
        except ValueError:
            name = str(spec.workdir)
        rate = row.get("updates_per_s")
        lines.append(
            f"{name[-48:]:<48} {row.get('state', 'queued'):<15} {row.get('attempts', 0):>3} "
            f"{str(row.get('node', ''))[:14]:<14} {str(row.get('devices', ''))[:6]:<6} "
            f"{'' if rate is None else f'{rate:,.1f}':>10}"
        )
    counts: dict[str, int] = {}
    for spec in specs:
        state = rows.get(str(spec.workdir), {}).get("state", "queued")
        counts[state] = counts.get(state, 0) + 1
    lines.append("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return "\n".join(lines)


def run_sweep_ray(
    specs: Sequence[sweep_lib.RunSpec],
    *,
    address: str | None = None,
    gpus_per_run: float | None = None,
    cpus_per_run: float | None = None,
    memory_per_run_gb: float | None = None,
    max_retries: int = 2,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    trainer_module: str | None = None,
    extra_args: Sequence[str] = (),
    env: dict | None = None,
    local_data: tuple[int, str] | None = None,
    status_every: float = 30.0,
    log: Callable[[str], None] = print,
) -> dict[str, list[sweep_lib.RunSpec]]:
    """Runs every unfinished spec as a Ray task (see the module docstring).

    Args:
      specs: the grid (finished runs are skipped).
      address: Ray cluster address ('auto', 'ray://host:10001', ...); None = start a local
        instance for this sweep (`num_cpus` / `num_gpus` of it: default all of this machine).
      gpus_per_run: accelerators per run; default 1 if the cluster has any, else 0.
      cpus_per_run, memory_per_run_gb: see `resources_for`.
      max_retries: attempts after the first, for each run.
      trainer_module, extra_args, env, local_data: see `run_on_node`.
      status_every: seconds between status tables (also printed on every state change).
      log: printer for the table and progress.

    Returns:
      {'skipped': finished before, 'ok': finished now, 'failed': out of retries}.
    """
    try:
        import ray
    except ImportError:
        raise SystemExit(
            "--backend=ray needs Ray: pip install -e '.[cluster]' (or pip install ray)"
        ) from None

    result: dict[str, list] = {"skipped": [], "ok": [], "failed": []}
    todo = []
    for spec in specs:
        (result["skipped"] if sweep_lib.run_status(spec.workdir) == "done" else todo).append(spec)
    log(f"[sweep] {len(specs)} runs: {len(result['skipped'])} done, {len(todo)} to run (ray)")
    if not todo:
        return result
    root = sweep_lib.log_path_for(specs[0]).parents[1]  # ROOT (ROOT/_logs/<run>.log)
    started = _connect(address, num_cpus, num_gpus)
    try:
        cluster = ray.cluster_resources()
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        max_cpus = max((n["Resources"].get("CPU", 0) for n in nodes), default=None)
        if gpus_per_run is None:
            gpus_per_run = 1 if cluster.get("GPU", 0) >= 1 else 0
        log(
            f"[sweep] ray: {len(nodes)} node(s), {cluster.get('CPU', 0):g} CPUs, "
            f"{cluster.get('GPU', 0):g} GPUs; {gpus_per_run:g} GPU(s) per run"
        )
        board = _status_board_class().remote()
        task = ray.remote(run_on_node)
        refs = {}
        for spec in todo:
            res = resources_for(
                spec,
                gpus_per_run=gpus_per_run,
                cpus_per_run=cpus_per_run,
                memory_per_run_gb=memory_per_run_gb,
                local_data_steps=local_data[0] if local_data else 0,
                max_node_cpus=max_cpus,
            )
            ref = task.options(
                **res.ray_options(),
                max_retries=max_retries,
                retry_exceptions=[RunFailed],
                name=f"offline_moe:{os.path.relpath(spec.workdir, root)}",
            ).remote(
                spec,
                board=board,
                trainer_module=trainer_module,
                extra_args=tuple(extra_args),
                env=env,
                local_data=local_data,
            )
            refs[ref] = spec
        final = {str(s.workdir): {"state": "done (before)"} for s in result["skipped"]}
        pending = list(refs)
        last_print, last_states = 0.0, None
        # Ctrl-C is noted by our own handler and raised between waits: raised inside
        # ray.wait's native code, a KeyboardInterrupt could be lost and the grid run on.
        interrupted = []
        previous = signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
        try:
            while pending:
                if interrupted:
                    raise KeyboardInterrupt
                ready, pending = ray.wait(pending, num_returns=1, timeout=1.0)
                for ref in ready:
                    spec = refs[ref]
                    try:
                        ray.get(ref)
                        final[str(spec.workdir)] = {"state": "done"}
                        result["ok"].append(spec)
                    except (ray.exceptions.RayError, RunFailed) as e:
                        final[str(spec.workdir)] = {"state": "failed"}
                        result["failed"].append(spec)
                        log(f"[sweep] FAILED {spec.workdir}: {str(e).strip().splitlines()[-1]}")
                rows = ray.get(board.snapshot.remote())
                for k, v in final.items():
                    rows.setdefault(k, {}).update(v)
                states = {k: v.get("state") for k, v in rows.items()}
                now = time.time()
                if states != last_states or now - last_print >= status_every or not pending:
                    log(format_table(specs, rows, root))
                    last_print, last_states = now, states
        except KeyboardInterrupt:
            log("[sweep] interrupted: cancelling the Ray tasks (run directories stay resumable)")
            for ref in pending:
                ray.cancel(ref)
            ray.wait(pending, num_returns=len(pending), timeout=20.0)  # trainers get SIGTERM
            raise
        finally:
            signal.signal(signal.SIGINT, previous)
    finally:
        if started:
            ray.shutdown()
    log(
        f"[sweep] finished (ray): {len(result['ok'])} ok, {len(result['failed'])} failed, "
        f"{len(result['skipped'])} skipped"
        + "".join(
            f"\n[sweep]   failed: {s.workdir} (log {sweep_lib.log_path_for(s)})"
            for s in result["failed"]
        )  # fmt: skip
    )
    return result
