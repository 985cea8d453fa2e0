"""Checks of a config's names before anything runs: agent, game, torso and torso keywords.

A trainer calls `check_config` before it creates its run directory, and the sweep calls it on
every run of its grid before the first one starts, so a typo ends in one line naming the
nearest valid value instead of a traceback after minutes (or in a directory left behind):

    check_config(cql.get_config("smoke,game=Pongg"))
    # InputError: config.game: unknown game 'Pongg'; did you mean 'Pong'?; ...

Nothing here builds a network or an environment: the torso is resolved from the registry and
its keywords compared with its fields, the game looked up by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from offline_moe import errors
from offline_moe.configs import agents as agent_table


def check_game(game: str, *, where: str = "config.game") -> str:
    """The canonical name of `game` ('pong' -> 'Pong').

    Raises:
      InputError: an unknown game, naming the nearest ones.
    """
    from offline_moe.envs import registry

    try:
        return registry.canonical_game(game)
    except ValueError:
        raise errors.unknown(
            "game",
            game,
            registry.games(),
            "`offline-moe list games` lists them all",
        ).with_prefix(where) from None


def check_torso(block: Mapping[str, Any], *, where: str = "config.torso") -> tuple[str, dict]:
    """(name, keyword arguments) of the torso a config block names, checked.

    Raises:
      InputError: an unknown torso name or a keyword the torso does not accept, naming the
        nearest valid ones.
    """
    from offline_moe.networks import registry

    name = block.get("name")
    if not isinstance(name, str) or (":" not in name and name not in registry.list_torsos()):
        raise errors.unknown(
            "torso",
            str(name),
            registry.list_torsos(),
            "or a 'package.module:Name' path; `offline-moe list torsos`",
        ).with_prefix(f"{where}.name")
    try:
        return registry.torso_spec(block, where=where)
    except registry.TorsoError as e:
        message = str(e)
        for key, value in block.items():  # name the nearest accepted keyword
            if key in ("name", "builtin") or value is None or f".{key}=" not in message:
                continue
            hint = errors.nearest(key, registry.torso_kwarg_names(name))
            message += f"; {hint}" if hint else ""
        raise errors.InputError(message) from None


def check_config(config: Mapping[str, Any] | Any) -> None:
    """Checks the agent, game and torso of a config (a ConfigDict or its dict).

    Raises:
      InputError: the first of them that is not valid.
    """
    config = config.to_dict() if hasattr(config, "to_dict") else config
    agent = config.get("agent")
    if agent not in agent_table.AGENTS:
        raise errors.unknown("agent", str(agent), agent_table.AGENTS).with_prefix("config.agent")
    check_game(config.get("game"))
    check_torso(config.get("torso") or {})
