"""absl flags for every command: --help exits 0 with the command's own flags and defaults, a
bad flag is one line and exit 2, and docs/cli.md's flag table is the one the code defines."""

import os
import subprocess
import sys

import pytest

from offline_moe import flags_common
from tests import REPO_ROOT

CLI_DOC = REPO_ROOT / "docs" / "cli.md"


def _help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        flags_common.run_command(command, [command, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", list(flags_common.COMMANDS))
def test_help_exits_0_and_shows_every_flag_with_its_default(command, capsys):
    out = _help(command, capsys)
    assert out.startswith("usage: python -m offline_moe.")
    fv = flags_common.command_flags(command)
    for name in fv:
        flag = fv[name]
        shown = f"--[no]{name}:" if flag.boolean else f"--{name}:"
        assert shown in out, f"{command} --help does not show --{name}"
        if flag.default is not None:
            assert f"(default: '{flag.default_as_str.strip(chr(39))}')" in out, name


def test_trainer_help_shows_the_process_flags(capsys):
    out = _help("train_offline", capsys)
    for name in ("--[no]compile_cache:", "--wandb_project:", "--workdir:", "--config:"):
        assert name in out


def test_help_from_another_directory_as_users_run_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "JAX_PLATFORMS": "cpu"}
    for cmd in (["offline_moe.bench", "learner", "--help"], ["offline_moe.train_online", "-h"]):
        done = subprocess.run([sys.executable, "-m", *cmd], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        assert "(default: " in done.stdout
    assert not list(tmp_path.iterdir())  # --help writes nothing


def test_bench_help_lists_the_benchmarks_one_line_each(capsys):
    from offline_moe.bench import __main__ as bench

    with pytest.raises(SystemExit) as exit_:
        bench.main(["bench", "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    lines = [line for line in out.splitlines() if line.startswith("  ")]
    assert [line.split()[0] for line in lines] == list(bench.SUBCOMMANDS)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["report", "--runs=x"], "Unknown command line flag 'runs'"),
        (["report", "--reps=0"], "--reps=0"),
        (["sweep", "--num_seeds=two"], "--num_seeds"),
        (["networks", "--encoders=impalla"], "unknown encoder 'impalla'"),
        (["local_data", "--games=Pong", "Pong"], "unexpected arguments"),
    ],
)
def test_a_bad_flag_is_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        flags_common.run_command(argv[0], argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith(f"[{argv[0]}] error: ") and err.count("\n") == 1 and message in err


def test_the_doc_table_is_the_flags_of_the_code():
    text = CLI_DOC.read_text()
    begin, end = text.index(flags_common.TABLE_BEGIN), text.index(flags_common.TABLE_END)
    table = text[begin + len(flags_common.TABLE_BEGIN) : end].strip()
    assert table == flags_common.flag_table(), "run: python -m offline_moe.flags_common"
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[-1].split(", ")
    for command in flags_common.COMMANDS:
        for name in flags_common.command_flags(command):
            assert command in rows[f"--{name}"], f"--{name} of {command} is not in docs/cli.md"


def test_one_meaning_per_shared_name():
    """A name several commands take has one written meaning (not one command's help)."""
    shared = [n for n, (_, cmds) in flags_common.flag_commands().items() if len(cmds) > 1]
    missing = sorted(set(shared) - set(flags_common.MEANINGS))
    assert not missing, f"add a meaning to flags_common.MEANINGS for: {missing}"
