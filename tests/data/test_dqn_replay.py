"""Tests for the DQN-Replay log reader: exact prefixes, episode cuts, and every bad input.

Tiny logs in the `$store$_*_ckpt.N.gz` format (gzip of np.save) with known contents:
checkpoint c has N = 20 rows; frame i is filled with 50 * c + i, action i % 4, reward i - 10
(so clipping to [-1, 1] is visible), and terminals on the rows in TERMINALS[c].
"""

import gzip
import os
import re

import numpy as np
import pytest

from offline_moe.data.common import IngestError
from offline_moe.data.dqn_replay import GzipNpyReader
from offline_moe.data.ingest import ingest
from offline_moe.replay.cache import load_cache
from tests import REPO_ROOT

N = 20
TERMINALS = {0: [4, 9, 15], 1: [2, 19]}


def write_gz_npy(path, array):
    with gzip.open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def write_checkpoint(replay_dir, c, *, add_count=None, rows=N):
    i = np.arange(rows)
    obs = np.broadcast_to((50 * c + i).astype(np.uint8)[:, None, None], (rows, 84, 84)).copy()
    terminal = np.zeros(rows, np.uint8)
    terminal[[t for t in TERMINALS[c] if t < rows]] = 1
    arrays = {
        "observation": obs,
        "action": (i % 4).astype(np.int32),
        "reward": (i - 10).astype(np.float32),
        "terminal": terminal,
    }
    for field, array in arrays.items():
        write_gz_npy(os.path.join(replay_dir, f"$store$_{field}_ckpt.{c}.gz"), array)
    write_gz_npy(
        os.path.join(replay_dir, f"add_count_ckpt.{c}.gz"),
        np.array(rows * (c + 1) if add_count is None else add_count),
    )
    write_gz_npy(
        os.path.join(replay_dir, f"invalid_range_ckpt.{c}.gz"), np.arange(rows - 1, rows + 3) % rows
    )


@pytest.fixture
def replay_dir(tmp_path):
    d = tmp_path / "Pong" / "1" / "replay_logs"
    d.mkdir(parents=True)
    for c in (0, 1):
        write_checkpoint(str(d), c)
    return str(d)


def expected(c, keep, total=N, clip=True):
    """Rows the cache must hold for the first `keep` transitions of checkpoint c."""
    frame, action, reward, terminal, start, obs_only = [], [], [], [], [], []
    ends = [t + 1 for t in TERMINALS[c] if t < keep]
    cut = not ends or ends[-1] != keep
    if cut:
        ends.append(keep)
    begin = 0
    for k, end in enumerate(ends):
        for i in range(begin, end):
            frame.append(50 * c + i)
            action.append(i % 4)
            r = i - 10
            reward.append(max(-1, min(1, r)) if clip else r)
            terminal.append(i in TERMINALS[c])
            start.append(i == begin)
            obs_only.append(False)
        if k == len(ends) - 1 and cut:
            if keep < total:  # frame `keep` is stored as the observation-only row
                frame.append(50 * c + keep)
                action.append(0)
                reward.append(0)
                terminal.append(False)
                start.append(False)
                obs_only.append(True)
            else:  # no frame after the data: the last row becomes observation-only
                obs_only[-1] = True
        begin = end
    return dict(
        frame=frame, action=action, reward=reward, terminal=terminal, start=start, obs_only=obs_only
    )


def check(out, parts, clip=True):
    arrays, meta = load_cache(out)
    want = {k: [] for k in ("frame", "action", "reward", "terminal", "start", "obs_only")}
    for c, keep in parts:
        for k, v in expected(c, keep, clip=clip).items():
            want[k] += v
    np.testing.assert_array_equal(arrays["observation"][:, 0, 0], want["frame"])
    np.testing.assert_array_equal(arrays["observation"][:, 40, 40], want["frame"])
    np.testing.assert_array_equal(arrays["action"], want["action"])
    np.testing.assert_array_equal(arrays["reward"], want["reward"])
    np.testing.assert_array_equal(arrays["terminal"], want["terminal"])
    np.testing.assert_array_equal(arrays["episode_start"], want["start"])
    np.testing.assert_array_equal(arrays["observation_only"], want["obs_only"])
    return meta


def test_prefix_kept_exactly(replay_dir, tmp_path):
    out = str(tmp_path / "cache")
    # 60% of 20 = 12 transitions per checkpoint.
    meta = ingest(f"dqn_replay:{replay_dir}", out, percent=60)
    # ckpt 0: episodes rows 0-4 (T), 5-9 (T), 10-11 cut, frame 12 observation-only.
    # ckpt 1: rows 0-2 (T), 3-11 cut, frame 12 observation-only.
    check(out, [(0, 12), (1, 12)])
    assert meta["num_transitions"] == 24
    assert meta["num_episodes"] == 5
    assert meta["game"] == "Pong" and meta["run"] == 1  # from the .../Pong/1/replay_logs path
    assert meta["checkpoints"] == [0, 1] and meta["percent"] == 60.0
    assert meta["source_detail"]["transitions_per_checkpoint"] == {"0": 12, "1": 12}
    assert meta["num_actions"] == 6  # Pong's minimal action set


def test_prefix_ending_on_terminal_and_full_checkpoint(replay_dir, tmp_path):
    out = str(tmp_path / "c50")
    ingest(f"dqn_replay:{replay_dir}", out, percent=50, checkpoints="0", clip_rewards=False)
    # 10 rows: two terminated episodes, no cut episode, no observation-only row.
    meta = check(out, [(0, 10)], clip=False)
    assert meta["num_transitions"] == 10 and meta["num_rows"] == 10
    out = str(tmp_path / "c100")
    ingest(f"dqn_replay:{replay_dir}", out, percent=100, checkpoints="0-1")
    # ckpt 0 ends with the cut episode 16-19 and no later frame: row 19 is observation-only.
    meta = check(out, [(0, 20), (1, 20)])
    assert meta["num_transitions"] == 39


def test_add_count_limits_a_partly_filled_buffer(tmp_path):
    d = str(tmp_path)
    write_checkpoint(d, 0, add_count=10)  # only the first 10 rows were ever written
    out = str(tmp_path / "cache")
    meta = ingest(f"dqn_replay:{d}", out, percent=100, game="Pong")
    check(out, [(0, 10)])
    assert meta["game"] == "Pong"
    # No game given or in the path: num_actions comes from the data (actions 0..3).
    meta = ingest(f"dqn_replay:{d}", str(tmp_path / "cache2"), percent=100)
    assert meta["game"] is None and meta["run"] is None and meta["num_actions"] == 4


def test_streaming_reader_reads_rows_in_order(replay_dir):
    path = os.path.join(replay_dir, "$store$_observation_ckpt.1.gz")
    with GzipNpyReader(path, "observation") as r:
        assert r.shape == (N, 84, 84) and r.dtype == np.uint8
        np.testing.assert_array_equal(r.read(3)[:, 0, 0], [50, 51, 52])
        np.testing.assert_array_equal(r.read(2)[:, 1, 1], [53, 54])


def _corrupt(path):
    with open(path, "wb") as fh:
        fh.write(b"this is not gzip data at all" * 10)


def _truncate(path):
    data = open(path, "rb").read()
    with open(path, "wb") as fh:
        fh.write(data[: len(data) // 2])


def _short_npy(path):
    with gzip.open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<i4", "fortran_order": False, "shape": (N,)}
        )
        fh.write(np.zeros(N - 3, np.int32).tobytes())


def _unequal(path):
    write_gz_npy(path, np.zeros(N - 1, np.int32))


def _wrong_dtype(path):
    write_gz_npy(path, np.zeros((N, 84, 84), np.float32))


@pytest.mark.parametrize(
    "field, damage, kwargs, match",
    [
        ("observation", _corrupt, {}, r"observation_ckpt\.1\.gz: corrupt or not a gzip"),
        ("observation", _truncate, {}, r"observation_ckpt\.1\.gz: corrupt or truncated gzip"),
        ("action", _short_npy, {}, r"action_ckpt\.1\.gz: truncated \(field action\)"),
        ("action", _unequal, {}, r"checkpoint 1 arrays of unequal length"),
        ("observation", _wrong_dtype, {}, r"observation_ckpt\.1\.gz: field observation is float32"),
        ("add_count", os.remove, {}, r"add_count_ckpt\.1\.gz: missing file"),
        ("reward", os.remove, {}, r"reward_ckpt\.1\.gz: missing file for checkpoint 1"),
        (None, None, {"checkpoints": "0-2"}, r"checkpoint\(s\) \[2\] not in .*present: 0-1"),
        (None, None, {"percent": -5}, r"--percent"),
        (None, None, {"percent": 3}, r"empty result"),
        (None, None, {"game": "NotAGame"}, r"unknown game 'NotAGame'.*AirRaid"),
    ],
)
def test_bad_input_errors_write_nothing(replay_dir, tmp_path, field, damage, kwargs, match):
    if field is not None:
        name = "add_count_ckpt.1.gz" if field == "add_count" else f"$store$_{field}_ckpt.1.gz"
        damage(os.path.join(replay_dir, name))
    out = str(tmp_path / "cache")
    with pytest.raises(IngestError, match=match):
        ingest(f"dqn_replay:{replay_dir}", out, **{"percent": 100, **kwargs})
    assert not os.path.exists(out)
    assert [p for p in os.listdir(tmp_path) if p.startswith("cache")] == []


def test_missing_directory_and_no_logs(tmp_path):
    out = str(tmp_path / "cache")
    with pytest.raises(IngestError, match="does not exist"):
        ingest(f"dqn_replay:{tmp_path / 'nope'}", out)
    with pytest.raises(IngestError, match=r"no \$store\$_observation_ckpt"):
        ingest(f"dqn_replay:{tmp_path}", out)
    assert not os.path.exists(out)


def test_ingest_command_line(replay_dir, tmp_path):
    import subprocess
    import sys

    root = str(REPO_ROOT)
    out = str(tmp_path / "cli_cache")
    cmd = [sys.executable, "-m", "offline_moe.ingest", f"--source=dqn_replay:{replay_dir}"]
    args = ["--checkpoints=1", "--percent=60", "--noclip_rewards", f"--out={out}"]
    proc = subprocess.run(cmd + args, cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "12 transitions" in proc.stdout
    assert re.search(r"12/12 transitions +[\d,]+/s", proc.stderr)  # the progress line
    check(out, [(1, 12)], clip=False)
    proc = subprocess.run(cmd + args, cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "already exists" in proc.stderr
    proc = subprocess.run(cmd + ["--help"], cwd=root, capture_output=True, text=True, timeout=120)
    assert "--percent" in proc.stdout and "first percent" in proc.stdout


def test_bench_data_on_an_existing_cache(replay_dir, tmp_path, capsys):
    import json

    from offline_moe.bench import data as bench_data

    out = str(tmp_path / "cache")
    ingest(f"dqn_replay:{replay_dir}", out, percent=100)
    bench_data.main(["bench data", f"--cache={out}", "--iters=3", "--n_steps=1,3"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["metric"] for r in lines] == [
        "cache_bytes_per_transition",
        "replay_sampled_transitions_per_s",
        "replay_sampled_transitions_per_s",
    ]
    # 40 rows of 84 * 84 + 4 + 4 + 3 bytes, plus 6 .npy headers (128 B) and meta.json.
    meta_bytes = os.path.getsize(os.path.join(out, "meta.json"))
    assert lines[0]["value"] == round((40 * 7067 + 6 * 128 + meta_bytes) / 39, 1)
    assert lines[0]["transitions"] == 39 and lines[0]["rows"] == 40
    assert [r["n_step"] for r in lines[1:]] == [1, 3] and all(r["value"] > 0 for r in lines[1:])


def _transitions_by_frame(cache_dir, stack=4, n_step=3):
    """{frame value of the transition's last stacked frame: its transition} of every
    sampleable transition of a cache (frame values are unique row ids in these logs)."""
    from offline_moe.replay.device import DeviceReplay

    replay = DeviceReplay.load(cache_dir, stack=stack, n_step=n_step)
    batch = {k: np.asarray(v) for k, v in replay.transitions(replay.valid).items()}
    out = {}
    for b in range(replay.num_valid):
        out[int(batch["obs"][b, 0, 0, -1])] = {k: v[b] for k, v in batch.items()}
    return out


def test_random_sample_keeps_whole_episodes_so_every_window_is_the_datas(replay_dir, tmp_path):
    """Known answer for --sample=random: each kept transition's frame stack, n-step reward,
    discount and next stack equal those of the same transition in the full (100%) data, the
    draw is whole episodes (reproducible from the recorded seed) reaching the 30% budget of
    each checkpoint (6 of 20 rows), and another seed draws other episodes."""
    full = _transitions_by_frame(_ingested(replay_dir, tmp_path / "full", percent=100))
    kept = {}
    for seed in (0, 1, 2):
        out = _ingested(replay_dir, tmp_path / f"r{seed}", percent=30, sample="random", seed=seed)
        meta = load_cache(out)[1]
        assert (meta["sample"], meta["sample_seed"]) == ("random", seed)
        got = _transitions_by_frame(out)
        assert got and set(got) <= set(full)
        for frame, tr in got.items():
            for key in ("obs", "next_obs", "action", "reward", "discount"):
                np.testing.assert_array_equal(tr[key], full[frame][key], err_msg=f"{frame} {key}")
        # Whole episodes of each checkpoint: 0: [0,5) [5,10) [10,16) [16,20); 1: [0,3) [3,20).
        episodes = {0: [(0, 5), (5, 10), (10, 16), (16, 20)], 1: [(0, 3), (3, 20)]}
        rows = set(int(v) for v in load_cache(out)[0]["observation"][:, 0, 0])
        for c, bounds in episodes.items():
            whole = [set(range(50 * c + a, 50 * c + b)) for a, b in bounds]
            drawn = [w for w in whole if w & rows]
            assert all(w <= rows | {50 * c + 19} for w in drawn)  # row 19: cut, obs-only
            total = sum(len(w) for w in drawn)
            assert total >= 6 and any(total - len(w) < 6 for w in drawn)  # stops at the budget
        kept[seed] = frozenset(rows)
        again = _ingested(replay_dir, tmp_path / f"again{seed}", percent=30, sample="random",
                          seed=seed)  # fmt: skip
        assert set(_transitions_by_frame(again)) == set(got)  # the seed fixes the draw
    assert len(set(kept.values())) > 1
    prefix = _ingested(replay_dir, tmp_path / "prefix", percent=30)
    assert load_cache(prefix)[1]["sample"] == "prefix"


def _ingested(replay_dir, out, percent, sample="prefix", seed=0):
    ingest(
        f"dqn_replay:{replay_dir}",
        str(out),
        percent=percent,
        sample=sample,
        sample_seed=seed,
    )
    return str(out)
