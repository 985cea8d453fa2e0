"""`bench learner --layouts`: one record per CPU layout, each against the plain jit."""

import numpy as np
import pytest

from offline_moe.bench.learner import _layout_ok, bench_layouts, bench_one, game_setup
from offline_moe.replay.device import DeviceReplay


def test_layout_records_compare_every_layout_with_the_plain_jit():
    rng = np.random.default_rng(0)
    n = 32
    arrays = {
        "observation": rng.integers(0, 255, (n, 84, 84), dtype=np.uint8),
        "action": rng.integers(0, 3, n).astype(np.int32),
        "reward": np.zeros(n, np.float32),
        "terminal": np.arange(n) % 16 == 15,
        "episode_start": np.arange(n) % 16 == 0,
        "observation_only": np.zeros(n, bool),
    }
    replay = DeviceReplay.from_arrays(arrays, {"num_actions": 3}, stack=4, n_step=1, gamma=0.99)
    records = bench_layouts(
        "cql",
        "tests.toy_torso:ToyTorso",
        encoder="nature",
        batch=4,
        num_seeds=2,
        layouts=["plain", "1", "2:map"],
        steps=2,
        repeats=1,
        replay=replay,
    )
    assert [(r["layout"], r["updates_per_call"]) for r in records] == [
        ("plain", 1),
        ("1", 1),
        ("2:map", 2),
    ]
    for r in records:
        assert r["bench"] == "learner_layout" and r["num_seeds"] == 2
        assert r["compile_s"] > 0 and r["updates_per_s"] > 0 and r["updates_per_cpu_s"] > 0
        assert r["rate_over_plain"] > 0 and r["compile_over_plain"] > 0
    assert records[0]["rate_over_plain"] == records[0]["compile_over_plain"] == 1.0


def _board_replay(n=32, shape=(10, 10, 4)):
    rng = np.random.default_rng(1)
    arrays = {
        "observation": rng.random((n, *shape)) < 0.1,
        "action": rng.integers(0, 3, n).astype(np.int32),
        "reward": np.zeros(n, np.float32),
        "terminal": np.arange(n) % 16 == 15,
        "episode_start": np.arange(n) % 16 == 0,
        "observation_only": np.zeros(n, bool),
    }
    return DeviceReplay.from_arrays(arrays, {"num_actions": 3}, stack=1, n_step=1, gamma=0.99)


def test_bench_one_takes_the_observation_shape_of_a_board_cache():
    replay = _board_replay()
    rec = bench_one(
        "cql", "baseline", encoder="minatar", batch=4, steps=1, scan_steps=1, num_seeds=1,
        cache_dir=None, replay=replay, repeats=1, bare=False,
    )  # fmt: skip
    # MinAtar's encoder on 10x10x4: conv 3x3x4x16 (+16), Dense(1024 -> 128), head 128 -> 3.
    assert rec["params"] == (3 * 3 * 4 * 16 + 16) + (1024 * 128 + 128) + (128 * 3 + 3)
    assert rec["updates_per_s"] > 0


def test_game_setup_gives_the_shipped_cache_and_the_minatar_torso(tmp_path):
    cache, block = game_setup("MinAtarBreakout", str(tmp_path))
    assert cache == str(tmp_path / "cache" / "MinAtarBreakout_run1_5pct")
    assert (block["encoder"], block["expert_width"]) == ("minatar", 128)
    replay = DeviceReplay.load(cache)
    assert replay.obs_shape == (10, 10, 4) and replay.num_actions == 6
    with pytest.raises(SystemExit):
        game_setup("Pong", str(tmp_path))


@pytest.mark.parametrize(
    "item, ok",
    [("plain", True), ("1", True), ("rolled20", True), ("2:map", True), ("1:vmap", True),
     ("plain:map", False), ("0", False), ("2:grid", False), ("rolled", False)],
)  # fmt: skip
def test_layout_names(item, ok):
    assert _layout_ok(item) is ok
