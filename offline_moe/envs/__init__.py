"""offline_moe.envs: ALE Atari environments with Dopamine preprocessing (see `atari`)."""

from offline_moe.envs.atari import (
    GAMES,
    PROTOCOLS,
    AtariEnv,
    BatchedAtari,
    BatchStep,
    Protocol,
    Step,
    action_set,
    canonical_game,
    games,
    num_actions,
    pool_and_resize,
)

__all__ = [
    "GAMES",
    "PROTOCOLS",
    "AtariEnv",
    "BatchedAtari",
    "BatchStep",
    "Protocol",
    "Step",
    "action_set",
    "canonical_game",
    "games",
    "num_actions",
    "pool_and_resize",
]
