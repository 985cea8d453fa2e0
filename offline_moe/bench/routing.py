"""Does a MoE torso route at initialisation? Router entropy and feature rank on real states.

    python -m offline_moe.bench routing --game=MinAtarBreakout [--states=256] [--phi_scales=1,10]

On `--states` states drawn from the game's replay cache (a shipped MinAtar cache is unpacked
if needed; an Atari game needs its cache under --data_dir), each torso is initialised (seed
0) and applied once. One JSON line per (torso, phi scale):

  router_entropy  mean entropy (nats) of each token's combine mass over experts; ln n is
                  uniform routing, where every Soft MoE slot is the mean token and the layer
                  is a global average pool of the tokens;
  entropy_ratio   router_entropy / ln n;
  srank           effective rank of the torso's features (Kumar et al. 2021's threshold
                  0.01 on singular values) over the states; the baseline's is the reference;
  token_norm      mean l2 norm of the MoE layer's input tokens;
  logit_std       standard deviation of Soft MoE's logits x . phi (Puigcerver et al. 2023).

`--phi_scales` multiplies Soft MoE's initial phi (lecun_normal, fan_in n * d; with
normalize_tokens, its learned scale, init 1) to show how large the logits must be before the
layer routes, as the paper's random-phi ablation (phi
drawn from N(0, 1), Obando-Ceron et al. 2024 Fig. 8) has them.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from offline_moe.flags_common import check_items, define_data_dir, parse

TORSOS = ("baseline", "soft_moe", "soft_moe:normalize_tokens=true", "top1_moe")


def _torso(spec: str, encoder: str, expert_width: int, num_experts: int):
    from offline_moe.networks import make_torso

    name, _, rest = spec.partition(":")
    kwargs = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        kwargs[key] = (
            value.lower() in ("1", "true")
            if value.lower() in ("true", "false")
            else (float(value) if "." in value else int(value))
        )
    if name == "baseline":
        return make_torso(name, encoder=encoder, **kwargs)
    return make_torso(
        name, encoder=encoder, expert_width=expert_width, num_experts=num_experts, **kwargs
    )


def _states(game: str, data_dir: str, count: int, seed: int) -> np.ndarray:
    import os

    from offline_moe.data.shipped import restore_if_shipped
    from offline_moe.replay.cache import load_cache

    cache_dir = os.path.join(data_dir, "cache", f"{game}_run1_5pct")
    if not os.path.isdir(cache_dir) and not restore_if_shipped(cache_dir):
        raise SystemExit(
            f"bench routing: no replay cache {cache_dir} (ingest one, see docs/data.md)"
        )
    arrays, meta = load_cache(cache_dir)
    obs = arrays["observation"]
    idx = np.sort(np.random.default_rng(seed).choice(len(obs), count, replace=False))
    x = np.asarray(obs[idx])
    if int(meta.get("frame_stack", 4)) != 1:
        raise SystemExit("bench routing: stacked (Atari) caches are not supported; use MinAtar")
    return x.astype(np.float32)


def measure(torso, x: jax.Array, phi_scale: float = 1.0) -> dict:
    from offline_moe.train.repr_metrics import srank

    variables = torso.init(jax.random.PRNGKey(0), x[:2], train=False)
    params = variables["params"]
    moe = params.get("moe", {})
    out = {}
    normalized = "scale" in moe  # normalize_tokens: logits = scale * cos(token, phi)
    if "phi" in moe:
        key = "scale" if normalized else "phi"
        params = {**params, "moe": {**moe, key: moe[key] * phi_scale}}
    (features, aux), inter = torso.apply(
        {**variables, "params": params}, x, train=False, mutable=["intermediates"]
    )
    out["srank"] = int(srank(features))
    out["features"] = int(features.shape[-1])
    if "router_entropy" in aux:
        n = int(aux["expert_usage"].shape[-1])
        out["router_entropy"] = float(aux["router_entropy"])
        out["entropy_ratio"] = float(aux["router_entropy"]) / math.log(n) if n > 1 else 1.0
    tokens = _tokens(torso, {**variables, "params": params}, x)
    if tokens is not None:
        out["token_norm"] = float(jnp.linalg.norm(tokens, axis=-1).mean())
        if "phi" in moe:
            from offline_moe.networks.moe import l2_normalize

            phi = params["moe"]["phi"]
            if normalized:
                tokens = l2_normalize(tokens, axis=-1)
                phi = params["moe"]["scale"] * l2_normalize(phi, axis=0)
            logits = jnp.einsum("bmd,dnp->bmnp", tokens, phi)
            out["logit_std"] = float(jnp.std(logits))
    return out


def _tokens(torso, variables, x):
    """The MoE layer's input tokens, read by running the torso's encoder and tokenizer."""
    from offline_moe.networks.torsos import Tokenizer, make_encoder

    if not hasattr(torso, "tokenization"):
        return None

    def tokens_fn(module, x):
        fmap = make_encoder(module.encoder)(x)
        return Tokenizer(module.tokenization, module.patch_size, name="tokenizer")(fmap)

    import flax.linen as nn

    class _Probe(nn.Module):
        encoder: str
        tokenization: str
        patch_size: int

        @nn.compact
        def __call__(self, x):
            return tokens_fn(self, x)

    probe = _Probe(torso.encoder, torso.tokenization, torso.patch_size)
    # Same parameter names as the torso's encoder and tokenizer: reuse its parameters.
    shapes = jax.eval_shape(probe.init, jax.random.PRNGKey(0), x[:2])["params"]
    params = {k: variables["params"][k] for k in shapes}
    return probe.apply({"params": params}, x)


def define_flags(fv: flags.FlagValues) -> None:
    """The benchmark's flags, in `fv`."""
    kw = dict(flag_values=fv)
    flags.DEFINE_string("game", "MinAtarBreakout", "Game (bench routing: a MinAtar game).", **kw)
    define_data_dir(fv)
    flags.DEFINE_integer("states", 256, "States drawn from the cache.", lower_bound=2, **kw)
    flags.DEFINE_integer("seed", 0, "Seed (bench routing: of the state draw).", lower_bound=0, **kw)
    flags.DEFINE_string(
        "torsos",
        ",".join(TORSOS),
        "Torso specs, comma-separated (bench routing: ';'-separated if they carry keywords, "
        "name:key=value,...).",
        **kw,
    )
    flags.DEFINE_string("encoder", "minatar", "Encoder of every torso.", **kw)
    flags.DEFINE_integer(
        "num_experts", 8, "Number of experts n of the MoE torsos.", lower_bound=1, **kw
    )
    flags.DEFINE_integer("expert_width", 128, "MoE expert width H.", lower_bound=1, **kw)
    flags.DEFINE_list("phi_scales", ["1", "10", "30", "100"], "Soft MoE phi multipliers.", **kw)
    check_items(fv, "phi_scales", lambda x: float(x) > 0, "positive numbers, e.g. 1,10,30")


def main(argv) -> None:
    args = parse(argv, define_flags, prog="bench routing", doc=__doc__)
    x = jnp.asarray(_states(args.game, args.data_dir, args.states, args.seed))
    specs = args.torsos.split(";") if ";" in args.torsos else _split_specs(args.torsos)
    scales = [float(s) for s in args.phi_scales]
    for spec in specs:
        torso = _torso(spec, args.encoder, args.expert_width, args.num_experts)
        for scale in scales if spec.startswith("soft_moe") else [1.0]:
            record = {"bench": "routing", "game": args.game, "torso": spec, "phi_scale": scale,
                      "states": args.states, **measure(torso, x, scale)}  # fmt: skip
            print(json.dumps(record), flush=True)


def _split_specs(text: str) -> list[str]:
    """'baseline,soft_moe:normalize_tokens=true,top1_moe' -> specs (a keyword has '=')."""
    specs: list[str] = []
    for part in text.split(","):
        if "=" in part and ":" not in part and specs:
            specs[-1] += "," + part
        else:
            specs.append(part)
    return specs
