"""Memory plan: replay + seeds' states against the device, with the sizes and options named."""

import jax
import jax.numpy as jnp
import pytest

from offline_moe.learners import LearnerConfig, init_seeds, make_learner, seed_keys
from offline_moe.replay import memory
from tests.learners.test_core import TinyTorso

GiB = 2**30


def test_paper_5pct_fits_an_80gb_device_and_names_the_bytes():
    # 2.5M rows x (7,056 frame + 18 other) bytes = 17.685 GB; 5 seeds of 60 MiB states.
    plan = memory.plan_memory(
        2_500_000, replay="auto", state_bytes=5 * 60 * 2**20, num_seeds=5, capacity=80 * GiB
    )
    assert plan.replay == "device" and plan.fits
    assert plan.replay_device_bytes == 2_500_000 * 7_074
    assert plan.device_bytes == 2_500_000 * 7_074 + 300 * 2**20
    assert plan.headroom == 4 * GiB  # 5% of 80 GiB
    assert "16.47 GiB" in plan.describe() and "5 seed(s)" in plan.describe()


def test_too_large_for_the_device_is_refused_with_sizes_and_options():
    with pytest.raises(memory.MemoryPlanError) as e:
        memory.plan_memory(
            5_000_000,  # the paper's 10%
            replay="device",
            state_bytes=GiB // 2,
            num_seeds=5,
            capacity=30 * GiB,
            capacity_source="A100 memory_stats()['bytes_limit']",
            cache_dir="data/cache/Pong_run1_10pct",
        )
    msg = str(e.value)
    assert "data/cache/Pong_run1_10pct" in msg and "32.94 GiB" in msg and "30.00 GiB" in msg
    assert "--config.data.replay=host" in msg and "XLA_PYTHON_CLIENT_MEM_FRACTION" in msg
    assert "--config.num_seeds" in msg


def test_auto_falls_back_to_the_host_replay():
    plan = memory.plan_memory(
        5_000_000, replay="auto", state_bytes=GiB // 2, num_seeds=5, capacity=30 * GiB
    )
    assert plan.replay == "host" and plan.fits
    assert plan.replay_device_bytes == 5_000_000 * 18  # everything but the frames


def test_unknown_mode_lists_the_valid_ones():
    with pytest.raises(ValueError, match="config.data.replay.*auto, device, host"):
        memory.plan_memory(10, replay="gpu", state_bytes=0, num_seeds=1, capacity=GiB)


def test_state_bytes_are_exact():
    learner = make_learner(LearnerConfig(agent="cql"), TinyTorso(), num_actions=3)
    state = init_seeds(learner, seed_keys(0, 3), jnp.zeros((1, 84, 84, 4), jnp.uint8))
    want = sum(x.nbytes for x in jax.tree.leaves(state))
    assert memory.state_bytes(learner, 3) == want
    assert memory.device_capacity()[0] > 0
