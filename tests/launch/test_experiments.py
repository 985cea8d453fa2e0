"""`offline_moe.launch.experiments` (fast parts): Catch configs, steps-to-threshold, the sweep
hook; the learning bench's table."""

import numpy as np
import pytest

from offline_moe.bench.learning import format_table
from offline_moe.launch import experiments, sweep


def test_steps_to_threshold_known_answers():
    steps = [200, 400, 600]
    returns = [[0.2, 0.4], [0.8, 1.0], [1.0, 1.0]]  # [iteration][seed]
    # Mean over seeds: 0.3, 0.9, 1.0 -> first >= 0.9 at 400; seed 0 at 600, seed 1 at 400.
    assert experiments.steps_to_threshold(steps, returns, 0.9) == (400, [600, 400])
    assert experiments.steps_to_threshold(steps, [[0.1], [0.2], [0.3]], 0.9) == (None, [None])
    assert experiments.steps_to_threshold(steps, returns, None) == (None, None)


def test_catch_configs_build_for_every_agent():
    from offline_moe.train.offline import unpack
    from offline_moe.train.online import build

    hook = experiments.hook_for("catch")
    assert hook is experiments.CATCH and hook.threshold == 0.9
    for agent in experiments.OFFLINE_AGENTS:
        c = experiments.make_config(hook, agent, "top1_moe@num_experts=4", 1000, seeds=2, seed=3)
        c.data.cache_dir = "data/cache/Catch"  # run_one points it at the recorded cache
        tc, lc, ec = unpack(c.to_dict())
        assert (tc.game, tc.num_seeds, tc.seed) == ("Catch", 2, 3)
        assert tc.num_iterations * tc.updates_per_iteration == 1000
        assert lc.target_update_period == 100 and lc.learning_rate == pytest.approx(1e-3)
        assert ec.steps == experiments.CATCH_EVAL_STEPS and c.torso.num_experts == 4
        assert c.torso.builtin.encoder == "nature" and c.torso.name == "top1_moe"
    for agent in experiments.ONLINE_AGENTS:
        c = experiments.make_config(hook, agent, "baseline", 2000, seeds=1)
        rc, game, online_agent = build(c)
        assert (game, rc.total_steps, rc.num_iterations) == ("Catch", 2000, 4)
        assert online_agent.config.num_actions == 3
    with pytest.raises(ValueError, match="multiples of 200"):
        experiments.catch_overrides("cql", 150)
    with pytest.raises(ValueError, match="unknown agent"):
        experiments.catch_overrides("dqn", 200)


def test_catch_board_hook_gives_the_config_its_game_builds():
    """`make_config` starts from the agent's plain smoke config, so CatchBoard's hook states
    the board's settings (MinAtar encoder and smoke torso, DrQ's one-cell shift); they must be
    exactly what the config builds by itself for `game=CatchBoard` (a sweep's command line)."""
    import importlib

    from offline_moe.configs import agents as agent_table
    from offline_moe.configs.overrides import apply_overrides

    hook = experiments.hook_for("catch_board")
    assert hook is experiments.CATCH_BOARD and hook.game == "CatchBoard"
    for agent in (*experiments.OFFLINE_AGENTS, *experiments.ONLINE_AGENTS):
        budget = hook.budgets[agent]
        c = experiments.make_config(hook, agent, "soft_moe", budget, seeds=1)
        module = importlib.import_module(agent_table.get(agent).config_module)
        own = module.get_config("smoke,game=CatchBoard")
        own = apply_overrides(own, [*experiments.catch_overrides(agent, budget)[1:]])
        own = apply_overrides(own, ["config.torso.name=soft_moe", "config.num_seeds=1"])
        assert c.game == "CatchBoard" and c.torso.builtin.encoder == "minatar"
        assert c.to_dict() == {**own.to_dict(), "seed": c.seed}, agent
        if agent in experiments.ONLINE_AGENTS:
            assert c.learner.augmentation_pad == 1


def test_play_random_and_table():
    r = experiments.play_random("catch", 500, seed=2)
    assert r["episodes"] == 500 and abs(r["mean"] + 0.6) < 5 * r["sem"] + 0.02
    row = {
        "agent": "cql",
        "torso": "baseline",
        "unit": "updates",
        "updates_to_threshold": 400,
        "final_return_mean": 0.96,
        "seeds": [0, 1],
        "budget": 1000,
        "wall_s": 12.0,
    }
    table = format_table([row, {**row, "updates_to_threshold": None}])
    assert "400 upd" in table and "> 1,000 upd" in table and "0.96" in table


def test_sweep_gives_catch_its_settings(tmp_path):
    specs = sweep.expand_grid(
        ["Catch", "Pong"],
        ["cql", "der"],
        ["baseline"],
        root=tmp_path,
        seeds=1,
        overrides=["config.seed=7"],
    )
    specs = sweep.with_env_settings(specs, str(tmp_path / "data"), prepare=False)
    specs = sweep.with_local_data(specs, 3000, str(tmp_path / "data"), prepare=False)
    by = {(s.game, s.agent): s for s in specs}
    catch_cql = by[("Catch", "cql")]
    assert catch_cql.smoke
    assert catch_cql.overrides[-1] == "config.seed=7"  # the user's overrides come last and win
    caches = [o for o in catch_cql.overrides if o.startswith("config.data.cache_dir=")]
    from offline_moe.data.local import local_cache_dir

    expected = local_cache_dir("Catch", experiments.CATCH.data_steps, str(tmp_path / "data"))
    assert caches == [f"config.data.cache_dir={expected}"]
    cmd = sweep.trainer_command(by[("Catch", "der")])
    assert "--config.learner.target_update_period=100" in cmd and "--config.game=Catch" in cmd
    pong = by[("Pong", "cql")]
    assert not pong.smoke and pong.overrides[0] == "config.seed=7"
    assert pong.overrides[-1].endswith(local_cache_dir("Pong", 3000, str(tmp_path / "data")))
    assert by[("Pong", "der")].overrides == ("config.seed=7",)
    assert np.all([s.workdir.parts[-4] in ("cql", "der") for s in specs])
