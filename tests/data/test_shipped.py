"""Shipped caches: pack -> unpack is the identity, and the files in datasets/minatar are real."""

import json
import os

import numpy as np
import pytest

from offline_moe.data import shipped
from offline_moe.errors import CacheError
from offline_moe.replay.cache import fingerprint, load_cache, read_meta
from offline_moe.replay.cache_writer import write_cache


def _episode(t, offset, terminated, channels=4):
    obs = np.zeros((t, 10, 10, channels), bool)
    for k in range(t):
        obs[k, k % 10, (k + offset) % 10, k % channels] = True
    return {
        "observations": obs,
        "actions": np.arange(t) % 3,
        "rewards": (np.arange(t) % 2).astype(np.float32),
        "terminated": terminated,
        "final_observation": None if terminated else obs[0],
    }


def test_pack_unpack_round_trip(tmp_path):
    src = write_cache(
        tmp_path / "MinAtarBreakout_run1_5pct",
        [_episode(13, 0, True), _episode(7, 5, False)],
        meta={"game": "MinAtarBreakout", "num_actions": 3, "percent": 5.0, "run": 1},
        frame_shape=(10, 10, 4), frame_dtype=bool, frame_stack=1,
    )  # fmt: skip
    packed = tmp_path / "ship" / "MinAtarBreakout_run1_5pct.npz"
    info = shipped.pack_cache(src, str(packed))
    assert info["bytes"] == os.path.getsize(packed) and info["bytes"] < info["cache_bytes"]
    assert shipped.shipped_names(tmp_path / "ship") == ["MinAtarBreakout_run1_5pct"]

    data_dir = tmp_path / "data"
    out = shipped.ensure_shipped_cache(
        "MinAtarBreakout_run1_5pct", str(data_dir), directory=tmp_path / "ship"
    )
    a, meta_a = load_cache(src)
    b, meta_b = load_cache(out)
    assert meta_a == meta_b and a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name
    assert fingerprint(src) == fingerprint(out)
    # Present and equal: reused; present and different: refused, naming the directory.
    assert (
        shipped.ensure_shipped_cache(
            "MinAtarBreakout_run1_5pct", str(data_dir), directory=tmp_path / "ship"
        )
        == out
    )
    meta = read_meta(out)
    meta["percent"] = 10.0
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f)
    with pytest.raises(CacheError, match="not the shipped cache"):
        shipped.ensure_shipped_cache(
            "MinAtarBreakout_run1_5pct", str(data_dir), directory=tmp_path / "ship"
        )
    with pytest.raises(CacheError, match="shipped: MinAtarBreakout_run1_5pct"):
        shipped.ensure_shipped_cache("Nope", str(data_dir), directory=tmp_path / "ship")
    # restore_if_shipped: only for a name that is shipped.
    assert shipped.restore_if_shipped(str(tmp_path / "x" / "Nope"), tmp_path / "ship") is False
    target = tmp_path / "y" / "MinAtarBreakout_run1_5pct"
    assert shipped.restore_if_shipped(str(target), tmp_path / "ship") is True
    assert fingerprint(str(target)) == fingerprint(src)


def test_unpack_refuses_a_file_that_is_not_a_packed_cache(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros(3))
    with pytest.raises(CacheError, match="not a packed cache"):
        shipped.unpack_cache(str(bad), str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")


@pytest.mark.parametrize("percent", [5, 10])
@pytest.mark.parametrize("game", ["Asterix", "Breakout", "Freeway", "Seaquest", "SpaceInvaders"])
def test_shipped_minatar_caches(tmp_path, game, percent):
    """Each shipped file unpacks into a valid cache of its game: `percent`% of each of the 10
    checkpoints of a 1M-step run (100,000 transitions each), rewards in {0, 1}, MinAtar's bool
    frames, stack 1."""
    from offline_moe import envs

    name = f"MinAtar{game}_run1_{percent}pct"
    assert name in shipped.shipped_names()
    out = shipped.ensure_shipped_cache(name, str(tmp_path))
    arrays, meta = load_cache(out)
    assert meta["game"] == f"MinAtar{game}" and meta["percent"] == percent and meta["run"] == 1
    assert meta["checkpoints"] == list(range(10))
    assert meta["num_transitions"] == 10 * 1_000 * percent
    assert set(meta["source_detail"]["transitions_per_checkpoint"].values()) == {1_000 * percent}
    assert meta["frame_dtype"] == "bool" and meta["frame_stack"] == 1
    assert tuple(meta["frame_shape"]) == envs.observation_spec(f"MinAtar{game}")[0]
    assert meta["num_actions"] == envs.num_actions(f"MinAtar{game}", "dqn_replay")
    assert set(np.unique(arrays["reward"])) <= {0.0, 1.0}
    assert arrays["observation"].any(axis=(1, 2, 3)).all()  # every MinAtar state shows something
