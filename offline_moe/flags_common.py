"""absl flags for every command: one parser, one help, one error line, one flag table.

Every command module defines its flags in `define_flags(fv)` (absl `DEFINE_*(...,
flag_values=fv)`) and keeps a `main(argv)`:

* the commands that were argparse (sweep, report, local_data, networks, default_benchmark, the
  benchmarks) parse `argv` themselves with `parse(argv, define_flags, ...)`, into a fresh
  `FlagValues`: `main(["sweep", "--suite=Pong"])` works in-process, any number of times;
* the absl-app commands (record, ingest, the trainers) run under `absl.app` with the global
  `flags.FLAGS`, started by `run_app(main, define_flags, ...)`.

Both answer `-h`, `--help`, `--helpshort` and `--helpfull` with the command's own flags and
their defaults (the process flags of `train/process.py` included) and exit 0, and turn a bad
flag into one line, `[command] error: ...`, exit 2. `COMMANDS` names every command; `flag_table`
writes the table of docs/cli.md ("## Flags") from the definitions, so the doc cannot drift.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from collections.abc import Callable, Sequence

from absl import flags

HELP_ARGS = ("-h", "-?", "--help", "--helpshort", "--helpfull")

# command -> module (its `define_flags(fv)` and `main(argv)`), in the order of the flag table.
COMMANDS = {
    "train_offline": "offline_moe.train_offline",
    "train_online": "offline_moe.train_online",
    "sweep": "offline_moe.sweep",
    "report": "offline_moe.report",
    "record": "offline_moe.record",
    "ingest": "offline_moe.ingest",
    "local_data": "offline_moe.local_data",
    "default_benchmark": "offline_moe.default_benchmark",
    "networks": "offline_moe.networks.__main__",
    "bench torso": "offline_moe.bench.torso",
    "bench data": "offline_moe.bench.data",
    "bench learner": "offline_moe.bench.learner",
    "bench online": "offline_moe.bench.online",
    "bench compile": "offline_moe.bench.compile",
    "bench sweep": "offline_moe.bench.sweep",
    "bench validate": "offline_moe.bench.validate",
    "bench device": "offline_moe.bench.device",
    "bench learning": "offline_moe.bench.learning",
    "bench routing": "offline_moe.bench.routing",
    "data.shipped": "offline_moe.data.shipped",
}


# One meaning per flag name across commands: the table's text for the names several commands
# take (a name one command takes is described by its own help).
MEANINGS = {
    "agent": "One agent (cql, cql_c51, der, drq_eps, dqn).",
    "agents": "Agents, comma-separated.",
    "batch_size": "Transitions per batch.",
    "budget": "Training budget per run: gradient updates (offline) or agent steps (online).",
    "cache_dir": "A replay cache directory (read, or written by record, ingest, bench "
    "validate and data.shipped).",
    "compile_cache": "Use JAX's persistent compilation cache (--nocompile_cache: off).",
    "compile_cache_dir": "Directory of the compilation cache ('' = the default).",
    "config": "Config file with optional argument (offline_moe/configs/NAME.py[:ARG]); "
    "--config.FIELD=VALUE overrides a field.",
    "cpu_unroll": "Updates per jitted call on CPU (bench compile: values to compare).",
    "data_dir": "Root of the local datasets and replay caches (DATA_DIR/cache/...), the same "
    "for every command.",
    "encoder": "One torso encoder (impala, nature, minatar).",
    "encoders": "Torso encoders, comma-separated.",
    "epsilon": "Random-action probability of the behaviour policy.",
    "first_seed": "Seed of the first run.",
    "game": "One game (an ALE game, a MinAtar game, Catch or CatchBoard).",
    "print_config": "Print the resolved config as JSON and exit, writing nothing (a dry run).",
    "max_iterations": "Stop after this many iterations in this invocation (rerun to resume).",
    "num_experts": "Number of experts n of the MoE torsos (networks: a list of them).",
    "num_seeds": "Seeds per (game, agent, torso), trained side by side in one program.",
    "overwrite": "Replace an existing output.",
    "percent": "Percent in (0, 100] of each checkpoint to keep.",
    "policy": "Behaviour policy of recorded data: random, eps_greedy or scripted.",
    "progress": "Show progress: a live line on a terminal, a line every few seconds in a file.",
    "repeats": "Timed repeats of a measurement (the best or median is kept).",
    "report_dir": "Directory a report is written to.",
    "run": "DQN-Replay / RL Unplugged run index 1..5.",
    "runs_dir": "Root of the run directories (written by sweep and the benchmarks, read by "
    "report).",
    "scratch_dir": "Scratch directory, kept (default: a temporary one, deleted).",
    "seed": "Seed of the command's own randomness (recording, bootstrap, state draw).",
    "source": "Data source: tfds:NAME, rlds_dir:DIR or dqn_replay:DIR.",
    "steps": "Agent steps to record (record, local_data, default_benchmark, bench data), or "
    "timed steps (bench learner: updates; bench online: agent steps).",
    "suite": "Suite name (offline_moe.analysis.suites) or Game1,Game2,...",
    "tfds_dir": "TFDS data directory a tfds: source is read from.",
    "torso": "One torso: a registered name or 'module:Name'.",
    "torsos": "Torso variants, comma-separated: name[@key=value...].",
    "wandb_project": "Also log scalars to this Weights & Biases project ('' = off).",
    "workdir": "Run directory (config, metrics, checkpoints); resumes from its checkpoint.",
    "workers": "Processes working side by side (sweep: runs; record: checkpoint splits).",
}


def define_grid_flags(fv: flags.FlagValues, *, torsos: list[str], num_seeds: int) -> None:
    """--suite, --agents, --torsos, --num_seeds: a (game x agent x torso x seed) grid."""
    kw = dict(flag_values=fv)
    flags.DEFINE_string("suite", "smoke", "Suite name or Game1,Game2,...", **kw)
    flags.DEFINE_list("agents", ["cql"], "Agents, comma-separated.", **kw)
    flags.DEFINE_list("torsos", torsos, MEANINGS["torsos"], **kw)
    flags.DEFINE_integer("num_seeds", num_seeds, MEANINGS["num_seeds"], lower_bound=1, **kw)


def check_items(fv: flags.FlagValues, name: str, ok: Callable[[str], bool], expected: str) -> None:
    """A validator of flag `name` (a list, or a comma-separated string): every item passes
    `ok`, else absl's one-line error `flag --NAME=VALUE: expected EXPECTED` at parsing."""

    def check(value) -> bool:
        if value is None:
            return True
        items = value if isinstance(value, list) else str(value).split(",")
        return all(_passes(ok, str(item).strip()) for item in items)

    flags.register_validator(name, check, f"expected {expected}", flag_values=fv)


def _passes(ok: Callable[[str], bool], item: str) -> bool:
    try:
        return bool(ok(item))
    except (TypeError, ValueError):
        return False


def positive_int(item: str) -> bool:
    """'4' -> True; '0', '-1', 'x' -> False (raises for 'x', which `check_items` catches)."""
    return int(item) >= 1


def define_data_dir(fv: flags.FlagValues) -> None:
    """--data_dir, the root of the local datasets and caches (the same in every command)."""
    flags.DEFINE_string("data_dir", "data", MEANINGS["data_dir"], flag_values=fv)


def help_text(prog: str, doc: str | None, fv: flags.FlagValues) -> str:
    """Usage, the first paragraph of the command's docstring and every flag with its default."""
    lines = [f"usage: python -m offline_moe.{prog} [--flag=value ...]"]
    if doc:
        lines += ["", textwrap.dedent(doc).strip().split("\n\n")[0].strip()]
    lines += ["", "flags:"]
    for line in fv.get_help(include_special_flags=False).splitlines():
        if line.startswith(" "):  # absl groups flags under the defining module's name: one list
            lines.append(line)
    return "\n".join(lines)


def _wants_help(argv: Sequence[str]) -> bool:
    return any(a in HELP_ARGS for a in argv[1:])


def fail(prog: str, message: str) -> None:
    """A user error: one line on stderr, exit 2."""
    print(f"[{prog}] error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def parse(
    argv: Sequence[str] | None,
    define_flags: Callable[[flags.FlagValues], None],
    *,
    prog: str,
    doc: str | None,
) -> flags.FlagValues:
    """Parses `argv` (argv[0] is the program) into a fresh FlagValues; help and errors exit.

    Returns:
      The parsed flags (`fv.name`).
    """
    argv = list(sys.argv if argv is None else argv)
    fv = flags.FlagValues()
    define_flags(fv)
    if "verbose" not in fv:  # read by run_main
        flags.DEFINE_bool(
            "verbose",
            False,
            "Show the traceback of an error (user errors: one line).",
            flag_values=fv,
        )
    if _wants_help(argv):
        print(help_text(prog, doc, fv))
        sys.exit(0)
    try:
        rest = fv(argv)
    except flags.Error as e:
        fail(prog, f"{e} (--help lists the flags)")
    _check_values(prog, fv, argv)
    if len(rest) > 1:
        fail(prog, f"unexpected arguments {rest[1:]}; every input is a --flag (--help)")
    return fv


def _verbose(argv: Sequence[str]) -> bool:
    """Tracebacks wanted: --verbose in `argv`, or OFFLINE_MOE_VERBOSE set (not 0)."""
    import os

    return "--verbose" in argv or os.environ.get("OFFLINE_MOE_VERBOSE", "") not in ("", "0")


def _check_values(prog: str, fv: flags.FlagValues, argv: Sequence[str]) -> None:
    """`flag_checks.check_flags`: a wrong value is one line, exit 2 (--verbose: raised)."""
    from offline_moe import errors, flag_checks

    try:
        flag_checks.check_flags(prog, fv)
    except errors.InputError as e:
        if _verbose(argv):
            raise
        fail(prog, " ".join(str(e).split()))


_APP_DEFINED: set[str] = set()  # the flags run_app last defined in the global FLAGS


def run_app(
    main: Callable[[list[str]], object],
    define_flags: Callable[[flags.FlagValues], None],
    *,
    prog: str,
    doc: str | None,
    argv: Sequence[str] | None = None,
) -> None:
    """`absl.app.run(main)` with the command's flags in the global FLAGS, help exiting 0 with
    the command's own flags and defaults, and a bad flag as one line, exit 2."""
    from absl import app

    argv = list(sys.argv if argv is None else argv)
    if _wants_help(argv):
        fv = flags.FlagValues()
        define_flags(fv)
        print(help_text(prog, doc, fv))
        print("\nalso absl's --verbosity, --flagfile and the other --helpfull flags of absl.")
        sys.exit(0)
    fresh = flags.FlagValues()
    define_flags(fresh)
    # This command's definitions alone, also after another command ran in this process (its
    # flags, and validators that name them, are removed first).
    for name in _APP_DEFINED | set(fresh):
        if name in flags.FLAGS:
            delattr(flags.FLAGS, name)
    define_flags(flags.FLAGS)
    _APP_DEFINED.clear()
    _APP_DEFINED.update(fresh)

    def flags_parser(args):
        try:
            rest = flags.FLAGS(args)
        except flags.Error as e:
            fail(prog, f"{e} (--help lists the flags)")
        _check_values(prog, flags.FLAGS, args)
        return rest

    app.run(main, argv=argv, flags_parser=flags_parser)


# The commands that run under absl.app with the global FLAGS (`run_app`); the others parse
# their argv themselves in `main(argv)`.
APP_COMMANDS = ("train_offline", "train_online", "record", "ingest")


def run_command(command: str, argv: Sequence[str]) -> object:
    """Runs one command of `COMMANDS` with `argv` (argv[0]: the program), either kind."""
    module = importlib.import_module(COMMANDS[command])
    if command in APP_COMMANDS:
        return run_app(
            module.main, module.define_flags, prog=command, doc=module.__doc__, argv=argv
        )
    return module.main(list(argv))


def command_flags(command: str) -> flags.FlagValues:
    """A fresh FlagValues holding the flags of one command of `COMMANDS`."""
    module = importlib.import_module(COMMANDS[command])
    fv = flags.FlagValues()
    module.define_flags(fv)
    return fv


def flag_commands() -> dict[str, tuple[str, list[str]]]:
    """Every flag of every command: {name: (help of its first definition, [commands])}."""
    table: dict[str, tuple[str, list[str]]] = {}
    for command in COMMANDS:
        fv = command_flags(command)
        for name in sorted(fv):
            flag = fv[name]
            if name != flag.name:  # absl lists a flag under its short name too
                continue
            help_ = flag.help.split(">: ", 1)[-1] if flag.help.startswith("<") else flag.help
            help_, commands = table.setdefault(name, (help_, []))
            commands.append(command)
    return table


def flag_table() -> str:
    """The markdown table of docs/cli.md: one row per flag, with the commands that take it."""
    lines = ["| flag | meaning | commands |", "|---|---|---|"]
    for name, (help_, commands) in sorted(flag_commands().items()):
        meaning = " ".join(MEANINGS.get(name, help_).split()).replace("|", "/")
        lines.append(f"| `--{name}` | {meaning} | {', '.join(commands)} |")
    return "\n".join(lines)


TABLE_BEGIN = "<!-- flag table: generated by `python -m offline_moe.flags_common`; do not edit -->"
TABLE_END = "<!-- end of flag table -->"


def write_table(path: str) -> bool:
    """Rewrites the generated flag table in `path` (docs/cli.md); True if it changed."""
    with open(path) as f:
        text = f.read()
    head, _, rest = text.partition(TABLE_BEGIN)
    _, _, tail = rest.partition(TABLE_END)
    new = f"{head}{TABLE_BEGIN}\n{flag_table()}\n{TABLE_END}{tail}"
    if new != text:
        with open(path, "w") as f:
            f.write(new)
    return new != text


if __name__ == "__main__":  # regenerate docs/cli.md's table after changing a flag
    import os

    doc = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "cli.md"
    )
    print(f"{doc}: {'rewritten' if write_table(doc) else 'up to date'}")


def run_main(main: Callable[[list[str]], object], prog: str) -> object:
    """Runs a parse()-style command's `main(sys.argv)`; a user error (`errors.USER_ERRORS`,
    e.g. an unknown game in a sweep's grid) becomes one line and exit 2 (1 for a run that
    stopped), with the traceback only under --verbose or OFFLINE_MOE_VERBOSE=1."""
    from offline_moe import errors

    try:
        return main(list(sys.argv))
    except errors.USER_ERRORS as e:
        if _verbose(sys.argv):
            raise
        text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
        print(f"[{prog}] error: {text}", file=sys.stderr, flush=True)
        sys.exit(1 if isinstance(e, errors.RUN_FAILURES) else 2)
