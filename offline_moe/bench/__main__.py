"""`python -m offline_moe.bench BENCHMARK [--flags]`: runs `offline_moe.bench.BENCHMARK`.

Each benchmark prints JSON lines on stdout, every one with "bench": <its name>;
`python -m offline_moe.bench BENCHMARK --help` lists its flags and their defaults.
"""

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


def usage() -> str:
    lines = ["usage: python -m offline_moe.bench BENCHMARK [--flag=value ...]", "", "benchmarks:"]
    lines += [f"  {name:8s} {text}" for name, text in SUBCOMMANDS.items()]
    lines += ["", "python -m offline_moe.bench BENCHMARK --help: its flags and their defaults."]
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if len(argv) < 2 or argv[1] in ("-h", "-?", "--help", "--helpshort", "--helpfull"):
        print(usage(), file=sys.stdout if len(argv) >= 2 else sys.stderr)
        sys.exit(0 if len(argv) >= 2 else 2)
    name = argv[1]
    if name not in SUBCOMMANDS:
        print(
            f"[bench] error: unknown benchmark {name!r}; valid: {', '.join(SUBCOMMANDS)}",
            file=sys.stderr,
        )
        sys.exit(2)
    module = importlib.import_module(f"offline_moe.bench.{name}")
    module.main([f"bench {name}", *argv[2:]])


if __name__ == "__main__":
    main()
