"""Sweep backends beyond one process: accelerators per local worker, and the Ray backend.

The Ray tests start a real local Ray instance (2 CPUs, small object store, no dashboard);
`ray.init(num_gpus=2)` declares two accelerators, which Ray hands to tasks through
CUDA_VISIBLE_DEVICES exactly as on a GPU node, so the assignment is checked by the
environment each trainer process sees.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from offline_moe.launch import sweep

ray = pytest.importorskip("ray")

# A stand-in trainer: prints a progress line, sleeps, records what it saw (accelerators, its
# pid, start and end) in WORKDIR/attempts.jsonl and finishes the run, except that a run whose
# game is $FAKE_FAIL_FIRST fails its first attempt, and torso 'broken' always fails.
FAKE_TRAINER = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path

    flags = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
    workdir = Path(flags["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    game = flags["config"].split("game=")[1]
    attempts = workdir / "attempts.jsonl"
    n = len(attempts.read_text().splitlines()) if attempts.exists() else 0
    t0 = time.time()
    (workdir / "pid").write_text(str(os.getpid()))
    print("it 1/1 update 10/10 loss 0.1000 | 1,234.5 updates/s x1 seeds | ETA 0m00s", flush=True)
    time.sleep(float(os.environ.get("FAKE_SLEEP", "1.0")))
    with open(attempts, "a") as f:
        f.write(json.dumps({"devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "t0": t0,
                            "t1": time.time()}) + "\\n")
    if flags["config.torso.name"] == "broken" or (
        os.environ.get("FAKE_FAIL_FIRST") == game and n == 0
    ):
        sys.exit(3)
    (workdir / "summary.json").write_text(json.dumps({"done": True}))
    """
)


@pytest.fixture()
def fake_env(tmp_path):
    (tmp_path / "fake_cluster_trainer.py").write_text(FAKE_TRAINER)
    return {"PYTHONPATH": str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _attempts(spec):
    path = Path(spec.workdir) / "attempts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check_one_run_per_device(specs, devices):
    """Every attempt saw exactly one of `devices`; attempts that overlapped in time saw
    different ones."""
    seen = [a for s in specs for a in _attempts(s)]
    assert {a["devices"] for a in seen} <= set(devices), seen
    for i, a in enumerate(seen):
        for b in seen[i + 1 :]:
            if a["t0"] < b["t1"] and b["t0"] < a["t1"]:
                assert a["devices"] != b["devices"], (a, b)
    return seen


def test_local_workers_each_get_their_own_accelerator(tmp_path, fake_env):
    env = {**os.environ, **fake_env, "FAKE_SLEEP": "0.5"}
    specs = sweep.expand_grid(["Pong", "Breakout"], ["cql"], ["baseline", "soft_moe"],
                              root=tmp_path / "runs", seeds=1)  # fmt: skip
    result = sweep.run_sweep(
        specs, workers=2, devices=["0", "1"], env=env, trainer_module="fake_cluster_trainer",
        log=lambda m: None,
    )  # fmt: skip
    assert len(result["ok"]) == 4
    seen = _check_one_run_per_device(specs, ["0", "1"])
    assert {a["devices"] for a in seen} == {"0", "1"}  # both used, each by one run at a time
    with pytest.raises(ValueError, match="runs_per_device"):
        sweep.run_sweep(specs, workers=3, devices=["0", "1"], log=lambda m: None)
    assert sweep.device_slots(["0", "1"], workers=3, runs_per_device=2) == ["0", "0", "1", "1"]
    assert sweep.device_slots([], workers=3) is None  # no accelerators: nothing assigned
    assert sweep.detect_accelerators({"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert sweep.detect_accelerators({"CUDA_VISIBLE_DEVICES": ""}) == []


@pytest.fixture(scope="module")
def local_ray():
    # conftest hides accelerators (CUDA_VISIBLE_DEVICES=""); Ray checks declared GPUs against it.
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = "0,1"
    ray.init(
        num_cpus=2,
        num_gpus=2,
        include_dashboard=False,
        object_store_memory=80 * 1024**2,
        log_to_driver=False,
        logging_level="WARNING",
    )
    if hidden is None:
        del os.environ["CUDA_VISIBLE_DEVICES"]
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = hidden
    yield
    ray.shutdown()


def test_ray_backend_assigns_accelerators_retries_and_skips_done(tmp_path, fake_env, local_ray):
    from offline_moe.launch import ray_backend

    root = tmp_path / "runs"
    specs = sweep.expand_grid(["Pong", "Breakout"], ["cql"], ["baseline", "soft_moe", "broken"],
                              root=root, seeds=1)  # fmt: skip
    lines = []
    kwargs = dict(
        gpus_per_run=1, cpus_per_run=1, memory_per_run_gb=0.25, max_retries=1,
        trainer_module="fake_cluster_trainer", status_every=0.5, log=lines.append,
        env={**fake_env, "FAKE_FAIL_FIRST": "Pong", "FAKE_SLEEP": "0.5"},
    )  # fmt: skip
    result = ray_backend.run_sweep_ray(specs, **kwargs)
    broken = [s for s in specs if s.torso.name == "broken"]
    assert sorted(map(str, (s.workdir for s in result["failed"]))) == sorted(
        str(s.workdir) for s in broken
    )
    assert len(result["ok"]) == 4 and not result["skipped"]
    # Accelerators: one per run, never shared by runs at the same time.
    _check_one_run_per_device(specs, ["0", "1"])
    # Bounded retries: the Pong runs failed once and were retried; 'broken' ran 1 + 1 times.
    for spec in specs:
        n = len(_attempts(spec))
        expected = 2 if spec.torso.name == "broken" or spec.game == "Pong" else 1
        assert n == expected, (spec.workdir, n)
    # The status table names every run with its state and the trainer's last updates/s.
    table = [x for x in lines if x.startswith("run ")][-1].splitlines()
    rows = {r.split()[0]: r.split()[1:] for r in table[1:-1]}
    assert sorted(r[0] for r in rows.values()) == ["done"] * 4 + ["failed"] * 2
    assert [r[1] for r in rows.values()] == ["2", "2", "2", "1", "1", "2"]  # attempts
    assert all(r[-1] == "1,234.5" for r in rows.values())  # the trainers' last updates/s
    assert table[-1] == "done: 4  failed: 2"
    assert any("FAILED" in x and "broken" in x for x in lines)
    # The logs of every attempt are under ROOT/_logs, with the task's accelerator.
    log = sweep.log_path_for(specs[0]).read_text()
    assert "ray task on" in log and "CUDA_VISIBLE_DEVICES=" in log and "updates/s" in log
    # A second sweep skips the finished runs and retries only the broken ones.
    lines.clear()
    again = ray_backend.run_sweep_ray(specs, **{**kwargs, "max_retries": 0})
    assert len(again["skipped"]) == 4 and len(again["failed"]) == 2
    assert "6 runs: 4 done, 2 to run (ray)" in lines[0]


def test_ray_resources_follow_the_run():
    from offline_moe.launch import ray_backend

    (offline,) = sweep.expand_grid(["Pong"], ["cql"], ["soft_moe"], root="r", seeds=3)
    res = ray_backend.resources_for(offline, gpus_per_run=1, local_data_steps=10_000)
    assert res.gpus == 1 and res.cpus == 4  # trainer + one evaluation worker per seed
    assert res.memory == ray_backend.BASE_MEMORY + int(10_000 * 84 * 84 * 2 * 1.25)
    assert ray_backend.resources_for(offline, gpus_per_run=0, max_node_cpus=2).cpus == 2
    (online,) = sweep.expand_grid(["Pong"], ["der"], ["baseline"], root="r", seeds=2)
    big = ray_backend.resources_for(online, gpus_per_run=1)
    assert big.memory > 2 * 100_000 * 84 * 84  # a 100k-step replay per seed
    assert ray_backend.resources_for(online, gpus_per_run=1, memory_per_run_gb=0).memory == 0
    assert "memory" not in ray_backend.RunResources(1, 2, 0).ray_options()


def _gone(pid: int, timeout_s: float = 30.0) -> bool:
    """Whether process `pid` ends (or is a zombie) within `timeout_s`. A trainer whose Ray worker
    was shut down dies by its parent-death signal, which lands a moment after the sweep exits
    on a loaded machine; a zombie has ended, only its parent has not reaped it yet."""
    deadline = time.time() + timeout_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        if time.time() > deadline:
            return False
        time.sleep(0.2)


def test_ray_sweep_ctrl_c_cancels_and_a_rerun_resumes(tmp_path, fake_env, local_ray):
    """The command as a user runs it: Ctrl-C (SIGINT) while runs are in flight ends their
    trainers and leaves the grid resumable; a second sweep finishes it."""
    from offline_moe.launch import ray_backend

    root = tmp_path / "runs"
    env = {**os.environ, **fake_env, "FAKE_SLEEP": "60", "RAY_ADDRESS": ""}
    cmd = [sys.executable, "-m", "offline_moe.sweep", "--suite=Pong,Breakout", "--agents=cql",
           "--torsos=baseline", "--num_seeds=1", f"--runs_dir={root}", "--backend=ray",
           "--trainer_module=fake_cluster_trainer", "--cpus_per_run=1", "--ray_num_cpus=2",
           "--memory_per_run_gb=0.25", "--status_every=1"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    pids = [root / "cql" / g / "baseline" / "seeds_0-0" / "pid" for g in ("Pong", "Breakout")]
    deadline = time.time() + 120
    while not all(p.exists() for p in pids) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert all(p.exists() for p in pids), proc.stderr.read() if proc.poll() is not None else ""
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "cancelling the Ray tasks" in err
    for p in pids:  # the trainers are gone, their runs unfinished
        assert _gone(int(p.read_text())), f"trainer {p.read_text()} still alive 30 s after exit"
        assert sweep.run_status(p.parent) == "partial"
    # The same grid again (here on the test's Ray instance, to save starting another).
    specs = sweep.expand_grid(["Pong", "Breakout"], ["cql"], ["baseline"], root=root, seeds=1)
    lines = []
    result = ray_backend.run_sweep_ray(
        specs, gpus_per_run=0, cpus_per_run=1, memory_per_run_gb=0.25, log=lines.append,
        trainer_module="fake_cluster_trainer", env={**fake_env, "FAKE_SLEEP": "0.1"},
    )  # fmt: skip
    assert len(result["ok"]) == 2 and "2 runs: 0 done, 2 to run (ray)" in lines[0]
    assert all(sweep.run_status(p.parent) == "done" for p in pids)


def _run_files(workdir):
    """The run directory's files, minus TensorBoard event files (named by time and host)."""
    return sorted(p.name for p in Path(workdir).iterdir() if not p.name.startswith("events."))


@pytest.mark.slow
def test_ray_sweep_of_the_smoke_suite_survives_a_killed_worker_like_the_local_backend(tmp_path):
    """The real trainers (smoke config, 2 iterations) on a local Ray instance with 2 CPUs: one
    run's Ray worker is killed (SIGKILL) after its first checkpoint; Ray retries the task, the
    trainer resumes, and the run directories equal the local backend's, losses and returns bit
    for bit. The Ray sweep reuses the local sweep's compiled programs (persistent cache)."""
    from offline_moe.train import rundir
    from tests.train.test_monitor import read_scalars

    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_DISABLE_MOST_OPTIMIZATIONS": "1",
           "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"), "RAY_ADDRESS": ""}  # fmt: skip
    # 2 iterations of 40 updates (the smoke config's 100 shortened: the kill and the resume
    # are the point), evaluations of 200 agent steps.
    grid = [sys.executable, "-m", "offline_moe.sweep", "--suite=smoke", "--agents=cql",
            "--torsos=baseline", "--num_seeds=1", "--smoke", "--local_data_steps=1000",
            f"--data_dir={tmp_path / 'data'}", "--override=config.updates_per_iteration=40",
            "--override=config.eval.steps=200"]  # fmt: skip
    local = subprocess.run(
        [*grid, f"--runs_dir={tmp_path / 'local'}", "--workers=2"], env=env, capture_output=True,
        text=True, timeout=1500,
    )  # fmt: skip
    assert local.returncode == 0, local.stderr[-3000:]

    root = tmp_path / "ray"
    ray_cmd = [*grid, f"--runs_dir={root}", "--backend=ray", "--ray_num_cpus=2", "--cpus_per_run=1",
               "--status_every=5"]  # fmt: skip
    proc = subprocess.Popen(ray_cmd, env=env, stderr=subprocess.PIPE, text=True)
    victim = root / "cql" / "Pong" / "baseline" / "seeds_0-0"
    log_path = root / "_logs" / "cql__Pong__baseline__seeds_0-0.log"
    deadline = time.time() + 1500
    while not (victim / "checkpoints" / "0").is_dir() and time.time() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        time.sleep(0.05)
    worker = int(log_path.read_text().rsplit("worker pid ", 1)[1].split(",")[0])
    os.kill(worker, signal.SIGKILL)
    _, err = proc.communicate(timeout=1500)
    assert proc.returncode == 0, err[-3000:]
    log = log_path.read_text()
    assert log.count("ray task on") == 2, log[-3000:]  # the first attempt and its retry
    assert "resuming" in log and sweep.run_status(victim) == "done"
    assert "2 ok, 0 failed" in err

    for game in ("Pong", "Breakout"):
        a = tmp_path / "local" / "cql" / game / "baseline" / "seeds_0-0"
        b = root / "cql" / game / "baseline" / "seeds_0-0"
        assert _run_files(a) == _run_files(b)
        assert json.loads((a / "config.json").read_text()) == json.loads(
            (b / "config.json").read_text()
        )
        ma, mb = rundir.read_jsonl(a / "metrics.jsonl"), rundir.read_jsonl(b / "metrics.jsonl")
        assert [m["step"] for m in ma] == [m["step"] for m in mb] == list(range(20, 81, 20))
        assert [m["loss"] for m in ma] == [m["loss"] for m in mb]
        ea, eb = rundir.read_jsonl(a / "eval.jsonl"), rundir.read_jsonl(b / "eval.jsonl")
        assert [e["episode_returns"] for e in ea] == [e["episode_returns"] for e in eb]
        # TensorBoard holds every logged step once, also after the kill and the resume.
        scalars = read_scalars(b)
        assert [s for s, _ in scalars["train/loss"]] == [m["step"] for m in mb]
        assert [v for _, v in scalars["train/loss"]] == pytest.approx([m["loss"][0] for m in mb])
        assert [s for s, _ in scalars["eval/returns"]] == [40, 80]
