"""MinAtar (offline_moe.envs.minatar) against the `minatar` package, and its registry names."""

import json

import minatar as minatar_pkg
import numpy as np
import pytest

from offline_moe import envs
from offline_moe.data import games as games_lib
from offline_moe.envs import minatar
from offline_moe.envs.batched import BatchedAtari

CHANNELS = {  # Young & Tian 2019, Table 1 / each game's `channels`
    "MinAtarAsterix": 4,
    "MinAtarBreakout": 4,
    "MinAtarFreeway": 7,
    "MinAtarSeaquest": 10,
    "MinAtarSpaceInvaders": 6,
}


def _raw_rollout(module: str, seed: int, actions) -> list[tuple]:
    """(state, reward, terminal) of raw `minatar.Environment` stepped by `actions`, resetting
    after each terminal; the seed set once, as MinAtar's own scripts do."""
    env = minatar_pkg.Environment(module)
    env.seed(seed)
    env.reset()
    out = [(env.state(), 0.0, False)]
    for a in actions:
        reward, terminal = env.act(int(a))
        out.append((env.state(), float(reward), bool(terminal)))
        if terminal:
            env.reset()
            out.append((env.state(), 0.0, False))
    return out


def _our_rollout(env, actions) -> list[tuple]:
    out = [(env.reset(), 0.0, False)]
    for a in actions:
        st = env.step(int(a))
        out.append((st.obs, st.reward, st.terminal))
        assert st.terminated == st.terminal and not st.truncated and not st.life_lost
        if st.terminated:
            out.append((env.reset(), 0.0, False))
    return out


@pytest.mark.parametrize("game", list(minatar.GAMES))
def test_steps_identically_to_minatar(game):
    """A recorded action sequence (uniform over the 6 actions, fixed seed) through our env
    and through raw `minatar.Environment` with the same seed: every state, reward and
    terminal equal, across episode boundaries (sticky actions 0.1 and ramping on, the
    defaults of both)."""
    actions = np.random.default_rng(7).integers(0, 6, size=1500)
    seed = 123
    ours = _our_rollout(envs.make_env(game, seed=seed), actions)
    raw = _raw_rollout(minatar.GAMES[game], seed, actions)
    assert len(ours) == len(raw)
    for t, ((o1, r1, d1), (o2, r2, d2)) in enumerate(zip(ours, raw)):
        assert o1.dtype == np.bool_ and o1.shape == (10, 10, CHANNELS[game]), t
        np.testing.assert_array_equal(o1, o2, err_msg=f"{game} state {t}")
        assert (r1, d1) == (r2, d2), (game, t)
    rewards = [r for _, r, _ in ours]
    assert any(r != 0 for r in rewards) or game == "MinAtarFreeway"  # the data is not trivial


def test_names_protocol_and_spec():
    for spelling in ("MinAtar/Breakout", "minatar:breakout", "minatar_breakout", "MINATARBREAKOUT"):
        assert envs.canonical_game(spelling) == "MinAtarBreakout"
    assert envs.canonical_game("minatar/space_invaders") == "MinAtarSpaceInvaders"
    assert envs.canonical_game("Breakout") == "Breakout"  # ALE's, not MinAtar's
    assert not envs.is_minatar("Breakout") and envs.is_minatar("MinAtar/Seaquest")
    assert set(minatar.GAMES) <= set(envs.registry.games())
    assert games_lib.MINATAR_GAMES == tuple(minatar.GAMES)  # the data side's list agrees
    assert set(minatar.GAMES) <= set(games_lib.RECORDABLE_GAMES)
    with pytest.raises(ValueError, match="MinAtarAsterix"):
        envs.canonical_game("minatar/pong")
    for game, c in CHANNELS.items():
        assert envs.num_actions(game) == 6 and envs.action_set(game) == tuple(range(6))
        assert envs.observation_spec(game) == ((10, 10, c), np.dtype(bool), 1)
    assert envs.observation_spec("Catch") == ((84, 84), np.dtype(np.uint8), 4)
    p = envs.registry.env_protocol("MinAtarFreeway", "atari100k")
    assert (p.name, p.sticky_action_prob, p.noop_max, p.life_loss_terminal) == (
        "atari100k",
        0.1,
        0,
        False,
    )
    env = envs.make_env("minatar/freeway", protocol="atari100k", sticky_action_prob=0.0)
    assert env.game == "MinAtarFreeway" and env.sticky_action_prob == 0.0
    assert env.protocol == p and env.max_episode_steps == 27_000


def test_snapshot_resumes_bit_identically_and_truncates():
    actions = np.random.default_rng(3).integers(0, 6, size=400)
    env = envs.make_env("MinAtarSeaquest", seed=5)
    env.reset()
    for a in actions[:150]:
        if env.step(int(a)).terminated:
            env.reset()
    snap = json.loads(json.dumps(env.get_state()))  # JSON-serialisable
    other = envs.make_env("MinAtarSeaquest", seed=99)
    other.set_state(snap)
    for a in actions[150:]:
        s1, s2 = env.step(int(a)), other.step(int(a))
        np.testing.assert_array_equal(s1.obs, s2.obs)
        assert s1 == s2._replace(obs=s1.obs)
        if s1.terminated:
            np.testing.assert_array_equal(env.reset(), other.reset())
    with pytest.raises(ValueError, match="cannot restore"):
        envs.make_env("MinAtarBreakout").set_state(snap)
    capped = envs.make_env("MinAtarBreakout", seed=0, max_episode_steps=3, sticky_action_prob=0)
    capped.reset()
    steps = [capped.step(0) for _ in range(3)]
    assert steps[-1].truncated and not steps[-1].terminal
    with pytest.raises(RuntimeError):
        capped.step(0)


def test_batched_frames_unstacked():
    envs_ = BatchedAtari("MinAtarBreakout", 2, seed=0, stack=1)
    obs = envs_.reset()
    assert obs.shape == (2, 10, 10, 4) and obs.dtype == np.bool_
    out = envs_.step(np.zeros(2, int))
    assert out.obs.shape == (2, 10, 10, 4) and out.final_frame.shape == (2, 10, 10, 4)
