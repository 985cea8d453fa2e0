"""Tests for offline_moe.envs on real ALE games (Pong, Breakout); a few hundred steps each."""

import json

import cv2
import numpy as np
import pytest

from offline_moe.envs import atari
from offline_moe.envs.atari import AtariEnv, num_actions, pool_and_resize
from offline_moe.envs.batched import BatchedAtari, benchmark_steps


def test_games_and_actions():
    assert "Pong" in atari.GAMES and "SpaceInvaders" in atari.GAMES
    for name in ("Pong", "pong", "PONG"):
        assert atari.canonical_game(name) == "Pong"
    assert atari.canonical_game("space_invaders") == "SpaceInvaders"
    assert atari.rom_id("MontezumaRevenge") == "montezuma_revenge"
    with pytest.raises(ValueError, match="unknown Atari game 'Pongg'.*Breakout.*Pong"):
        atari.canonical_game("Pongg")
    with pytest.raises(ValueError, match="valid: \\['atari100k', 'dqn_replay'\\]"):
        AtariEnv("Pong", protocol="v5")
    # Minimal action sets (DQN-Replay and Atari 100k): Pong 6, Breakout 4, full set 18.
    assert num_actions("Pong") == num_actions("Pong", "atari100k") == 6
    assert num_actions("Breakout") == 4
    assert atari.action_set("Breakout") == (0, 1, 3, 4)  # NOOP FIRE RIGHT LEFT
    assert num_actions("SpaceInvaders") == 6


def test_pool_and_resize_known_answers():
    a = np.full((210, 160), 10, np.uint8)
    b = np.full((210, 160), 20, np.uint8)
    b[:, :80] = 5
    out = pool_and_resize(a, b)
    assert out.shape == (84, 84) and out.dtype == np.uint8
    # max(10, 5) = 10 on the left half, max(10, 20) = 20 on the right; 160 / 84 columns is
    # not an integer ratio, so only the columns away from the seam are pure.
    assert (out[:, :41] == 10).all() and (out[:, 43:] == 20).all()
    # 210 rows -> 84 is exactly 2.5 source rows per output row: the top 105 rows map to the
    # top 42 output rows.
    c = np.zeros((210, 160), np.uint8)
    c[:105] = 200
    out = pool_and_resize(c, np.zeros_like(c))
    assert (out[:42] == 200).all() and (out[42:] == 0).all()
    # Same as cv2 INTER_AREA on the max.
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (2, 210, 160), dtype=np.uint8)
    want = cv2.resize(np.maximum(x, y), (84, 84), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(pool_and_resize(x, y), want)


def test_pong_frames_match_raw_ale():
    """Frame skip 4 + max-pool of frames 3 and 4 + resize, checked against a raw ALE."""
    env = AtariEnv("Pong", protocol="atari100k", seed=5)
    env.protocol = atari.Protocol("no_noops", 0.0, True, True, 0, 27_000)
    raw = atari._new_ale("Pong", seed=5, sticky=0.0)
    obs = env.reset()
    raw.reset_game()
    first = raw.getScreenGrayscale()
    np.testing.assert_array_equal(obs, pool_and_resize(first, np.zeros_like(first)))
    actions = atari.action_set("Pong")
    rng = np.random.default_rng(0)
    for _ in range(60):
        a = int(rng.integers(6))
        s = env.step(a)
        reward, screens = 0, []
        for _ in range(4):
            reward += raw.act(raw.getMinimalActionSet()[a])
            screens.append(raw.getScreenGrayscale())
        assert actions[a] == raw.getMinimalActionSet()[a].value
        np.testing.assert_array_equal(s.obs, pool_and_resize(screens[2], screens[3]))
        assert s.reward == reward
        assert s.obs.shape == (84, 84) and s.obs.dtype == np.uint8


def _play(env, actions):
    frames = [env.reset()]
    for a in actions:
        s = env.step(a)
        frames.append(s.obs)
        if s.terminated or s.truncated:
            break
    return np.stack(frames)


def test_determinism_and_sticky_actions():
    # Up/down in blocks of 3 steps: sticky actions shift when the paddle turns.
    actions = ([2] * 3 + [3] * 3) * 25
    no_sticky = [_play(AtariEnv("Pong", protocol="atari100k", seed=s), actions) for s in (1, 1)]
    np.testing.assert_array_equal(no_sticky[0], no_sticky[1])
    sticky_a = _play(AtariEnv("Pong", protocol="dqn_replay", seed=7), actions)
    sticky_b = _play(AtariEnv("Pong", protocol="dqn_replay", seed=7), actions)
    sticky_c = _play(AtariEnv("Pong", protocol="dqn_replay", seed=8), actions)
    np.testing.assert_array_equal(sticky_a, sticky_b)  # seeded
    assert not np.array_equal(sticky_a, sticky_c)  # sticky draws depend on the seed
    plain = _play(AtariEnv("Pong", protocol="dqn_replay", seed=7, sticky_action_prob=0.0), actions)
    assert not np.array_equal(sticky_a, plain)  # sticky actions change the trajectory
    assert AtariEnv("Pong").sticky_action_prob == 0.25


def test_noops_atari100k_only():
    env = AtariEnv("Pong", protocol="atari100k", seed=3)
    counts = []
    for _ in range(12):
        env.reset()
        counts.append(env.last_noops)
    assert all(0 <= c < 30 for c in counts)
    assert len(set(counts)) > 3  # random
    env2 = AtariEnv("Pong", protocol="atari100k", seed=3)
    counts2 = []
    for _ in range(12):
        env2.reset()
        counts2.append(env2.last_noops)
    assert counts == counts2  # seeded
    env = AtariEnv("Pong", protocol="dqn_replay", seed=3)
    env.reset()
    assert env.last_noops == 0


def _until_life_lost(env, max_steps=400):
    env.reset()
    lives = env.lives
    rng = np.random.default_rng(0)
    for _ in range(max_steps):
        s = env.step(int(rng.integers(env.num_actions)))
        if s.life_lost:
            return s, lives
    raise AssertionError("no life lost")


def test_life_loss_is_terminal_for_learning_only():
    env = AtariEnv("Breakout", protocol="atari100k", seed=0)
    s, lives = _until_life_lost(env)
    assert lives == 5 and env.lives == 4
    assert s.terminal and not s.terminated and not s.truncated
    s2 = env.step(1)  # the game goes on
    assert not s2.terminated and env.lives == 4
    env = AtariEnv("Breakout", protocol="dqn_replay", seed=0)
    s, _ = _until_life_lost(env)
    assert s.life_lost and not s.terminal and not s.terminated


def test_step_cap_truncates():
    env = AtariEnv("Pong", seed=0, max_episode_steps=10)
    env.reset()
    for i in range(10):
        s = env.step(0)
        assert s.truncated == (i == 9) and not s.terminated and not s.terminal
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    assert AtariEnv("Pong").max_episode_steps == 27_000
    with pytest.raises(ValueError, match="outside"):
        env.reset()
        env.step(6)


def test_batched_stacks_reset_and_cap():
    env = BatchedAtari("Pong", 2, "dqn_replay", seed=0, stack=4, max_episode_steps=7)
    obs = env.reset()
    assert obs.shape == (2, 84, 84, 4) and obs.dtype == np.uint8
    assert (obs[..., :3] == 0).all() and obs[..., 3].any()
    prev = obs
    for t in range(1, 8):
        r = env.step(np.array([0, 1]))
        assert r.obs.shape == (2, 84, 84, 4) and r.reward.dtype == np.float32
        if t < 7:
            assert not r.done.any()
            np.testing.assert_array_equal(r.obs[..., :3], prev[..., 1:])  # rolled stack
            np.testing.assert_array_equal(r.obs[..., 3], r.final_frame)
        else:
            assert r.done.all() and r.truncated.all() and not r.terminal.any()
            np.testing.assert_array_equal(r.episode_length, [7, 7])
            assert (r.obs[..., :3] == 0).all()  # new episode: zero frames
        prev = r.obs
    # The two envs got different seeds.
    assert env.envs[0]._rng.integers(1 << 30) != env.envs[1]._rng.integers(1 << 30)


def test_batched_life_loss_restarts_stack_under_atari100k():
    env = BatchedAtari("Breakout", 1, "atari100k", seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(400):
        r = env.step(rng.integers(4, size=1))
        if r.life_lost[0]:
            break
    assert r.life_lost[0] and r.terminal[0] and not r.done[0]
    assert (r.obs[0, ..., :3] == 0).all()
    np.testing.assert_array_equal(r.obs[0, ..., 3], r.final_frame[0])


def test_get_state_set_state_continues_identically():
    env = AtariEnv("Pong", protocol="dqn_replay", seed=11)  # sticky actions: RNG must travel
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(30):
        env.step(int(rng.integers(6)))
    snap = env.get_state()
    actions = rng.integers(6, size=40)
    want = [env.step(int(a)).obs for a in actions]
    other = AtariEnv("Pong", protocol="dqn_replay", seed=99)
    other.reset()
    other.set_state(json.loads(json.dumps(snap)))
    got = [other.step(int(a)).obs for a in actions]
    np.testing.assert_array_equal(np.stack(got), np.stack(want))
    assert other.episode_step == env.episode_step == 70
    with pytest.raises(ValueError, match="snapshot of Breakout"):
        AtariEnv("Pong").set_state({**snap, "game": "Breakout"})


def test_batched_inactive_envs_are_not_stepped():
    env = BatchedAtari("Pong", 2, "dqn_replay", seed=0)
    obs = env.reset()
    steps_before = [e.episode_step for e in env.envs]
    r = env.step(np.array([0, 0]), active=np.array([True, False]))
    assert [e.episode_step for e in env.envs] == [steps_before[0] + 1, steps_before[1]]
    np.testing.assert_array_equal(r.obs[1], obs[1])
    np.testing.assert_array_equal(r.final_frame[1], obs[1, ..., -1])
    assert r.reward[1] == 0 and not r.done[1]


def test_benchmark_steps_runs():
    assert benchmark_steps("Pong", num_envs=2, steps=20) > 0
