"""`offline-moe list KIND`: the valid values of the names the commands take, from the
registries themselves (never a copy).

    offline-moe list games     # known-answer envs, MinAtar games, every ALE game
    offline-moe list suites    # named game lists (sweep --suite, report)
    offline-moe list agents    # the agents table: track, config, trainer
    offline-moe list torsos    # registered torsos and their keyword arguments
    offline-moe list presets   # each config's presets (config argument preset=NAME)
    offline-moe list configs   # the configs --config takes by name
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def games() -> list[str]:
    from offline_moe.envs import registry

    return list(registry.games())


def suites() -> list[str]:
    from offline_moe.analysis.suites import SUITES

    return [f"{name}\t{len(g)} games: {','.join(g)}" for name, g in SUITES.items()]


def agents() -> list[str]:
    from offline_moe.configs.agents import AGENTS

    return [
        f"{a.name}\t{a.track}\t{a.display}\t{a.trainer_module.rpartition('.')[2]}"
        + ("" if a.compared else "\t(makes data; not in sweeps)")
        for a in AGENTS.values()
    ]


def torsos() -> list[str]:
    from offline_moe.networks import list_torsos, torso_kwarg_names

    return [f"{name}\t{','.join(torso_kwarg_names(name))}" for name in list_torsos()]


def presets() -> list[str]:
    from offline_moe.cli.configs import config_names
    from offline_moe.configs import agents as agent_table
    from offline_moe.configs import common

    lines = []
    for name in config_names():
        module = importlib.import_module(f"offline_moe.configs.{name}")
        table = dict(getattr(module, "PRESETS", {}))
        agent = agent_table.AGENTS.get(name)
        if agent is not None and agent.track == agent_table.OFFLINE:
            table.update(common.OFFLINE_EXTRA_PRESETS)
        lines += [f"{name}\t{preset}\t{text}" for preset, text in table.items()]
    return lines


def configs() -> list[str]:
    from offline_moe.cli.configs import config_names

    return config_names()


KINDS: dict[str, Callable[[], list[str]]] = {
    "games": games,
    "suites": suites,
    "agents": agents,
    "torsos": torsos,
    "presets": presets,
    "configs": configs,
}


def main(argv: list[str]) -> int:
    """Prints the values of one kind, one per line (tab-separated details); 0, or 2."""
    from offline_moe import errors
    from offline_moe.cli.app import fail

    args = argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print("usage: offline-moe list {" + "|".join(KINDS) + "}\n")
        print(__doc__.split("\n\n")[1])
        return 0
    if len(args) > 1 or args[0] not in KINDS:
        fail("list", errors.unknown("kind", " ".join(args), KINDS))
    for line in KINDS[args[0]]():
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
