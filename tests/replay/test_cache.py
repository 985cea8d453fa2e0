"""offline_moe.replay.cache and cache_writer: row semantics, atomic writes, every CacheError."""

import json
import os

import numpy as np
import pytest

from offline_moe.errors import CacheError
from offline_moe.replay import cache, cache_writer
from offline_moe.replay.cache import load_cache
from offline_moe.replay.cache_writer import CacheWriter


def frames(values):
    """uint8 [T, 84, 84] whose frame t is filled with values[t]."""
    values = np.asarray(values, np.uint8)
    return np.broadcast_to(values[:, None, None], (len(values), 84, 84)).copy()


def write_example(out_dir, **kwargs):
    """The worked example of the cache docstring: terminated, truncated+final, truncated."""
    with CacheWriter(out_dir, meta={"game": "Pong", "num_actions": 6}, **kwargs) as w:
        w.add_episode(frames([0, 1, 2]), [1, 2, 3], [0.0, 1.0, 2.0], terminated=True)
        w.add_episode(
            frames([10, 11]),
            [4, 5],
            [10.0, 11.0],
            terminated=False,
            final_observation=frames([12])[0],
        )
        w.add_episode(frames([20, 21]), [1, 2], [20.0, 21.0], terminated=False)
    return out_dir


def test_row_semantics_worked_example(tmp_path):
    out = write_example(str(tmp_path / "c"))
    arrays, meta = load_cache(out)
    np.testing.assert_array_equal(arrays["observation"][:, 0, 0], [0, 1, 2, 10, 11, 12, 20, 21])
    assert (arrays["observation"][:, 5, 7] == arrays["observation"][:, 0, 0]).all()
    np.testing.assert_array_equal(arrays["action"], [1, 2, 3, 4, 5, 0, 1, 2])
    np.testing.assert_array_equal(arrays["reward"], [0, 1, 2, 10, 11, 0, 20, 21])
    np.testing.assert_array_equal(arrays["terminal"], [0, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(arrays["episode_start"], [1, 0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(arrays["observation_only"], [0, 0, 0, 0, 0, 1, 0, 1])
    for name, (dtype, row_shape) in cache.FIELDS.items():
        assert arrays[name].dtype == dtype
        assert arrays[name].shape == (8, *row_shape)
    assert meta["format_version"] == cache.FORMAT_VERSION == 1
    assert (meta["num_rows"], meta["num_transitions"], meta["num_episodes"]) == (8, 6, 3)
    assert meta["game"] == "Pong" and meta["num_actions"] == 6
    for key in cache.STANDARD_META + ("created",):
        assert key in meta
    # The arrays are plain .npy files numpy reads without us.
    np.testing.assert_array_equal(np.load(os.path.join(out, "action.npy")), arrays["action"])
    # No temporary directory is left next to the cache.
    assert sorted(os.listdir(tmp_path)) == ["c"]
    # Non-mmap loading gives the same arrays.
    arrays2, _ = load_cache(out, mmap=False)
    assert not isinstance(arrays2["observation"], np.memmap)
    np.testing.assert_array_equal(arrays2["observation"], arrays["observation"])


def test_terminated_episode_ignores_final_observation(tmp_path):
    out = str(tmp_path / "c")
    with CacheWriter(out) as w:
        w.add_episode(frames([5, 6]), [0, 1], [1.0, 1.0], terminated=True,
                      final_observation=frames([7])[0])  # fmt: skip
    arrays, meta = load_cache(out)
    assert meta["num_rows"] == 2 and meta["num_transitions"] == 2
    np.testing.assert_array_equal(arrays["terminal"], [0, 1])


def test_exception_mid_write_leaves_nothing(tmp_path):
    out = str(tmp_path / "c")
    with pytest.raises(RuntimeError, match="boom"):
        with CacheWriter(out) as w:
            w.add_episode(frames([1, 2]), [0, 0], [0.0, 0.0], terminated=True)
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    # A bad episode raises inside the writer: nothing is left either.
    with pytest.raises(ValueError, match="observations must be uint8"):
        with CacheWriter(out) as w:
            w.add_episode(frames([1]), [0], [0.0], terminated=True)
            w.add_episode(np.zeros((2, 84, 83), np.uint8), [0, 0], [0, 0], terminated=True)
    assert os.listdir(tmp_path) == []


def test_empty_cache_is_refused(tmp_path):
    with pytest.raises(CacheError, match="empty"):
        with CacheWriter(str(tmp_path / "c")):
            pass
    assert os.listdir(tmp_path) == []


def test_overwrite_refusal_and_overwrite(tmp_path):
    out = write_example(str(tmp_path / "c"))
    with pytest.raises(CacheError, match="already exists"):
        CacheWriter(out)
    with CacheWriter(out, overwrite=True) as w:
        w.add_episode(frames([9]), [3], [1.0], terminated=True)
    arrays, meta = load_cache(out)
    assert meta["num_rows"] == 1 and arrays["observation"][0, 0, 0] == 9
    assert sorted(os.listdir(tmp_path)) == ["c"]
    # A failed overwrite keeps the old cache intact.
    with pytest.raises(RuntimeError):
        with CacheWriter(out, overwrite=True) as w:
            raise RuntimeError("x")
    assert load_cache(out)[1]["num_rows"] == 1
    # Never overwrite a non-cache directory.
    other = tmp_path / "notacache"
    other.mkdir()
    (other / "precious.txt").write_text("x")
    with pytest.raises(CacheError, match="not a replay cache"):
        CacheWriter(str(other), overwrite=True)
    assert (other / "precious.txt").exists()


def test_bad_episode_arguments(tmp_path):
    with CacheWriter(str(tmp_path / "c")) as w:
        with pytest.raises(ValueError, match="at least one"):
            w.add_episode(np.zeros((0, 84, 84), np.uint8), [], [], terminated=True)
        with pytest.raises(ValueError, match="shape"):
            w.add_episode(frames([1, 2]), [0], [0.0, 0.0], terminated=True)
        with pytest.raises(ValueError, match="final_observation"):
            w.add_episode(frames([1]), [0], [0.0], terminated=False,
                          final_observation=np.zeros((84, 84), np.float32))  # fmt: skip
        w.add_episode(frames([1]), [0], [0.0], terminated=True)
    with pytest.raises(ValueError, match="computed by the writer"):
        CacheWriter(str(tmp_path / "d"), meta={"num_rows": 3})


def test_update_meta_before_close(tmp_path):
    with CacheWriter(str(tmp_path / "c"), meta={"game": "Pong"}) as w:
        w.add_episode(frames([1]), [4], [0.0], terminated=True)
        w.update_meta(num_actions=5)
        with pytest.raises(ValueError, match="computed by the writer"):
            w.update_meta(num_episodes=2)
    meta = load_cache(str(tmp_path / "c"))[1]
    assert meta["num_actions"] == 5 and meta["game"] == "Pong" and meta["num_episodes"] == 1


def _rewrite(path, array):
    np.save(path, array)


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda d: os.remove(os.path.join(d, "reward.npy")), "missing file reward.npy"),
        (lambda d: os.remove(os.path.join(d, "meta.json")), "missing meta.json"),
        (
            lambda d: _rewrite(os.path.join(d, "action.npy"), np.zeros(8, np.int64)),
            "action.npy has dtype int64, expected int32",
        ),
        (
            lambda d: _rewrite(os.path.join(d, "observation.npy"), np.zeros((8, 84, 80), np.uint8)),
            r"observation.npy has shape \(8, 84, 80\), expected \[N, 84, 84\]",
        ),
        (
            lambda d: _rewrite(os.path.join(d, "terminal.npy"), np.zeros(7, bool)),
            "unequal length",
        ),
        (
            lambda d: open(os.path.join(d, "reward.npy"), "r+b").truncate(100),
            "reward.npy is corrupt or truncated",
        ),
        (
            lambda d: _edit_meta(d, format_version=2),
            "format_version is 2, expected 1",
        ),
        (lambda d: _edit_meta(d, num_rows=9), "num_rows is 9"),
        (lambda d: _edit_meta(d, num_transitions=5), "num_transitions is 5"),
        (
            lambda d: _rewrite(
                os.path.join(d, "terminal.npy"), np.array([1, 0, 0, 0, 0, 0, 0, 0], bool)
            ),
            "terminal.npy is set on row 0, which is not the last row",
        ),
    ],
)
def test_load_cache_errors(tmp_path, damage, match):
    out = write_example(str(tmp_path / "c"))
    damage(out)
    with pytest.raises(CacheError, match=match):
        load_cache(out)


def _edit_meta(d, **kw):
    path = os.path.join(d, "meta.json")
    with open(path) as f:
        meta = json.load(f)
    meta.update(kw)
    with open(path, "w") as f:
        json.dump(meta, f)


def test_load_cache_missing_dir_and_empty(tmp_path):
    with pytest.raises(CacheError, match="does not exist"):
        load_cache(str(tmp_path / "nope"))
    out = write_example(str(tmp_path / "c"))
    for name, (dtype, row_shape) in cache.FIELDS.items():
        np.save(os.path.join(out, name + ".npy"), np.zeros((0, *row_shape), dtype))
    _edit_meta(out, num_rows=0)
    with pytest.raises(CacheError, match="empty cache"):
        load_cache(out)


def test_streaming_header_handles_large_counts():
    # The fixed-size header must fit any realistic row count.
    header = cache_writer._npy_header(np.dtype(np.uint8), (10**12, 84, 84))
    assert len(header) == 128 and header.endswith(b"\n")


def test_context_rows_fill_stacks_but_start_no_transition(tmp_path):
    """An episode that begins mid-game (context=2): frames 5 and 6 are observation-only rows
    before its first transition, which is row 2 with the stack (0, 5, 6, 7); rows 0-1 are
    never drawn, and an observation-only row that is neither leading nor last is refused."""
    from offline_moe.replay.device import DeviceReplay

    out = str(tmp_path / "c")
    with CacheWriter(out, meta={"num_actions": 6}) as w:
        w.add_episode(frames([5, 6, 7, 8]), [1, 2, 3, 4], [0.0] * 4, terminated=True, context=2)
        with pytest.raises(ValueError, match="context=3 leaves no transition"):
            w.add_episode(frames([1, 2, 3]), [1, 1, 1], [0.0] * 3, terminated=False, context=3)
    arrays, meta = load_cache(out)
    np.testing.assert_array_equal(arrays["observation_only"], [True, True, False, False])
    assert meta["num_transitions"] == 2
    replay = DeviceReplay.load(out, stack=4, n_step=1)
    np.testing.assert_array_equal(np.asarray(replay.valid), [2, 3])
    obs = np.asarray(replay.transitions(replay.valid)["obs"])
    np.testing.assert_array_equal(obs[0, 0, 0], [0, 5, 6, 7])
    _rewrite(os.path.join(out, "observation_only.npy"), np.array([True, False, True, False]))
    with pytest.raises(CacheError, match="observation_only.npy is set on row 2"):
        load_cache(out)
