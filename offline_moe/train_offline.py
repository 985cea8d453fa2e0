r"""Command: train CQL / CQL+C51 offline from a replay cache, evaluate in ALE.

    python -m offline_moe.train_offline \
        --config=offline_moe/configs/cql.py:game=Pong \
        --config.torso.name=soft_moe --config.torso.num_experts=8 \
        --config.data.cache_dir=data/cache/Pong_run1_5pct --workdir=runs/cql_pong_soft_moe

    python -m offline_moe.train_offline --workdir=runs/cql_pong_soft_moe   # resume

The library function is `offline_moe.train.offline.train_and_evaluate(config, workdir)`.
"""

from __future__ import annotations

from offline_moe import errors
from offline_moe.train.offline import train_and_evaluate
from offline_moe.train.process import define_process_flags, setup_trainer_process

# ----- absl entry point -----


def define_flags(fv=None):
    """The command's flags, in `fv` (default: absl's global FLAGS)."""
    from absl import flags
    from ml_collections import config_flags

    fv = flags.FLAGS if fv is None else fv
    config_flags.DEFINE_config_file(
        "config",
        None,
        "Config file with optional argument, e.g. offline_moe/configs/cql.py:smoke,game=Pong; "
        "override fields with --config.FIELD=VALUE. Omit to resume a run from "
        "WORKDIR/config.json.",
        lock_config=True,
        flag_values=fv,
    )
    flags.DEFINE_string(
        "workdir", None, "Run directory (config, metrics, checkpoints).", flag_values=fv
    )
    flags.DEFINE_integer(
        "max_iterations",
        None,
        "Stop after this many iterations in this invocation (checkpointed; rerun to resume).",
        flag_values=fv,
    )
    flags.mark_flag_as_required("workdir", flag_values=fv)
    define_process_flags(fv)
    return fv


def main(argv) -> None:
    from absl import flags

    del argv
    flags_ = flags.FLAGS
    setup_trainer_process()  # compilation cache, monitoring, quiet Orbax
    try:
        train_and_evaluate(flags_.config, flags_.workdir, max_iterations=flags_.max_iterations)
    except errors.USER_ERRORS as e:
        raise SystemExit(f"[train_offline] {e}") from None


if __name__ == "__main__":
    from offline_moe.flags_common import run_app

    run_app(main, define_flags, prog="train_offline", doc=__doc__)
