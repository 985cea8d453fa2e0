"""Benchmark scripts: `python -m offline_moe.bench SUBCOMMAND [flags]`, one module each:
torso, data, learner, online, compile, sweep, validate, device, learning (`__main__.SUBCOMMANDS`
says what each measures; `python -m offline_moe.bench --help` lists them).

Each subcommand lives in its own module (`offline_moe.bench.<name>`) exposing `main(argv)`, and
prints one JSON line per measurement. Speed is measured here, never in timed tests.
"""
