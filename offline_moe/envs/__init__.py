"""offline_moe.envs: ALE Atari games with Dopamine preprocessing (`atari`), the known-answer
env Catch (`catch`), and the one dispatch point from a game name to an env (`registry`).

`canonical_game`, `num_actions`, `action_set` and `make_env` here are the registry's: they
accept 'Catch' as well as every ALE game.
"""

from offline_moe.envs.atari import (
    GAMES,
    PROTOCOLS,
    AtariEnv,
    BatchedAtari,
    BatchStep,
    Protocol,
    Step,
    pool_and_resize,
)
from offline_moe.envs.catch import CatchEnv
from offline_moe.envs.registry import (
    KNOWN_ANSWER,
    action_set,
    canonical_game,
    games,
    is_known_answer,
    make_env,
    num_actions,
)

__all__ = [
    "GAMES",
    "KNOWN_ANSWER",
    "PROTOCOLS",
    "AtariEnv",
    "BatchedAtari",
    "BatchStep",
    "CatchEnv",
    "Protocol",
    "Step",
    "action_set",
    "canonical_game",
    "games",
    "is_known_answer",
    "make_env",
    "num_actions",
    "pool_and_resize",
]
