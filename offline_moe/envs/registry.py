"""The one place a game name becomes an environment: ALE Atari games, the five MinAtar games
and known-answer envs.

Every consumer (record, ingest, offline evaluation, the emulator pool, the online track, the
report's scores) goes through these functions, so a known-answer environment such as Catch
(`offline_moe.envs.catch`) or a MinAtar game (`offline_moe.envs.minatar`) goes everywhere an
Atari game goes, under its one name:

    env = make_env("Catch", protocol="dqn_replay", seed=0)   # or "Pong", "space_invaders"
    num_actions("catch")          # 3
    canonical_game("catch")       # "Catch" (CamelCase like the Atari names, e.g. in TFDS
                                  # configs "Catch_run_1" and report tables)
    canonical_game("MinAtar/Breakout")   # "MinAtarBreakout"; num_actions: 6
    observation_spec("MinAtarBreakout")  # ((10, 10, 4), bool, 1)
    observation_spec("CatchBoard")       # ((10, 5, 1), bool, 1): Catch as a board

Naming rule for MinAtar: 'MinAtar' + the game's CamelCase name (MinAtarAsterix,
MinAtarBreakout, MinAtarFreeway, MinAtarSeaquest, MinAtarSpaceInvaders); case and the
separators '/', ':', '-', '_' are ignored on input, so MinAtar's gymnasium ids without their
version ('MinAtar/Breakout') and 'minatar:space_invaders' work too. A bare 'Breakout' is ALE's.
Why no separator in the canonical name, and which protocol and action set: see
`offline_moe.envs.minatar`.

Environments share `AtariEnv`'s interface: `reset() -> frame`, `step(a) -> atari.Step`,
`get_state()` / `set_state()`, and the attributes `num_actions`, `action_set`, `game`,
`protocol`, `lives`, `episode_step`, `last_noops`, `max_episode_steps`. A frame's shape and
dtype, and the frame stack an agent sees, are the game's `observation_spec`: uint8 [84, 84]
stacked 4 for ALE games and Catch, bool [10, 10, C] unstacked for MinAtar, bool [10, 5, 1]
unstacked for CatchBoard (Catch seen as its board).
"""

from __future__ import annotations

import numpy as np

from offline_moe.envs import atari, catch, minatar

# Known-answer environments by canonical name: (class, what it is, for listings).
KNOWN_ANSWER: dict[str, type] = {
    catch.GAME: catch.CatchEnv,  # 84x84 frames stacked 4, as ALE's
    catch.BOARD_GAME: catch.CatchBoardEnv,  # its 10x5 board, as MinAtar's games
}


def known_answer_game(game: str) -> str | None:
    """The canonical name if `game` names a known-answer env ('catch' -> 'Catch'), else None."""
    key = str(game).replace("_", "").replace("-", "").lower()
    for name in KNOWN_ANSWER:
        if name.lower() == key:
            return name
    return None


def is_known_answer(game: str) -> bool:
    return known_answer_game(game) is not None


def is_minatar(game: str) -> bool:
    """Whether `game` names one of the five MinAtar games (any spelling the rule accepts)."""
    return minatar.minatar_game(game) is not None


def is_ale(game: str) -> bool:
    """Whether `game` is played by ALE (not a known-answer env, not MinAtar)."""
    return not is_known_answer(game) and not is_minatar(game)


def canonical_game(game: str) -> str:
    """'catch' -> 'Catch'; 'pong', 'space_invaders' -> 'Pong', 'SpaceInvaders'.

    Raises:
      ValueError: unknown game, listing the known-answer envs and the ALE games.
    """
    name = known_answer_game(game) or minatar.minatar_game(game)
    if name is not None:
        return name
    try:
        return atari.canonical_game(game)
    except ValueError:
        raise ValueError(
            f"unknown game {game!r}; valid: the known-answer env(s) {', '.join(KNOWN_ANSWER)}, "
            f"a MinAtar game ({', '.join(minatar.GAMES)}) or an ALE game "
            f"({', '.join(atari.games())})"
        ) from None


def games() -> tuple[str, ...]:
    """Known-answer envs first, then the MinAtar games, then every ALE game."""
    return (*KNOWN_ANSWER, *minatar.GAMES, *atari.games())


def env_protocol(game: str, protocol: str | atari.Protocol = "dqn_replay") -> atari.Protocol:
    """What `protocol` means for `game`: the Atari protocol, or a known-answer env's reading
    of it (sticky actions, cap; e.g. `catch.catch_protocol`)."""
    if known_answer_game(game) is not None:
        return catch.catch_protocol(protocol)
    if is_minatar(game):
        return minatar.minatar_protocol(protocol)
    return atari.get_protocol(protocol)


def observation_spec(game: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(frame shape, frame dtype, frame stack) of `game`: what one env step returns and how
    many frames an agent's observation stacks on the last axis (`replay.transitions`).

    ALE games and Catch: ((84, 84), uint8, 4), Dopamine's Atari observation. MinAtar:
    ((10, 10, C), bool, 1), its state as is (`offline_moe.envs.minatar`); CatchBoard:
    ((10, 5, 1), bool, 1), Catch's board.
    """
    if is_minatar(game):
        return minatar.observation_spec(game)
    name = known_answer_game(game)
    if name is not None:
        return KNOWN_ANSWER[name].OBSERVATION_SPEC
    canonical_game(game)  # raises on an unknown name
    return (atari.SCREEN_SIZE, atari.SCREEN_SIZE), np.dtype(np.uint8), atari.STACK


def frame_bytes(game: str) -> int:
    """Bytes of one stored frame of `game` (Atari 84 * 84 = 7,056; MinAtar 100 * C)."""
    shape, dtype, _ = observation_spec(game)
    return int(np.prod(shape)) * dtype.itemsize


def make_env(
    game: str,
    *,
    protocol: str | atari.Protocol = "dqn_replay",
    seed: int = 0,
    max_episode_steps: int | None = None,
    sticky_action_prob: float | None = None,
):
    """A single environment of `game` (an `AtariEnv`, or a known-answer env)."""
    cls = KNOWN_ANSWER.get(known_answer_game(game) or "", atari.AtariEnv)
    if is_minatar(game):
        cls = minatar.MinAtarEnv
    return cls(
        canonical_game(game),
        protocol=protocol,
        seed=seed,
        max_episode_steps=max_episode_steps,
        sticky_action_prob=sticky_action_prob,
    )


def action_set(game: str, protocol: str | atari.Protocol = "dqn_replay") -> tuple[int, ...]:
    """Action ids behind agent actions 0..A-1 (ALE ids for Atari games)."""
    name = known_answer_game(game)
    if name is not None:
        return KNOWN_ANSWER[name](name, protocol=protocol).action_set  # cheap to construct
    if is_minatar(game):
        return tuple(range(minatar.NUM_ACTIONS))  # all of MinAtar's actions (envs.minatar)
    return atari.action_set(game, protocol)


def num_actions(game: str, protocol: str | atari.Protocol = "dqn_replay") -> int:
    """Number of agent actions of `game` under `protocol`."""
    return len(action_set(game, protocol))
