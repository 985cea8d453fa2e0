"""The dispatcher of `offline-moe COMMAND [flags]` (installed by pip; also `python -m
offline_moe.cli`).

    offline-moe --help                      # the commands, one line each
    offline-moe --version
    offline-moe COMMAND --help              # a command's flags and their defaults
    offline-moe train_offline --config=cql:smoke --workdir=runs/x

A command runs exactly as `python -m MODULE [flags]` would (`commands.COMMANDS` names the
module), in this process, with the program name `offline-moe COMMAND`. `--verbose` anywhere
after the command shows the traceback of an error; it is taken off the command line and
handed on as OFFLINE_MOE_VERBOSE=1 (inherited by the processes the command starts), so that
commands whose own parser does not know the flag take it too. A user error that a command does
not catch itself still ends in one line and exit status 2.
"""

from __future__ import annotations

import os
import runpy
import sys
from collections.abc import Sequence

from offline_moe import __version__, errors
from offline_moe.cli.app import PROG, VERBOSE_ENV, error_line
from offline_moe.cli.commands import COMMANDS


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        f"usage: {PROG} COMMAND [flags]   ({PROG} COMMAND --help: its flags and defaults)",
        "",
        "Offline and low-data deep RL with Mixture-of-Experts torsos.",
        "",
        "commands:",
    ]
    lines += [f"  {c.name:{width}s}  {c.summary}" for c in COMMANDS.values()]
    lines += [
        "",
        "options:",
        f"  {'--help':{width}s}  this text",
        f"  {'--version':{width}s}  the version",
        f"  {'--verbose':{width}s}  (after COMMAND) full tracebacks of errors",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns (or exits with) its status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"{PROG} {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        kind = "option" if name.startswith("-") else "command"
        print(
            error_line(
                PROG, errors.unknown(kind, name, COMMANDS, f"`{PROG} --help` lists the commands")
            ),
            file=sys.stderr,
        )
        return 2
    if "--verbose" in rest:
        rest = [a for a in rest if a != "--verbose"]
        os.environ[VERBOSE_ENV] = "1"
    sys.argv = [f"{PROG} {name}", *rest]
    try:
        runpy.run_module(COMMANDS[name].module, run_name="__main__")
    except BrokenPipeError:  # `offline-moe list games | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (Python's docs: signal)
        return 0
    except errors.USER_ERRORS as e:  # a command that does not catch its own user errors
        if os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
            raise
        print(error_line(name, e), file=sys.stderr)
        return 1 if isinstance(e, errors.RUN_FAILURES) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
