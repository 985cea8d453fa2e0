"""Dispatch `python -m offline_moe.bench SUBCOMMAND [--flags]` to `offline_moe.bench.SUBCOMMAND`."""

import importlib
import sys

SUBCOMMANDS = {
    "torso": "forward+backward time of every torso at a given batch",
    "data": "ingest rate, cache bytes per transition, DeviceReplay sampling rate",
    "learner": "CQL / CQL+C51 updates per second, end to end and bare",
    "online": "DER / DrQ(eps) agent steps per second including updates",
    "compile": "a trainer's second-start time with and without the persistent compile cache",
    "sweep": "the Ray sweep backend's overhead against the local one on the same grid",
    "validate": "load-time cost of the replay-cache checks and fingerprint at paper size",
    "device": "the accelerator check: learner, replay, memory, online, evaluation in one JSON",
    "learning": "does each agent x torso learn (Catch: updates / agent steps to reach 0.9)",
    "routing": "does a MoE torso route at initialisation (router entropy, feature rank)",
}


def _usage() -> str:
    lines = ["usage: python -m offline_moe.bench SUBCOMMAND [--flags]", "", "subcommands:"]
    lines += [f"  {name:8s} {text}" for name, text in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        print(_usage())
        sys.exit(0 if len(sys.argv) >= 2 else 2)
    name = sys.argv[1]
    if name not in SUBCOMMANDS:
        print(
            f"unknown bench subcommand {name!r}; valid: {', '.join(SUBCOMMANDS)}", file=sys.stderr
        )
        sys.exit(2)
    module = importlib.import_module(f"offline_moe.bench.{name}")
    module.main([f"offline_moe.bench {name}", *sys.argv[2:]])


if __name__ == "__main__":
    main()
