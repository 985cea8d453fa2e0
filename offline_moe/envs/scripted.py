"""Scripted controllers that read the Atari 2600 RAM, for recording expert-quality datasets.

A controller maps the console's 128-byte RAM (`AtariEnv.ram()`) to an agent action (an index
into the game's minimal action set). `ScriptedPolicy` mixes it with uniform random actions:
with probability `eps` a uniform action, else the controller's. At eps = 0 it is the
controller, at eps = 1 exactly the random policy (same draws from the same generator as
`offline_moe.record`'s random policy, so the same seed records the same dataset), and in
between it gives datasets of intermediate quality, in the spirit of D4RL's expert / medium /
mixed datasets (Fu et al. 2020, "D4RL: Datasets for Deep Data-Driven RL", section 5).

Pong RAM addresses (the AtariARI annotations, Anand et al. 2019, "Unsupervised State
Representation Learning in Atari", appendix: player_y = 51, ball_x = 49, ball_y = 54,
enemy_score = 13, player_score = 14), checked against the screen by stepping ale-py
(tests/envs/test_scripted.py repeats the check):

  ram[51]  the player's (right, green) paddle: its bottom screen row is ram[51] + 1 (+ 2 on
           some frames while it moves); it is 16 rows tall, so its centre row is about
           ram[51] - 6.
  ram[54]  the ball: its top screen row is ram[54] - 14 (or - 15); it is 4 rows tall, so its
           centre row is about ram[54] - 13; 0 while no ball is in play (between points).
  ram[49]  the ball's leftmost column + 49.
  ram[13], ram[14]  the opponent's and the player's points.

In Pong's minimal action set (NOOP, FIRE, RIGHT, LEFT, RIGHTFIRE, LEFTFIRE) RIGHT moves the
paddle up and LEFT moves it down.

Freeway needs no RAM: a car that hits the chicken only pushes it back a lane, so always UP
is near the best score (1,000 agent steps with sticky actions: UP 11, random 0).
"""

from __future__ import annotations

import numpy as np

# ALE action ids (ale_py.Action values) used by the controllers.
_ALE_NOOP, _ALE_UP, _ALE_RIGHT, _ALE_LEFT = 0, 2, 3, 4

PONG_RAM = {"player_y": 51, "ball_x": 49, "ball_y": 54, "enemy_score": 13, "player_score": 14}


class PongController:
    """Keeps the paddle's centre level with the ball (plain tracking, no trajectory model).

    Error = ram[54] - ram[51] - 5: the ball's centre row minus a point 2 rows below the
    paddle's centre (ball centre - paddle centre = ram[54] - ram[51] - 7, module docstring);
    move down when it exceeds `dead_zone` rows, up when below -`dead_zone`, else NOOP. With no
    ball in play the paddle returns to the middle of the field. The aim point (offset 5 of
    {0, 3, 5, 10}) and the dead zone (8 rows of {2, 4, 6, 8}; it damps the paddle's overshoot,
    which moves about 20 rows per agent step) scored best over four 2,000-step episodes with
    sticky actions. Plain tracking (rather than
    predicting where the ball will cross) keeps the behaviour a function of the current
    screen, which a value network can learn from frames.

    Args:
      action_set: ALE action ids of the agent's actions (`AtariEnv.action_set`).
      dead_zone: rows of tolerance before the paddle moves.
    """

    _AIM_OFFSET = 5  # see the class docstring
    _REST_Y = 122  # ram[51] with the paddle in the middle of the field

    def __init__(self, action_set: tuple[int, ...], dead_zone: int = 8):
        try:
            self._noop = action_set.index(_ALE_NOOP)
            self._up = action_set.index(_ALE_RIGHT)
            self._down = action_set.index(_ALE_LEFT)
        except ValueError:
            raise ValueError(
                f"PongController: action set {action_set} lacks NOOP/RIGHT/LEFT "
                f"(ALE ids {_ALE_NOOP}/{_ALE_RIGHT}/{_ALE_LEFT}); is this Pong?"
            ) from None
        self.dead_zone = int(dead_zone)

    def __call__(self, ram: np.ndarray) -> int:
        paddle, ball = int(ram[PONG_RAM["player_y"]]), int(ram[PONG_RAM["ball_y"]])
        if ball == 0:
            error = self._REST_Y - paddle
        else:
            error = ball - paddle - self._AIM_OFFSET
        if error > self.dead_zone:
            return self._down
        if error < -self.dead_zone:
            return self._up
        return self._noop


class FreewayController:
    """Always UP (module docstring).

    Args:
      action_set: ALE action ids of the agent's actions (`AtariEnv.action_set`).
    """

    def __init__(self, action_set: tuple[int, ...]):
        if _ALE_UP not in action_set:
            raise ValueError(f"FreewayController: action set {action_set} lacks UP (ALE id 2)")
        self._up = action_set.index(_ALE_UP)

    def __call__(self, ram: np.ndarray) -> int:
        del ram
        return self._up


CONTROLLERS = {"Freeway": FreewayController, "Pong": PongController}


def check_game(game: str) -> None:
    """Raises ValueError unless a scripted controller exists for `game` (canonical name)."""
    if game not in CONTROLLERS:
        raise ValueError(
            f"--policy=scripted: no scripted controller for {game!r}; "
            f"valid games: {', '.join(sorted(CONTROLLERS))}"
        )


class ScriptedPolicy:
    """The game's controller mixed with uniform random actions (module docstring).

    Args:
      env: an `offline_moe.envs.atari.AtariEnv`; its RAM is read at every `act`.
      rng: the policy's generator (also draws the random actions).
      eps: probability of a uniform random action, in [0, 1].
    """

    def __init__(self, env, rng: np.random.Generator, eps: float):
        check_game(env.game)
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"--epsilon: expected a probability in [0, 1], got {eps}")
        self.env = env
        self.num_actions = env.num_actions
        self.rng = rng
        self.eps = float(eps)
        self.controller = CONTROLLERS[env.game](env.action_set)

    def act(self) -> int:
        # No coin at eps 0 or 1: then the draws are exactly the controller's / the random
        # policy's (RandomPolicy draws one integer per action from the same generator).
        if self.eps >= 1.0 or (self.eps > 0.0 and self.rng.random() < self.eps):
            return int(self.rng.integers(self.num_actions))
        return self.controller(self.env.ram())

    def observe(self, action: int, reward: float) -> None:
        del action, reward
