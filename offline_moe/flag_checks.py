"""Checks of flag values by flag name, made when a command's flags are parsed.

One vocabulary, one check: a flag name means the same thing in every command
(`flags_common.MEANINGS`), so the value of `--game`, `--agents`, `--torsos`, `--suite`,
`--encoder` or an output directory is checked here, the same way for every command, before
the command does anything (no import of TensorFlow, no directory made, no data read). Only the
flags given on the command line are checked: the defaults are valid by construction.

    check_flags("sweep", fv)   # raises InputError: --agents: unknown agent 'cqll'; ...

Checks that depend on more than one flag, or on what a command reads, stay in the command.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from absl import flags

from offline_moe import errors

# Flags naming a directory or file the command writes (made if missing): the path must not
# be, or lie under, a regular file, and its nearest existing directory must be writable.
OUTPUT_PATHS = frozenset(
    {
        "catch_runs_dir",
        "compile_cache_dir",
        "data_dir",
        "dataset_dir",
        "report_dir",
        "scratch_dir",
        "workdir",
    }
)
# Flags whose meaning (read or written) depends on the command: (command, flag).
READ_PATHS = {
    ("report", "runs_dir"),
    ("bench data", "cache_dir"),
    ("bench learner", "cache_dir"),
    ("data.shipped", "cache_dir"),
}
WRITE_PATHS = {
    ("sweep", "runs_dir"),
    ("default_benchmark", "runs_dir"),
    ("bench learning", "runs_dir"),
    ("record", "cache_dir"),
    ("ingest", "cache_dir"),
    ("bench validate", "cache_dir"),
    ("data.shipped", "shipped_dir"),
}
# Flags naming an existing input.
INPUT_PATHS = frozenset({"tfds_dir", "scores"})
# Characters W&B refuses in a project name (wandb's own check of project names).
WANDB_FORBIDDEN = "/\\#?%:"


def check_output_path(flag: str, path: str) -> None:
    """An output path can be made: it is not under a regular file, and writable.

    Raises:
      InputError: naming the flag, the file in the way, and the fix.
    """
    full = os.path.abspath(os.path.expanduser(path))
    probe = full
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if probe != full and not os.path.isdir(probe):
        raise errors.InputError(
            f"--{flag}={path}: {probe} is a file, not a directory; give a path outside it"
        )
    if not os.access(probe, os.W_OK):
        raise errors.InputError(f"--{flag}={path}: {probe} is not writable; give another path")


def check_input_path(flag: str, path: str) -> None:
    """An input path exists.

    Raises:
      InputError: naming the flag and the absolute path looked at.
    """
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(full):
        raise errors.InputError(f"--{flag}={path}: {full} does not exist; check the path")


def _game(value: str) -> None:
    from offline_moe.configs.check import check_game

    check_game(value, where="")


def _agent(value: str) -> None:
    from offline_moe.configs.agents import AGENTS

    if value not in AGENTS:
        raise errors.unknown("agent", value, AGENTS, "`offline-moe list agents`")


def _torso(value: str) -> None:
    from offline_moe.configs.check import check_torso
    from offline_moe.configs.overrides import TorsoVariant

    variant = TorsoVariant.parse(value)
    block = {"name": variant.name, **dict(variant.kwargs)}
    check_torso(block, where="torso")


def _encoder(value: str) -> None:
    from offline_moe.networks.encoders import ENCODERS

    if value not in ENCODERS:
        raise errors.unknown("encoder", value, ENCODERS)


def _wandb_project(value: str) -> None:
    import importlib.util

    if not value:
        return
    bad = sorted(set(value) & set(WANDB_FORBIDDEN))
    if bad:
        raise errors.InputError(
            f"--wandb_project={value}: a Weights & Biases project name cannot contain "
            f"{' '.join(bad)}; give a name such as offline_moe"
        )
    if importlib.util.find_spec("wandb") is None:
        raise errors.InputError(
            f"--wandb_project={value} needs the wandb package: pip install wandb (or drop the "
            "flag; TensorBoard event files are always written)"
        )


def _source(value: str) -> None:
    from offline_moe.data.ingest import check_source_game, parse_source

    try:
        if "{" in value:  # ingest --suite's template, e.g. tfds:rlu_atari/{game}_run_{run}
            parse_source(value)
        else:
            check_source_game(value)
    except errors.IngestError as e:
        raise errors.InputError(str(e)) from None


def _suite(value: str) -> None:
    from offline_moe.analysis.suites import get_suite

    for game in get_suite(value):
        _game(game)


# flag name -> check of one value (list flags: of each item).
BY_NAME: dict[str, Callable[[str], None]] = {
    "game": _game,
    "games": _game,
    "agent": _agent,
    "agents": _agent,
    "torso": _torso,
    "torsos": _torso,
    "encoder": _encoder,
    "encoders": _encoder,
    "source": _source,
    "suite": _suite,
    "wandb_project": _wandb_project,
}


# The names that hold several values, comma-separated (most are absl list flags).
LISTS = frozenset({"games", "agents", "torsos", "encoders"})


def _strip_where(error: errors.InputError) -> str:
    return str(error).removeprefix(": ")


def check_flags(command: str, fv: flags.FlagValues) -> None:
    """Checks the value of every flag of `fv` given on the command line (see module doc).

    Raises:
      InputError: the first wrong value, its message starting with the flag (`--game=...`).
    """
    for name in list(fv):
        flag = fv[name]
        if flag.name != name or not flag.present or flag.value is None:
            continue
        value = flag.value
        try:
            if name in BY_NAME:
                items = value if isinstance(value, list) else [value]
                if name in LISTS and isinstance(value, str):  # a comma-separated string flag
                    items = [v.strip() for v in value.split(",") if v.strip()]
                for item in items:
                    BY_NAME[name](str(item))
            elif (command, name) in READ_PATHS or name in INPUT_PATHS:
                for item in value if isinstance(value, list) else [value]:
                    check_input_path(name, item)
            elif (command, name) in WRITE_PATHS or name in OUTPUT_PATHS:
                check_output_path(name, value)
        except errors.InputError as e:
            text = _strip_where(e)
            if not text.startswith(f"--{name}"):
                shown = ",".join(map(str, value)) if isinstance(value, list) else value
                text = f"--{name}={shown}: {text}"
            raise errors.InputError(text) from None
