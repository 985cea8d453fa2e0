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

from absl import flags

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


def define_flags(fv=None):
    """The command's flags, in `fv` (default: absl's global FLAGS). Called only when run as a
    program (or by the flag table), so importing this module never redefines a flag."""
    from ml_collections import config_flags

    fv = flags.FLAGS if fv is None else fv
    config_flags.DEFINE_config_file(
        "config",
        None,
        "offline_moe/configs/{der,drq_eps,dqn}.py[:smoke,game=X]",
        lock_config=True,
        flag_values=fv,
    )
    flags.DEFINE_string(
        "workdir", None, "run directory (resumes if it has a checkpoint)", flag_values=fv
    )
    flags.DEFINE_integer(
        "max_iterations",
        None,
        "Stop after this many iterations in this invocation (checkpointed; rerun to resume).",
        flag_values=fv,
    )
    flags.mark_flag_as_required("workdir", flag_values=fv)
    define_process_flags(fv)


if __name__ == "__main__":
    from offline_moe.flags_common import run_app

    run_app(main, define_flags, prog="train_online", doc=__doc__)
