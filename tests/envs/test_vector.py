"""offline_moe.envs.vector: ale-py's vector interface is pixel-identical to BatchedAtari."""

import numpy as np
import pytest

from offline_moe.envs import vector
from offline_moe.envs.pool import EmulatorPool

pytestmark = pytest.mark.skipif(not vector.available(), reason="ale-py without vector interface")


@pytest.mark.parametrize(
    "game,cap,steps",
    [
        ("Breakout", 27_000, 260),  # random play loses all lives: game-over resets compared
        ("Pong", 40, 90),  # the step cap truncates: truncation resets compared
    ],
)
def test_same_pixels_rewards_and_episode_ends_as_batched_atari(game, cap, steps):
    seeds = [3, 11]
    kw = dict(num_envs=2, stack=4, max_episode_steps=cap)
    rng = np.random.default_rng(0)
    with (
        EmulatorPool(
            game, "dqn_replay", seeds, fields=("obs", "done", "episode_return"), **kw
        ) as pool,
        vector.VectorAtari(game, "dqn_replay", seeds, num_threads=2, **kw) as vec,
    ):
        a, b = pool.reset(), vec.reset()
        assert b.shape == (2, 2, 84, 84, 4) and b.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
        ends, returns = 0, []
        for t in range(steps):
            actions = rng.integers(0, vec.num_actions, size=(2, 2))
            # In the last quarter two envs stop for good (as finished envs do in evaluation).
            active = None if t < 3 * steps // 4 else np.array([[True, False], [False, True]])
            obs_p, done_p, ret_p = pool.step(actions, active)
            obs_v, done_v, ret_v = vec.step(actions, active)
            np.testing.assert_array_equal(obs_p, obs_v)  # every pixel of every stack
            np.testing.assert_array_equal(done_p, done_v)
            np.testing.assert_array_equal(ret_p, ret_v)
            ends += int(done_p.sum())
            returns += ret_p[done_p].tolist()
    assert ends >= 2  # episode ends (and the resets after them) were compared
    if game == "Breakout":
        assert max(returns) > 0  # rewards were compared, not only zeros


def test_seeds_of_a_unit_follow_batched_atari():
    from offline_moe.envs.batched import BatchedAtari

    env = BatchedAtari("Pong", 3, "dqn_replay", seed=5)
    # BatchedAtari seeds copy i with SeedSequence(5).spawn(3)[i]; ALE keeps it modulo 2**31.
    spawned = [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(5).spawn(3)]
    assert vector.env_seeds_of_unit(5, 3) == [s % 2**31 for s in spawned]
    assert len(env.envs) == 3


def test_refuses_protocols_it_cannot_reproduce():
    with pytest.raises(ValueError, match="atari100k.*valid: \\['dqn_replay'\\]"):
        vector.VectorAtari("Pong", "atari100k", [0], num_envs=1)


def test_evaluate_gives_the_same_results_with_either_backend():
    import dataclasses

    import jax

    from offline_moe.envs.evaluate import EvalConfig, evaluate

    def act_fn(params, obs, keys, eps):  # random actions from the keys: depends on the seed
        return jax.vmap(lambda k: jax.random.randint(k, (obs.shape[1],), 0, 6))(keys)

    cfg = EvalConfig(steps=60, num_envs=2, max_episode_steps=25, backend="pool")
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    pool = evaluate(act_fn, None, game="Pong", cfg=cfg, keys=keys, env_seeds=[4, 9])
    vec = evaluate(
        act_fn,
        None,
        game="Pong",
        cfg=dataclasses.replace(cfg, backend="vector"),
        keys=keys,
        env_seeds=[4, 9],
    )
    assert pool["episode_returns"] == vec["episode_returns"]
    assert pool["agent_steps"] == vec["agent_steps"] and min(pool["agent_steps"]) >= 60
    with pytest.raises(ValueError, match="backend.*valid: auto, pool, vector"):
        EvalConfig(backend="threads")
    assert EvalConfig().backend == "auto"
    assert vector.supports("Pong", "dqn_replay")
    assert not vector.supports("Catch", "dqn_replay") and not vector.supports("Pong", "atari100k")
