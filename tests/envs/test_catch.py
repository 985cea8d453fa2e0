"""Catch (offline_moe.envs.catch) and the game-name dispatch (offline_moe.envs.registry)."""

import json

import numpy as np
import pytest

from offline_moe import envs
from offline_moe.envs import catch
from offline_moe.envs.batched import BatchedAtari
from offline_moe.envs.catch import CatchEnv
from offline_moe.envs.pool import EmulatorPool


def _board(frame):
    """84x84 frame -> the 10x5 board (one pixel sampled inside every cell)."""
    rows = [(r * 84 // 10 + (r + 1) * 84 // 10) // 2 for r in range(10)]
    cols = [(c * 84 // 5 + (c + 1) * 84 // 5) // 2 for c in range(5)]
    return frame[np.ix_(rows, cols)] // 255


def test_render_cells_known_answer():
    frame = catch.render(ball_x=4, ball_y=0, paddle_x=2)
    assert frame.shape == (84, 84) and frame.dtype == np.uint8
    assert set(np.unique(frame)) == {0, 255}
    expected = np.zeros((10, 5), np.uint8)
    expected[0, 4] = expected[9, 2] = 1
    np.testing.assert_array_equal(_board(frame), expected)
    # Pixel (i, j) shows cell (i * 10 // 84, j * 5 // 84): the ball's cell (0, 4) is pixel
    # rows 0..8 x columns 68..83 (9 x 16), the paddle's (9, 2) rows 76..83 x columns 34..50.
    assert frame[0:9, 68:84].all() and not frame[9, 68:84].any() and not frame[0:9, 67].any()
    assert frame[76:84, 34:51].all() and not frame[75, 34:51].any()
    assert int((frame > 0).sum()) == 9 * 16 + 8 * 17


def test_dynamics_catch_and_miss():
    env = CatchEnv(seed=3)
    # Optimal play: every episode is 9 steps and ends with +1.
    for _ in range(20):
        env.reset()
        rewards = []
        while True:
            st = env.step(catch.optimal_action(env.ball_x, env.paddle_x))
            rewards.append(st.reward)
            if st.terminated:
                break
        assert rewards == [0.0] * 8 + [1.0]
        assert st.terminal and not st.truncated and not st.life_lost
    # Moving away from the ball loses: paddle clipped at the far wall.
    env.reset()
    ball = env.ball_x
    away = 0 if ball >= 2 else 2
    out = [env.step(away) for _ in range(9)]
    assert env.paddle_x == (0 if away == 0 else 4)
    assert [s.reward for s in out] == [0.0] * 8 + [-1.0 if env.paddle_x != ball else 1.0]
    assert _board(out[-1].obs)[9].tolist() == [int(c in (env.paddle_x, ball)) for c in range(5)]
    with pytest.raises(RuntimeError):
        env.step(1)
    env.reset()
    with pytest.raises(ValueError, match="action 3"):
        env.step(3)


def test_ball_falls_one_row_per_step():
    env = CatchEnv(seed=0)
    frame = env.reset()
    assert _board(frame)[0].sum() == 1 and _board(frame)[9, 2] == 1
    for t in range(1, 9):  # rows 1..8: ball and paddle in different rows
        board = _board(env.step(1).obs)
        assert board[t, env.ball_x] == 1 and board[9, 2] == 1 and board.sum() == 2
    board = _board(env.step(1).obs)  # row 9: the ball meets the paddle's row
    assert board[9, env.ball_x] == 1 and board[:9].sum() == 0


def test_deterministic_from_seed_and_start_distribution():
    def starts(seed):
        env = CatchEnv(seed=seed)
        out = []
        for _ in range(200):
            env.reset()
            out.append(env.ball_x)
            while not env.step(1).terminated:
                pass
        return out

    a, b, c = starts(5), starts(5), starts(6)
    assert a == b and a != c
    counts = np.bincount(a + c, minlength=5)
    assert counts.min() > 50  # every column is a start (400 draws, 80 expected each)


def test_random_policy_expected_return():
    assert catch.random_policy_return() == pytest.approx(-0.6)
    env, rng = CatchEnv(seed=1), np.random.default_rng(1)
    returns = []
    for _ in range(3000):
        env.reset()
        total = 0.0
        while True:
            st = env.step(int(rng.integers(3)))
            total += st.reward
            if st.terminated:
                break
        returns.append(total)
    # std of the return is 0.8; 3000 episodes: standard error 0.015.
    assert abs(np.mean(returns) + 0.6) < 0.06


def test_snapshot_resumes_bit_identically():
    env = CatchEnv(seed=11)
    env.reset()
    for a in (0, 2, 2):
        env.step(a)
    snap = json.loads(json.dumps(env.get_state()))  # must survive JSON (checkpoint meta)
    rng = np.random.default_rng(0)
    actions = rng.integers(3, size=60)

    def play(e):
        frames, rewards = [], []
        for a in actions:
            st = e.step(int(a))
            frames.append(st.obs)
            rewards.append(st.reward)
            if st.terminated:
                frames.append(e.reset())
        return np.stack(frames), rewards

    first = play(env)
    other = CatchEnv(seed=999)
    other.set_state(snap)
    second = play(other)
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]
    with pytest.raises(ValueError, match="cannot restore"):
        other.set_state({**snap, "game": "Pong"})


def test_protocol_knobs():
    for protocol in ("dqn_replay", "atari100k"):
        env = CatchEnv(protocol=protocol, seed=2)
        assert env.protocol.name == protocol
        assert env.protocol.sticky_action_prob == 0.0 and env.protocol.noop_max == 0
        assert not env.protocol.life_loss_terminal and env.max_episode_steps == 9
    # Same game under both protocols.
    a, b = CatchEnv(protocol="dqn_replay", seed=4), CatchEnv(protocol="atari100k", seed=4)
    np.testing.assert_array_equal(a.reset(), b.reset())
    with pytest.raises(ValueError, match="sticky"):
        CatchEnv(sticky_action_prob=0.25)
    with pytest.raises(ValueError, match="protocol"):
        CatchEnv(protocol="v5")
    env = CatchEnv(max_episode_steps=4)
    env.reset()
    steps = [env.step(1) for _ in range(4)]
    assert steps[-1].truncated and not steps[-1].terminated and not steps[-1].terminal


def test_registry_dispatch():
    for name in ("catch", "Catch", "CATCH"):
        assert envs.canonical_game(name) == "Catch"
        assert envs.num_actions(name) == 3 and envs.num_actions(name, "atari100k") == 3
        assert isinstance(envs.make_env(name, seed=0), CatchEnv)
    assert envs.canonical_game("space_invaders") == "SpaceInvaders"
    assert envs.num_actions("Pong") == 6
    assert envs.make_env("Pong").game == "Pong"
    assert envs.games()[0] == "Catch" and "Pong" in envs.games()
    with pytest.raises(ValueError, match="Catch"):
        envs.canonical_game("Catchh")


def test_batched_and_pool():
    batch = BatchedAtari("catch", 3, "dqn_replay", seed=1)
    obs = batch.reset()
    assert obs.shape == (3, 84, 84, 4) and not obs[..., :3].any()
    done_returns = []
    for t in range(18):
        st = batch.step(np.ones(3, int))
        done_returns += st.episode_return[st.done].tolist()
        if t == 8:
            assert st.done.all() and (st.episode_length == 9).all()
            assert not st.obs[..., :3].any()  # a new episode's stack starts with zeros
    assert len(done_returns) == 6 and set(done_returns) <= {-1.0, 1.0}
    seeds = [3, 4, 5]
    with (
        EmulatorPool("catch", "dqn_replay", seeds, num_envs=2) as local,
        EmulatorPool("catch", "dqn_replay", seeds, num_envs=2, workers=2) as remote,
    ):
        np.testing.assert_array_equal(local.reset(), remote.reset())
        rng = np.random.default_rng(0)
        for _ in range(12):
            a = rng.integers(3, size=(3, 2))
            x, y = local.step(a), remote.step(a)
            for f in x._fields:
                np.testing.assert_array_equal(getattr(x, f), getattr(y, f))


def test_recorder_and_ingest_accept_catch():
    from offline_moe.data import games
    from offline_moe.data.record import recordable_game

    assert games.KNOWN_ANSWER_GAMES == tuple(envs.KNOWN_ANSWER)
    assert "Catch" in games.RECORDABLE_GAMES and "Pong" in games.RECORDABLE_GAMES
    assert recordable_game("catch") == "Catch" and recordable_game("Pong") == "Pong"
    with pytest.raises(ValueError, match="Catch"):
        recordable_game("NotAGame")


def test_catch_board_is_catch_seen_as_its_board():
    """CatchBoard plays Catch's episodes (same seed, same actions: same rewards, terminals and
    snapshots) and shows the board the 84x84 frame is drawn from: bool [10, 5, 1], unstacked."""
    assert envs.observation_spec("catch_board") == ((10, 5, 1), np.dtype(np.bool_), 1)
    assert envs.observation_spec("Catch") == ((84, 84), np.dtype(np.uint8), 4)
    assert envs.canonical_game("CatchBoard") == "CatchBoard" and envs.num_actions("catchboard") == 3
    board, frames = envs.make_env("CatchBoard", seed=7), CatchEnv(seed=7)
    assert isinstance(board, catch.CatchBoardEnv) and board.game == "CatchBoard"
    rng = np.random.default_rng(0)
    rows = (np.arange(84) * 10) // 84
    cols = (np.arange(84) * 5) // 84
    b, f = board.reset(), frames.reset()
    caught = missed = 0
    for _ in range(200):
        assert b.shape == (10, 5, 1) and b.dtype == np.bool_ and b.sum() in (1, 2)
        # The 84x84 frame is the board scaled up: pixel (i, j) shows cell (i*10//84, j*5//84).
        np.testing.assert_array_equal(f, b[rows][:, cols, 0].astype(np.uint8) * 255)
        a = int(rng.integers(3))
        sb, sf = board.step(a), frames.step(a)
        assert (sb.reward, sb.terminated, sb.truncated) == (sf.reward, sf.terminated, sf.truncated)
        caught += sb.reward > 0
        missed += sb.reward < 0
        b, f = sb.obs, sf.obs
        if sb.terminated:
            b, f = board.reset(), frames.reset()
    assert caught > 0 and missed > 0
    state = board.get_state()
    assert state["game"] == "CatchBoard"
    with pytest.raises(ValueError, match="CatchBoard"):
        frames.set_state(state)
    with pytest.raises(ValueError, match="CatchBoardEnv plays 'CatchBoard'"):
        catch.CatchBoardEnv("Catch")
