"""The 46 Atari games of RL Unplugged / `rlu_atari_checkpoints_ordered` (no TensorFlow).

Source: tensorflow_datasets `rl_unplugged/atari_utils.py` (`_GAMES`, `_SHORT_GAMES`). The
TFDS configs are named `{Game}_run_{1..5}`; each has one split per 1M-transition checkpoint,
`checkpoint_00` .. `checkpoint_49` (49 checkpoints for the three "short" games).
"""

from __future__ import annotations

RLU_GAMES: tuple[str, ...] = (
    "Alien",
    "Amidar",
    "Assault",
    "Asterix",
    "Atlantis",
    "BankHeist",
    "BattleZone",
    "BeamRider",
    "Boxing",
    "Breakout",
    "Carnival",
    "Centipede",
    "ChopperCommand",
    "CrazyClimber",
    "DemonAttack",
    "DoubleDunk",
    "Enduro",
    "FishingDerby",
    "Freeway",
    "Frostbite",
    "Gopher",
    "Gravitar",
    "Hero",
    "IceHockey",
    "Jamesbond",
    "Kangaroo",
    "Krull",
    "KungFuMaster",
    "MsPacman",
    "NameThisGame",
    "Phoenix",
    "Pong",
    "Pooyan",
    "Qbert",
    "Riverraid",
    "RoadRunner",
    "Robotank",
    "Seaquest",
    "SpaceInvaders",
    "StarGunner",
    "TimePilot",
    "UpNDown",
    "VideoPinball",
    "WizardOfWor",
    "YarsRevenge",
    "Zaxxon",
)

# Games whose runs have 49 checkpoints (checkpoint_00 .. checkpoint_48) instead of 50.
SHORT_GAMES: tuple[str, ...] = ("Carnival", "Gravitar", "StarGunner")

RUNS: tuple[int, ...] = (1, 2, 3, 4, 5)


def num_checkpoints(game: str) -> int:
    """Number of 1M-transition checkpoints (TFDS splits) in one run of `game`."""
    return 49 if game in SHORT_GAMES else 50


def check_game(
    game: str,
    *,
    games: tuple[str, ...] | None = None,
    option: str = "--game",
    label: str = "RL Unplugged",
) -> str:
    """Returns `game` if it is in `games` (default: the 46 RLU games), else raises ValueError.

    Args:
      game: game name as spelled in TFDS configs, e.g. 'Pong', 'MsPacman'.
      games: the valid names (`RLU_GAMES` or `DQN_REPLAY_GAMES`).
      option: the flag or field the name came from, named in the error.
      label: names the game list in the error.
    """
    games = RLU_GAMES if games is None else games
    if game in games:
        return game
    near = nearest(game, games)
    hint = f" (did you mean {near!r}?)" if near else ""
    raise ValueError(
        f"{option}: unknown game {game!r}{hint}; valid {label} games: {', '.join(games)}"
    )


def nearest(name: str, names) -> str | None:
    """The valid name closest to a mistyped one (case ignored), or None if none is close."""
    import difflib

    lowered = {n.lower(): n for n in names}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[close[0]] if close else None


# The 60 games of the original DQN-Replay logs (gs://atari-replay-datasets/dqn/, batch_rl):
# the 46 above plus these 14.
DQN_REPLAY_GAMES: tuple[str, ...] = tuple(
    sorted(
        RLU_GAMES
        + (
            "AirRaid",
            "Asteroids",
            "Berzerk",
            "Bowling",
            "ElevatorAction",
            "JourneyEscape",
            "MontezumaRevenge",
            "Pitfall",
            "PrivateEye",
            "Skiing",
            "Solaris",
            "Tennis",
            "Tutankham",
            "Venture",
        )
    )
)

# Known-answer environments (`offline_moe.envs.registry.KNOWN_ANSWER`, kept equal by a test):
# `offline_moe.record` records them and `offline_moe.ingest` reads them like the RLU games, in
# the same layout (TFDS config `Catch_run_1`).
KNOWN_ANSWER_GAMES: tuple[str, ...] = ("Catch", "CatchBoard")

# The five MinAtar games (`offline_moe.envs.minatar.GAMES`, kept equal by a test), recorded and
# ingested in the same layout (TFDS config `MinAtarBreakout_run_1`).
MINATAR_GAMES: tuple[str, ...] = (
    "MinAtarAsterix",
    "MinAtarBreakout",
    "MinAtarFreeway",
    "MinAtarSeaquest",
    "MinAtarSpaceInvaders",
)

# What the local recorder and the RLDS ingest accept as a game.
RECORDABLE_GAMES: tuple[str, ...] = RLU_GAMES + KNOWN_ANSWER_GAMES + MINATAR_GAMES
