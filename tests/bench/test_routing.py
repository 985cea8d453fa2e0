"""bench routing: the diagnostics' known answers on MinAtar-shaped states."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from offline_moe.bench import routing


@pytest.fixture(scope="module")
def states():
    rng = np.random.default_rng(0)
    return jnp.asarray(rng.random((32, 10, 10, 4)) < 0.1, jnp.float32)


def test_phi_zero_is_uniform_routing_and_logits_scale_with_phi(states):
    torso = routing._torso("soft_moe", "minatar", expert_width=16, num_experts=4)
    zero = routing.measure(torso, states, phi_scale=0.0)
    # Zero logits: every token sends equal mass to every slot, so entropy is exactly ln n.
    assert zero["router_entropy"] == pytest.approx(math.log(4), abs=1e-4)
    assert zero["entropy_ratio"] == pytest.approx(1.0, abs=1e-4) and zero["logit_std"] == 0.0
    one, ten = (routing.measure(torso, states, s) for s in (1.0, 10.0))
    assert ten["logit_std"] == pytest.approx(10 * one["logit_std"], rel=1e-4)
    assert one["token_norm"] == ten["token_norm"] > 0
    assert ten["router_entropy"] < one["router_entropy"] <= math.log(4) + 1e-6
    # Uniform routing is a global average pool: every token's output is the same vector,
    # so the rank of the features cannot exceed that of the pooled tokens (d = 16).
    assert zero["srank"] <= 16 and zero["features"] == 64 * 16


def test_normalized_soft_moe_scales_its_learned_scale(states):
    torso = routing._torso("soft_moe:normalize_tokens=true", "minatar", 16, 4)
    one, ten = (routing.measure(torso, states, s) for s in (1.0, 10.0))
    assert ten["logit_std"] == pytest.approx(10 * one["logit_std"], rel=1e-4)
    # Cosine logits with scale 1 lie in [-1, 1].
    assert one["logit_std"] <= 1.0


def test_main_prints_one_json_line_per_torso_and_scale(tmp_path, capsys):
    routing.main(["bench routing", "--states=16", "--phi_scales=1,10", "--expert_width=16",
                  "--torsos=baseline,soft_moe", f"--data_dir={tmp_path}"])  # fmt: skip
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [(r["torso"], r["phi_scale"]) for r in lines] == [
        ("baseline", 1.0), ("soft_moe", 1.0), ("soft_moe", 10.0),
    ]  # fmt: skip
    assert all(r["bench"] == "routing" and r["game"] == "MinAtarBreakout" for r in lines)
    assert lines[0]["features"] == 128 and "router_entropy" not in lines[0]
