"""The one config dialect of the four agents and the named presets of each agent file.

Shapes only (`jax.eval_shape`) where parameters are counted: nothing here compiles a network.
"""

import pytest

from offline_moe.configs import common, cql, cql_c51, der, drq_eps
from offline_moe.networks import TorsoError, make_torso, torso_param_count, torso_spec

CONFIGS = {"cql": cql, "cql_c51": cql_c51, "der": der, "drq_eps": drq_eps}


@pytest.mark.parametrize("agent", CONFIGS)
def test_every_agent_has_the_same_sections_and_typed_arg(agent):
    c = CONFIGS[agent].get_config("smoke,game=Seaquest,seed=3,num_seeds=2")
    data = "data" if agent.startswith("cql") else "replay"
    for section in ("torso", "learner", "eval", data):
        assert section in c, (agent, section)
    assert c.agent == c.learner.agent == agent
    assert (c.smoke, c.game, c.seed, c.num_seeds) == (True, "Seaquest", 3, 2)
    assert isinstance(c.seed, int) and c.preset in CONFIGS[agent].PRESETS
    assert CONFIGS[agent].get_config("").smoke is False  # smoke is a field, not a substring
    assert set(c.torso.builtin) == set(common.PAPER_TORSO)
    for key in common.TORSO_FIELDS:
        assert key in c.torso
    with pytest.raises(ValueError, match=rf"configs/{agent}.py.*'smok'.*valid: 'smoke' or game="):
        CONFIGS[agent].get_config("smok")
    with pytest.raises(ValueError, match="expected int for 'seed'"):
        CONFIGS[agent].get_config("seed=one")


@pytest.mark.parametrize("agent", CONFIGS)
def test_both_tracks_share_the_default_torso_and_games(agent):
    """One convention, set in `common.base_config`: the published agents' baseline
    torso unless a torso is named, Pong by default and Breakout for `smoke`."""
    for arg in ("", "smoke", "preset=" + next(iter(CONFIGS[agent].PRESETS))):
        assert CONFIGS[agent].get_config(arg).torso.name == "baseline", arg
    assert CONFIGS[agent].get_config("").game == "Pong"
    assert CONFIGS[agent].get_config("smoke").game == "Breakout"
    assert CONFIGS[agent].get_config("smoke,game=Pong").game == "Pong"
    assert CONFIGS[agent].get_config("smoke,torso=soft_moe").torso.name == "soft_moe"


def test_track_specific_arg_keys():
    assert cql.get_config("percent=10,run=3").data.percent == 10.0
    assert cql.get_config("run=3").data.run == 3
    with pytest.raises(ValueError, match="'frames=400' not understood"):
        cql.get_config("frames=400")
    with pytest.raises(ValueError, match="'percent=10' not understood"):
        der.get_config("percent=10")


def test_readme_user_torso_has_the_same_size_from_python_and_from_the_config():
    """A torso gets the same keyword arguments from Python and from a config. Before the torso
    block kept the keys you set apart from `builtin`, the README's ResidualSoftMoE built with
    num_experts=4 had 168,464 parameters from Python and 118,544 from
    `cql.py:smoke --config.torso.num_experts=4`: the flat block passed smoke's expert_width=64
    over the torso's own default 256. Now the config passes only what was set; `builtin`
    (smoke's shrink) reaches the built-in torsos only."""
    name = "tests.toy_torso:ResidualSoftMoE"
    from_python = torso_param_count(make_torso(name, num_experts=4))
    assert from_python == 168_464
    for module in (cql, der):
        c = module.get_config("smoke")
        c.torso.name = name
        c.torso.num_experts = 4
        c.torso.noisy = None  # DER's noisy torso: this torso has no such field
        got_name, kwargs = torso_spec(c.torso)
        assert (got_name, kwargs) == (name, {"num_experts": 4})
        assert torso_param_count(make_torso(name, **kwargs)) == from_python
    # The built-in torsos do get the config's values (smoke: Nature, 2 experts, H = 64).
    c = cql.get_config("smoke,torso=soft_moe")
    assert torso_spec(c.torso)[1] == {
        "encoder": "nature",
        "num_experts": 2,
        "expert_width": 64,
        "tokenization": "per_conv",
        "patch_size": 3,
        "capacity_factor": 1.0,
        "normalize_tokens": False,
        "phi_init_scale": 1.0,
    }
    c.torso.num_experts = 4  # a key you set wins over builtin
    assert torso_spec(c.torso)[1]["num_experts"] == 4


def test_a_set_key_the_torso_does_not_accept_is_an_error_naming_torso_and_key():
    c = drq_eps.get_config("smoke,torso=tests.toy_torso:ToyTorso")
    assert torso_spec(c.torso) == ("tests.toy_torso:ToyTorso", {})  # builtin is not for it
    c.torso.num_experts = 4
    with pytest.raises(TorsoError, match=r"config.torso.num_experts=4: torso 'tests.toy_torso:"):
        torso_spec(c.torso)
    # DER turns noisy torso layers on: a torso without `noisy` is told so, not ignored.
    c = der.get_config("smoke,torso=tests.toy_torso:ToyTorso")
    with pytest.raises(TorsoError, match=r"torso.noisy=True: torso 'tests.toy_torso:ToyTorso'"):
        torso_spec(c.torso)
    c.torso.noisy = False  # no noisy layers is what a torso without the field already has
    assert torso_spec(c.torso) == ("tests.toy_torso:ToyTorso", {})


def _parse_config_flag(argv):
    from absl import flags
    from ml_collections import config_flags

    fv = flags.FlagValues()
    config_flags.DEFINE_config_file(
        "config", None, "x", flag_values=fv, lock_config=True, sys_argv=argv
    )
    fv(argv)
    return fv.config


def test_cli_overrides_of_the_torso_block():
    """--config.torso.KEY=VALUE keeps working (typed) through absl's config flag."""
    from absl import flags

    c = _parse_config_flag(
        [
            "prog",
            "--config=offline_moe/configs/cql.py:smoke",
            "--config.torso.name=soft_moe",
            "--config.torso.num_experts=4",
            "--config.torso.builtin.expert_width=32",
        ]
    )
    assert c.torso.num_experts == 4 and isinstance(c.torso.num_experts, int)
    assert torso_spec(c.torso)[1]["expert_width"] == 32
    with pytest.raises((flags.Error, AttributeError), match="'n'"):  # a typo is an error
        _parse_config_flag(["prog", "--config=offline_moe/configs/der.py", "--config.torso.n=4"])


def test_der_presets_are_the_papers_and_dopamines():
    want = {
        "dopamine_moes": ("nature", 4),  # Dopamine labs/moes/configs/DER.gin: CNN, 4 experts
        "fig12": ("impala", 8),  # paper Fig. 12: ResNet encoder, 8 experts
        "fig16": ("impala", 4),  # paper Fig. 16: ResNet encoder, 4 experts
    }
    assert set(der.PRESETS) == set(want) == set(drq_eps.PRESETS)
    for preset, (encoder, n) in want.items():
        for module in (der, drq_eps):
            c = module.get_config(f"preset={preset}")
            assert (c.torso.builtin.encoder, c.torso.builtin.num_experts) == (encoder, n)
            c.torso.name = "soft_moe"
            kwargs = torso_spec(c.torso)[1]
            assert (kwargs["encoder"], kwargs["num_experts"]) == (encoder, n)
    assert der.get_config().preset == "dopamine_moes"
    c = der.get_config()
    # Dopamine atari_100k DER.gin: noisy C51 dueling double-Q, n = 10, PER, target 2000.
    assert (c.learner.noisy, c.torso.noisy, c.learner.num_atoms, c.learner.n_step) == (
        True,
        True,
        51,
        10,
    )
    assert (c.replay.prioritized, c.learner.target_update_period, c.total_steps) == (
        True,
        2000,
        100_000,
    )
    assert (c.iteration_steps, c.replay.min_replay, c.eval.episodes) == (10_000, 1600, 100)
    d = drq_eps.get_config()  # DrQ_eps.gin: Huber, no noise, target 1, eps decay 5000
    assert (d.learner.num_atoms, d.learner.noisy, d.torso.noisy) == (1, False, None)
    assert (d.learner.target_update_period, d.learner.epsilon_decay_steps) == (1, 5000)


def test_online_budget_in_frames_or_agent_steps():
    c = der.get_config("preset=fig12,frames=50_000_000")  # Fig. 12's axis: 50M frames
    assert c.total_steps == 12_500_000 and c.iteration_steps == 250_000
    assert c.replay.capacity == 1_000_016  # Dopamine's 1M replay
    assert der.get_config("agent_steps=200000").total_steps == 200_000
    assert der.get_config().replay.capacity == 100_016  # a 100k run keeps every transition
    with pytest.raises(ValueError, match="not both"):
        der.get_config("frames=400,agent_steps=100")
    with pytest.raises(ValueError, match="multiple of 4"):
        der.get_config("frames=401")


def test_cql_c51_target_period_presets():
    assert cql_c51.get_config().learner.target_update_period == 2000  # default: CQL's period
    assert cql_c51.get_config().preset == "cql_period"
    assert cql.get_config().learner.target_update_period == 2000
    # Dopamine's offline Rainbow: 100 counter ticks, two ticks per gradient update = 50.
    c = cql_c51.get_config("preset=dopamine_counter,game=Breakout")
    assert c.learner.target_update_period == 50 and c.preset == "dopamine_counter"
    with pytest.raises(ValueError, match="valid presets: cql_period"):
        cql_c51.get_config("preset=fig12")


def test_data_sample_names_the_default_cache():
    from offline_moe.replay.identity import CACHE_NAME_RE
    from offline_moe.train.offline import default_cache_dir

    c = cql.get_config("game=Pong,run=3")
    assert (c.data.sample, c.data.run) == ("prefix", 3)
    assert default_cache_dir(c.to_dict()) == "data/cache/Pong_run3_5pct"
    c.data.sample, c.data.sample_seed = "random", 2
    assert default_cache_dir(c.to_dict()) == "data/cache/Pong_run3_5pct_random2"
    assert CACHE_NAME_RE.fullmatch("Pong_run3_5pct_random2")


@pytest.mark.parametrize("agent", ["cql", "cql_c51"])
def test_minatar_preset_is_the_default_for_minatar_games_and_only_there(agent):
    from offline_moe.train.offline import default_cache_dir

    paper = CONFIGS[agent].get_config("game=Pong")
    c = CONFIGS[agent].get_config("game=MinAtarBreakout")
    assert c.preset == "minatar" and paper.preset != "minatar"
    # Scaled from Table 3: budget, step size, target period, evaluation; the rest kept.
    assert (c.num_iterations, c.updates_per_iteration) == (10, 5000)
    assert c.num_iterations * c.updates_per_iteration >= 50_000
    assert c.updates_per_iteration % c.scan_steps == 0 and c.log_interval % c.scan_steps == 0
    assert (c.learner.learning_rate, c.learner.target_update_period) == (2.5e-4, 1000)
    for key in ("adam_eps", "n_step", "batch_size", "gamma", "cql_coefficient", "num_atoms"):
        assert c.learner[key] == paper.learner[key], key
    assert (c.eval.steps, c.eval.epsilon) == (10_000, paper.eval.epsilon)
    assert (c.torso.builtin.encoder, c.torso.builtin.expert_width) == ("minatar", 128)
    assert c.torso.builtin.num_experts == paper.torso.builtin.num_experts == 8
    # The DQN-Replay-style data of `configs/dqn.py`, 5% of each checkpoint.
    assert default_cache_dir(c.to_dict()) == "data/cache/MinAtarBreakout_run1_5pct"
    assert CONFIGS[agent].get_config("game=MinAtarBreakout,percent=10").data.percent == 10.0
    with pytest.raises(ValueError, match="preset 'minatar' is for MinAtar games"):
        CONFIGS[agent].get_config("game=Pong,preset=minatar")
