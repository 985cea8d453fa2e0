"""Torso contract over every registered torso, plus the registry and plug-in paths."""

import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from offline_moe.networks import (
    TOKENIZATIONS,
    SoftMoE,
    TorsoError,
    filter_torso_kwargs,
    list_torsos,
    make_encoder,
    make_torso,
    preprocess_obs,
    register_torso,
    temporary_torso,
    torso_from_config,
    torso_kwarg_names,
    torso_param_count,
)
from offline_moe.networks.registry import count_params
from tests.networks import jit_init

TOY = "tests.toy_torso:ToyTorso"
BATCH = 2


def _obs(batch=BATCH, seed=0, scale="atari"):
    rng = np.random.default_rng(seed)
    if scale == "minatar":  # a MinAtar state: binary channels, bool [10, 10, C] (Seaquest C=10)
        return preprocess_obs(rng.random((batch, 10, 10, 10)) < 0.3)
    return preprocess_obs(rng.integers(0, 256, (batch, 84, 84, 4), dtype=np.uint8))


# The MinAtar scale of every torso that takes an encoder: MinAtar's encoder, experts as wide
# as its dense layer (128).
MINATAR = {"encoder": "minatar", "expert_width": 128}


def _leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize("scale", ["atari", "minatar"])
@pytest.mark.parametrize("name", [*list_torsos(), TOY])
def test_torso_contract(name, scale):
    kwargs = {}
    if scale == "minatar":
        accepted = torso_kwarg_names(name)
        if "encoder" not in accepted:
            pytest.skip(f"{name} has no encoder option (an Atari-only user torso)")
        kwargs = {k: v for k, v in MINATAR.items() if k in accepted}
    torso = make_torso(name, **kwargs)
    x = _obs(scale=scale)
    params = jit_init(torso, jax.random.key(0), x, train=False)

    # Same key -> same params; another key -> other params.
    assert _leaves_equal(params, jit_init(torso, jax.random.key(0), x, train=False))
    assert not _leaves_equal(params, jit_init(torso, jax.random.key(1), x, train=False))

    def forward(p, x):
        return torso.apply(p, x, train=True)

    def loss(p, x):
        features, aux = forward(p, x)
        return jnp.sum(features**2) + aux["aux_loss"]

    @jax.jit
    def run(p, x):
        features, aux = forward(p, x)
        singles = [forward(p, x[i : i + 1])[0] for i in range(BATCH)]
        return features, aux, singles, jax.grad(loss)(p, x)

    features, aux, singles, grads = run(params, x)

    assert features.dtype == jnp.float32
    assert features.ndim == 2 and features.shape[0] == BATCH and features.shape[1] > 0
    assert np.all(np.isfinite(features))
    assert np.abs(features).sum() > 0

    assert isinstance(aux, dict) and "aux_loss" in aux
    assert jnp.shape(aux["aux_loss"]) == ()
    for key, value in aux.items():
        assert np.all(np.isfinite(value)), key
    if "expert_usage" in aux:  # MoE torsos: a distribution over the 8 default experts
        experts = 1 if name == "soft_moe_1_scaled" else 8  # its one expert stands in for 8
        assert aux["expert_usage"].shape == (experts,)
        np.testing.assert_allclose(aux["expert_usage"].sum(), 1.0, rtol=1e-5)
        assert jnp.shape(aux["router_entropy"]) == ()
        # ln 8 up to float32 rounding (a uniform router sits exactly there)
        assert 0.0 <= float(aux["router_entropy"]) <= np.log(8) * (1 + 1e-5)

    grad_leaves = jax.tree.leaves(grads)
    assert all(np.all(np.isfinite(g)) for g in grad_leaves)
    assert sum(float(np.abs(g).sum()) for g in grad_leaves) > 0

    # Per-sample independence: row i of the batched output is the output for x[i:i+1].
    for i, single in enumerate(singles):
        np.testing.assert_allclose(single[0], features[i], rtol=1e-4, atol=1e-5)
    # The two samples differ, so a torso that mixed them would fail the check above.
    assert not np.allclose(features[0], features[1])

    # jit == no-jit.
    with jax.disable_jit():
        eager_features, eager_aux = forward(params, x)
    np.testing.assert_allclose(eager_features, features, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(eager_aux["aux_loss"], aux["aux_loss"], rtol=1e-4, atol=1e-6)


# Non-default options, smaller settings: per-sample independence and finite gradients.
@pytest.mark.parametrize(
    "name,kwargs",
    [
        ("soft_moe", dict(tokenization="per_feat", normalize_tokens=True)),
        ("soft_moe", dict(tokenization="per_patch", patch_size=4, capacity_factor=2.0)),
        ("top1_moe", dict(tokenization="per_feat", importance_weight=1.0, load_weight=1.0)),
    ],
)
def test_torso_options(name, kwargs):
    torso = make_torso(name, encoder="nature", num_experts=2, expert_width=8, **kwargs)
    x = _obs(seed=1)
    params = jit_init(torso, jax.random.key(0), x, train=False)

    def loss(p, x):
        features, aux = torso.apply(p, x, train=True)
        return jnp.sum(features**2) + aux["aux_loss"]

    @jax.jit
    def run(p, x):
        features, aux = torso.apply(p, x, train=True)
        singles = [torso.apply(p, x[i : i + 1], train=True)[0] for i in range(BATCH)]
        return features, aux, singles, jax.grad(loss)(p, x)

    features, aux, singles, grads = run(params, x)
    for i, single in enumerate(singles):
        np.testing.assert_allclose(single[0], features[i], rtol=1e-4, atol=1e-5)
    assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves((features, aux, grads)))
    np.testing.assert_allclose(aux["expert_usage"].sum(), 1.0, rtol=1e-5)
    if kwargs.get("importance_weight"):
        assert float(aux["aux_loss"]) > 0


# Feature width D = m * d for every tokenisation (Impala map 11x11x32, Nature 11x11x64), and
# the baseline's 512 * width. Shapes only (jax.eval_shape), nothing is compiled.
@pytest.mark.parametrize("encoder,c", [("impala", 32), ("nature", 64)])
@pytest.mark.parametrize("name", ["soft_moe", "top1_moe"])
@pytest.mark.parametrize("tokenization", TOKENIZATIONS)
def test_feature_width(name, encoder, c, tokenization):
    expected = {
        "per_conv": 121 * c,  # 121 tokens of size c
        "per_feat": c * 121,  # c tokens of size 121
        "per_samp": 121 * c,  # 1 token of size 121*c
        "per_patch": 9 * c,  # (11 // 3)^2 = 9 patches, embedding size c
    }[tokenization]
    torso = make_torso(name, encoder=encoder, tokenization=tokenization, num_experts=2)
    x = jax.ShapeDtypeStruct((3, 84, 84, 4), jnp.float32)
    out = jax.eval_shape(lambda x: torso.init_with_output(jax.random.key(0), x, train=False)[0], x)
    assert out[0].shape == (3, expected)
    assert out[0].dtype == jnp.float32


@pytest.mark.parametrize("name", ["soft_moe", "top1_moe", "tokenized_expert"])
@pytest.mark.parametrize("channels", [4, 10])
def test_minatar_encoder_shapes(name, channels):
    """MinAtar's DQN encoder (examples/dqn.py): Conv 16 3x3/1 VALID on 10x10xC -> 8x8x16, so
    per_conv gives 64 tokens of 16 and D = 1,024; the baseline is Dense(128 * width)."""
    x = jax.ShapeDtypeStruct((3, 10, 10, channels), jnp.float32)
    enc = make_encoder("minatar")
    fmap, variables = jax.eval_shape(lambda x: enc.init_with_output(jax.random.key(0), x), x)
    assert fmap.shape == (3, 8, 8, 16)
    assert variables["params"]["Conv_0"]["kernel"].shape == (3, 3, channels, 16)
    torso = make_torso(name, num_experts=4, **MINATAR)
    out = jax.eval_shape(lambda x: torso.init_with_output(jax.random.key(0), x, train=False), x)
    assert out[0][0].shape == (3, 64 * 16)
    if name != "tokenized_expert":
        moe = out[1]["params"]["moe"]  # 4 experts d=16 -> H=128 -> 16
        assert jax.tree.leaves(moe["experts"])[0].shape[0] == 4
    for width in (1, 4):
        baseline = make_torso("baseline", encoder="minatar", width=width)
        out = jax.eval_shape(lambda x, t=baseline: t.init(jax.random.key(0), x, train=False), x)
        assert out["params"]["hidden"]["kernel"].shape == (1024, 128 * width)
    # Parameter count: conv 3*3*4*16 + 16 = 592, Dense 1024*128 + 128 = 131,200.
    assert torso_param_count(make_torso("baseline", encoder="minatar"), (1, 10, 10, 4)) == 131_792


@pytest.mark.parametrize("encoder", ["impala", "nature"])
@pytest.mark.parametrize("width", [1, 2, 0.5])
def test_baseline_width(encoder, width):
    torso = make_torso("baseline", encoder=encoder, width=width)
    x = jax.ShapeDtypeStruct((1, 84, 84, 4), jnp.float32)
    out = jax.eval_shape(lambda x: torso.init_with_output(jax.random.key(0), x, train=False), x)
    assert out[0][0].shape == (1, int(512 * width))


def test_preprocess_obs_scales_uint8():
    obs = np.array([[0, 51, 255]], dtype=np.uint8)
    out = preprocess_obs(obs)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, [[0.0, 0.2, 1.0]], rtol=1e-6)


def test_torso_rejects_uint8_input():
    torso = make_torso("baseline", encoder="nature")
    with pytest.raises(TypeError, match="preprocess_obs"):
        jax.eval_shape(
            lambda x: jit_init(torso, jax.random.key(0), x, train=False),
            jax.ShapeDtypeStruct((1, 84, 84, 4), jnp.uint8),
        )


# ----------------------------------------------------------------------------- registry


def test_list_torsos_has_builtins():
    assert {"baseline", "soft_moe", "top1_moe"} <= set(list_torsos())


def test_unknown_torso_lists_valid_names():
    with pytest.raises(
        TorsoError,
        match="baseline, soft_moe, soft_moe_1_scaled, soft_moe_uniform, tokenized_expert, top1_moe",
    ):
        make_torso("sofft_moe")


def test_bad_kwarg_names_torso_and_valid_kwargs():
    with pytest.raises(TorsoError) as err:
        make_torso("baseline", num_experts=8)
    message = str(err.value)
    assert "'baseline'" in message and "'num_experts'" in message
    assert "encoder" in message and "width" in message


def test_bad_values_are_refused():
    with pytest.raises(ValueError, match="valid encoders: impala, minatar, nature"):
        make_torso("soft_moe", encoder="resnet")
    with pytest.raises(ValueError, match="per_conv"):
        make_torso("top1_moe", tokenization="per_pixel")


def test_duplicate_registration_refused():
    with pytest.raises(TorsoError, match="already registered"):
        register_torso("baseline")(nn.Dense)


def test_temporary_torso():
    class Tiny(nn.Module):
        units: int = 3

        @nn.compact
        def __call__(self, x, *, train):
            return nn.Dense(self.units)(x.reshape(x.shape[0], -1)), {"aux_loss": jnp.zeros(())}

    with temporary_torso("tiny_tmp", Tiny):
        assert "tiny_tmp" in list_torsos()
        assert make_torso("tiny_tmp", units=5).units == 5
        with pytest.raises(TorsoError, match="already registered"):
            register_torso("tiny_tmp")(Tiny)
    assert "tiny_tmp" not in list_torsos()


def test_factory_function_torso():
    def factory(units: int = 4):
        return make_torso(TOY, features=units)

    with temporary_torso("toy_factory", factory):
        assert torso_kwarg_names("toy_factory") == ["units"]
        assert make_torso("toy_factory", units=7).features == 7
        with pytest.raises(TorsoError, match="'toy_factory' does not accept 'width'"):
            make_torso("toy_factory", width=2)


def test_module_path_torso():
    torso = make_torso(TOY, features=8)
    assert type(torso).__name__ == "ToyTorso" and torso.features == 8
    assert torso_kwarg_names(TOY) == ["features"]
    assert torso_param_count(torso) == 7 * 7 * 4 * 8 + 8
    with pytest.raises(TorsoError, match="cannot import module"):
        make_torso("tests.no_such_module:Torso")
    with pytest.raises(TorsoError, match="has no attribute"):
        make_torso("tests.toy_torso:NoSuchTorso")


def test_filter_torso_kwargs():
    block = dict(
        name="soft_moe",
        encoder="nature",
        width=8,
        num_experts=4,
        expert_width=64,
        tokenization="per_feat",
        patch_size=3,
        capacity_factor=1.0,
        normalize_tokens=True,
        importance_weight=1.0,
        load_weight=1.0,
    )
    assert filter_torso_kwargs("baseline", block) == {"encoder": "nature", "width": 8}
    soft = filter_torso_kwargs("soft_moe", block)
    assert "width" not in soft and "importance_weight" not in soft and "name" not in soft
    assert soft["normalize_tokens"] is True and soft["num_experts"] == 4
    top1 = filter_torso_kwargs("top1_moe", block)
    assert "normalize_tokens" not in top1 and top1["load_weight"] == 1.0
    assert filter_torso_kwargs(TOY, block) == {}
    for name in list_torsos():
        make_torso(name, **filter_torso_kwargs(name, block))  # every torso accepts its part
    top1_block = {k: block[k] for k in ("tokenization", "load_weight")}
    torso = torso_from_config({**top1_block, "name": "top1_moe"})
    assert torso.load_weight == 1.0 and torso.tokenization == "per_feat"
    with pytest.raises(TorsoError, match="'name'"):
        torso_from_config({"encoder": "impala"})


def test_networks_import_no_tensorflow():
    code = (
        "import sys, offline_moe.networks; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets',"
        " 'rlds')]; assert not bad, bad"
    )
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_torso_table():
    from offline_moe.networks.__main__ import format_table

    table = format_table(encoders=("nature",), experts=(1, 8))
    rows = {line.split("  ")[0].strip(): line.split() for line in table.splitlines()[2:]}
    # Nature encoder 77,984 + Phi 64*8*16 + 8 experts * 66,112 (see test_moe.py).
    assert rows["soft_moe"][-2:] == ["615,072", "7,744"]
    assert rows["top1_moe"][-2:] == ["607,392", "7,744"]
    # Scaled baseline at n = 8: 77,984 + (7744 + 1) * 4096.
    assert rows["baseline (width n)"][-2:] == ["31,801,504", "4,096"]
    assert "| soft_moe | nature |" in format_table(("nature",), (8,), markdown=True)


def test_tokenized_expert_is_not_soft_moe_with_one_expert():
    """`tokenized_expert` maps each token alone (changing token 0 leaves token 3's output
    as it was); Soft MoE with n = 1 (Sokar et al.'s control) still routes: its slots mix all
    tokens, so token 3's output moves too. Parameters: encoder + one expert d -> nH -> d
    (2 d n H + n H + d)."""
    from offline_moe.networks.moe import ExpertMLP

    tokens = jax.random.normal(jax.random.key(0), (1, 5, 4))
    moved = tokens.at[0, 0].add(1.0)
    soft = SoftMoE(num_experts=1, expert_width=8)
    p_soft = jit_init(soft, jax.random.key(1), tokens)
    a, _ = soft.apply(p_soft, tokens)
    b, _ = soft.apply(p_soft, moved)
    assert not np.allclose(np.asarray(a[0, 3]), np.asarray(b[0, 3]))
    expert = ExpertMLP(8, 4)
    p_exp = jit_init(expert, jax.random.key(1), tokens)
    a, b = expert.apply(p_exp, tokens), expert.apply(p_exp, moved)
    np.testing.assert_array_equal(np.asarray(a[0, 1:]), np.asarray(b[0, 1:]))
    assert not np.allclose(np.asarray(a[0, 0]), np.asarray(b[0, 0]))
    d, n, h = 32, 8, 512  # Impala tokens
    count = torso_param_count(make_torso("tokenized_expert", num_experts=n, expert_width=h))
    assert count == 97_744 + 2 * d * n * h + n * h + d == 364_016


def test_soft_moe_1_scaled_is_soft_moe_with_one_scaled_expert():
    """Sokar et al. 2025's control: one Soft MoE expert of H = n * expert_width. Same
    parameter tree and outputs as `soft_moe` with num_experts=1, expert_width=n*H; its expert
    has the n experts' parameter count (2 d n H + n H + d against n (2 d H + H + d))."""
    x = jax.random.uniform(jax.random.key(0), (2, 36, 36, 4))
    n, h = 4, 8
    control = make_torso("soft_moe_1_scaled", encoder="nature", num_experts=n, expert_width=h)
    same = make_torso("soft_moe", encoder="nature", num_experts=1, expert_width=n * h)
    params = jit_init(control, jax.random.key(1), x, train=False)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(
        jnp.shape, jit_init(same, jax.random.key(1), x, train=False)
    )
    a, _ = control.apply(params, x, train=False)
    b, _ = same.apply(params, x, train=False)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    experts = params["params"]["moe"]["experts"]
    d = 64  # Nature tokens
    assert count_params(experts) == 2 * d * n * h + n * h + d
    eight = make_torso("soft_moe", encoder="nature", num_experts=n, expert_width=h)
    p8 = jit_init(eight, jax.random.key(1), x, train=False)["params"]["moe"]["experts"]
    assert count_params(p8) == n * (2 * d * h + h + d)


def test_soft_moe_uniform_is_the_experts_on_the_pooled_map():
    """The routing control: Phi = 0 and untrained, so every token's output is the mean over the
    n experts of expert_e(mean token), computed here by hand from the Experts' parameters;
    router entropy ln n; Phi gets no gradient while the experts do."""
    from offline_moe.networks.moe import Experts

    x = jax.random.uniform(jax.random.key(0), (2, 36, 36, 4))
    n, h = 4, 8
    torso = make_torso("soft_moe_uniform", encoder="nature", num_experts=n, expert_width=h)
    params = jit_init(torso, jax.random.key(1), x, train=False)
    phi = params["params"]["moe"]["phi"]
    assert phi.shape[1] == n and not np.any(np.asarray(phi))
    soft = make_torso("soft_moe", encoder="nature", num_experts=n, expert_width=h)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(
        jnp.shape, jax.eval_shape(lambda x: soft.init(jax.random.key(1), x, train=False), x)
    )
    features, aux = torso.apply(params, x, train=False)
    np.testing.assert_allclose(float(aux["router_entropy"]), np.log(n), rtol=1e-6)

    (encoder_params,) = [v for k, v in params["params"].items() if k != "moe"]
    fmap = jax.jit(make_encoder("nature").apply)({"params": encoder_params}, x)
    mean_token = fmap.reshape(2, -1, fmap.shape[-1]).mean(axis=1)  # [B, d]
    slots = jnp.broadcast_to(mean_token[:, None, None, :], (2, n, 1, mean_token.shape[-1]))
    outs = jax.jit(Experts(n, h).apply)({"params": params["params"]["moe"]["experts"]}, slots)
    expected = outs.mean(axis=(1, 2))  # [B, d]: the same for every token
    m = fmap.shape[1] * fmap.shape[2]
    np.testing.assert_allclose(
        np.asarray(features), np.tile(np.asarray(expected), (1, m)), rtol=1e-5, atol=1e-6
    )

    def loss(p):
        return jnp.sum(torso.apply(p, x, train=False)[0] ** 2)

    grads = jax.jit(jax.grad(loss))(params)["params"]["moe"]
    assert not np.any(np.asarray(grads["phi"]))
    assert sum(float(np.abs(g).sum()) for g in jax.tree.leaves(grads["experts"])) > 0
