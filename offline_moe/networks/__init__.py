"""Torsos (encoder + penultimate layer) behind a plug-in registry.

    from offline_moe.networks import make_torso, preprocess_obs
    torso = make_torso("soft_moe", encoder="impala", num_experts=8)
    params = torso.init(key, preprocess_obs(obs_uint8), train=False)
    features, aux = torso.apply(params, preprocess_obs(obs_uint8), train=True)

Contract: `features, aux = torso(x, train=...)`, x float32 [B, H, W, C] in [0, 1], features
float32 [B, D], aux a dict of jnp arrays that always holds 'aux_loss' (scalar, 0.0 where none);
MoE torsos add 'expert_usage' [n] and 'router_entropy'. Built-in names: `list_torsos()`; a user
torso is reached by 'package.module:Name' without editing this package. A config's torso block
becomes (name, kwargs) through `torso_spec(block)` (keys you set are strict; the config's
`builtin` values go to the built-in torsos only).
"""

from offline_moe.networks import torsos as _torsos  # noqa: F401  (registers built-ins)
from offline_moe.networks.encoders import DENSE_UNITS, ENCODERS, make_encoder, preprocess_obs
from offline_moe.networks.moe import SoftMoE, Top1MoE
from offline_moe.networks.registry import (
    TorsoError,
    count_params,
    filter_torso_kwargs,
    is_builtin_torso,
    list_torsos,
    make_torso,
    register_torso,
    temporary_torso,
    torso_from_config,
    torso_kwarg_names,
    torso_param_count,
    torso_spec,
)
from offline_moe.networks.torsos import TOKENIZATIONS, Tokenizer

__all__ = [
    "DENSE_UNITS",
    "ENCODERS",
    "TOKENIZATIONS",
    "SoftMoE",
    "Tokenizer",
    "Top1MoE",
    "TorsoError",
    "count_params",
    "filter_torso_kwargs",
    "is_builtin_torso",
    "list_torsos",
    "make_encoder",
    "make_torso",
    "preprocess_obs",
    "register_torso",
    "temporary_torso",
    "torso_from_config",
    "torso_kwarg_names",
    "torso_param_count",
    "torso_spec",
]
