"""The command line as a user meets it: `offline-moe ...` run from a directory outside the
repository (tmp_path), in subprocesses.

A user error is one line on stderr (`[COMMAND] error: ...`, the style of the progress
lines), no traceback, exit status 2, and the directory is the same before and after (no
workdir, no run.lock, no data).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from offline_moe import __version__
from offline_moe.analysis.suites import SUITES
from offline_moe.cli.commands import COMMANDS
from offline_moe.configs.agents import AGENTS
from offline_moe.envs import registry as env_registry
from offline_moe.networks import list_torsos


def _env(**extra) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    env.update(JAX_PLATFORMS="cpu", JAX_DISABLE_MOST_OPTIMIZATIONS="1", **extra)
    env.pop("OFFLINE_MOE_VERBOSE", None)
    return env


def offline_moe(cwd, *args, exe=None, timeout=240) -> subprocess.CompletedProcess:
    """`offline-moe ARGS` (as `python -m offline_moe.cli`, or the installed script `exe`)."""
    cmd = [exe] if exe else [sys.executable, "-m", "offline_moe.cli"]
    return subprocess.run(
        [*cmd, *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def snapshot(root) -> set[str]:
    return {
        os.path.relpath(os.path.join(d, n), root)
        for d, dirs, files in os.walk(root)
        for n in dirs + files
    }


def test_help_version_and_unknown_command(tmp_path):
    out = offline_moe(tmp_path, "--help")
    assert out.returncode == 0, out.stderr
    for name, command in COMMANDS.items():
        assert f"  {name}" in out.stdout and command.summary in out.stdout
    out = offline_moe(tmp_path, "--version")
    assert (out.returncode, out.stdout.strip()) == (0, f"offline-moe {__version__}")
    out = offline_moe(tmp_path, "trian_offline")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "did you mean 'train_offline'" in out.stderr


def test_trainer_help_shows_flags_with_defaults(tmp_path):
    out = offline_moe(tmp_path, "train_offline", "--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: offline-moe train_offline [flags]")
    for flag in ("--config", "--workdir", "print_config", "compile_cache", "verbose"):
        assert flag in out.stdout, flag
    assert "(default: 'true')" in out.stdout  # --compile_cache
    assert "absl.logging" not in out.stdout  # absl's own flags under --helpfull only


@pytest.mark.parametrize(
    "kind, expected",
    [
        ("games", lambda: env_registry.games()),
        ("suites", lambda: SUITES),
        ("agents", lambda: AGENTS),
        ("torsos", lambda: list_torsos()),
        ("presets", lambda: ["paper", "cql_period", "dopamine_counter", "minatar", "fig12"]),
    ],
)
def test_list_prints_the_registries(tmp_path, kind, expected):
    out = offline_moe(tmp_path, "list", kind)
    assert out.returncode == 0, out.stderr
    firsts = {line.split("\t")[0] for line in out.stdout.splitlines()}
    seconds = {line.split("\t")[1] for line in out.stdout.splitlines() if "\t" in line}
    assert set(expected()) <= firsts | seconds


def test_list_of_an_unknown_kind(tmp_path):
    out = offline_moe(tmp_path, "list", "gams")
    assert out.returncode == 2 and "did you mean 'games'" in out.stderr


TORSO_OVERRIDES = ["--config.torso.name=soft_moe", "--config.torso.num_experts=4"]


def test_print_config_by_name_and_by_path_writes_nothing(tmp_path):
    before = snapshot(tmp_path)
    configs = []
    for config in ("cql", os.path.join(os.path.dirname(AGENTS["cql"].config_file), "cql.py")):
        out = offline_moe(
            tmp_path,
            "train_offline",
            f"--config={config}:smoke,game=Pong",
            *TORSO_OVERRIDES,
            "--workdir=run",
            "--print_config",
        )
        assert out.returncode == 0, out.stderr
        configs.append(json.loads(out.stdout))
    assert configs[0] == configs[1]
    config = configs[0]
    assert (config["agent"], config["game"], config["smoke"]) == ("cql", "Pong", True)
    assert (config["torso"]["name"], config["torso"]["num_experts"]) == ("soft_moe", 4)
    assert config["num_iterations"] == 2  # the smoke budget
    assert snapshot(tmp_path) == before


SMOKE = "--config=cql:smoke,game=Pong"
USER_ERRORS = {
    "config key": (
        ["train_offline", SMOKE, "--config.torso.nme=x", "--workdir=run"],
        "did you mean 'name'",
    ),
    "torso name": (
        ["train_offline", SMOKE, "--config.torso.name=soft_mo", "--workdir=run"],
        "did you mean 'soft_moe'",
    ),
    "torso keyword": (
        [
            "train_online",
            "--config=der:smoke",
            "--config.torso.width=2",
            *TORSO_OVERRIDES[:1],
            "--workdir=run",
        ],
        "does not accept 'width'",
    ),  # fmt: skip
    "game": (["train_offline", "--config=cql:smoke,game=Pongg", "--workdir=run"], "'Pong'"),
    "config name": (["train_offline", "--config=cqll:smoke", "--workdir=run"], "'cql'"),
    "repository path": (
        ["train_offline", "--config=offline_moe/configs/cql.py:smoke", "--workdir=run"],
        "give --config=cql:smoke",
    ),
    "no replay cache": (["train_offline", SMOKE, "--workdir=run"], "config.data.cache_dir"),
    "workdir typo": (["train_online", "--workdir=rnu"], "no run to resume in --workdir=rnu"),
    "sweep agent": (["sweep", "--agents=cqll", "--print"], "did you mean 'cql'"),
    "sweep game": (["sweep", "--suite=Pongg", "--smoke", "--num_seeds=1"], "did you mean 'Pong'"),
    "sweep torso keyword": (
        ["sweep", "--suite=Pong", "--torsos=soft_moe@num_expert=4", "--num_seeds=1"],
        "did you mean 'num_experts'",
    ),
}


@pytest.mark.parametrize("case", list(USER_ERRORS))
def test_user_error_is_one_line_exit_2_and_writes_nothing(tmp_path, case):
    args, expected = USER_ERRORS[case]
    before = snapshot(tmp_path)
    out = offline_moe(tmp_path, *args)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    line = out.stderr.strip()
    assert "\n" not in line, out.stderr
    assert line.startswith(f"[{args[0]}] error: "), line
    assert expected in line, line
    assert snapshot(tmp_path) == before  # no workdir, no run.lock, no data, no runs


def test_verbose_shows_the_traceback(tmp_path):
    out = offline_moe(tmp_path, "train_offline", "--config=cqll", "--workdir=run", "--verbose")
    assert out.returncode != 0 and "Traceback" in out.stderr and "InputError" in out.stderr


@pytest.mark.slow
def test_smoke_run_from_outside_the_repository(tmp_path):
    """A tiny offline run with relative paths, from tmp_path: they resolve there."""
    from tests.train.test_run_integrity import synthetic_cache

    synthetic_cache(tmp_path / "cache")
    shrink = ["--config.num_iterations=1", "--config.updates_per_iteration=2",
              "--config.scan_steps=2", "--config.log_interval=2", "--config.learner.batch_size=4",
              "--config.eval.steps=5", "--config.eval.num_envs=1",
              "--config.eval.max_episode_steps=5", "--config.repr.batch_size=4"]  # fmt: skip
    out = offline_moe(
        tmp_path, "train_offline", SMOKE, "--config.data.cache_dir=cache", *shrink, "--workdir=run"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["done"] is True


def test_installed_console_script(tmp_path):
    # The script pip installs beside this Python (./run.sh calls .venv/bin/python without
    # putting .venv/bin on PATH), else the one on PATH.
    beside = Path(sys.executable).parent / "offline-moe"
    exe = str(beside) if beside.is_file() else shutil.which("offline-moe")
    if exe is None:
        pytest.skip("offline-moe is not installed (pip install -e . installs it)")
    out = offline_moe(tmp_path, "--version", exe=exe)
    assert (out.returncode, out.stdout.strip()) == (0, f"offline-moe {__version__}")
    out = offline_moe(tmp_path, "list", "agents", exe=exe)
    assert out.returncode == 0 and "cql_c51" in out.stdout


def test_the_entry_point_imports_no_tensorflow(tmp_path):
    code = (
        "import sys; import offline_moe.cli.main, offline_moe.cli.app, offline_moe.cli.trainer; "
        "assert 'tensorflow' not in sys.modules and 'jax' not in sys.modules"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
