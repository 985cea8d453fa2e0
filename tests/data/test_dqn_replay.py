"""Tests for the DQN-Replay log reader: Dopamine's padding and circular buffer, exact
transitions, and every bad input.

The logs are written by `tests.data.dopamine_log.DopamineLog`, which follows Dopamine's
`OutOfGraphReplayBuffer.add` and `save`: 3 zero rows before every episode, a circular buffer
that wraps, checkpoints saved mid-episode. Every frame carries the id of its real step, so
each ingested transition is checked against the steps the writer was fed.
"""

import gzip
import os
import pickle
import re

import numpy as np
import pytest

from offline_moe.data.dqn_replay import GzipNpyReader
from offline_moe.data.ingest import ingest
from offline_moe.errors import IngestError
from offline_moe.replay.cache import load_cache
from tests import REPO_ROOT
from tests.data.dopamine_log import DopamineLog, frame_id

N = 20  # buffer length of the fixture's checkpoints


def write_gz_npy(path, array):
    with gzip.open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def write_log(replay_dir):
    """Checkpoint 0: a buffer that has not wrapped, cut mid-episode; checkpoint 1: wrapped.

    Rows of checkpoint 0 (P: padding, sK: real step K, T: terminal; add_count 18, row 18-19
    never written)::

        0 1 2  3  4   5 6 7  8  9  10   11 12 13 14 15 16 17
        P P P  s0 s1T P P P  s2 s3 s4T  P  P  P  s5 s6 s7 s8

    Then s9, s10 (terminal) fill rows 18-19, and the next episode wraps: padding on rows 0-2,
    s11..s15 on rows 3-7 (add_count 28, cursor 8: rows 8-17 are still checkpoint 0's).
    """
    log = DopamineLog(N)
    log.episode(2)
    log.episode(3)
    log.episode(4, terminal=False)
    log.save(replay_dir, 0)
    log.episode(2)  # s9, s10: the rest of the cut episode
    log.episode(5, terminal=False)
    log.save(replay_dir, 1)
    return log


@pytest.fixture
def replay_dir(tmp_path):
    d = tmp_path / "Pong" / "1" / "replay_logs"
    d.mkdir(parents=True)
    write_log(str(d))
    return str(d)


def rows_of(out):
    """The cache's rows as (step id, episode_start, terminal, observation_only) tuples."""
    arrays, meta = load_cache(out)
    ids = [frame_id(f) for f in arrays["observation"]]
    flags = zip(arrays["episode_start"], arrays["terminal"], arrays["observation_only"])
    return [(i, bool(a), bool(b), bool(c)) for i, (a, b, c) in zip(ids, flags)], meta


def test_padding_rows_are_dropped_known_answer(replay_dir, tmp_path):
    """Checkpoint 0 at 100%: the padding rows 0-2, 5-7 and 11-13 are not in the cache; each
    episode starts at its first real step; the cut episode s5..s8 ends truncated (no later
    row was written, so s8 is observation-only). Checkpoint 1 at 100%: rows 8-10 (s2, s3, s4)
    follow the cursor with their history overwritten, so they would be context only and hold
    no transition: dropped; s5..s10 (rows 14-19) is whole; row 0 is padding, so s11 (row 3)
    is a fresh episode start, cut at the cursor: s15 is observation-only."""
    out = str(tmp_path / "cache")
    meta = ingest(f"dqn_replay:{replay_dir}", out, percent=100, clip_rewards=False)
    rows, meta = rows_of(out)
    S, T, Ob = (True, False, False), (False, True, False), (False, False, True)
    step = (False, False, False)
    want = [
        (0, *S), (1, *T),
        (2, *S), (3, *step), (4, *T),
        (5, *S), (6, *step), (7, *step), (8, *Ob),
        (11, *S), (12, *step), (13, *step), (14, *step), (15, *Ob),
        (5, *S), (6, *step), (7, *step), (8, *step), (9, *step), (10, *T),
    ]  # fmt: skip
    assert rows == want
    assert meta["num_transitions"] == 18 and meta["num_episodes"] == 5
    assert meta["source_detail"]["transitions_per_checkpoint"] == {"0": 8, "1": 10}
    arrays, _ = load_cache(out)
    np.testing.assert_array_equal(arrays["action"][:5], [0, 1, 2, 3, 0])  # id % 4, no padding 0s
    np.testing.assert_array_equal(arrays["reward"][:5], [-1, 0, 1, -1, 0])  # id % 3 - 1


def test_prefix_cuts_the_episode_and_stores_the_next_frame(replay_dir, tmp_path):
    """50% of checkpoint 0 (add_count 18): rows 0-8. s0-s1 terminated; s2 (row 8) is cut by
    the prefix: row 9 (s3) continues it and is stored as its observation-only row."""
    out = str(tmp_path / "cache")
    meta = ingest(f"dqn_replay:{replay_dir}", out, percent=50, checkpoints="0")
    rows, meta = rows_of(out)
    assert rows == [(0, True, False, False), (1, False, True, False),
                    (2, True, False, False), (3, False, False, True)]  # fmt: skip
    assert meta["num_transitions"] == 3
    assert meta["game"] == "Pong" and meta["run"] == 1  # from the .../Pong/1/replay_logs path
    assert meta["checkpoints"] == [0] and meta["percent"] == 50.0
    assert meta["num_actions"] == 6  # Pong's minimal action set


def test_add_count_limits_a_partly_filled_buffer(tmp_path):
    d = str(tmp_path)
    log = DopamineLog(N)
    log.episode(3)
    log.episode(4, terminal=False)  # add_count 13 of 20 rows
    log.save(d, 0)
    out = str(tmp_path / "cache")
    meta = ingest(f"dqn_replay:{d}", out, percent=100, game="Pong")
    rows, meta = rows_of(out)
    assert [r[0] for r in rows] == [0, 1, 2, 3, 4, 5, 6] and rows[-1][3]  # s6 obs-only
    assert meta["game"] == "Pong"
    # No game given or in the path: num_actions comes from the data (actions 0..3).
    meta = ingest(f"dqn_replay:{d}", str(tmp_path / "cache2"), percent=100)
    assert meta["game"] is None and meta["run"] is None and meta["num_actions"] == 4


def _real_transition(steps, i, n, gamma):
    """Stack ids, action, n-step reward, discount and next stack ids of real step i."""
    ep = steps[i]["episode"]

    def stack(j):
        return [j - k if j - k >= 0 and steps[j - k]["episode"] == ep else -1 for k in (3, 2, 1, 0)]

    reward, length, discount = 0.0, n, gamma**n
    for k in range(n):
        reward += gamma**k * steps[i + k]["reward"]
        if steps[i + k]["terminal"]:
            length, discount = k + 1, 0.0
            break
    return stack(i), steps[i]["action"], reward, discount, stack(i + length)


def check_against_steps(cache_dir, steps, n_step, gamma=0.9):
    """Every sampleable transition of the cache equals the real step's (frames, action,
    n-step reward, discount, next frames), and none starts or ends on a padding frame.

    Returns:
      the set of real step ids that start a transition.
    """
    import jax

    from offline_moe.replay.device import DeviceReplay

    replay = DeviceReplay.load(cache_dir, stack=4, n_step=n_step, gamma=gamma)
    # One compiled program (as inside the learner) instead of hundreds of op-by-op compiles.
    gather = jax.jit(lambda r, t: r.transitions(t))
    batch = {k: np.asarray(v) for k, v in gather(replay, replay.valid).items()}
    ids = set()
    for b in range(replay.num_valid):
        obs = [frame_id(batch["obs"][b, ..., k]) for k in range(4)]
        i = obs[-1]
        assert i >= 0, "a padding row starts a transition"
        stack, action, reward, discount, next_stack = _real_transition(steps, i, n_step, gamma)
        assert obs == stack, (i, obs, stack)
        assert batch["action"][b] == action
        np.testing.assert_allclose(batch["reward"][b], reward, rtol=1e-6, err_msg=str(i))
        np.testing.assert_allclose(batch["discount"][b], discount, rtol=1e-6, err_msg=str(i))
        if discount > 0:
            next_obs = [frame_id(batch["next_obs"][b, ..., k]) for k in range(4)]
            assert next_obs[-1] >= 0, "a transition ends on a padding row"
            assert next_obs == next_stack, (i, next_obs, next_stack)
        ids.add(i)
    return ids


def dopamine_valid(replay_dir, suffix, n_step, stack=4):
    """Rows of a saved buffer that Dopamine's `sample_index_batch` / `is_valid_transition`
    can draw with update horizon `n_step`, read back from the files (the whole buffer)."""

    def load(name, pickled=False):
        with gzip.open(os.path.join(replay_dir, f"{name}_ckpt.{suffix}.gz"), "rb") as fh:
            return pickle.load(fh) if pickled else np.load(fh, allow_pickle=False)

    terminal = load("$store$_terminal")
    add_count, invalid = int(load("add_count")), set(load("invalid_range").tolist())
    ends = load("episode_end_indices", pickled=True)
    cap = terminal.size
    cursor = add_count % cap
    full = add_count >= cap
    lo, hi = (cursor - cap + stack - 1, cursor - n_step) if full else (stack - 1, cursor - n_step)
    valid = set()
    for index in {j % cap for j in range(lo, hi)}:
        if not full and (index >= cursor - n_step or index < stack - 1):
            continue
        if index in invalid or terminal[[(index - k) % cap for k in range(1, stack)]].any():
            continue
        window = [(index + k) % cap for k in range(n_step)]
        if any(i in ends and not terminal[i] for i in window):
            continue
        valid.add(index)
    return valid, cursor


def _random_logs(replay_dir, seed, capacity=40, saves=(30, 52, 95, 131)):
    """A run of random-length episodes (1-9 steps) saved whenever add_count passes a mark
    (the first save before the buffer wraps, the others with the cursor in the first half).

    Returns:
      the log, and per suffix the saved buffer's step id of each row (-1: padding).
    """
    rng = np.random.default_rng(seed)
    log = DopamineLog(capacity)
    rows = {}
    while len(rows) < len(saves):
        length = int(rng.integers(1, 10))
        for k in range(length):
            log.step(len(log.steps) % 4, float(len(log.steps) % 3 - 1), k == length - 1)
            if len(rows) < len(saves) and int(log.add_count) >= saves[len(rows)]:
                written = min(int(log.add_count), capacity)
                ids = [frame_id(f) for f in log.store["observation"][:written]]
                log.save(replay_dir, len(rows))
                rows[len(rows)] = ids
    return log, rows


@pytest.mark.parametrize("seed", [0, *(pytest.param(s, marks=pytest.mark.slow) for s in (1, 2))])
def test_every_kept_transition_is_a_real_step_and_dopamines(tmp_path, seed):
    """Padding, a wrapped buffer and episodes cut by checkpoints: at 100% and at a 50% prefix
    (the cursor falls inside it), with 1- and 3-step returns, every transition of the cache is
    the real step's, and the transitions are the rows Dopamine's sampler draws from the same
    buffer, but for the first 3 rows (their history lies outside the prefix) and the windows
    that reach the prefix end. Dopamine's `invalid_range` also drops two rows whose
    transition is whole, which the cache keeps: the newest row (cursor - 1) when it is
    terminal (no next frame is needed), and row cursor + 3 (its stack is rows cursor..+3)."""
    d = str(tmp_path / "logs")
    os.makedirs(d)
    log, rows = _random_logs(d, seed)
    for percent in (100, 50):
        for suffix, row_ids in rows.items():
            out = str(tmp_path / f"cache{percent}_{suffix}")
            ingest(f"dqn_replay:{d}", out, percent=percent, checkpoints=str(suffix),
                   clip_rewards=False)  # fmt: skip
            stop = len(row_ids) * percent // 100
            for n in (1, 3):
                kept = check_against_steps(out, log.steps, n)
                valid, cursor = dopamine_valid(d, suffix, n)
                ours = {r for r, i in enumerate(row_ids[:stop]) if i in kept}
                assert len(ours) == len(kept)  # each kept step is one row of the prefix
                newest = row_ids[(cursor - 1) % 40]
                assert (cursor - 1) % 40 not in ours or log.steps[newest]["terminal"]
                allowed = valid | {(cursor + 3) % 40, (cursor - 1) % 40}
                assert ours <= allowed, (suffix, sorted(ours - allowed))
                must = {r for r in valid if 3 <= r and r + n < stop}
                assert must <= ours, (suffix, sorted(must - ours))


def test_streaming_reader_reads_rows_in_order(replay_dir):
    path = os.path.join(replay_dir, "$store$_observation_ckpt.1.gz")
    with GzipNpyReader(path, "observation") as r:
        assert r.shape == (N, 84, 84) and r.dtype == np.uint8
        assert [frame_id(f) for f in r.read(4)] == [-1, -1, -1, 11]  # padding, then s11
        assert [frame_id(f) for f in r.read(2)] == [12, 13]


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
    args = ["--checkpoints=1", "--percent=60", "--noclip_rewards", f"--cache_dir={out}"]
    proc = subprocess.run(cmd + args, cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # Rows 0-11 of checkpoint 1: padding, s11..s15 cut at the cursor (row 8), then s2..s4,
    # whose history was overwritten (context only, no transition).
    assert "4 transitions" in proc.stdout
    assert re.search(r"4/4 transitions +[\d,]+/s", proc.stderr)  # the progress line
    assert "\r" not in proc.stderr  # into a pipe or a file: plain lines
    assert [r[0] for r in rows_of(out)[0]] == [11, 12, 13, 14, 15]
    proc = subprocess.run(cmd + args, cwd=root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    assert proc.stderr.startswith("[ingest] error: ") and proc.stderr.count("\n") == 1
    proc = subprocess.run(cmd + ["--help"], cwd=root, capture_output=True, text=True, timeout=120)
    assert "--percent" in proc.stdout and "first percent" in proc.stdout


def test_bench_data_on_an_existing_cache(replay_dir, tmp_path, capsys):
    import json

    from offline_moe.bench import data as bench_data

    out = str(tmp_path / "cache")
    ingest(f"dqn_replay:{replay_dir}", out, percent=100)
    bench_data.main(["bench data", f"--cache_dir={out}", "--iters=3", "--n_steps=1,3"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["bench"], r["measure"]) for r in lines] == [
        ("data", "cache"),
        ("data", "replay_sampling"),
        ("data", "replay_sampling"),
    ]
    # 20 rows of 84 * 84 + 4 + 4 + 3 bytes, plus 6 .npy headers (128 B) and meta.json
    # (test_padding_rows_are_dropped_known_answer has the rows).
    meta_bytes = os.path.getsize(os.path.join(out, "meta.json"))
    assert lines[0]["bytes_per_transition"] == round((20 * 7067 + 6 * 128 + meta_bytes) / 18, 1)
    assert lines[0]["transitions"] == 18 and lines[0]["rows"] == 20
    assert [r["n_step"] for r in lines[1:]] == [1, 3]
    assert all(r["transitions_per_s"] > 0 for r in lines[1:])


def test_random_sample_keeps_whole_episodes_so_every_window_is_the_datas(tmp_path):
    """Known answer for --sample=random on checkpoint 1, whose episodes hold s11..s15 (4
    transitions, cut at the cursor) and s5..s10 (6): at 30% (budget: the 3 transitions of the
    prefix rule) one whole episode is drawn, its transitions are the real steps', the draw is
    reproducible from the recorded seed, and another seed draws the other episode."""
    d = str(tmp_path / "logs")
    os.makedirs(d)
    log = write_log(d)
    episodes = [frozenset(range(11, 16)), frozenset(range(5, 11))]
    drawn = set()
    for seed in (0, 4):  # seed 4 draws the other episode
        out = _ingested(d, tmp_path / f"r{seed}", percent=30, sample="random", seed=seed)
        rows, meta = rows_of(out)
        assert (meta["sample"], meta["sample_seed"]) == ("random", seed)
        ids = frozenset(r[0] for r in rows)
        assert ids in episodes
        check_against_steps(out, log.steps, 3)
        again = _ingested(d, tmp_path / f"again{seed}", percent=30, sample="random", seed=seed)
        assert rows_of(again)[0] == rows  # the seed fixes the draw
        drawn.add(ids)
    assert len(drawn) == 2
    prefix = _ingested(d, tmp_path / "prefix", percent=30)
    assert load_cache(prefix)[1]["sample"] == "prefix"


def _ingested(replay_dir, out, percent, sample="prefix", seed=0):
    ingest(
        f"dqn_replay:{replay_dir}",
        str(out),
        percent=percent,
        checkpoints="1",
        sample=sample,
        sample_seed=seed,
    )
    return str(out)
