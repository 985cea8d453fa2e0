"""The command line: one entry point, `offline-moe COMMAND [flags]` (`python -m offline_moe.cli`).

- `commands`: the table of commands (module and one-line description), in one place.
- `main`: the dispatcher (`--help`, `--version`, `list`, a command's own flags after its name).
- `app`: the wrapper the absl commands run under: help with defaults, configs by name, one-line
  errors with exit status 2, `--verbose`.
- `configs`: configs addressed by name (`--config=cql:smoke`).
- `trainer`: the trainers' shared flags, checks and `--print_config`.

Nothing here imports TensorFlow; a command's module is imported only when it runs.
"""
