"""Every flag of every command gets a wrong value, generated from the flag table.

For each command of `flags_common.COMMANDS` and each of its flags (the rows of docs/cli.md's
table), wrong values are derived from the flag's definition: a number flag gets a word and a
value past its declared bound (every number flag declares one), a boolean a non-boolean, an
enum a value outside it, and a name or path flag the typical mistake of its kind (a typo of a
game, agent, torso, encoder or suite; an input path that does not exist; an output path under
a regular file). Each is run through the installed entry point (`offline-moe COMMAND ...`,
in-process: `offline_moe.cli.main.main`) from a directory outside the repository, and must
end in one line `[COMMAND] error: ...` that names the flag, exit status 2, and a directory
unchanged (no run directory, lock, cache or report).
"""

from __future__ import annotations

import os
import runpy
import signal

import pytest
from absl import flags

from offline_moe import flags_common
from offline_moe.cli import main as cli_main
from offline_moe.cli.commands import COMMANDS

# A name or path flag: its wrong value, by flag name (one vocabulary: a name means one thing).
# OUT: an output path under a regular file (`afile`, made in the directory beforehand).
OUT = "afile/sub"
MISSING = "no_such_path"
BY_NAME = {
    "game": "Pongg",
    "games": "Pong,Pongg",
    "agent": "cqll",
    "agents": "cql,cqll",
    "torso": "soft_mo",
    "torsos": "baseline,soft_mo",
    "encoder": "impalla",
    "encoders": "nature,impalla",
    "suite": "minatr",
    "config": "cqll:smoke",
    "data_dir": OUT,
    "runs_dir": OUT,
    "report_dir": OUT,
    "dataset_dir": OUT,
    "scratch_dir": OUT,
    "compile_cache_dir": OUT,
    "catch_runs_dir": OUT,
    "workdir": OUT,
    "cache_dir": OUT,
    "shipped_dir": OUT,
    "tfds_dir": MISSING,
    "scores": MISSING,
    "source": "tfds:rlu_atari/Pongg_run_1",
    "checkpoints": "5-2",
    "address": "auto",  # without --backend=ray
    "config_arg": "preset=nope",
    "devices": "gpu0",
    "override": "config.nope=1",
    "python": MISSING,
    "trainer_module": "no_such_module",
    "wandb_project": "bad/name",
    "name": "../x",
    "n_steps": "1,x",
    "layouts": "nope",
    "num_seeds": "1,x",
    "sections": "nope",
    "phi_scales": "1,x",
    "cpu_unroll": "x",
    "num_experts": "2,x",
    "policy": "nope",
}
# Where one command reads what others write.
BY_COMMAND = {
    ("report", "runs_dir"): MISSING,
    ("report", "compare"): "soft_moe",  # not X:Y
    ("bench data", "cache_dir"): MISSING,
    ("bench learner", "cache_dir"): MISSING,
    ("data.shipped", "cache_dir"): MISSING,
}
# The rest of a command line that is valid, so that only the wrong flag can be at fault
# (and small: were a wrong value missed, the command would run, briefly, and fail the test).
BASE = {
    "train_offline": ["--config=cql:smoke,game=Pong", "--workdir=run"],
    "train_online": ["--config=der:smoke,game=Pong", "--workdir=run"],
    "sweep": ["--print"],
    "record": ["--cache_dir=cache", "--steps=5"],
    "ingest": ["--source=tfds:rlu_atari/Pong_run_1", "--game=Pong", "--cache_dir=cache"],
    "local_data": ["--games=Pong", "--steps=5"],
    "data.shipped": ["--cache_dir=."],
}
# Flags whose every value is valid (a free-form label).
ANY_VALUE = {("bench learning", "note")}


def wrong_values(command: str, name: str, flag: flags.Flag) -> list[str]:
    """The wrong command-line values of one flag."""
    kind = type(flag.parser).__name__
    if flag.boolean:
        return ["maybe"]
    if kind in ("IntegerParser", "FloatParser"):
        lower, upper = flag.parser.lower_bound, flag.parser.upper_bound
        assert lower is not None or upper is not None, f"{command} --{name} declares no bound"
        out = ["x"]
        step = 1 if kind == "IntegerParser" else 0.5
        out += [str(lower - step)] if lower is not None else []
        out += [str(upper + step)] if upper is not None else []
        return out
    if kind == "EnumParser":
        return ["nonsense"]
    value = BY_COMMAND.get((command, name), BY_NAME.get(name))
    assert value is not None, f"add a wrong value for {command} --{name} to BY_NAME"
    return [value]


def cases():
    out = []
    for command in flags_common.COMMANDS:
        fv = flags_common.command_flags(command)
        for name in sorted(fv):
            if fv[name].name != name or (command, name) in ANY_VALUE:
                continue
            for value in wrong_values(command, name, fv[name]):
                out.append(pytest.param(command, name, value, id=f"{command}--{name}={value}"))
    return out


def snapshot(root) -> set[str]:
    return {
        os.path.relpath(os.path.join(d, n), root)
        for d, dirs, files in os.walk(root)
        for n in dirs + files
    }


def _run(command: str, argv: list[str]) -> int | None:
    """`offline-moe ARGV` in this process (a module outside the entry point: `python -m`)."""
    if argv[0] in COMMANDS:
        return cli_main.main(argv)
    os.sys.argv = [command, *argv[1:]]
    runpy.run_module(flags_common.COMMANDS[command], run_name="__main__")
    return 0


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout("the command ran on with a wrong value")


@pytest.fixture
def outside(tmp_path, monkeypatch):
    """A directory outside the repository, with a regular file `afile`, as the cwd."""
    (tmp_path / "afile").write_text("a file, not a directory\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OFFLINE_MOE_VERBOSE", raising=False)
    argv = list(os.sys.argv)
    yield tmp_path
    os.sys.argv = argv
    flags.FLAGS.unparse_flags()  # the absl commands parse into the global FLAGS


@pytest.mark.parametrize("command, name, value", cases())
def test_every_flag_with_a_wrong_value(outside, capsys, command, name, value):
    words = command.split()
    argv = [*words, *BASE.get(command, []), f"--{name}={value}"]
    before = snapshot(outside)
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    try:
        with pytest.raises(SystemExit) as exit_:
            raise SystemExit(_run(command, argv))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2, err[-2000:]
    assert "\n" not in err and "Traceback" not in err, err[-2000:]
    assert err.startswith(f"[{words[0]}") and "] error: " in err, err
    assert name in err, err
    assert snapshot(outside) == before


@pytest.mark.parametrize("command", list(flags_common.COMMANDS))
def test_help_from_outside_shows_the_usage_and_every_default(outside, capsys, command):
    words = command.split()
    before = snapshot(outside)
    with pytest.raises(SystemExit) as exit_:
        raise SystemExit(_run(command, [*words, "--help"]))
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith("usage: "), out[:500]
    fv = flags_common.command_flags(command)
    for name in fv:
        flag = fv[name]
        if flag.name != name:
            continue
        assert (f"--[no]{name}:" if flag.boolean else f"--{name}:") in out, name
        if flag.default is not None and flag.default != []:
            assert f"(default: '{flag.default_as_str.strip(chr(39))}')" in out, name
    assert snapshot(outside) == before
