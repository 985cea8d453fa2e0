"""`bench learner --layouts`: one record per CPU layout, each against the plain jit."""

import numpy as np

from offline_moe.bench.learner import bench_layouts
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
