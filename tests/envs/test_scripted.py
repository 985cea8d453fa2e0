"""Scripted RAM controller for Pong: RAM addresses match the screen, it beats random, eps mix."""

import numpy as np
import pytest

from offline_moe.envs.atari import AtariEnv
from offline_moe.envs.scripted import PONG_RAM, PongController, ScriptedPolicy

# Pong's RGB colours (ALE NTSC palette): the player's paddle and the ball.
PADDLE_RGB, BALL_RGB = (92, 186, 92), (236, 236, 236)
FIELD = slice(34, 194)  # screen rows between the top and bottom walls


def _rows_of(screen: np.ndarray, rgb) -> np.ndarray:
    mask = np.all(screen[FIELD] == rgb, axis=-1)
    return np.flatnonzero(mask.any(axis=1)) + FIELD.start


def test_pong_ram_addresses_match_the_screen():
    """Paddle bottom row - ram[51] in {1, 2}; ball top row - ram[54] in {-14, -15}; column - 49.

    (One row of slack: the screen and the RAM disagree by a row on some frames of a move.)
    """
    env = AtariEnv("Pong", protocol="dqn_replay", seed=0, sticky_action_prob=0.0)
    env.reset()
    up, down = env.action_set.index(3), env.action_set.index(4)
    checked_paddle = checked_ball = 0
    scored = False
    for t in range(150):
        step = env.step(up if (t // 15) % 2 else down)
        ram, screen = env.ram(), env._ale.getScreenRGB()
        paddle = _rows_of(screen, PADDLE_RGB)
        if len(paddle) == 16:  # wholly on the field (not squashed against a wall)
            assert paddle.max() - int(ram[PONG_RAM["player_y"]]) in (1, 2)
            checked_paddle += 1
        ball = _rows_of(screen, BALL_RGB)
        if len(ball):
            assert ram[PONG_RAM["ball_y"]] != 0
            assert ball.min() - int(ram[PONG_RAM["ball_y"]]) in (-14, -15)
            cols = np.flatnonzero(np.all(screen[FIELD] == BALL_RGB, axis=-1).any(axis=0))
            assert cols.min() == int(ram[PONG_RAM["ball_x"]]) - 49
            checked_ball += 1
        else:
            assert ram[PONG_RAM["ball_y"]] == 0  # no ball in play
        if step.reward < 0:  # the opponent scored: its counter in RAM went up
            assert ram[PONG_RAM["enemy_score"]] >= 1
            scored = True
    assert checked_paddle >= 20 and checked_ball >= 20 and scored


def _episode_return(policy: str, seed: int, cap: int, game: str = "Pong") -> float:
    from offline_moe.data.record import make_policy

    env = AtariEnv(game, protocol="dqn_replay", seed=seed, max_episode_steps=cap)
    agent = make_policy(policy, env.num_actions, np.random.default_rng(seed), 0.0, env=env)
    env.reset()
    total = 0.0
    while True:
        step = env.step(agent.act())
        total += step.reward
        if step.terminated or step.truncated:
            return total


@pytest.mark.slow
def test_scripted_beats_random_on_pong():
    """2 episodes each, 1,000 agent steps (sticky actions 0.25), seeds 0 and 1.

    Measured over 10 such episodes: random -19.9 (std 1.4), scripted -1.6 (std 2.1).
    """
    scripted = [_episode_return("scripted", s, 1000) for s in (0, 1)]
    random = [_episode_return("random", s, 1000) for s in (0, 1)]
    assert max(random) <= -15 and min(scripted) >= -8, (scripted, random)


@pytest.mark.slow
def test_scripted_beats_random_on_freeway():
    """One episode each, 300 agent steps: UP crosses about every 90 steps, random never."""
    scripted, random = (_episode_return(p, 0, 300, game="Freeway") for p in ("scripted", "random"))
    assert scripted >= 2 and random == 0, (scripted, random)


class _FixedRamEnv:
    """Stands in for AtariEnv's RAM side: the ball far below the paddle (controller: down)."""

    game = "Pong"
    num_actions = 6
    action_set = (0, 1, 3, 4, 11, 12)

    def ram(self):
        ram = np.zeros(128, np.uint8)
        ram[PONG_RAM["player_y"]], ram[PONG_RAM["ball_y"]] = 60, 180
        return ram


def test_epsilon_mix():
    from offline_moe.data.record import RandomPolicy

    env = _FixedRamEnv()
    down = env.action_set.index(4)
    assert PongController(env.action_set)(env.ram()) == down
    n = 6000
    expert = ScriptedPolicy(env, np.random.default_rng(0), eps=0.0)
    assert {expert.act() for _ in range(100)} == {down}
    # eps = 0.3: an action other than the controller's with probability 0.3 * 5/6 = 0.25.
    mixed = ScriptedPolicy(env, np.random.default_rng(0), eps=0.3)
    acts = np.array([mixed.act() for _ in range(n)])
    assert abs((acts != down).mean() - 0.25) < 0.02
    # eps = 1: exactly the random policy's actions from the same seed.
    full = ScriptedPolicy(env, np.random.default_rng(5), eps=1.0)
    rand = RandomPolicy(env.num_actions, np.random.default_rng(5))
    assert [full.act() for _ in range(n)] == [rand.act() for _ in range(n)]
    with pytest.raises(ValueError, match=r"--epsilon: expected a probability in \[0, 1\]"):
        ScriptedPolicy(env, np.random.default_rng(0), eps=1.5)


def test_record_scripted_eps1_is_random_and_refuses_other_games():
    from offline_moe.data.record import record, record_split
    from offline_moe.replay.identity import policy_identity

    assert policy_identity("scripted", 0.25) == "scripted_0.25"  # caches name the quality

    def actions(policy, eps):
        eps_iter = record_split("Pong", 0, 120, policy=policy, seed=3, eps=eps)
        return np.concatenate([e["steps"]["action"][:-1] for e in eps_iter])

    assert np.array_equal(actions("scripted", 1.0), actions("random", 0.0))
    assert not np.array_equal(actions("scripted", 0.0), actions("random", 0.0))
    msg = "no scripted controller for 'Breakout'; valid games: Freeway, Pong"
    with pytest.raises(ValueError, match=msg):
        record("Breakout", 10, "/nonexistent", policy="scripted")


def test_local_data_names_scripted_recordings_by_quality():
    from offline_moe.data import local
    from offline_moe.replay import identity

    path = local.local_cache_dir("Pong", 50000, policy="scripted", eps=0.25)
    assert path == "data/cache/Pong_scripted_0.25_50000steps_seed0"
    assert identity.CACHE_NAME_RE.fullmatch(path.split("/")[-1])
    assert (
        identity.recording_identity("Pong", 10, policy="scripted", eps=0)["policy"] == "scripted_0"
    )
    assert local.local_cache_dir("Pong", 3000) == "data/cache/Pong_random_3000steps_seed0"


def test_bench_learning_real_game_hook_pong():
    from offline_moe.launch import experiments as learning
    from offline_moe.train.offline import unpack

    hook = learning.hook_for("pong")
    assert (hook.game, hook.policy, hook.eps, hook.data_steps) == ("Pong", "scripted", 0.25, 50000)
    c = learning.make_config(hook, "cql", "baseline", 4000, seeds=3)
    c.data.cache_dir = "data/cache/Pong"  # run_one points it at the recorded cache
    tc, lc, ec = unpack(c.to_dict())
    assert (tc.game, tc.num_seeds) == ("Pong", 3)
    assert tc.num_iterations * tc.updates_per_iteration == 4000
    assert lc.cql_coefficient == 1.0 and lc.learning_rate == pytest.approx(2.5e-4)
    assert ec.max_episode_steps == learning.REAL_GAME_EVAL_CAP and c.torso.builtin.width == 0.125
    # --policy / --epsilon replace the data policy; random data carry no eps.
    assert learning.hook_for("Pong", "scripted", 0.0).eps == 0.0
    assert learning.hook_for("Pong", "random", 0.3).eps is None
    assert learning.hook_for("Breakout").policy == "random"  # no controller: random data
    with pytest.raises(ValueError, match="multiples of 500"):
        hook.overrides("cql", 750)
    # CI over seeds: all seeds well above random -> the interval excludes it.
    out = learning.ci95_over_seeds([-15.0, -14.0, -16.0], -19.9)
    assert out["mean"] == -15.0 and -16.0 <= out["ci95"][0] < out["ci95"][1] <= -14.0
    assert out["excludes_random"] is True
    assert learning.ci95_over_seeds([-21.0, -15.0, -14.0], -19.9)["excludes_random"] is False
