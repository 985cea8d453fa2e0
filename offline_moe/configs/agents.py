"""The table of agents: every place that lists, validates or launches agents reads it.

Each agent has a track (offline: trained from a replay cache by `offline_moe.train_offline`;
online: trained by interacting with the environment, `offline_moe.train_online`), a config file
(`offline_moe/configs/<name>.py`) and a display name for tables and plots. Agents marked
`compared` are the four agents of the paper's comparisons, the ones sweeps and reports run;
the others exist to make data (`dqn`: the behaviour agent of the MinAtar DQN-Replay datasets).

An agent is added by adding a row here and its config file.
"""

from __future__ import annotations

import dataclasses
import os

from offline_moe import errors

OFFLINE = "offline"
ONLINE = "online"
TRAINER_MODULES = {OFFLINE: "offline_moe.train_offline", ONLINE: "offline_moe.train_online"}


@dataclasses.dataclass(frozen=True)
class Agent:
    """One row of the table.

    Attributes:
      name: the agent's name ('cql'), also the stem of its config file.
      track: 'offline' or 'online'.
      display: its name in tables and plots ('CQL+C51').
      compared: one of the agents the paper compares (sweeps and reports accept only these).
    """

    name: str
    track: str
    display: str
    compared: bool = True

    @property
    def config_module(self) -> str:
        """The config module: 'offline_moe.configs.cql'."""
        return f"offline_moe.configs.{self.name}"

    @property
    def config_file(self) -> str:
        """The config file's absolute path (the trainers' --config), wherever the package is
        installed, so a trainer started from any directory finds it."""
        return os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{self.name}.py")

    @property
    def trainer_module(self) -> str:
        """The trainer command module: 'offline_moe.train_offline'."""
        return TRAINER_MODULES[self.track]


AGENTS: dict[str, Agent] = {
    a.name: a
    for a in (
        Agent("cql", OFFLINE, "CQL"),
        Agent("cql_c51", OFFLINE, "CQL+C51"),
        Agent("der", ONLINE, "DER"),
        Agent("drq_eps", ONLINE, "DrQ(\u03b5)"),
        Agent("dqn", ONLINE, "DQN", compared=False),
    )
}


def names(track: str | None = None, *, compared: bool = True) -> tuple[str, ...]:
    """Agent names in table order, of one track (None: both), only compared ones by default."""
    return tuple(
        a.name
        for a in AGENTS.values()
        if (track is None or a.track == track) and (a.compared or not compared)
    )


OFFLINE_AGENTS = names(OFFLINE)  # ('cql', 'cql_c51')
ONLINE_AGENTS = names(ONLINE)  # ('der', 'drq_eps')
COMPARED_AGENTS = OFFLINE_AGENTS + ONLINE_AGENTS


def get(name: str, *, compared: bool = True) -> Agent:
    """The row of agent `name`.

    Raises:
      InputError (a ValueError): an unknown agent (or one not compared, with `compared`);
        the message names the nearest and the valid names.
    """
    valid = names(compared=compared)
    if name not in valid:
        raise errors.unknown("agent", name, valid)
    return AGENTS[name]
