"""Per-example value-learning losses of all four agents (CQL, CQL+C51, DER, DrQ(eps)).

Every function here acts on one transition; the learner `jax.vmap`s it over the batch.
Names follow time indices (rlax style): `q_tm1` are the online Q-values at the state s_{t-1}
where the data action `a_tm1` was taken, `r_t` the (n-step) reward that followed, `discount_t`
the factor applied to the bootstrap (gamma^n, or 0 if the episode terminated inside the
n-step window: DeviceReplay already folds `1 - terminal` into it), and `q_t` / `probs_t` are
values at the bootstrap state s_t. Ranks are asserted at the top of each function so a caller
that forgets to vmap fails loudly instead of broadcasting silently.

References:
  Mnih et al. 2015, "Human-level control through deep reinforcement learning" (Q-learning
    with a target network, Huber loss).
  Kumar et al. 2020, "Conservative Q-Learning for Offline Reinforcement Learning", eq. 4
    (CQL(H): logsumexp_a Q(s, a) - Q(s, a_data)).
  Bellemare et al. 2017, "A Distributional Perspective on Reinforcement Learning", Alg. 1 and
    eq. 7 (C51: categorical projection, cross-entropy loss).
  van Hasselt et al. 2016, "Deep Reinforcement Learning with Double Q-learning" (online argmax,
    target evaluation).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

Array = jax.Array


def huber(x: Array, delta: float = 1.0) -> Array:
    """Elementwise Huber loss: 0.5 x^2 for |x| <= delta, delta (|x| - 0.5 delta) beyond."""
    abs_x = jnp.abs(x)
    quadratic = jnp.minimum(abs_x, delta)
    linear = abs_x - quadratic
    return 0.5 * quadratic**2 + delta * linear


def q_learning_huber(
    q_tm1: Array, a_tm1: Array, r_t: Array, discount_t: Array, q_t: Array, delta: float = 1.0
) -> Array:
    """Huber loss of the Q-learning TD error with a max target (Mnih et al. 2015).

    target = r_t + discount_t * max_a q_t[a] (gradient stopped); no double Q (paper Table 3).

    Args:
      q_tm1: [A] online Q-values at s_{t-1}.
      a_tm1: [] data action.
      r_t: [] n-step discounted reward.
      discount_t: [] gamma^n, or 0 at a terminal.
      q_t: [A] target-network Q-values at the bootstrap state.
      delta: Huber threshold (1.0, as in Dopamine).

    Returns:
      [] Huber(target - q_tm1[a_tm1]).
    """
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t], [1, 0, 0, 0, 1])
    target = jax.lax.stop_gradient(r_t + discount_t * jnp.max(q_t))
    return huber(target - q_tm1[a_tm1], delta)


def td_error_max(q_tm1: Array, a_tm1: Array, r_t: Array, discount_t: Array, q_t: Array) -> Array:
    """Signed TD error r_t + discount_t max q_t - q_tm1[a_tm1] (for logging)."""
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t], [1, 0, 0, 0, 1])
    return jax.lax.stop_gradient(r_t + discount_t * jnp.max(q_t)) - q_tm1[a_tm1]


def cql_loss(q_tm1: Array, a_tm1: Array) -> Array:
    """Discrete CQL(H) regulariser (Kumar et al. 2020, eq. 4): logsumexp_a Q(s, a) - Q(s, a_data).

    Pushes down the soft maximum of Q over all actions while pushing up the action in the data.
    It is >= 0 and equals log(A) when all Q-values are equal. For CQL+C51 pass the expected
    Q-values (sum_i z_i p_i(s, a)); the gradient flows through the softmax over atoms.

    Args:
      q_tm1: [A] online Q-values at s_{t-1}.
      a_tm1: [] data action.

    Returns:
      [] the regulariser for this transition.
    """
    chex.assert_rank([q_tm1, a_tm1], [1, 0])
    return jax.nn.logsumexp(q_tm1) - q_tm1[a_tm1]


def double_q_action(q_t_selector: Array) -> Array:
    """Greedy action of the ONLINE network at the bootstrap state (van Hasselt et al. 2016).

    Ties go to the lowest action index (jnp.argmax), like Dopamine.

    Args:
      q_t_selector: [A] online-network Q-values at s_t.

    Returns:
      [] int32 action whose target-network value/distribution is bootstrapped.
    """
    chex.assert_rank(q_t_selector, 1)
    return jnp.argmax(q_t_selector).astype(jnp.int32)


def categorical_l2_project(z_p: Array, probs: Array, z_q: Array) -> Array:
    """Projects a categorical distribution on support z_p onto the fixed support z_q.

    Bellemare et al. 2017, eq. 7: with z_q evenly spaced (step dz) on [v_min, v_max],
      target_i = sum_j clip(1 - |clip(z_p_j, v_min, v_max) - z_q_i| / dz, 0, 1) * probs_j.
    Mass landing between two atoms is split linearly between them; mass beyond the ends
    goes to the end atoms. Total mass is preserved.

    Args:
      z_p: [K] (shifted) support of the source distribution, e.g. r + gamma^n z.
      probs: [K] probabilities on z_p.
      z_q: [K'] evenly spaced target support.

    Returns:
      [K'] projected probabilities.
    """
    chex.assert_rank([z_p, probs, z_q], [1, 1, 1])
    v_min, v_max = z_q[0], z_q[-1]
    dz = z_q[1] - z_q[0]
    z_p = jnp.clip(z_p, v_min, v_max)
    weights = jnp.clip(1.0 - jnp.abs(z_p[None, :] - z_q[:, None]) / dz, 0.0, 1.0)  # [K', K]
    return weights @ probs


def categorical_cross_entropy(target_probs: Array, logits: Array) -> Array:
    """-sum_i target_i log softmax(logits)_i (the C51 loss, Bellemare et al. 2017, Alg. 1).

    Args:
      target_probs: [K] target distribution (gradient stopped by the caller or here).
      logits: [K] unnormalised log-probabilities of the online distribution.

    Returns:
      [] cross-entropy.
    """
    chex.assert_rank([target_probs, logits], [1, 1])
    target_probs = jax.lax.stop_gradient(target_probs)
    return -jnp.sum(target_probs * jax.nn.log_softmax(logits))


def categorical_double_q_target(
    r_t: Array, discount_t: Array, probs_t: Array, q_t_selector: Array, support: Array
) -> Array:
    """C51 target distribution with a double-Q action choice, projected onto `support`.

    a* = argmax_a q_t_selector[a] (online network), p' = probs_t[a*] (target network),
    Tz = r_t + discount_t * z, target = Project(Tz, p'; z).

    Args:
      r_t: [] n-step reward.
      discount_t: [] gamma^n or 0 at a terminal.
      probs_t: [A, K] target-network probabilities at s_t.
      q_t_selector: [A] online-network expected Q-values at s_t.
      support: [K] atom values z.

    Returns:
      [K] target probabilities (gradient stopped).
    """
    chex.assert_rank([r_t, discount_t, probs_t, q_t_selector, support], [0, 0, 2, 1, 1])
    a_star = double_q_action(q_t_selector)
    target_z = r_t + discount_t * support  # [K]
    return jax.lax.stop_gradient(categorical_l2_project(target_z, probs_t[a_star], support))


def categorical_double_q_loss(
    logits_tm1: Array,
    a_tm1: Array,
    r_t: Array,
    discount_t: Array,
    probs_t: Array,
    q_t_selector: Array,
    support: Array,
) -> Array:
    """C51 cross-entropy loss with a double-Q bootstrap (Bellemare et al. 2017; Hessel et al. 2018).

    Args:
      logits_tm1: [A, K] online logits at s_{t-1}.
      a_tm1: [] data action.
      r_t, discount_t: [] n-step reward and discount.
      probs_t: [A, K] target-network probabilities at s_t.
      q_t_selector: [A] online expected Q-values at s_t (action choice only).
      support: [K] atom values.

    Returns:
      [] cross-entropy between the projected target and the online distribution at a_tm1.
    """
    chex.assert_rank([logits_tm1, a_tm1], [2, 0])
    target = categorical_double_q_target(r_t, discount_t, probs_t, q_t_selector, support)
    return categorical_cross_entropy(target, logits_tm1[a_tm1])


def double_q_huber(
    q_tm1: Array, a_tm1: Array, r_t: Array, discount_t: Array, q_t_target: Array, q_t_selector
) -> Array:
    """Huber loss of the double-Q TD error (van Hasselt et al. 2016) for one transition.

    target = r_t + discount_t * q_t_target[argmax_a q_t_selector[a]] (gradient stopped).

    Args:
      q_tm1: [A] online Q-values at s_{t-1}.
      a_tm1: [] action taken.
      r_t: [] n-step reward.
      discount_t: [] gamma^n or 0 at a terminal.
      q_t_target: [A] target-network Q-values at s_t.
      q_t_selector: [A] online Q-values at s_t (action choice).

    Returns:
      [] Huber(target - q_tm1[a_tm1]).
    """
    chex.assert_rank([q_tm1, a_tm1, r_t, discount_t, q_t_target, q_t_selector], [1, 0, 0, 0, 1, 1])
    a_star = double_q_action(q_t_selector)
    target = jax.lax.stop_gradient(r_t + discount_t * q_t_target[a_star])
    return huber(target - q_tm1[a_tm1])
