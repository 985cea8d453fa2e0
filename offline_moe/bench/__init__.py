"""Benchmark scripts: `python -m offline_moe.bench {torso,data,learner,online,device} [flags]`.

Each subcommand lives in its own module (`offline_moe.bench.<name>`) exposing `main(argv)`, and
prints one JSON line per measurement. Speed is measured here, never in timed tests.
"""
