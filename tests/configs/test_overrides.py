"""`offline_moe.configs.overrides`: the one override rule (the flags' rule, from Python) and
the torso-variant grammar."""

import pytest

from offline_moe.configs import cql
from offline_moe.configs.overrides import TorsoVariant, apply_overrides
from tests.configs.test_common import _parse_config_flag


def test_apply_overrides_types_and_errors():
    from offline_moe.configs import cql

    c = apply_overrides(
        cql.get_config("smoke"),
        ["config.num_seeds=3", "config.learner.gamma=0.9", "config.torso.name=top1_moe"],
    )
    assert c.num_seeds == 3 and isinstance(c.num_seeds, int)
    assert c.learner.gamma == pytest.approx(0.9) and c.torso.name == "top1_moe"
    with pytest.raises(ValueError, match="expected config"):
        apply_overrides(c, ["num_seeds=3"])
    # Typed None (an unset torso key) parses by its type, as --config.torso.num_experts=4 does;
    # booleans take true/false/1/0; a mapping sets values as they are.
    apply_overrides(c, ["config.torso.num_experts=4", "config.smoke=false"])
    assert c.torso.num_experts == 4 and isinstance(c.torso.num_experts, int) and not c.smoke
    apply_overrides(c, {"learner.gamma": 0.5, "torso.name": "soft_moe"})
    assert c.learner.gamma == 0.5 and c.torso.name == "soft_moe"
    with pytest.raises(ValueError, match="true/false"):
        apply_overrides(c, ["config.smoke=maybe"])
    with pytest.raises(KeyError, match="no field"):
        apply_overrides(c, ["config.learner.gama=0.9"])


def test_torso_variant_grammar():
    v = TorsoVariant.parse("soft_moe@num_experts=4@expert_width=64")
    assert v.label == "soft_moe__num_experts-4__expert_width-64"
    assert v.overrides() == [
        "config.torso.name=soft_moe",
        "config.torso.num_experts=4",
        "config.torso.expert_width=64",
    ]
    assert TorsoVariant.parse("my.mod:Net").label == "my.mod-Net"
    with pytest.raises(ValueError, match="no torso name"):
        TorsoVariant.parse("@num_experts=4")


def test_apply_overrides_agrees_with_the_config_flags():
    """The same override strings give the same config through absl's flags and from Python."""
    overrides = [
        "config.torso.name=soft_moe",
        "config.torso.num_experts=4",
        "config.torso.builtin.expert_width=32",
        "config.learner.gamma=0.5",
        "config.num_seeds=3",
        "config.smoke=false",
    ]
    by_flags = _parse_config_flag(
        ["prog", "--config=offline_moe/configs/cql.py:smoke", *(f"--{o}" for o in overrides)]
    )
    from_python = apply_overrides(cql.get_config("smoke"), overrides)
    assert from_python.to_dict() == by_flags.to_dict()
