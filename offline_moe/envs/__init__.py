"""offline_moe.envs: ALE Atari games with Dopamine preprocessing (`atari`), the five MinAtar
games (`minatar`), the known-answer env Catch (`catch`), and the one dispatch point from a game
name to an env (`registry`); copies of one game stepped together (`batched`).

`canonical_game`, `num_actions`, `action_set`, `observation_spec` and `make_env` here are the
registry's: they accept 'Catch' and the MinAtar games ('MinAtarBreakout') as well as every ALE
game.
"""

from offline_moe.envs.atari import (
    GAMES,
    PROTOCOLS,
    AtariEnv,
    Protocol,
    Step,
    pool_and_resize,
)
from offline_moe.envs.batched import BatchedAtari, BatchStep
from offline_moe.envs.catch import CatchEnv
from offline_moe.envs.minatar import MinAtarEnv
from offline_moe.envs.registry import (
    KNOWN_ANSWER,
    action_set,
    canonical_game,
    games,
    is_known_answer,
    is_minatar,
    make_env,
    num_actions,
    observation_spec,
)

__all__ = [
    "GAMES",
    "KNOWN_ANSWER",
    "PROTOCOLS",
    "AtariEnv",
    "BatchedAtari",
    "BatchStep",
    "CatchEnv",
    "MinAtarEnv",
    "Protocol",
    "Step",
    "action_set",
    "canonical_game",
    "games",
    "is_known_answer",
    "is_minatar",
    "make_env",
    "num_actions",
    "observation_spec",
    "pool_and_resize",
]
