"""Command: online training on the Atari 100k protocol (DER, DrQ(eps)) with any torso, and
MinAtar's DQN logging its replay as DQN-Replay checkpoints (`offline_moe/configs/dqn.py`).

  offline-moe train_online --config=der:game=Pong --workdir=runs/y
  offline-moe train_online --config=drq_eps:smoke --workdir=runs/z
  offline-moe train_online --config=dqn:game=MinAtarSeaquest --workdir=runs/dqn/MinAtarSeaquest/1
  offline-moe train_online --workdir=runs/y        # resume (config.json is reused)
  offline-moe train_online --config=der:smoke --print_config   # the config, nothing run

(`python -m offline_moe.train_online ...` is the same command.) The protocol and the run
directory are described in `offline_moe.train.online`.
"""

from __future__ import annotations

import json

from offline_moe.cli import trainer
from offline_moe.configs.check import check_config
from offline_moe.train.online import train_and_evaluate
from offline_moe.train.process import setup_trainer_process
from offline_moe.train.protocol import to_jsonable

# ---------------------------------------------------------------------------------------------
# Entry point (flags are defined only when run as a program, so importing this module next to
# other entry points never redefines a flag).


def define_flags(fv=None):
    """The command's flags, in `fv` (default: absl's global FLAGS). Called only when run as a
    program (or by the flag table), so importing this module never redefines a flag."""
    from absl import flags

    fv = flags.FLAGS if fv is None else fv
    trainer.define_trainer_flags(names="der, drq_eps, dqn", example="der", fv=fv)
    return fv


def main(argv):
    from absl import flags

    del argv
    fl = flags.FLAGS
    config = trainer.resolve(
        fl["config"].value, fl.workdir, print_config=fl.print_config, preflight=check_config
    )
    if fl.print_config:
        trainer.print_config(config)
        return
    setup_trainer_process()  # compilation cache, monitoring, quiet Orbax
    summary = train_and_evaluate(fl["config"].value, fl.workdir, max_iterations=fl.max_iterations)
    if summary is not None:
        print(json.dumps(to_jsonable(summary), sort_keys=True))


if __name__ == "__main__":
    from offline_moe.cli import app

    define_flags()
    app.run(main, command="train_online")
