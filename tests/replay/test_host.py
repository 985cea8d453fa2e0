"""HostReplay: frames on the host, indices on the device; same batches and updates as on device."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offline_moe.learners import LearnerConfig, init_seeds, make_learner, make_train_fn, seed_keys
from offline_moe.learners.core import HostTrainStep
from offline_moe.replay.device import SAMPLE_STREAM, DeviceReplay
from offline_moe.replay.host import HostReplay, Prefetcher, benchmark_host_sampling
from tests.learners.test_core import TinyTorso, fake_arrays
from tests.train.test_offline import tiny


def truncated_arrays():
    """fake_arrays plus a truncated episode with its final frame (observation-only row)."""
    arrays, meta = fake_arrays(num_rows=70, seed=1)
    arrays["terminal"][63] = False  # episode 4 (rows 48-69) ends truncated ...
    arrays["observation_only"][69] = True  # ... with its final frame stored
    arrays["episode_start"][64] = False
    return arrays, meta


def test_sample_equals_device_replay():
    arrays, meta = truncated_arrays()
    # n = 3: windows that hit a terminal, run into the truncated end, or span full episodes
    dev = DeviceReplay.from_arrays(arrays, meta, stack=4, n_step=3, gamma=0.9)
    host = HostReplay.from_arrays(arrays, meta, stack=4, n_step=3, gamma=0.9)
    assert host.num_valid == dev.num_valid and host.num_rows == 70
    assert host.device_bytes() < 70 * 30  # no frames on the device
    sample = jax.jit(lambda r, k: r.sample(k, 128))
    for k in range(2):
        key = jax.random.PRNGKey(k)
        a, b = sample(dev, key), host.sample(key, 128)
        assert set(a) == set(b)
        for name in a:
            np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)
    # Zero frames at episode starts survive the host gather (masks applied on the device).
    t = jnp.array([16, 17])  # first and second rows of episode 2
    rows = host.index.transition_rows(t)
    assert np.asarray(rows["obs_mask"]).tolist() == [[0, 0, 0, 1], [0, 0, 1, 1]]


def test_prefetched_blocks_follow_the_train_fn_keys():
    arrays, meta = fake_arrays()
    dev = DeviceReplay.from_arrays(arrays, meta, stack=4, n_step=1)
    host = HostReplay.from_arrays(arrays, meta, stack=4, n_step=1)
    rng = jnp.stack([jax.random.PRNGKey(5), jax.random.PRNGKey(6)])
    with Prefetcher(host, rng, 10, batch_size=8, num_steps=3) as pre:
        block = pre.get(10)
        assert block["frames"].shape == (2, 3, 8, 8, 84, 84)
        # seed 1, update 2 of the call at step 10 uses fold_in(fold_in(rng, 12), SAMPLE_STREAM)
        key = jax.random.fold_in(jax.random.fold_in(rng[1], 12), SAMPLE_STREAM)
        want = jax.jit(lambda r, k: r.sample(k, 8))(dev, key)
        from offline_moe.replay.device import assemble_batch

        got = assemble_batch(block["frames"][1, 2], jax.tree.map(lambda x: x[1, 2], block))
        np.testing.assert_array_equal(np.asarray(got["obs"]), np.asarray(want["obs"]))
        np.testing.assert_array_equal(np.asarray(got["next_obs"]), np.asarray(want["next_obs"]))
        np.testing.assert_array_equal(np.asarray(got["action"]), np.asarray(want["action"]))
        with pytest.raises(RuntimeError, match="expected the block of step 99, got 13"):
            pre.get(99)


def test_training_from_host_replay_matches_device_replay():
    arrays, meta = fake_arrays()
    dev = DeviceReplay.from_arrays(arrays, meta, stack=4, n_step=1)
    host = HostReplay.from_arrays(arrays, meta, stack=4, n_step=1)
    learner = make_learner(LearnerConfig(agent="cql", batch_size=4), TinyTorso(), num_actions=3)
    obs0 = jnp.zeros((1, 84, 84, 4), jnp.uint8)
    a = init_seeds(learner, seed_keys(0, 2), obs0)
    b = init_seeds(learner, seed_keys(0, 2), obs0)
    train_fn = make_train_fn(learner, 4, 2)
    step = HostTrainStep(learner, host, b, batch_size=4, num_steps=2)
    try:
        for _ in range(3):
            a, ma = train_fn(a, dev)
            b, mb = step(b)
    finally:
        step.close()
    assert np.asarray(b.step).tolist() == [6, 6]
    np.testing.assert_allclose(np.asarray(ma["loss"]), np.asarray(mb["loss"]), rtol=1e-5)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)


def test_benchmark_reports_a_rate():
    arrays, meta = fake_arrays()
    dev = DeviceReplay.from_arrays(arrays, meta, stack=4, n_step=1)
    rec = benchmark_host_sampling(dev, batch_size=8, iters=4, calls=2)
    assert rec["transitions_per_s"] > 0 and rec["host_bytes_per_transition"] == 8 * 84 * 84


@pytest.mark.slow
def test_train_offline_with_host_replay_and_the_memory_refusal(tmp_path, monkeypatch):
    from offline_moe.bench.learner import ale_cache
    from offline_moe.configs import cql
    from offline_moe.replay import memory
    from offline_moe.train.offline import train_and_evaluate

    cache_dir = ale_cache(
        str(tmp_path / "cache"), game="Pong", steps=120, max_episode_steps=60, seed=3
    )
    lines = []
    config = tiny(cql.get_config("smoke,game=Pong"), cache_dir, num_iterations=1)
    config.data.replay = "host"
    summary = train_and_evaluate(config, str(tmp_path / "host"), log=lines.append)
    assert summary["done"] is True and summary["updates"] == 4
    assert any("memory plan" in x and "host memory (HostReplay)" in x for x in lines)

    # A device too small for the frames: refused before anything is loaded, naming sizes.
    monkeypatch.setattr(memory, "device_capacity", lambda: (2**20, "a 1 MiB test device"))
    config = tiny(cql.get_config("smoke,game=Pong"), cache_dir, num_iterations=1)
    config.data.replay = "device"
    match = "does not fit.*1 MiB test device.*replay=host"
    with pytest.raises(memory.MemoryPlanError, match=match):
        train_and_evaluate(config, str(tmp_path / "device"), log=lines.append)
