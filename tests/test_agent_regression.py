"""Final parameters of a fixed-seed smoke training of each agent match the stored reference.

The reference (`tests/data/agent_params.json`, written by `python -m tests.agent_regression
--write`) was produced by the code before the learners of both tracks were merged into one SGD
step (issue 12). The merge is meant to change no result, so the numbers must match to float32
rounding. Intended differences since the reference was written: none.
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
