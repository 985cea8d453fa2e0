"""Catch: a known-answer environment that goes everywhere an Atari game goes (no TensorFlow).

The game is bsuite's Catch (Osband et al. 2020, "Behaviour Suite for Reinforcement Learning",
ICLR; deepmind/bsuite `bsuite/environments/catch.py`): a board of 10 rows x 5 columns; at
reset a ball appears in the top row at a uniformly random column and the paddle sits in the
middle of the bottom row (column 5 // 2 = 2). Each step the paddle moves left / stays / moves
right (agent actions 0 / 1 / 2, clipped at the walls) and then the ball falls one row. When
the ball reaches the bottom row the episode ends with reward +1 if the paddle is under it,
else -1; every other reward is 0. Every episode is exactly 9 steps, and the optimal return is
1.0 from every start (the paddle is at most 2 columns from the ball and has 9 moves). A
uniformly random policy scores -0.6 in expectation (`random_policy_return`; measured
value in `baselines/catch_scores.csv`).

Frames: the board is drawn as a uint8 [84, 84] image, 255 where the ball or the paddle is, 0
elsewhere; pixel (i, j) shows cell (i * 10 // 84, j * 5 // 84), so a cell is 8 or 9 pixels
tall and 16 or 17 wide. One frame holds the whole state, so the 4-frame stacks of the
Atari pipeline (zeros before the first frame) are simply redundant.

How the Atari protocols' knobs apply (`offline_moe.envs.atari.PROTOCOLS`). `CatchEnv` takes
either protocol name, records it, and plays the same game under both:

* frame skip / max-pool: none. One agent step is one Catch step (a skip of 4 would drop the
  ball 4 rows per decision and leave 2 decisions per episode);
* sticky actions: off under both protocols. With `dqn_replay`'s 0.25 a repeated move can
  leave the paddle one column off the ball on the last step, so no policy could reach the
  known optimum of 1.0 and "reaches 0.9" would test the dice, not the agent. An explicit
  `sticky_action_prob` other than 0 is refused;
* no-op starts: none (`atari100k`'s 0..29 no-ops would be the whole episode; the random start
  column is already the start-state distribution);
* life loss: there are no lives (`lives` is 0, `life_lost` always false), so the game's end is
  the only terminal under both protocols;
* episode cap: episodes end by themselves after 9 steps, so the 27,000-step caps never bind; a
  smaller `max_episode_steps` truncates as for ALE.

CatchBoard: the same game seen as its board, the way MinAtar's games are seen (Young & Tian
2019): each step returns a bool [10, 5, 1] frame (True where the ball or the paddle is), not
stacked (stack 1), so the MinAtar encoder (Conv 16 3x3 VALID -> 8x3x16) reads it. Same
dynamics, same seeds, same episodes, same random score; only the observation differs. It is
the suite's fast known-answer task: an update on a 10x5x1 board costs a fraction of one on
84x84x4 frames (`CatchBoardEnv`).

Randomness: one `numpy.random.Generator` (PCG64) seeded with `seed` draws the ball's column at
every reset, so an environment is deterministic from its seed, and `get_state` / `set_state`
(the generator's state plus the board) continue bit-identically, as `AtariEnv`'s do.
"""

from __future__ import annotations

import numpy as np

from offline_moe.envs import atari

GAME = "Catch"
BOARD_GAME = "CatchBoard"
ROWS = 10
COLUMNS = 5
EPISODE_STEPS = ROWS - 1  # the ball falls from row 0 to the paddle's row ROWS - 1
OPTIMAL_RETURN = 1.0
ACTION_DELTAS = (-1, 0, 1)  # agent actions: left, stay, right (bsuite's order)
ON = 255

# Pixel -> board cell, rows and columns (see the module docstring).
_ROW_OF_PIXEL = (np.arange(atari.SCREEN_SIZE) * ROWS) // atari.SCREEN_SIZE
_COL_OF_PIXEL = (np.arange(atari.SCREEN_SIZE) * COLUMNS) // atari.SCREEN_SIZE


def catch_protocol(protocol: str | atari.Protocol) -> atari.Protocol:
    """What an Atari protocol means for Catch: its name, none of its knobs (module doc)."""
    name = atari.get_protocol(protocol).name
    return atari.Protocol(name, 0.0, False, False, 0, EPISODE_STEPS)


def render(ball_x: int, ball_y: int, paddle_x: int) -> np.ndarray:
    """The 84x84 uint8 frame of a board with the ball at (ball_y, ball_x)."""
    board = np.zeros((ROWS, COLUMNS), np.uint8)
    board[ROWS - 1, paddle_x] = ON
    board[ball_y, ball_x] = ON
    return board[_ROW_OF_PIXEL][:, _COL_OF_PIXEL]


def board(ball_x: int, ball_y: int, paddle_x: int) -> np.ndarray:
    """The bool [10, 5, 1] board with the ball at (ball_y, ball_x) (CatchBoard's frame)."""
    out = np.zeros((ROWS, COLUMNS, 1), np.bool_)
    out[ROWS - 1, paddle_x, 0] = True
    out[ball_y, ball_x, 0] = True
    return out


class CatchEnv:
    """bsuite's Catch behind `AtariEnv`'s interface (reset, step -> `atari.Step`, snapshots).

    Args:
      game: 'Catch' (any case); accepted so that `make_env(game, ...)` needs no special case.
      protocol: 'dqn_replay' or 'atari100k' (or a `Protocol`): recorded, knobs not applied
        (module docstring).
      seed: seeds the ball's start columns.
      max_episode_steps: truncates episodes after this many steps (default: never binds).
      sticky_action_prob: must be None or 0 (module docstring).

    Attributes:
      num_actions (3), action_set ((0, 1, 2)), game ('Catch'), protocol, lives (0),
      episode_step, last_noops (0), sticky_action_prob (0.0), max_episode_steps.
    """

    GAME = GAME
    # (frame shape, dtype, frame stack), as `envs.registry.observation_spec` gives it.
    OBSERVATION_SPEC = ((atari.SCREEN_SIZE, atari.SCREEN_SIZE), np.dtype(np.uint8), atari.STACK)

    def __init__(
        self,
        game: str = GAME,
        *,
        protocol: str | atari.Protocol = "dqn_replay",
        seed: int = 0,
        max_episode_steps: int | None = None,
        sticky_action_prob: float | None = None,
    ):
        if str(game).lower() != self.GAME.lower():
            raise ValueError(f"{type(self).__name__} plays {self.GAME!r}, not {game!r}")
        if sticky_action_prob:
            raise ValueError(
                f"Catch: sticky_action_prob must be 0 (got {sticky_action_prob}); a sticky "
                "action makes the known optimum 1.0 unreachable (see offline_moe.envs.catch)"
            )
        self.game = self.GAME
        self.protocol = catch_protocol(protocol)
        self.sticky_action_prob = 0.0
        self.max_episode_steps = (
            self.protocol.max_episode_steps if max_episode_steps is None else max_episode_steps
        )
        self.action_set = tuple(range(len(ACTION_DELTAS)))
        self.num_actions = len(ACTION_DELTAS)
        self._rng = np.random.default_rng(seed)
        self.lives = 0
        self.last_noops = 0
        self.episode_step = 0
        self.ball_x = self.ball_y = 0
        self.paddle_x = COLUMNS // 2
        self._needs_reset = True

    def get_state(self) -> dict:
        """Exact, JSON-serialisable snapshot (generator state, board, counters)."""
        return {
            "game": self.game,
            "rng": self._rng.bit_generator.state,
            "ball_x": int(self.ball_x),
            "ball_y": int(self.ball_y),
            "paddle_x": int(self.paddle_x),
            "episode_step": int(self.episode_step),
            "needs_reset": bool(self._needs_reset),
        }

    def set_state(self, state: dict) -> None:
        """Restores a snapshot taken by `get_state` (any seed; same game)."""
        if state["game"] != self.game:
            raise ValueError(f"snapshot of {state['game']} cannot restore a {self.game} env")
        self._rng.bit_generator.state = state["rng"]
        self.ball_x, self.ball_y = int(state["ball_x"]), int(state["ball_y"])
        self.paddle_x = int(state["paddle_x"])
        self.episode_step = int(state["episode_step"])
        self._needs_reset = bool(state["needs_reset"])

    def frame(self) -> np.ndarray:
        return render(self.ball_x, self.ball_y, self.paddle_x)

    def reset(self) -> np.ndarray:
        """Starts an episode: ball in row 0 at a random column, paddle centred; its frame."""
        self.ball_x = int(self._rng.integers(COLUMNS))
        self.ball_y = 0
        self.paddle_x = COLUMNS // 2
        self.episode_step = 0
        self._needs_reset = False
        return self.frame()

    def step(self, action: int) -> atari.Step:
        """Moves the paddle by action `action` (0 left, 1 stay, 2 right), then drops the ball."""
        atari.check_step(self, self._needs_reset, action)
        self.paddle_x = min(max(self.paddle_x + ACTION_DELTAS[int(action)], 0), COLUMNS - 1)
        self.ball_y += 1
        self.episode_step += 1
        terminated = self.ball_y == ROWS - 1
        reward = (1.0 if self.paddle_x == self.ball_x else -1.0) if terminated else 0.0
        truncated = not terminated and self.episode_step >= self.max_episode_steps
        self._needs_reset = terminated or truncated
        return atari.Step(self.frame(), reward, terminated, truncated, False, terminated)


class CatchBoardEnv(CatchEnv):
    """Catch seen as its board: bool [10, 5, 1] frames, stack 1 (module docstring). Everything
    else (dynamics, seeds, snapshots, protocols) is `CatchEnv`'s."""

    GAME = BOARD_GAME
    OBSERVATION_SPEC = ((ROWS, COLUMNS, 1), np.dtype(np.bool_), 1)

    def frame(self) -> np.ndarray:
        return board(self.ball_x, self.ball_y, self.paddle_x)


def optimal_action(ball_x: int, paddle_x: int) -> int:
    """An optimal action: move towards the ball's column, stay when under it."""
    return 1 + int(np.sign(ball_x - paddle_x))


def random_policy_return() -> float:
    """The exact expected return of the uniformly random policy: -0.6.

    A policy that ignores the ball (the uniform one does) leaves the paddle at some column
    independent of the ball's, and the ball's column is uniform over 5, so the catch
    probability is 1/5 whatever the paddle's distribution: 2 * 1/5 - 1 = -0.6.
    """
    return 2.0 / COLUMNS - 1.0
