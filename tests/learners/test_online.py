"""Unit tests of the online track: noisy layer, prioritized replay, augmentation, eps schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offline_moe.learners import augment
from offline_moe.learners.losses import double_q_huber
from offline_moe.learners.online import linearly_decaying_epsilon
from offline_moe.networks.noisy import NoisyDense, RainbowHead, factorised_noise
from offline_moe.replay import online as online_replay

# ----------------------------------------------------------------------------- noisy layer


def _noisy_params(fan_in=6, features=3):
    layer = NoisyDense(features)
    x = jnp.ones((2, fan_in))
    params = layer.init(jax.random.key(0), x, train=False)
    return layer, params, x


def test_noisy_init_ranges():
    fan_in = 6
    _, params, _ = _noisy_params(fan_in)
    p = params["params"]
    bound = 1 / np.sqrt(fan_in)
    for name in ("mu_kernel", "mu_bias"):
        assert np.all(np.abs(np.asarray(p[name])) <= bound)
    for name in ("sigma_kernel", "sigma_bias"):
        np.testing.assert_allclose(np.asarray(p[name]), 0.1 / np.sqrt(fan_in), rtol=1e-6)


def test_noisy_eval_has_no_noise_and_train_does():
    layer, params, x = _noisy_params()
    p = params["params"]
    expected = x @ p["mu_kernel"] + p["mu_bias"]
    out_eval = layer.apply(params, x, train=False)  # no rng needed at all
    np.testing.assert_allclose(np.asarray(out_eval), np.asarray(expected), rtol=1e-6)
    a = layer.apply(params, x, train=True, rngs={"noise": jax.random.key(1)})
    b = layer.apply(params, x, train=True, rngs={"noise": jax.random.key(2)})
    a2 = layer.apply(params, x, train=True, rngs={"noise": jax.random.key(1)})
    assert not np.allclose(np.asarray(a), np.asarray(expected))
    assert not np.allclose(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(np.asarray(a), np.asarray(a2))


def test_factorised_noise_shapes_rank_one_and_statistics():
    fan_in, fan_out = 3000, 2000
    eps_w, eps_b = factorised_noise(jax.random.key(3), fan_in, fan_out)
    assert eps_w.shape == (fan_in, fan_out) and eps_b.shape == (fan_out,)
    eps_w, eps_b = np.asarray(eps_w, np.float64), np.asarray(eps_b, np.float64)
    # Factorised: every row of eps_w is a multiple of eps_b = f(q) (rank one).
    row = eps_w[7]
    scale = row[0] / eps_b[0]
    np.testing.assert_allclose(row, scale * eps_b, rtol=1e-4, atol=1e-6)
    assert np.linalg.matrix_rank(eps_w[:50, :50], tol=1e-4) == 1
    # f(x) = sign(x) sqrt|x| with x ~ N(0,1): mean 0, E f^2 = E|x| = sqrt(2/pi) = 0.798;
    # entries of eps_w = f(p) f(q) have variance (2/pi) = 0.637.
    assert abs(eps_b.mean()) < 0.06
    assert abs(eps_b.var() - np.sqrt(2 / np.pi)) < 0.06
    assert abs(eps_w.var() - 2 / np.pi) < 0.05


def test_rainbow_head_shapes_and_q_values():
    feats = jnp.ones((5, 8))
    head = RainbowHead(num_actions=4, num_atoms=51, v_max=10.0, dueling=True, noisy=True)
    params = head.init(jax.random.key(0), feats, train=False)
    out = head.apply(params, feats, train=True, rngs={"noise": jax.random.key(1)})
    assert out["logits"].shape == (5, 4, 51) and out["q_values"].shape == (5, 4)
    np.testing.assert_allclose(np.asarray(out["probabilities"].sum(-1)), 1.0, rtol=1e-5)
    q = np.sum(np.asarray(out["probabilities"]) * np.linspace(-10, 10, 51), -1)
    np.testing.assert_allclose(np.asarray(out["q_values"]), q, rtol=1e-5, atol=1e-6)
    scalar = RainbowHead(num_actions=4, num_atoms=1, dueling=True, noisy=False)
    p2 = scalar.init(jax.random.key(0), feats, train=False)
    o2 = scalar.apply(p2, feats, train=True)
    assert o2["q_values"].shape == (5, 4) and "probabilities" not in o2


# ----------------------------------------------------------------------------- eps schedule


@pytest.mark.parametrize(
    "step,expected",
    [(0, 1.0), (1600, 1.0), (1600 + 2500, 0.505), (1600 + 5000, 0.01), (100_000, 0.01)],
)
def test_eps_schedule_known_answers(step, expected):
    # warmup = min replay 1600, decay 5000 steps to 0.01 (DrQ(eps)): halfway is
    # 0.01 + 0.99 / 2 = 0.505.
    eps = linearly_decaying_epsilon(step, 1600, 5000, 0.01)
    np.testing.assert_allclose(float(eps), expected, rtol=1e-6)


def test_double_q_huber_known_answer():
    q_tm1 = jnp.array([1.0, 2.0])
    # online selector picks action 1 at s_t; the target evaluates it: 3.0.
    # target = 0.5 + 0.9 * 3.0 = 3.2; error 3.2 - q_tm1[0] = 2.2 -> Huber = 2.2 - 0.5 = 1.7.
    q_t_target, q_t_selector = jnp.array([10.0, 3.0]), jnp.array([0.0, 1.0])
    loss = double_q_huber(q_tm1, jnp.array(0), 0.5, 0.9, q_t_target, q_t_selector)
    np.testing.assert_allclose(float(loss), 1.7, rtol=1e-6)


# ----------------------------------------------------------------------------- augmentation


def test_augment_shapes_identity_and_crop_bounds():
    key = jax.random.key(0)
    images = jax.random.uniform(key, (6, 84, 84, 4)) * 255
    out = augment.drq_augment(jax.random.key(1), images)
    assert out.shape == images.shape and out.dtype == jnp.float32
    # No shift and no intensity noise: identity.
    same = augment.drq_augment(jax.random.key(1), images, pad=0, intensity_scale=0.0)
    np.testing.assert_array_equal(np.asarray(same), np.asarray(images))
    # A centred crop of the padded image is the image itself.
    centred = augment.random_shift(images[0], 4, 4)
    np.testing.assert_array_equal(np.asarray(centred), np.asarray(images[0]))
    # Crop bounds: each output (intensity off) is a window of the edge-padded input at an
    # offset in [0, 7] x [0, 7], the same for all stacked frames.
    shifted = np.asarray(augment.drq_augment(jax.random.key(2), images, intensity_scale=0.0))
    padded = np.pad(np.asarray(images), ((0, 0), (4, 4), (4, 4), (0, 0)), mode="edge")
    offsets = set()
    for b in range(images.shape[0]):
        hits = [
            (dy, dx)
            for dy in range(9)
            for dx in range(9)
            if np.array_equal(padded[b, dy : dy + 84, dx : dx + 84], shifted[b])
        ]
        assert hits, f"image {b} is not a crop of its padded input"
        offsets.add(hits[0])
    assert len(offsets) > 1  # per-image shifts


def test_augment_crop_offsets_are_dopamines_0_to_7():
    """Dopamine draws the crop offset with randint(0, padded - size) = {0..7} (maxval
    exclusive). Pixel (4, 4) of a crop at offset (dy, dx) is input pixel (dy, dx); on 2,048
    images every offset 0..7 appears on both axes and 8 never does."""
    images = jnp.broadcast_to(jnp.arange(144.0).reshape(1, 12, 12, 1), (2048, 12, 12, 1))
    out = np.asarray(augment.drq_augment(jax.random.key(5), images, intensity_scale=0.0))
    v = out[:, 4, 4, 0].astype(int)
    assert set(v // 12) == set(range(8)) and set(v % 12) == set(range(8))


def test_augment_intensity_range():
    images = jnp.ones((512, 84, 84, 1))
    out = np.asarray(augment.drq_augment(jax.random.key(3), images, pad=0))
    factor = out[:, 0, 0, 0]
    np.testing.assert_array_equal(out, factor[:, None, None, None] * np.ones_like(out))
    assert factor.min() >= 0.9 - 1e-6 and factor.max() <= 1.1 + 1e-6
    assert abs(factor.mean() - 1.0) < 0.01 and 0.03 < factor.std() < 0.06


# ----------------------------------------------------------------------------- PER sampling


def test_prioritized_sampling_frequencies_match_priorities():
    cap = 2500  # three blocks of 1024: exercises the two-level search
    priority = np.zeros(cap, np.float32)
    chosen = {3: 1.0, 700: 2.0, 1023: 3.0, 1024: 0.5, 2047: 4.0, 2499: 1.5}
    for i, p in chosen.items():
        priority[i] = p
    n = 40_000
    idx, probs = jax.jit(online_replay.sample_proportional, static_argnums=2)(
        jax.random.key(0), jnp.asarray(priority), n
    )
    idx, probs = np.asarray(idx), np.asarray(probs)
    assert set(idx.tolist()) <= set(chosen)  # zero priority is never sampled
    total = sum(chosen.values())
    np.testing.assert_allclose(probs, priority[idx] / total, rtol=1e-6)
    counts = np.array([np.sum(idx == i) for i in chosen])
    expected = n * np.array(list(chosen.values())) / total
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < 20.5, (chi2, counts, expected)  # dof 5: p = 0.001 at 20.5


def test_importance_weights_known_answer():
    # 1/sqrt(P): [3.1623, 1.5811, 1.4142] / max -> [1, 0.5, 0.4472].
    w = online_replay.importance_weights(jnp.array([0.1, 0.4, 0.5]))
    np.testing.assert_allclose(np.asarray(w), [1.0, 0.5, 1 / np.sqrt(5)], rtol=1e-5)


def test_update_priorities_sqrt_loss_and_max():
    r = online_replay.OnlineReplay.create(32, stack=2, n_step=2)
    r = online_replay.update_priorities(r, jnp.array([1, 5]), jnp.array([4.0, 9.0]))
    np.testing.assert_allclose(np.asarray(r.priority[jnp.array([1, 5])]), [2.0, 3.0], rtol=1e-6)
    assert float(r.max_priority) == pytest.approx(3.0)


# ----------------------------------------------------------------------------- replay semantics


def _fill(replay, steps):
    """steps: list of (frame_value, first, reward_prev, terminal_prev)."""
    begin = jax.jit(online_replay.begin_step)
    for frame, first, rew, term in steps:
        replay = begin(
            replay,
            jnp.full((84, 84), frame, jnp.uint8),
            jnp.array(first),
            jnp.float32(rew),
            jnp.array(term),
            jnp.float32(1.0),
        )
        replay = online_replay.set_action(replay, jnp.int32(frame))
    return replay


def test_replay_rows_validity_stacks_and_nstep():
    # Episode A: rows 0-4, terminal after row 4. Episode B: rows 5-8, truncated after row 8.
    # Episode C: rows 9-11. Reward after row i is i + 1 (passed with the NEXT call).
    firsts = {0, 5, 9}
    steps = []
    for i in range(12):
        term_prev = i - 1 == 4
        steps.append((i + 1, i in firsts, float(i), term_prev))  # reward_prev = (i-1)+1 = i
    r = online_replay.OnlineReplay.create(32, stack=3, n_step=2, gamma=0.5)
    r = _fill(r, steps)
    assert int(r.count) == 12
    valid = np.asarray(r.priority[:12]) > 0
    # Row v is decided at call v + 2, so rows 10, 11 are undecided. Row 7: window rows 7-8,
    # start at row 9 without a terminal (truncation) -> invalid; row 8 likewise.
    expected = [True] * 5 + [True, True, False, False] + [True, False, False]
    np.testing.assert_array_equal(valid, expected)
    batch = online_replay.gather_transitions(r, jnp.array([0, 3, 4, 6, 9]))
    obs = np.asarray(batch["obs"])[:, 0, 0, :]  # frame values, oldest first
    next_obs = np.asarray(batch["next_obs"])[:, 0, 0, :]
    np.testing.assert_array_equal(obs, [[0, 0, 1], [2, 3, 4], [3, 4, 5], [0, 6, 7], [0, 0, 10]])
    np.testing.assert_array_equal(next_obs[[0, 3, 4]], [[1, 2, 3], [7, 8, 9], [10, 11, 12]])
    # rewards: row i -> i + 1; n = 2, gamma 0.5.
    np.testing.assert_allclose(
        np.asarray(batch["reward"]), [1 + 0.5 * 2, 4 + 0.5 * 5, 5.0, 7 + 0.5 * 8, 10 + 0.5 * 11]
    )
    # Row 3: window rows 3-4, terminal at row 4 -> discount 0; row 4 terminal -> 0.
    np.testing.assert_allclose(np.asarray(batch["discount"]), [0.25, 0.0, 0.0, 0.25, 0.25])
    np.testing.assert_array_equal(np.asarray(batch["action"]), [1, 4, 5, 7, 10])
    # Acting observation = stack ending at the newest row (episode C: rows 9-11).
    np.testing.assert_array_equal(np.asarray(online_replay.current_obs(r))[0, 0], [10, 11, 12])


def test_replay_clipped_rewards():
    steps = [(1, True, 0.0, False), (2, False, 5.0, False), (3, False, -3.0, False)]
    steps += [(4, False, 0.0, False)]
    r = _fill(online_replay.OnlineReplay.create(16, stack=1, n_step=2, gamma=1.0), steps)
    raw = online_replay.gather_transitions(r, jnp.array([0]))
    clipped = online_replay.gather_transitions(r, jnp.array([0]), clip_rewards=True)
    assert float(raw["reward"][0]) == 2.0 and float(clipped["reward"][0]) == 0.0


def test_replay_wraparound_never_samples_broken_stacks():
    cap, stack, n = 16, 4, 3
    steps = [(i % 200 + 1, i == 0, 0.0, False) for i in range(45)]
    r = _fill(online_replay.OnlineReplay.create(cap, stack=stack, n_step=n, gamma=0.9), steps)
    idx, _ = online_replay.sample_proportional(jax.random.key(0), r.priority, 2000)
    batch = online_replay.gather_transitions(r, idx)
    obs = np.asarray(batch["obs"])[:, 0, 0, :].astype(int)
    nxt = np.asarray(batch["next_obs"])[:, 0, 0, :].astype(int)
    # Consecutive frame values inside every stack and next = obs + n: nothing stale.
    assert np.all(np.diff(obs, axis=1) == 1)
    np.testing.assert_array_equal(nxt, obs + n)
    # Valid logical rows: >= 45 - 16 + stack - 1 (stack not overwritten) and <= 44 - n.
    assert obs[:, -1].min() >= 45 - cap + stack and obs[:, -1].max() <= 45 - n
    assert len(np.unique(obs[:, -1])) == int(r.num_valid)


# ----------------------------------------------------------------------------- agent


def _toy_agent(**kw):
    from offline_moe.learners.online import OnlineAgent, OnlineAgentConfig

    base = dict(
        agent="drq_eps",
        num_actions=3,
        torso_name="tests.toy_torso:ToyTorso",
        num_atoms=1,
        noisy=False,
        prioritized=False,
        augmentation=True,
        target_update_period=1,
        n_step=2,
        min_replay=8,
        replay_capacity=32,
        batch_size=4,
    )
    base.update(kw)
    return OnlineAgent(OnlineAgentConfig(**base))


def test_target_period_one_shortcut_equals_full_double_q():
    fast, full = _toy_agent(), _toy_agent(target_update_period=2)
    state = fast.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    batch = {
        "obs": jnp.asarray(rng.integers(0, 255, (4, 84, 84, 4)), jnp.uint8),
        "next_obs": jnp.asarray(rng.integers(0, 255, (4, 84, 84, 4)), jnp.uint8),
        "action": jnp.array([0, 1, 2, 1]),
        "reward": jnp.array([0.0, 1.0, -1.0, 0.5]),
        "discount": jnp.array([0.9, 0.0, 0.9, 0.9]),
    }
    p = state.train.params
    a, _ = fast.learner.loss(fast.learner.network, p, p, batch, jax.random.key(1))
    b, _ = full.learner.loss(full.learner.network, p, p, batch, jax.random.key(1))
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_seeds_side_by_side_equal_single_seed_runs():
    from offline_moe.learners import seed_keys
    from offline_moe.learners.online import make_init_fn, make_step_fn

    agent = _toy_agent()
    step = make_step_fn(agent)
    two = make_init_fn(agent)(seed_keys(0, 2))
    one = make_init_fn(agent)(seed_keys(0, 1))
    rng = np.random.default_rng(1)
    for t in range(12):
        frame = rng.integers(0, 255, (84, 84), dtype=np.uint8)
        first, rew, term = t == 0, float(t % 3), t == 6
        two, a2 = step(
            two,
            np.stack([frame, frame]),
            np.array([first] * 2),
            np.full(2, rew, np.float32),
            np.array([term] * 2),
            t >= 8,
        )
        one, a1 = step(
            one,
            frame[None],
            np.array([first]),
            np.full(1, rew, np.float32),
            np.array([term]),
            t >= 8,
        )
    assert int(two.train.step[0]) == 4
    for x, y in zip(jax.tree.leaves(two.train.params), jax.tree.leaves(one.train.params)):
        np.testing.assert_allclose(np.asarray(x[0]), np.asarray(y[0]), rtol=1e-5, atol=1e-6)
    # Seed 1 has its own init and its own keys.
    leaf = jax.tree.leaves(two.train.params)[0]
    assert not np.allclose(np.asarray(leaf[0]), np.asarray(leaf[1]))


def test_online_track_imports_no_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys; import offline_moe.train_online, offline_moe.bench.online, "
        "offline_moe.configs.der, offline_moe.configs.drq_eps; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'rlds', "
        "'tensorflow_datasets', 'reverb')]; print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_per_sample_noise_statistics():
    """Per-sample factorised noise: row b is x (mu + sigma f(p_b) f(q_b)^T) + mu_b + sigma_b f(q_b).
    For identical rows x the outputs differ, their mean is the noiseless output and their
    variance is c (c sum_i x_i^2 s^2 + s^2) with c = E f(N)^2 = sqrt(2/pi), s = 0.1/sqrt(4)."""
    layer = NoisyDense(3, per_sample=True)
    x_row = jnp.array([1.0, -2.0, 0.5, 3.0])
    x = jnp.tile(x_row[None], (20_000, 1))
    params = layer.init(jax.random.key(0), x[:1], train=False)
    out = np.asarray(layer.apply(params, x, train=True, rngs={"noise": jax.random.key(7)}))
    noiseless = np.asarray(layer.apply(params, x[:1], train=False))[0]
    assert not np.allclose(out[0], out[1])
    c, s2 = np.sqrt(2 / np.pi), (0.1 / 2) ** 2
    var = c * (c * float(jnp.sum(x_row**2)) * s2 + s2)
    np.testing.assert_allclose(out.mean(0), noiseless, atol=4 * np.sqrt(var / 20_000))
    np.testing.assert_allclose(out.var(0), var, rtol=0.06)
