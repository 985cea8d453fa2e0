"""offline_moe.envs.pool: worker processes step the emulators exactly as this process does."""

import numpy as np

from offline_moe.envs.pool import EmulatorPool, worker_count


def test_worker_count():
    assert worker_count(0, 5) == 0
    assert worker_count(3, 2) == 2
    assert 0 <= worker_count(-1, 4) <= 4


def test_batched_units_in_workers_match_in_process():
    seeds = [1, 2, 3]
    kw = dict(num_envs=2, stack=4, max_episode_steps=40)
    rng = np.random.default_rng(0)
    with (
        EmulatorPool("Pong", "dqn_replay", seeds, **kw) as local,
        EmulatorPool("Pong", "dqn_replay", seeds, workers=2, **kw) as remote,
        EmulatorPool("Pong", "dqn_replay", seeds, workers=2, fields=("obs", "done"), **kw) as few,
    ):
        a, b = local.reset(), remote.reset()
        assert a.shape == (3, 2, 84, 84, 4)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, few.reset())
        done = 0
        for t in range(60):
            actions = rng.integers(0, 6, size=(3, 2))
            active = None if t < 30 else np.array([[True, False]] * 3)
            x, y = local.step(actions, active), remote.step(actions, active)
            assert x._fields == y._fields
            for f, g in zip(x, y):
                np.testing.assert_array_equal(f, g)
            obs, d = few.step(actions, active)  # a plain tuple of the chosen fields
            np.testing.assert_array_equal(obs, x.obs)
            np.testing.assert_array_equal(d, x.done)
            done += int(x.done.sum())
        assert done > 0  # the 40-step cap ended episodes: resets are compared too
