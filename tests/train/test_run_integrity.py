"""Nothing corrupts a run: one writer per run directory, caches pinned to their runs,
cache content validated before training, failures that clean up and name the file, and the
finished-run rule. Each test is one of the bad-input cases a user met; the preamble
(`rundir.open_run`) is shared by both trainers, so both tracks are exercised where it matters.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from offline_moe import errors
from offline_moe.configs import cql, der
from offline_moe.configs.overrides import apply_overrides
from offline_moe.errors import CacheError
from offline_moe.replay.cache import ROW_BYTES, cache_pin, load_cache
from offline_moe.replay.cache_writer import write_cache
from offline_moe.train import lock as lock_lib
from offline_moe.train import offline as train_offline
from offline_moe.train import rundir as rundir_lib
from offline_moe.train.offline import train_and_evaluate

PONG_ACTIONS = 6  # Pong's minimal action set under the DQN-Replay protocol


def synthetic_cache(out, *, episodes=4, length=30, actions=None, rewards=None, meta=None, seed=0):
    """A cache of random frames; `actions` / `rewards` (flat, over all rows) override the data."""
    rng = np.random.default_rng(seed)
    eps = []
    for _ in range(episodes):
        eps.append(
            {
                "observations": rng.integers(0, 255, (length, 84, 84), dtype=np.uint8),
                "actions": rng.integers(0, PONG_ACTIONS, length),
                "rewards": np.zeros(length, np.float32),
                "terminated": True,
            }
        )
    flat_a = np.concatenate([e["actions"] for e in eps])
    flat_r = np.concatenate([e["rewards"] for e in eps])
    if actions is not None:
        for row, value in actions.items():
            flat_a[row] = value
    if rewards is not None:
        for row, value in rewards.items():
            flat_r[row] = value
    for k, e in enumerate(eps):
        e["actions"] = flat_a[k * length : (k + 1) * length]
        e["rewards"] = flat_r[k * length : (k + 1) * length]
    # A "recorded" cache (a recorder's policy is set), as the smoke config's data.source says.
    base = {"source": "synthetic", "policy": "random", "steps": len(flat_a), "seed": seed}
    base.update(game="Pong", num_actions=PONG_ACTIONS)
    base["clip_rewards"] = True
    return write_cache(str(out), eps, meta={**base, **(meta or {})}, overwrite=True)


def tiny(cache_dir, **overrides):
    """The smoke CQL config on Pong (the synthetic caches' game) shrunk to 2 iterations of 2
    updates (the tests stop before most)."""
    c = cql.get_config("smoke,game=Pong")
    c.data.cache_dir = str(cache_dir)
    c.updates_per_iteration = 2
    c.scan_steps = 2
    c.log_interval = 2
    c.learner.batch_size = 4
    c.eval.steps = 5
    c.eval.num_envs = 1
    c.eval.max_episode_steps = 5
    c.repr.batch_size = 4
    apply_overrides(c, overrides)  # dotted keys: "eval.episodes"
    return c


@pytest.fixture(scope="module")
def pong_cache(tmp_path_factory):
    return synthetic_cache(tmp_path_factory.mktemp("data") / "pong")


def _env():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "JAX_PLATFORMS": "cpu"}
    return {**env, "JAX_DISABLE_MOST_OPTIMIZATIONS": "1"}  # as conftest does: short compiles


HOLDER = """
import sys, time
from offline_moe.train.lock import RunLock
lock = RunLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""


# ----- 1. one writer per run directory ------------------------------------------------------


@pytest.mark.slow
def test_second_trainer_is_refused_naming_holder_and_a_sigkilled_holder_leaves_no_lock(
    pong_cache, tmp_path
):
    """Two real processes: a holder of the run directory, then the train_offline command."""
    workdir = str(tmp_path / "run")
    os.makedirs(workdir)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, workdir], stdout=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        # The command line resumes from the stored config when --config is omitted.
        rundir_lib.RunDir(workdir).write_config(tiny(pong_cache).to_dict())
        cmd = [sys.executable, "-m", "offline_moe.train_offline", f"--workdir={workdir}"]
        cmd.append("--max_iterations=0")
        t0 = time.time()
        out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
        assert out.returncode != 0
        assert f"PID {holder.pid} on host {socket.gethostname()}" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        assert time.time() - t0 < 60  # at once, not after building or training
        assert sorted(os.listdir(workdir)) == ["config.json", "run.lock"]  # nothing written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel dropped the dead holder's flock, and its record names a dead pid: the next
    # start proceeds at once.
    lock = lock_lib.RunLock(workdir)
    lock.acquire()
    assert json.load(open(os.path.join(workdir, "run.lock")))["pid"] == os.getpid()
    lock.release()
    assert open(os.path.join(workdir, "run.lock")).read() == ""  # emptied on release


def test_lock_record_refuses_a_live_holder_where_flock_did_not_see_it(tmp_path):
    """Shared storage: flock granted, but run.lock records a holder that is still alive."""
    workdir = str(tmp_path)
    lock_path = os.path.join(workdir, lock_lib.LOCK)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # Same host, live process (not holding any flock): refused, naming it.
        record = {"host": socket.gethostname(), "pid": sleeper.pid, "started": "t0"}
        record["pid_start"] = lock_lib._proc_start(sleeper.pid)
        with open(lock_path, "w") as f:
            json.dump(record, f)
        with pytest.raises(errors.RunLockedError, match=f"PID {sleeper.pid} on host"):
            lock_lib.RunLock(workdir).acquire()
        # Same pid but another process start time (the pid was reused): not the holder.
        with open(lock_path, "w") as f:
            json.dump({**record, "pid_start": record["pid_start"] - 1}, f)
        lock = lock_lib.RunLock(workdir)
        lock.acquire()
        lock.release()
    finally:
        sleeper.kill()
        sleeper.wait()
    # Same host, dead pid: proceeds.
    with open(lock_path, "w") as f:
        json.dump(record, f)
    lock = lock_lib.RunLock(workdir)
    lock.acquire()
    assert json.load(open(lock_path))["pid"] == os.getpid()
    lock.release()
    # Another host: alive while its heartbeat (the file's mtime) is fresh, then stale.
    with open(lock_path, "w") as f:
        json.dump({"host": "other-node", "pid": 1, "started": "t0"}, f)
    with pytest.raises(errors.RunLockedError, match="PID 1 on host other-node.*heartbeat"):
        lock_lib.RunLock(workdir).acquire()
    old = time.time() - lock_lib.STALE_AFTER_S - 1
    os.utime(lock_path, (old, old))
    lock = lock_lib.RunLock(workdir)
    lock.acquire()
    # In one process too, a second open of a held directory is refused (flock per open file).
    with pytest.raises(errors.RunLockedError, match=f"PID {os.getpid()}"):
        lock_lib.RunLock(workdir).acquire()
    lock.release()


def test_online_trainer_takes_the_same_lock(tmp_path):
    workdir = str(tmp_path / "online")
    os.makedirs(workdir)
    from offline_moe.train import online as train_online

    lock = lock_lib.RunLock(workdir)
    lock.acquire()
    try:
        with pytest.raises(errors.RunLockedError, match=f"PID {os.getpid()}"):
            train_online.train_and_evaluate(der.get_config("smoke"), workdir)
    finally:
        lock.release()
    assert os.listdir(workdir) == ["run.lock"]


# ----- 2. caches pinned to their runs -------------------------------------------------------


def test_resume_against_a_replaced_cache_is_refused_naming_both(tmp_path):
    cache = synthetic_cache(tmp_path / "cache", episodes=4, length=30)  # 120 rows
    workdir = str(tmp_path / "run")
    config = tiny(cache).to_dict()
    with train_offline.open_run(workdir, config) as run:  # the trainer's preamble, no training
        assert run.last_checkpoint is None
    inputs = json.load(open(os.path.join(workdir, "inputs.json")))
    assert inputs["cache"]["num_rows"] == 120 and len(inputs["cache"]["fingerprint"]) == 64
    # An identical re-ingest (new `created` time, same content) is the same cache.
    time.sleep(1.1)
    synthetic_cache(tmp_path / "cache", episodes=4, length=30)
    assert cache_pin(cache)["fingerprint"] == inputs["cache"]["fingerprint"]
    # Another recording of another size under the same path is not.
    synthetic_cache(tmp_path / "cache", episodes=3, length=25, seed=7)
    with pytest.raises(errors.InputMismatchError) as e:
        train_and_evaluate(None, workdir)
    msg = str(e.value)
    assert "started on cache" in msg and "120 rows" in msg and "75 rows" in msg
    assert inputs["cache"]["fingerprint"][:12] in msg


# ----- 3. content validated at load, before training ----------------------------------------


def test_action_outside_the_games_action_set_is_refused_before_training(tmp_path):
    cache = synthetic_cache(tmp_path / "c", actions={37: 99}, meta={"num_actions": None})
    workdir = str(tmp_path / "run")
    with pytest.raises(
        CacheError, match=r"action\.npy row 37 holds 99, expected an action in 0\.\.5"
    ):
        train_and_evaluate(tiny(cache), workdir)
    assert os.listdir(workdir) == ["run.lock"]  # no config.json, no metrics, no checkpoint
    # With meta.json's num_actions the loader alone refuses it too.
    cache = synthetic_cache(tmp_path / "d", actions={5: 6})
    with pytest.raises(CacheError, match=r"action\.npy row 5 holds 6.*meta\.json num_actions"):
        load_cache(cache)
    # A cache whose meta.json says another action count than the game has.
    cache = synthetic_cache(tmp_path / "e", meta={"num_actions": 18})
    with pytest.raises(CacheError, match="num_actions is 18 but the game has 6"):
        load_cache(cache, num_actions=PONG_ACTIONS)


def test_non_finite_or_unclipped_rewards_are_refused_naming_reward_npy(tmp_path):
    cache = synthetic_cache(tmp_path / "a", rewards={12: np.nan, 40: np.inf})
    with pytest.raises(CacheError, match=r"reward\.npy row 12 holds nan.*2 bad rows"):
        load_cache(cache)
    cache = synthetic_cache(tmp_path / "b", rewards={3: 2.0})
    with pytest.raises(CacheError, match=r"reward\.npy row 3 holds 2\.0, expected a reward in"):
        load_cache(cache)
    cache = synthetic_cache(tmp_path / "c", rewards={3: 2.0}, meta={"clip_rewards": False})
    assert load_cache(cache)[0]["reward"][3] == 2.0


# ----- 5. the finished-run rule, both tracks ------------------------------------------------


def _finished(workdir, config):
    rd = rundir_lib.RunDir(workdir)
    rd.write_config(config)
    rd.write_summary({"final_return": [1.0]})


def test_finished_run_started_with_other_flags_is_refused_naming_the_keys(tmp_path, capsys):
    config = tiny(str(tmp_path / "no-such-cache")).to_dict()
    workdir = str(tmp_path / "offline")
    _finished(workdir, config)
    other = tiny(str(tmp_path / "missing"), seed=3).to_dict()
    other["agent"] = "cql_c51"
    with pytest.raises(errors.ConfigMismatchError) as e:
        train_and_evaluate(other, workdir)
    assert "finished run" in str(e.value)
    assert "['agent', 'data.cache_dir', 'seed']" in str(e.value)
    # Same flags: "already finished", its summary (no build: the cache need not exist).
    assert train_and_evaluate(config, workdir)["final_return"] == [1.0]
    assert "already finished" in capsys.readouterr().out
    # The online track: the same rule from the same preamble.
    from offline_moe.train import online as train_online

    online = der.get_config("smoke")
    workdir = str(tmp_path / "online")
    _finished(workdir, json.loads(online.to_json()))
    online.seed = 9
    with pytest.raises(errors.ConfigMismatchError, match=r"finished run.*\['seed'\]"):
        train_online.train_and_evaluate(online, workdir)
    online.seed = der.get_config("smoke").seed
    assert train_online.train_and_evaluate(online, workdir)["final_return"] == [1.0]


def test_finished_run_with_other_flags_exits_non_zero_on_the_command_line(tmp_path):
    workdir = str(tmp_path / "run")
    _finished(workdir, tiny(str(tmp_path / "x")).to_dict())
    cmd = [sys.executable, "-m", "offline_moe.train_offline", f"--workdir={workdir}"]
    cmd += ["--config=offline_moe/configs/cql.py:smoke,game=Pong", "--config.seed=4"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=120)
    assert out.returncode == 2 and "differs from the given config in" in out.stderr  # refused
    assert "Traceback" not in out.stderr


# ----- 6. fields that matter only later, checked before the first update -------------------


def test_misspelled_game_with_a_gameless_cache_fails_before_the_first_update(tmp_path):
    cache = synthetic_cache(tmp_path / "c", meta={"game": None, "num_actions": None})
    workdir = str(tmp_path / "run")
    with pytest.raises(ValueError, match=r"config.game.*unknown game 'Pongg'; valid: .*Pong"):
        train_and_evaluate(tiny(cache, game="Pongg"), workdir)
    # config.json is written only after the run is built: the corrected command is accepted.
    assert not os.path.exists(os.path.join(workdir, "config.json"))
    with train_offline.open_run(workdir, tiny(cache, game="Pong").to_dict()) as run:
        assert run.built[4].num_actions == PONG_ACTIONS  # the game's count stands in
    assert json.load(open(os.path.join(workdir, "config.json")))["game"] == "Pong"


# ----- 4. failures that clean up and name the file ------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path, size="2m"):
    os.makedirs(path, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.decode()[:200]}")
    try:
        yield str(path)
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_ingest_on_a_full_disk_removes_its_temp_dir_and_names_the_file(tmp_path):
    from offline_moe.data.ingest import ingest
    from tests.data.dopamine_log import DopamineLog

    replay_dir = tmp_path / "Pong" / "1" / "replay_logs"
    replay_dir.mkdir(parents=True)
    log = DopamineLog(400)
    log.episode(197)
    log.episode(197)  # 2 x (3 padding + 197 steps) rows: 394 transitions x 7,063 bytes > 2 MB
    log.save(str(replay_dir), 0)
    with small_tmpfs(tmp_path / "disk") as disk:
        out = os.path.join(disk, "cache")
        with pytest.raises(CacheError) as e:
            ingest(f"dqn_replay:{replay_dir}", out, percent=100)
        assert os.listdir(disk) == []  # no cache.tmp-* left behind
        msg = str(e.value)
        assert "cache write failed:" in msg and ".npy: No space left on device" in msg
        assert "bytes free" in msg and f"needs about {394 * ROW_BYTES:,} bytes" in msg


SAVER = """
import sys
import numpy as np
from offline_moe.errors import USER_ERRORS
from offline_moe.train import rundir
rd = rundir.RunDir(sys.argv[1])
rng = np.random.default_rng(0)
rd.save_checkpoint(0, {"w": np.zeros(1000, np.float32)}, {})
state = {f"w{k}": rng.standard_normal(25_000).astype(np.float32) for k in range(64)}  # 6.4 MB
try:
    rd.save_checkpoint(1, state, {})  # incompressible, 64 arrays written concurrently
except USER_ERRORS as e:  # as the trainers' command lines do
    raise SystemExit(str(e)) from None
"""


def test_checkpoint_write_on_a_full_disk_is_one_line_naming_the_last_checkpoint(tmp_path):
    with small_tmpfs(tmp_path / "disk", size="1m") as disk:
        out = subprocess.run(
            [sys.executable, "-c", SAVER, disk], capture_output=True, text=True, env=_env()
        )
        assert out.returncode == 1
        # One line: no traceback, none of Orbax's per-thread errors or closed-loop noise.
        assert out.stderr == (
            f"checkpoint write failed: {disk}/checkpoints/1: No space left on device (ENOSPC); "
            "the last complete checkpoint is 0\n"
        )
        assert sorted(os.listdir(os.path.join(disk, "checkpoints"))) == ["0"]  # partial removed
        rd = rundir_lib.RunDir(disk)
        assert rd.latest_checkpoint() == 0
        rd.close()


def test_corrupt_tfds_shard_names_the_file_and_split(tmp_path):
    from offline_moe.data.ingest import ingest
    from offline_moe.errors import IngestError
    from tests.data.test_rlds import write_dataset

    path = write_dataset(tmp_path / "rlds")
    shards = sorted(f for f in os.listdir(path) if "tfrecord" in f and "checkpoint_01" in f)
    shard = os.path.join(path, shards[0])
    data = bytearray(open(shard, "rb").read())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64  # garbled in the middle
    open(shard, "wb").write(bytes(data))
    out = str(tmp_path / "cache")
    with pytest.raises(IngestError) as e:
        ingest(f"rlds_dir:{tmp_path / 'rlds'}", out, percent=100)
    assert shard in str(e.value) and "split checkpoint_01" in str(e.value)
    assert not os.path.exists(out) and not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
    # Truncated instead of garbled.
    open(shard, "wb").write(bytes(data[: len(data) // 3]))
    with pytest.raises(IngestError, match=r"split checkpoint_01.*corrupt or truncated"):
        ingest(f"rlds_dir:{tmp_path / 'rlds'}", out, percent=100)
