"""ingest and record check the game before anything slow (TensorFlow, ALE, files), and
`ingest --suite` ingests every game of a suite into the caches the trainers read."""

import os
import subprocess
import sys

from offline_moe.ingest import suite_jobs
from tests import REPO_ROOT
from tests.data.test_dqn_replay import write_log

# TensorFlow, tensorflow-datasets and rlds cannot be imported: a check that needed them fails.
_NO_TF = (
    "import sys\n"
    "for m in ('tensorflow', 'tensorflow_datasets', 'rlds'):\n"
    "    sys.modules[m] = None\n"
    "from offline_moe import flags_common\n"
    "flags_common.run_command(sys.argv[1], sys.argv[1:])\n"
)


def _run(args, cwd, block_tf=True):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "JAX_PLATFORMS": "cpu"}
    cmd = [sys.executable, "-c", _NO_TF, *args] if block_tf else [sys.executable, "-m", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_a_mistyped_game_is_one_line_before_tensorflow(tmp_path):
    cases = [
        ["ingest", "--source=tfds:rlu_atari_checkpoints_ordered/Pongg_run_1",
         f"--cache_dir={tmp_path / 'c'}"],
        ["ingest", "--source=tfds:rlu_atari_checkpoints_ordered/Pong_run_1", "--game=Pongg",
         f"--cache_dir={tmp_path / 'c'}"],
        ["ingest", "--suite=Pong,Pongg", f"--data_dir={tmp_path / 'data'}"],
        ["record", "--game=Pongg", f"--cache_dir={tmp_path / 'c'}"],
    ]  # fmt: skip
    for args in cases:
        done = _run(args, tmp_path)
        assert done.returncode == 2, done.stderr[-2000:]
        assert done.stderr.startswith(f"[{args[0]}] error: ") and done.stderr.count("\n") == 1
        assert "'Pongg'" in done.stderr and "did you mean 'Pong'?" in done.stderr
    done = _run(["ingest", "--suite=offline_papr", f"--data_dir={tmp_path}"], tmp_path)
    assert done.returncode == 2 and "unknown suite 'offline_papr'" in done.stderr
    assert not list(tmp_path.iterdir())  # nothing written


def test_suite_jobs_name_the_caches_the_trainers_read():
    jobs = suite_jobs("smoke", source=None, run=None, percent=5, sample="prefix",
                      sample_seed=0, data_dir="d")  # fmt: skip
    assert jobs == [
        ("Pong", "tfds:rlu_atari_checkpoints_ordered/Pong_run_1",
         os.path.join("d", "cache", "Pong_run1_5pct")),
        ("Breakout", "tfds:rlu_atari_checkpoints_ordered/Breakout_run_1",
         os.path.join("d", "cache", "Breakout_run1_5pct")),
    ]  # fmt: skip


def test_ingest_a_suite_then_keep_what_exists(tmp_path):
    for game in ("Pong", "Breakout"):
        (tmp_path / "dqn" / game / "1" / "replay_logs").mkdir(parents=True)
        write_log(str(tmp_path / "dqn" / game / "1" / "replay_logs"))
    args = ["offline_moe.ingest", "--suite=Pong,Breakout", "--percent=100", "--noprogress",
            f"--source=dqn_replay:{tmp_path}/dqn/{{game}}/{{run}}/replay_logs",
            f"--data_dir={tmp_path / 'data'}"]  # fmt: skip
    done = _run(args, tmp_path, block_tf=False)
    assert done.returncode == 0, done.stderr[-2000:]
    for game in ("Pong", "Breakout"):
        assert (tmp_path / "data" / "cache" / f"{game}_run1_100pct" / "meta.json").is_file()
    assert done.stdout.count("[ingest] wrote ") == 2
    again = _run(args, tmp_path, block_tf=False)
    assert again.returncode == 0 and again.stdout.count("exists, kept") == 2
