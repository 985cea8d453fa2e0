"""Frames of any shape through the cache: MinAtar's bool [10, 10, C] states, stack 1 and 2."""

import numpy as np
import pytest

from offline_moe.errors import CacheError
from offline_moe.replay.cache import frame_spec, load_cache, read_meta
from offline_moe.replay.cache_writer import write_cache
from offline_moe.replay.device import DeviceReplay
from offline_moe.replay.host import HostReplay

C = 7  # MinAtar Freeway's channels


def _episode(t: int, offset: int, terminated: bool):
    """Frame k of the episode has exactly cell (k % 10, (k + offset) % 10, k % C) set, so a
    sampled frame names its step; reward = step index."""
    obs = np.zeros((t, 10, 10, C), bool)
    for k in range(t):
        obs[k, k % 10, (k + offset) % 10, k % C] = True
    final = None if terminated else np.zeros((10, 10, C), bool)
    return {
        "observations": obs,
        "actions": np.arange(t) % 6,
        "rewards": np.arange(t, dtype=np.float32),
        "terminated": terminated,
        "final_observation": final,
    }


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("any") / "minatar_cache"
    episodes = [_episode(12, 0, True), _episode(9, 3, False)]
    layout = dict(frame_shape=(10, 10, C), frame_dtype=bool, frame_stack=1)
    return write_cache(out, episodes, meta={"game": "MinAtarFreeway", "num_actions": 6}, **layout)


def test_meta_and_arrays(cache_dir):
    meta = read_meta(cache_dir)
    assert (meta["frame_shape"], meta["frame_dtype"], meta["frame_stack"]) == (
        [10, 10, C],
        "bool",
        1,
    )
    assert frame_spec(meta) == ((10, 10, C), np.dtype(bool), 1)
    arrays, _ = load_cache(cache_dir)
    assert arrays["observation"].dtype == np.bool_ and arrays["observation"].shape == (
        22,
        10,
        10,
        C,
    )
    # A cache without the frame fields (written before them) is Atari's.
    assert frame_spec({"frame_shape": [84, 84]}) == ((84, 84), np.dtype(np.uint8), 4)


def _check_batch(batch, stack):
    obs = np.asarray(batch["obs"])
    assert obs.dtype == np.bool_ and obs.shape == batch["next_obs"].shape == (64, 10, 10, stack * C)
    for o, r in zip(obs, np.asarray(batch["reward"])):
        newest = o[..., (stack - 1) * C :]  # the last frame's channels (envs.frames)
        k = int(r)  # reward = step index = the newest frame's step
        assert newest.sum() == 1 and newest[k % 10, :, k % C].any()
        if stack == 2 and k == 0:
            assert not o[..., :C].any()  # zero frame before the episode start


@pytest.mark.parametrize("stack", [None, 2])
def test_device_and_host_replay_agree(cache_dir, stack):
    import jax

    dev = DeviceReplay.load(cache_dir, stack=stack, n_step=1)
    host = HostReplay.load(cache_dir, stack=stack, n_step=1)
    k = 1 if stack is None else stack  # None: meta.json's frame_stack
    assert dev.stack == host.stack == k and dev.obs_shape == host.obs_shape == (10, 10, k * C)
    key = jax.random.key(3)
    a, b = dev.sample(key, 64), host.sample(key, 64)
    for name in a:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)
    _check_batch(a, k)


def test_writer_refuses_other_frames(tmp_path):
    bad = _episode(3, 0, True)
    bad["observations"] = bad["observations"].astype(np.uint8)
    with pytest.raises(ValueError, match=r"bool \[10, 10, 7\]"):
        write_cache(tmp_path / "c", [bad], frame_shape=(10, 10, C), frame_dtype=bool)
    with pytest.raises(ValueError, match="frame_dtype"):
        write_cache(tmp_path / "d", [bad], frame_shape=(10, 10, C), frame_dtype=np.float32)
    with pytest.raises(CacheError):
        load_cache(tmp_path / "c")
