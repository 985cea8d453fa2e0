"""The shared wrapper of the absl commands: help, config names, one-line errors, --verbose.

    if __name__ == "__main__":
        define_flags()
        cli.app.run(main, command="train_offline")

`run` is absl's `app.run` with the suite's conventions:
- `--help` (`-h`, `--helpshort`) prints the usage, the command's description and its flags
  with their defaults (the flags of the command and of the suite's modules it uses, not
  absl's own; `--helpfull`: all of them) and exits 0.
- A config flag (`config_flags.DEFINE_config_file`) also takes a config by name:
  `--config=cql:smoke,game=Pong` is the packaged `offline_moe/configs/cql.py` with the
  argument `smoke,game=Pong`, from any directory (`offline_moe.cli.configs`).
- A user error (a bad flag or config override, `offline_moe.errors.USER_ERRORS`, absl's
  `UsageError`) prints one line, `[COMMAND] error: WHAT; VALID VALUES OR NEAREST
  MATCH; FIX`, and exits 2 (1 for a run that stopped: `errors.RUN_FAILURES`). Other
  exceptions are bugs and keep their traceback.
- `--verbose` (every command; also `OFFLINE_MOE_VERBOSE=1`, which `offline-moe` sets for the
  commands it runs) shows the traceback of a user error too.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence

from offline_moe import errors
from offline_moe.flag_checks import check_flags

VERBOSE_ENV = "OFFLINE_MOE_VERBOSE"
PROG = "offline-moe"
HELP_ARGS = ("-h", "--help", "--helpshort", "-?")
HELPFULL_ARGS = ("--helpfull",)
# Errors of flag parsing that are the user's (absl's own flags.Error is one too): a config
# override naming a field the config does not have (ml_collections raises these).
_PARSE_ERRORS = (AttributeError, KeyError, TypeError, ValueError)


def verbose(argv: Sequence[str] = ()) -> bool:
    """Whether tracebacks are wanted: --verbose in `argv`, the parsed flag, or the env var."""
    from absl import flags

    if os.environ.get(VERBOSE_ENV, "") not in ("", "0"):
        return True
    if "--verbose" in argv:
        return True
    return "verbose" in flags.FLAGS and flags.FLAGS.is_parsed() and bool(flags.FLAGS.verbose)


def error_line(command: str, message: object) -> str:
    """`[COMMAND] error: MESSAGE`, on one line (a multi-line message is joined): the style of
    the commands' progress lines (`[train_offline] it 3/10 ...`)."""
    text = " ".join(line.strip() for line in str(message).strip().splitlines() if line.strip())
    return f"[{command}] error: {text}"


def fail(command: str, message: object, code: int = 2):
    """Prints the one-line error to stderr and exits with `code`."""
    print(error_line(command, message), file=sys.stderr, flush=True)
    raise SystemExit(code)


def _define_verbose() -> None:
    from absl import flags

    if "verbose" not in flags.FLAGS:
        flags.DEFINE_bool(
            "verbose",
            False,
            "Show the full traceback of an error (user errors print one line without it).",
        )


def help_text(command: str, doc: str | None, *, full: bool = False) -> str:
    """Usage, description and flags (with defaults) of an absl command."""
    from absl import flags

    fl = flags.FLAGS
    modules = sorted(fl.flags_by_module_dict(), key=lambda m: (m == __name__, m))
    if not full:  # the suite's flags; absl's own (logging, --flagfile) and others' under --helpfull
        modules = [m for m in modules if m.startswith("offline_moe") or m == sys.argv[0]]
    lines = [f"usage: {PROG} {command} [flags]"]
    if doc:
        lines += ["", doc.strip().split("\n\n")[0].strip()]
    body = fl._get_help_for_modules(modules, "", include_special_flags=full)  # noqa: SLF001
    lines += [body, "", "(--helpfull: absl's own flags too)" if not full else ""]
    return "\n".join(lines).rstrip() + "\n"


def _config_flag_names() -> list[str]:
    """Names of the flags defined with `config_flags.DEFINE_config_file`."""
    from absl import flags

    fl = flags.FLAGS
    return [
        name
        for name in fl
        if type(fl[name].parser).__name__ == "ConfigFileFlagParser"
        and fl[name].name == name  # not a short alias
    ]


def resolve_config_args(argv: Sequence[str], names: Sequence[str]) -> list[str]:
    """`argv` with each config flag's value by name replaced by the packaged file's path."""
    from offline_moe.cli.configs import resolve_config

    out = list(argv)
    for i, arg in enumerate(out):
        for name in names:
            match = re.match(rf"^--?{re.escape(name)}(=|$)", arg)
            if not match:
                continue
            if match.group(1) == "=":
                out[i] = f"--{name}={resolve_config(arg.split('=', 1)[1], flag=name)}"
            elif i + 1 < len(out):
                out[i + 1] = resolve_config(out[i + 1], flag=name)
    return out


def _override_hint(argv: Sequence[str], names: Sequence[str]) -> str | None:
    """For a config override that failed to parse: which field is unknown, and the nearest."""
    from absl import flags

    for name in names:
        given = [a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")]
        try:  # the parse failed before the flag kept its value: load the config again
            config = flags.FLAGS[name].parser.parse(given[-1]) if given else None
        except Exception:  # noqa: BLE001 (then there is no hint to give)
            config = None
        if config is None:
            continue
        for arg in argv:
            match = re.match(rf"^--?(?:no)?{re.escape(name)}\.([^=]+)", arg)
            if not match:
                continue
            node, path = config, []
            for key in match.group(1).split("."):
                keys = list(node.keys()) if hasattr(node, "keys") else []
                if key not in keys:
                    where = ".".join([name, *path])
                    hint = errors.nearest(key, keys)
                    return (
                        f"{arg.split('=')[0]}: {where} has no field {key!r}"
                        + (f"; {hint}" if hint else f"; its fields: {', '.join(keys)}")
                        + f"; `{PROG} {{command}} --{name}=... --print_config` shows the config"
                    )
                node, path = node[key], [*path, key]
    return None


def _parse_error_message(error: BaseException) -> str:
    """The last line of a message that embeds a traceback (a config file's get_config raised),
    without the exception's class name."""
    text = str(error)
    if "Traceback (most recent call last)" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        text = re.sub(r"^[\w.]*(Error|Exception): ", "", last.strip())
    return text


def run(
    main: Callable[[list[str]], object],
    *,
    command: str,
    doc: str | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    """Runs an absl `main` (flags already defined) with the conventions of the module doc.

    Args:
      main: the command's absl main (argv -> exit status or None).
      command: the subcommand's name ('train_offline'), used in help and errors.
      doc: the description for --help (default: the main function's module docstring).
      argv: the command line (default sys.argv); argv[0] is the program.
    """
    from absl import app, flags

    _define_verbose()
    argv = list(sys.argv if argv is None else argv)
    if doc is None:
        doc = getattr(main, "__globals__", {}).get("__doc__")  # the command module's doc
    if any(a in HELP_ARGS + HELPFULL_ARGS for a in argv[1:]):
        full = any(a in HELPFULL_ARGS for a in argv[1:])
        sys.stdout.write(help_text(command, doc, full=full))
        raise SystemExit(0)
    names = _config_flag_names()

    def parse(args: list[str]) -> list[str]:
        try:
            args = resolve_config_args(args, names)
            sys.argv = args  # config_flags reads its overrides from sys.argv
            rest = flags.FLAGS(args)
            check_flags(command, flags.FLAGS)  # the values, by flag name
            return rest
        except (flags.Error, errors.InputError, *_PARSE_ERRORS) as e:
            if verbose(args):
                raise
            hint = (
                None
                if isinstance(e, flags.Error | errors.InputError)
                else _override_hint(args, names)
            )
            message = hint.format(command=command) if hint else _parse_error_message(e)
            if isinstance(e, flags.Error) and "Unknown command line flag" in message:
                message += f"; `{PROG} {command} --help` lists the flags"
            fail(command, message)

    def guarded(args: list[str]):
        try:
            return main(args)
        except (*errors.USER_ERRORS, app.UsageError) as e:
            if verbose():
                raise
            fail(command, e, 1 if isinstance(e, errors.RUN_FAILURES) else 2)

    app.run(guarded, argv=argv, flags_parser=parse)
