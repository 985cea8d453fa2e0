"""Tests for offline_moe.replay.device on synthetic episodes (observation = reward = step index)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offline_moe.errors import CacheError
from offline_moe.replay import device as rp
from offline_moe.replay.cache import load_cache
from offline_moe.replay.cache_writer import CacheWriter
from offline_moe.replay.device import DeviceReplay

GAMMA = 0.5  # exact in float32, so n-step sums compare exactly


def frames(values):
    values = np.asarray(values, np.uint8)
    return np.broadcast_to(values[:, None, None], (len(values), 84, 84)).copy()


def synthetic_cache(path):
    """Three episodes; frame value = 10 * episode + step, reward = step, action = step + 1.

    A: 12 transitions, terminated.                       rows 0-11 (row 11 terminal)
    B: 12 transitions, truncated, final frame stored.     rows 12-24 (row 24 observation-only)
    C: 5 transitions, truncated, no final frame.          rows 25-29 (row 29 observation-only)
    """
    with CacheWriter(path, meta={"num_actions": 18}) as w:
        steps = np.arange(12)
        w.add_episode(frames(steps), steps + 1, steps.astype(np.float32), terminated=True)
        w.add_episode(
            frames(100 + steps),
            steps + 1,
            steps.astype(np.float32),
            terminated=False,
            final_observation=frames([112])[0],
        )
        steps = np.arange(5)
        w.add_episode(frames(200 + steps), steps + 1, steps.astype(np.float32), terminated=False)
    return path


# Episode layout of `synthetic_cache`: (first row, number of rows, terminated).
EPISODES = [(0, 12, True), (12, 13, False), (25, 5, False)]


def expected(t, stack, n):
    """Reference semantics written directly from the docstring, row by row (pure Python)."""
    first, rows, terminated = next(e for e in EPISODES if e[0] <= t < e[0] + e[1])
    last = first + rows - 1
    step = t - first
    base = 100 * [0, 12, 25].index(first)
    value = lambda row: base + (row - first)  # frame value of a row
    obs_only_row = None if terminated else last
    if t == obs_only_row:
        return None
    # Valid iff a terminal lies within rows t..t+n-1 or rows t+1..t+n exist in the episode.
    hit = terminated and last <= t + n - 1
    if not hit and t + n > last:
        return None
    length = last - t + 1 if hit else n
    reward = sum(GAMMA**k * (step + k) for k in range(length))
    discount = 0.0 if hit else GAMMA**n
    next_row = last if hit else t + length

    def stack_of(row):
        return [value(r) if r >= first else 0 for r in range(row - stack + 1, row + 1)]

    if hit or next_row == obs_only_row:
        next_action = 0
    else:
        next_action = next_row - first + 1
    return dict(
        obs=stack_of(t),
        action=step + 1,
        reward=reward,
        discount=discount,
        next_obs=stack_of(next_row),
        next_action=next_action,
    )


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return synthetic_cache(str(tmp_path_factory.mktemp("replay") / "cache"))


@pytest.mark.parametrize("stack, n_step", [(4, 1), (4, 3), (4, 10), (2, 3)])
def test_every_transition_matches_reference(cache_dir, stack, n_step):
    replay = DeviceReplay.load(cache_dir, stack=stack, n_step=n_step, gamma=GAMMA)
    want = {t: expected(t, stack, n_step) for t in range(30)}
    valid = sorted(t for t, e in want.items() if e is not None)
    np.testing.assert_array_equal(np.asarray(replay.valid), valid)
    assert replay.num_valid == len(valid)
    # Spot-check the validity rule by hand for n = 3: A all 12; B rows 12..21 (22, 23 need
    # rows past the final frame 24); C rows 25, 26 (27 needs row 30).
    if n_step == 3:
        assert valid == list(range(12)) + list(range(12, 22)) + [25, 26]

    batch = jax.jit(lambda r, t: r.transitions(t))(replay, jnp.asarray(valid))
    assert batch["obs"].shape == (len(valid), 84, 84, stack)
    assert batch["obs"].dtype == jnp.uint8 and batch["next_obs"].dtype == jnp.uint8
    assert batch["action"].dtype == jnp.int32 and batch["next_action"].dtype == jnp.int32
    assert batch["reward"].dtype == jnp.float32 and batch["discount"].dtype == jnp.float32
    # Frames are constant images: every pixel equals the corner pixel.
    obs = np.asarray(batch["obs"])
    assert (obs == obs[:, :1, :1, :]).all()
    for i, t in enumerate(valid):
        e = want[t]
        got_obs = list(np.asarray(batch["obs"][i, 0, 0]))
        got_next = list(np.asarray(batch["next_obs"][i, 41, 17]))
        assert got_obs == e["obs"], (t, got_obs, e)
        assert got_next == e["next_obs"], (t, got_next, e)
        assert int(batch["action"][i]) == e["action"], t
        assert float(batch["reward"][i]) == e["reward"], t
        assert float(batch["discount"][i]) == e["discount"], t
        assert int(batch["next_action"][i]) == e["next_action"], t


def test_worked_example_known_answers(cache_dir):
    # Hand-computed (gamma 0.5, n 3), episode A: rows 0..11, terminal at row 11.
    replay = DeviceReplay.load(cache_dir, stack=4, n_step=3, gamma=GAMMA)
    b = replay.transitions(jnp.array([0, 9, 10, 11, 21, 25]))
    np.testing.assert_array_equal(b["obs"][:, 0, 0], [
        [0, 0, 0, 0], [6, 7, 8, 9], [7, 8, 9, 10], [8, 9, 10, 11],
        [106, 107, 108, 109], [0, 0, 0, 200]])  # fmt: skip
    # row 0: 0 + .5*1 + .25*2 = 1; row 9: 9 + .5*10 + .25*11 = 16.75 (terminal at offset 2);
    # row 10: 10 + .5*11 = 15.5; row 11: 11; row 21 (B step 9): 9 + 5 + 2.75 = 16.75;
    # row 25 (C step 0): 0 + .5 + .5 = 1.
    np.testing.assert_array_equal(b["reward"], [1.0, 16.75, 15.5, 11.0, 16.75, 1.0])
    np.testing.assert_array_equal(b["discount"], [0.125, 0, 0, 0, 0.125, 0.125])
    # next stacks: row 0 -> row 3; terminal windows -> terminal row 11; row 21 -> row 24 (final
    # frame 112); row 25 -> row 28.
    np.testing.assert_array_equal(b["next_obs"][:, 0, 0], [
        [0, 1, 2, 3], [8, 9, 10, 11], [8, 9, 10, 11], [8, 9, 10, 11],
        [109, 110, 111, 112], [200, 201, 202, 203]])  # fmt: skip
    np.testing.assert_array_equal(b["next_action"], [4, 0, 0, 0, 0, 4])


def test_sample_only_valid_and_uniform(cache_dir):
    replay = DeviceReplay.load(cache_dir, stack=4, n_step=3, gamma=GAMMA)
    sample = jax.jit(lambda r, k: r.sample(k, 4096))
    b = sample(replay, jax.random.key(1))
    # Identify each sampled row by its action and last frame value (unique per row).
    last = np.asarray(b["obs"][:, 0, 0, -1]).astype(int)
    episode = np.where(last >= 200, 2, np.where(last >= 100, 1, 0))
    rows = np.array([0, 12, 25])[episode] + np.asarray(b["action"]) - 1
    valid = set(np.asarray(replay.valid).tolist())
    assert set(rows.tolist()) <= valid
    counts = np.bincount(rows, minlength=30)[sorted(valid)]
    assert counts.min() > 0  # every valid row is reachable
    # Uniform: 4096 / 24 = 170.7 per row; 6 sigma is ~78.
    assert abs(counts - 4096 / len(valid)).max() < 80
    # Same key -> same batch; different key -> different batch.
    b2 = sample(replay, jax.random.key(1))
    np.testing.assert_array_equal(b["action"], b2["action"])
    assert not np.array_equal(b["action"], sample(replay, jax.random.key(2))["action"])


def test_pytree_passed_as_argument(cache_dir):
    replay = DeviceReplay.load(cache_dir, stack=2, n_step=1, gamma=GAMMA)
    leaves, treedef = jax.tree_util.tree_flatten(replay)
    assert any(leaf.shape == (30, 84, 84) for leaf in leaves)
    rebuilt = jax.tree_util.tree_unflatten(treedef, leaves)
    assert rebuilt.stack == 2 and rebuilt.meta["num_actions"] == 18
    assert replay.num_actions == 18
    # The compiled program takes the frames as a parameter, not as a constant.
    f = jax.jit(lambda r, k: r.sample(k, 8)["obs"])
    hlo = f.lower(replay, jax.random.key(0)).as_text()
    assert "84x84" in hlo and len(hlo) < 200_000
    out = f(replay, jax.random.key(0))
    assert out.shape == (8, 84, 84, 2)


def test_nstep_targets_helper():
    r = jnp.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])
    term = jnp.array([[0, 0, 0], [0, 1, 0], [1, 1, 0]], bool)
    reward, discount, length = rp.nstep_targets(r, term, 0.5)
    np.testing.assert_array_equal(reward, [1 + 1 + 1, 1 + 1, 1])
    np.testing.assert_array_equal(discount, [0.125, 0, 0])
    np.testing.assert_array_equal(length, [3, 2, 1])


def test_index_helpers():
    start = np.array([1, 0, 0, 1, 0, 1], bool)
    np.testing.assert_array_equal(rp.episode_start_rows(start), [0, 0, 0, 3, 3, 5])
    np.testing.assert_array_equal(rp.episode_end_rows(start), [2, 2, 2, 4, 4, 5])
    idx, mask = rp.stack_indices(jnp.array([4, 1]), jnp.array([3, 0]), 3)
    np.testing.assert_array_equal(idx, [[3, 3, 4], [0, 0, 1]])
    np.testing.assert_array_equal(mask, [[False, True, True], [False, True, True]])


def test_no_valid_transitions_is_an_error(tmp_path):
    with CacheWriter(str(tmp_path / "c")) as w:
        w.add_episode(frames([1, 2]), [0, 0], [0.0, 0.0], terminated=False)
    arrays, meta = load_cache(str(tmp_path / "c"))
    assert meta["num_transitions"] == 1
    DeviceReplay.from_arrays(arrays, meta, n_step=1)  # row 0 -> next frame row 1: fine
    with pytest.raises(CacheError, match="n_step=2"):
        DeviceReplay.from_arrays(arrays, meta, n_step=2)


def test_benchmark_sampling_runs(cache_dir):
    replay = DeviceReplay.load(cache_dir, stack=4, n_step=1)
    rate = rp.benchmark_sampling(replay, batch_size=4, iters=2, repeats=1)
    assert rate > 0
