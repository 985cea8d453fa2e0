r"""Command: train CQL / CQL+C51 offline from a replay cache, evaluate in ALE.

    offline-moe train_offline --config=cql:game=Pong \
        --config.torso.name=soft_moe --config.torso.num_experts=8 \
        --config.data.cache_dir=data/cache/Pong_run1_5pct --workdir=runs/cql_pong_soft_moe

    offline-moe train_offline --workdir=runs/cql_pong_soft_moe   # resume
    offline-moe train_offline --config=cql:smoke --print_config   # the config, nothing run

(`python -m offline_moe.train_offline ...` is the same command.) The library function is
`offline_moe.train.offline.train_and_evaluate(config, workdir)`.
"""

from __future__ import annotations

from offline_moe.cli import trainer
from offline_moe.train.offline import preflight, train_and_evaluate
from offline_moe.train.process import setup_trainer_process

# ----- absl entry point -----


def define_flags(fv=None):
    """The command's flags, in `fv` (default: absl's global FLAGS). Called only when run as a
    program (or by the flag table), so importing this module never redefines a flag."""
    from absl import flags

    fv = flags.FLAGS if fv is None else fv
    trainer.define_trainer_flags(names="cql, cql_c51", example="cql", fv=fv)
    return fv


def main(argv) -> None:
    from absl import flags

    del argv
    fl = flags.FLAGS
    config = trainer.resolve(
        fl.config, fl.workdir, print_config=fl.print_config, preflight=preflight
    )
    if fl.print_config:
        trainer.print_config(config)
        return
    setup_trainer_process()  # compilation cache, monitoring, quiet Orbax
    train_and_evaluate(fl.config, fl.workdir, max_iterations=fl.max_iterations)


if __name__ == "__main__":
    from offline_moe.cli import app

    define_flags()
    app.run(main, command="train_offline")
