"""What the two trainer commands share: their flags, the config they run, and the checks made
before the run directory is touched.

    offline-moe train_offline --config=cql:smoke,game=Pong --workdir=runs/x
    offline-moe train_offline --config=cql:smoke --config.torso.name=soft_moe --print_config

`--print_config` prints the config the run would use (the file's, with its argument, presets
and overrides applied; on resume the stored config.json) as JSON and exits 0, writing nothing.
A config that fails its checks (`offline_moe.configs.check`, the track's own `preflight`) or a
`--workdir` without a run and no `--config` ends in one line before anything is created.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping

from offline_moe import errors

CONFIG_HELP = (
    "Config: a name ({names}) or a config file, with an optional argument after ':', e.g. "
    "{example}:smoke,game=Pong; override fields with --config.FIELD=VALUE. Omit to resume the "
    "run in --workdir from its config.json."
)


def define_trainer_flags(*, names: str, example: str, fv=None) -> None:
    """--config, --workdir, --max_iterations, --print_config and the process flags, in `fv`
    (default: absl's global FLAGS)."""
    from absl import flags
    from ml_collections import config_flags

    from offline_moe.train.process import define_process_flags

    fv = flags.FLAGS if fv is None else fv
    if fv is flags.FLAGS and "config" in fv and "workdir" in fv:
        return  # already defined in this process (a second command run in-process)
    config_flags.DEFINE_config_file(
        "config",
        None,
        CONFIG_HELP.format(names=names, example=example),
        lock_config=True,
        flag_values=fv,
    )
    flags.DEFINE_string(
        "workdir",
        None,
        "Run directory (config, metrics, checkpoints); resumes a run there.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "max_iterations",
        None,
        "Stop after this many iterations in this invocation (checkpointed; rerun to resume; "
        "0: open or resume the run and stop).",
        flag_values=fv,
        lower_bound=0,
    )
    flags.DEFINE_bool(
        "print_config",
        False,
        "Print the resolved config (presets and overrides applied) as JSON and exit; writes "
        "nothing (a dry run).",
        flag_values=fv,
    )
    define_process_flags(fv)


def stored_config(workdir: str | None) -> dict | None:
    """workdir/config.json, or None when there is none."""
    from offline_moe.train.rundir import CONFIG

    path = os.path.join(workdir, CONFIG) if workdir else None
    if not path or not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def resolve(
    config, workdir: str | None, *, print_config: bool, preflight: Callable[[Mapping], None]
) -> dict:
    """The config the command runs, as a dict, checked before anything is written.

    Args:
      config: the --config value (a ConfigDict) or None (resume).
      workdir: the --workdir value.
      print_config: the --print_config value (then --workdir is optional, and the data need
        not exist yet).
      preflight: the track's checks of a new run's config (raise InputError).

    Returns:
      The given config, or the stored config.json of the run being resumed.

    Raises:
      InputError: no --workdir, no run there and no --config, or a config that fails the
        checks.
    """
    from offline_moe.configs.check import check_config

    if workdir is None and not print_config:
        raise errors.InputError("--workdir is required; give the run directory, e.g. runs/x")
    stored = stored_config(workdir)
    if config is None:
        if stored is None:
            where = os.path.abspath(workdir) if workdir else "no --workdir"
            raise errors.InputError(
                f"no run to resume in --workdir={workdir} ({where} has no config.json); check "
                "the path, or give --config=NAME[:ARG] to start a run (`offline-moe list "
                "agents` names the configs)"
            )
        return stored  # checked when the run started
    given = json.loads(config.to_json_best_effort())
    if stored is None and not print_config:
        preflight(given)  # a new run: all that can be checked before its directory exists
    else:
        check_config(given)  # a resume compares it with config.json (refused if it differs)
    return given


def print_config(config: Mapping) -> None:
    """The config as indented JSON on stdout."""
    print(json.dumps(config, indent=2))
