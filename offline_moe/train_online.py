"""Command: online training on the Atari 100k protocol (DER, DrQ(eps)) with any torso, and
MinAtar's DQN logging its replay as DQN-Replay checkpoints (`offline_moe/configs/dqn.py`).

  python -m offline_moe.train_online --config=offline_moe/configs/der.py:game=Pong --workdir=runs/y
  python -m offline_moe.train_online --config=offline_moe/configs/drq_eps.py:smoke --workdir=runs/z
  python -m offline_moe.train_online --config=offline_moe/configs/dqn.py:game=MinAtarSeaquest \
      --workdir=runs/dqn/MinAtarSeaquest/1
  python -m offline_moe.train_online --workdir=runs/y        # resume (config.json is reused)

The protocol and the run directory are described in `offline_moe.train.online`.
"""

from __future__ import annotations

import json

from absl import app, flags

from offline_moe import errors
from offline_moe.train.online import train_and_evaluate
from offline_moe.train.process import define_process_flags, setup_trainer_process
from offline_moe.train.protocol import to_jsonable

# ---------------------------------------------------------------------------------------------
# Entry point (flags are defined only when run as a program, so importing this module next to
# other entry points never redefines a flag).


def main(argv):
    from absl import flags as absl_flags

    del argv
    fl = absl_flags.FLAGS
    setup_trainer_process()  # compilation cache, monitoring, quiet Orbax
    try:
        summary = train_and_evaluate(
            fl["config"].value, fl.workdir, max_iterations=fl.max_iterations
        )
    except errors.USER_ERRORS as e:
        raise SystemExit(f"[train_online] {e}") from None
    if summary is not None:
        print(json.dumps(to_jsonable(summary), sort_keys=True))


if __name__ == "__main__":
    from ml_collections import config_flags

    config_flags.DEFINE_config_file(
        "config", None, "offline_moe/configs/{der,drq_eps,dqn}.py[:smoke,game=X]", lock_config=True
    )
    flags.DEFINE_string("workdir", None, "run directory (resumes if it has a checkpoint)")
    flags.DEFINE_integer(
        "max_iterations",
        None,
        "Stop after this many iterations in this invocation (checkpointed; rerun to resume).",
    )
    flags.mark_flag_as_required("workdir")
    define_process_flags()
    app.run(main)
