"""Final parameters of a fixed-seed smoke training of each agent match the stored reference.

The reference (`tests/data/agent_params.json`, written by `python -m tests.agent_regression
--write`) was produced by the code before the learners of both tracks were merged into one SGD
step. The merge changes no result except where stated below, so the numbers must
match to float32 rounding.

Intended differences (each entry regenerated alone with `--agents=...`):
  drq_eps: one `epsilon_greedy` serves both tracks. It splits its key into (explore, random
    action); the online agent used to split its acting key three ways (noise, explore, random
    action), so DrQ(eps)'s exploratory actions, and with them the replay it learns from,
    changed. With the old three-way split restored the new code reproduced the old drq_eps
    parameters exactly (max abs difference 0.0). CQL, CQL+C51 and DER are unchanged (DER acts
    greedily w.r.t. its noisy head; its noise key is the first split either way).
The configs' defaults (torso `baseline` and smoke game Breakout on both tracks) do not enter:
each record names its torso and data, and changing those defaults left all four records
bit-identical (max abs difference 0.0).
"""

import json

import numpy as np
import pytest

from tests import agent_regression


@pytest.fixture(scope="module")
def reference():
    with open(agent_regression.REFERENCE) as f:
        return json.load(f)


@pytest.mark.slow
@pytest.mark.parametrize("agent", agent_regression.AGENTS)
def test_final_parameters_match_reference(agent, reference):
    got = agent_regression.agent_record(agent)
    want = reference[agent]
    assert got["step"] == want["step"]
    for tree in ("params", "target_params"):
        assert sorted(got[tree]) == sorted(want[tree]), f"{agent} {tree}: leaf names differ"
        for leaf, values in want[tree].items():
            # Tolerance scaled by the leaf's norm: a sum near zero is compared at that scale.
            scale = max(abs(values[1]), 1e-3)
            np.testing.assert_allclose(
                got[tree][leaf],
                values,
                rtol=1e-4,
                atol=1e-5 * scale,
                err_msg=f"{agent} {tree} {leaf}",
            )
