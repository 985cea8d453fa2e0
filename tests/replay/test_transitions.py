"""Known answers for the per-window transition rules shared by both replays."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offline_moe.replay import transitions


def test_n_step_return_stops_at_the_first_terminal():
    # The module docstring's example: rewards (1, 2, 4), gamma 0.5.
    r = jnp.array([1.0, 2.0, 4.0])
    reward, discount, length = transitions.n_step_return(r, jnp.array([False, True, False]), 0.5)
    assert (float(reward), float(discount), int(length)) == (2.0, 0.0, 2)
    reward, discount, length = transitions.n_step_return(r, jnp.zeros(3, bool), 0.5)
    assert (float(reward), float(discount), int(length)) == (3.0, 0.125, 3)


def test_stack_keeps_rows_from_the_latest_episode_start():
    keep = transitions.stack_keep(jnp.array([False, True, False, True]))
    np.testing.assert_array_equal(keep, [False, False, False, True])
    frames = jnp.arange(1, 5, dtype=jnp.uint8)[:, None, None] * jnp.ones((4, 2, 2), jnp.uint8)
    out = transitions.stack(frames, transitions.stack_keep(jnp.array([False, True, False, False])))
    assert out.shape == (2, 2, 4)
    np.testing.assert_array_equal(out[0, 0], [0, 2, 3, 4])  # frame 1 is before the start


@pytest.mark.parametrize(
    "terminals,starts_after,valid",
    [
        ([0, 0, 0], [0, 0, 0], True),  # the window stays inside its episode
        ([0, 0, 0], [0, 1, 0], False),  # the episode ends (truncated) inside the window
        ([0, 1, 0], [0, 1, 0], True),  # ... after a terminal: the return stops there
        ([0, 0, 1], [0, 1, 0], False),  # a terminal after the start does not help
    ],
)
def test_window_valid_known_answers(terminals, starts_after, valid):
    ok = transitions.window_valid(jnp.array(terminals, bool), jnp.array(starts_after, bool))
    assert bool(ok) is valid


def test_rules_act_on_one_window_and_refuse_a_batch():
    with pytest.raises(AssertionError):
        transitions.n_step_return(jnp.zeros((2, 3)), jnp.zeros((2, 3), bool), 0.9)
    batched = jax.vmap(lambda r, d: transitions.n_step_return(r, d, 0.9))
    reward, _, _ = batched(jnp.ones((2, 3)), jnp.zeros((2, 3), bool))
    np.testing.assert_allclose(reward, [2.71, 2.71], rtol=1e-6)
