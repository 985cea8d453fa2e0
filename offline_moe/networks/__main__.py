"""`python -m offline_moe.networks`: the table of registered torsos and their parameter counts.

Counts come from shapes alone (`jax.eval_shape`): nothing is compiled or allocated, so the
table prints in seconds on any machine. Counts are for the torso only (encoder + penultimate
layer or MoE); the learner's head (Dense(A), dueling or C51) is excluded. Atari encoders take
84x84x4 stacks; the MinAtar encoder a 10x10x4 state (Asterix, Breakout; the conv has
3*3*16 = 144 more weights per extra channel) with experts of width 128 (`DENSE_UNITS`).

    python -m offline_moe.networks                 # plain-text table
    python -m offline_moe.networks --markdown      # the same as a markdown table
    python -m offline_moe.networks --num_experts=1,8 --encoders=impala
"""

import os
import textwrap

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from absl import flags  # noqa: E402

from offline_moe.flags_common import check_items, fail, parse, positive_int  # noqa: E402
from offline_moe.networks import (  # noqa: E402
    DENSE_UNITS,
    ENCODERS,
    list_torsos,
    make_torso,
    torso_kwarg_names,
)
from offline_moe.networks.registry import count_params, resolve_torso  # noqa: E402

INPUT_SHAPE = (1, 84, 84, 4)  # an Atari observation (DQN's 4 stacked 84x84 frames)
ENCODER_INPUT = {"minatar": (1, 10, 10, 4)}  # a MinAtar Breakout / Asterix state


def _shapes(name: str, kwargs: dict) -> tuple[int, int]:
    """(parameter count, feature width D) of a torso, from shapes only."""
    torso = make_torso(name, **kwargs)
    x = jax.ShapeDtypeStruct(ENCODER_INPUT.get(kwargs.get("encoder"), INPUT_SHAPE), jnp.float32)
    (features, _), variables = jax.eval_shape(
        lambda x: torso.init_with_output(jax.random.key(0), x, train=False), x
    )
    return count_params(variables.get("params", variables)), int(features.shape[-1])


def table_rows(encoders, experts) -> list[tuple[str, str, list[tuple[int, int] | None]]]:
    """One row per (torso variant, encoder): a (params, D) cell per n (None: not applicable)."""
    rows = []
    for name in list_torsos():
        accepted = torso_kwarg_names(name)
        if "num_experts" in accepted:
            variants = [(name, "num_experts")]
        elif "width" in accepted:
            variants = [(f"{name} (width 1)", None), (f"{name} (width n)", "width")]
        else:
            variants = [(name, None)]
        for encoder in encoders if "encoder" in accepted else ["-"]:
            base = {"encoder": encoder} if encoder != "-" else {}
            if "expert_width" in accepted and encoder in DENSE_UNITS:  # 512 Atari, 128 MinAtar
                base["expert_width"] = DENSE_UNITS[encoder]
            for label, scaled in variants:
                if scaled is None:
                    cell = _shapes(name, base)
                    cells = [cell] * len(experts)
                else:
                    cells = [_shapes(name, {**base, scaled: n}) for n in experts]
                rows.append((label, encoder, cells))
    return rows


def format_table(encoders=tuple(ENCODERS), experts=(1, 2, 4, 8), markdown=False) -> str:
    rows = table_rows(encoders, experts)
    header = [
        "torso",
        "encoder",
        *[f"n={n}: params" for n in experts],
        "D (n=" + str(experts[-1]) + ")",
    ]
    body = [
        [label, encoder, *[f"{c[0]:,}" for c in cells], f"{cells[-1][1]:,}"]
        for label, encoder, cells in rows
    ]
    if markdown:
        lines = [
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|",
        ]
        lines += ["| " + " | ".join(r) + " |" for r in body]
    else:
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        fmt = lambda r: "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))
        )
        lines = [fmt(header), "  ".join("-" * w for w in widths), *map(fmt, body)]
    return "\n".join(lines)


def describe_defaults() -> str:
    lines = []
    for name in list_torsos():
        factory = resolve_torso(name)
        defaults = []
        for key in torso_kwarg_names(name):
            value = getattr(factory, key, None)
            defaults.append(f"{key}={value!r}" if value is not None else key)
        text = f"{name}: {', '.join(defaults)}"
        lines.append(textwrap.fill(text, width=96, initial_indent="  ", subsequent_indent="    "))
    return "\n".join(lines)


def define_flags(fv: flags.FlagValues) -> None:
    """The command's flags, in `fv`."""
    kw = dict(flag_values=fv)
    flags.DEFINE_list(
        "num_experts", ["1", "2", "4", "8"], "Numbers of experts n, comma-separated.", **kw
    )
    check_items(fv, "num_experts", positive_int, "positive integers, e.g. 1,2,4,8")
    flags.DEFINE_list("encoders", list(ENCODERS), "Encoders, comma-separated.", **kw)
    flags.DEFINE_boolean("markdown", False, "Print a markdown table.", **kw)


def main(argv=None) -> None:
    args = parse(argv, define_flags, prog="networks", doc=__doc__)
    try:
        experts = tuple(int(n) for n in args.num_experts)
    except ValueError:
        fail("networks", f"--num_experts={','.join(args.num_experts)}: expected integers")
    encoders = tuple(args.encoders)
    for encoder in encoders:
        if encoder not in ENCODERS:
            fail("networks", f"unknown encoder {encoder!r}; valid: {', '.join(ENCODERS)}")

    print(
        "offline_moe torsos: parameter counts of the torso only (encoder + penultimate layer or\n"
        "MoE; the learner's head is excluded), input 84x84x4 (minatar: 10x10x4, experts of\n"
        "width 128). n = number of experts; for the baseline, 'width n' is the paper's\n"
        "baseline scaled by n (Dense 512*n; minatar Dense 128*n).\n"
        "D = feature width handed to the head.\n"
    )
    print(format_table(encoders, experts, markdown=args.markdown))
    print("\ndefaults (a config sets them through config.torso; see offline_moe.configs.common):")
    print(describe_defaults())
    print(
        "\nbuild one: make_torso('soft_moe', num_experts=4); your own torso, no package edit:\n"
        "make_torso('my_pkg.nets:MyTorso', ...). Time them: python -m offline_moe.bench torso"
    )


if __name__ == "__main__":
    from offline_moe.flags_common import run_main

    run_main(main, "networks")
