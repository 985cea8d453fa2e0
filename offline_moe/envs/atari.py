"""Atari 2600 through ale-py with Dopamine's preprocessing, for two protocols (no TensorFlow).

Preprocessing (Dopamine `atari_lib.AtariPreprocessing`): each agent step repeats the action
for 4 emulator frames summing the rewards, max-pools the grayscale screens of the last two
frames, and resizes to 84x84 with `cv2.INTER_AREA`. Observations are single uint8 [84, 84]
frames; `envs.batched.BatchedAtari` keeps the 4-frame stacks.

Protocols (`PROTOCOLS`):

* `dqn_replay`: how the DQN-Replay data were generated and how the offline agents are
  evaluated (Dopamine Runner defaults): sticky actions 0.25, a life loss is not terminal, no
  no-op starts, at most 27,000 agent steps per episode (then truncated).
* `atari100k`: Dopamine's data-efficient runner (DER, DrQ(eps)): no sticky actions; a life
  loss is terminal for learning only (`Step.terminal`, `Step.life_lost`) while the game and
  its return go on, and the frame stack restarts (zeros) as Dopamine's `begin_episode` does;
  0..29 random no-op steps at every reset (`max_noops = 30`, `randint(0, 30)` as Dopamine);
  27,000-step cap.

Action set: both protocols use ALE's MINIMAL action set. Dopamine built the DQN-Replay
environments with `gym.make('{Game}NoFrameskip-v0')` (atari_lib.create_atari_environment),
and gym's AtariEnv defaults to `full_action_space=False`, i.e. `getMinimalActionSet()`; the
atari100k runner uses the same constructor with sticky actions off. So action `a` of an agent
(and of a DQN-Replay cache) is `ale.getMinimalActionSet()[a]`.

Frame-skip detail: Dopamine stops the 4-frame loop early when the episode ends (or, with
life-loss terminals, when a life is lost) and then returns a stale pooled frame; here the
frame at which the loop stopped is returned instead (its value never enters a TD target,
because the transition is terminal).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
from typing import NamedTuple

import cv2
import numpy as np

FRAME_SKIP = 4
SCREEN_SIZE = 84
STACK = 4  # frames per observation (DQN; Dopamine's Atari agents)
MAX_EPISODE_STEPS = 27_000


@dataclasses.dataclass(frozen=True)
class Protocol:
    """Environment protocol.

    Attributes:
      name: protocol name.
      sticky_action_prob: ALE repeat_action_probability (per emulator frame).
      life_loss_terminal: a lost life is a terminal for learning (the game continues).
      reset_stack_on_life_loss: `BatchedAtari` zeroes the frame stack after a life loss.
      noop_max: resets take randint(0, noop_max) no-op agent steps (0 = none).
      max_episode_steps: agent-step cap per episode (truncation).
    """

    name: str
    sticky_action_prob: float
    life_loss_terminal: bool
    reset_stack_on_life_loss: bool
    noop_max: int
    max_episode_steps: int


PROTOCOLS: dict[str, Protocol] = {
    "dqn_replay": Protocol("dqn_replay", 0.25, False, False, 0, MAX_EPISODE_STEPS),
    "atari100k": Protocol("atari100k", 0.0, True, True, 30, MAX_EPISODE_STEPS),
}


def get_protocol(protocol: str | Protocol) -> Protocol:
    if isinstance(protocol, Protocol):
        return protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown Atari protocol {protocol!r}; valid: {sorted(PROTOCOLS)}")
    return PROTOCOLS[protocol]


# ---------------------------------------------------------------------------------------------
# Games.


@functools.lru_cache(maxsize=1)
def _rom_ids() -> dict[str, str]:
    """CamelCase game name -> ALE rom id ('SpaceInvaders' -> 'space_invaders')."""
    from ale_py import roms

    return {"".join(p.capitalize() for p in rom.split("_")): rom for rom in roms.get_all_rom_ids()}


def games() -> tuple[str, ...]:
    """All ALE games, CamelCase as in DQN-Replay / TFDS names ('Pong', 'SpaceInvaders')."""
    return tuple(sorted(_rom_ids()))


GAMES: tuple[str, ...] = games()


def canonical_game(game: str) -> str:
    """'Pong', 'pong', 'space_invaders', 'SpaceInvaders' -> the CamelCase name.

    Raises:
      ValueError: unknown game, listing the valid names.
    """
    key = str(game).replace("_", "").replace("-", "").lower()
    for name in _rom_ids():
        if name.lower() == key:
            return name
    raise ValueError(f"unknown Atari game {game!r}; valid games: {', '.join(games())}")


def rom_id(game: str) -> str:
    return _rom_ids()[canonical_game(game)]


@functools.cache
def _minimal_action_set(game: str) -> tuple[int, ...]:
    ale = _new_ale(game, seed=0, sticky=0.0)
    return tuple(a.value for a in ale.getMinimalActionSet())


def action_set(game: str, protocol: str | Protocol = "dqn_replay") -> tuple[int, ...]:
    """ALE action ids that agent actions 0..A-1 map to (minimal set for both protocols)."""
    get_protocol(protocol)
    return _minimal_action_set(canonical_game(game))


def num_actions(game: str, protocol: str | Protocol = "dqn_replay") -> int:
    """Number of agent actions for `game` under `protocol`."""
    return len(action_set(game, protocol))


def _new_ale(game: str, *, seed: int, sticky: float):
    from ale_py import ALEInterface, LoggerMode, roms

    ALEInterface.setLoggerMode(LoggerMode.Error)
    ale = ALEInterface()
    ale.setInt("random_seed", int(seed) % (2**31))
    ale.setFloat("repeat_action_probability", float(sticky))
    ale.setInt("frame_skip", 1)  # frame skipping is ours (max-pool needs the last 2 frames)
    ale.setInt("max_num_frames_per_episode", 0)  # our own 27k agent-step cap instead
    ale.loadROM(str(roms.get_rom_path(rom_id(game))))
    return ale


def pool_and_resize(frame_a: np.ndarray, frame_b: np.ndarray, out=None) -> np.ndarray:
    """Max of two grayscale screens [210, 160] resized to uint8 [84, 84] (INTER_AREA)."""
    pooled = np.maximum(frame_a, frame_b)
    return cv2.resize(
        pooled, (SCREEN_SIZE, SCREEN_SIZE), dst=out, interpolation=cv2.INTER_AREA
    ).astype(np.uint8, copy=False)


# ---------------------------------------------------------------------------------------------
# Single environment.


class Step(NamedTuple):
    """Result of `AtariEnv.step`.

    Attributes:
      obs: uint8 [84, 84], frame after the action.
      reward: unclipped sum of the 4 frames' rewards.
      terminated: the game is over (episode ends).
      truncated: the step cap was reached (episode ends, not terminal).
      life_lost: a life was lost during this step.
      terminal: terminal for learning: `terminated`, or `life_lost` under a protocol with
        life-loss terminals (the episode continues in that case).
    """

    obs: np.ndarray
    reward: float
    terminated: bool
    truncated: bool
    life_lost: bool
    terminal: bool


def check_step(env, needs_reset: bool, action) -> None:
    """The checks every env's `step` makes: an episode is running, `action` is in range."""
    if needs_reset:
        raise RuntimeError(
            f"{type(env).__name__}.step called before reset() or after the episode ended"
        )
    if not 0 <= int(action) < env.num_actions:
        raise ValueError(f"action {action} outside [0, {env.num_actions}) for {env.game}")


class AtariEnv:
    """One ALE game with Dopamine preprocessing.

    Args:
      game: game name ('Pong', 'pong', 'SpaceInvaders', ...).
      protocol: 'dqn_replay' or 'atari100k' (or a `Protocol`).
      seed: seeds ALE (sticky actions) and the no-op draws.
      max_episode_steps: overrides the protocol's step cap (tests use small caps).
      sticky_action_prob: overrides the protocol's sticky-action probability.

    Attributes:
      num_actions, action_set (ALE ids of agent actions), game, protocol, lives,
      episode_step, last_noops (no-op steps taken by the latest reset).
    """

    def __init__(
        self,
        game: str,
        *,
        protocol: str | Protocol = "dqn_replay",
        seed: int = 0,
        max_episode_steps: int | None = None,
        sticky_action_prob: float | None = None,
    ):
        self.game = canonical_game(game)
        self.protocol = get_protocol(protocol)
        sticky = self.protocol.sticky_action_prob
        if sticky_action_prob is not None:
            sticky = float(sticky_action_prob)
        self.sticky_action_prob = sticky
        self.max_episode_steps = (
            self.protocol.max_episode_steps if max_episode_steps is None else max_episode_steps
        )
        self._ale = _new_ale(self.game, seed=seed, sticky=sticky)
        self.action_set = tuple(a.value for a in self._ale.getMinimalActionSet())
        self._actions = list(self._ale.getMinimalActionSet())
        self.num_actions = len(self.action_set)
        self._rng = np.random.default_rng(seed)
        h, w = self._ale.getScreenDims()  # (210, 160)
        self._screens = [np.zeros((h, w), np.uint8), np.zeros((h, w), np.uint8)]
        self.lives = 0
        self.episode_step = 0
        self.last_noops = 0
        self._needs_reset = True

    def get_state(self) -> dict:
        """Exact, JSON-serialisable snapshot (emulator with its RNG, no-op RNG, screens, counters).

        `set_state` on an env of the same game and protocol continues bit-identically, sticky
        actions included (for resuming training runs).
        """
        return {
            "game": self.game,
            "ale": base64.b64encode(self._ale.cloneState(include_rng=True).serialize()).decode(),
            "rng": self._rng.bit_generator.state,
            "screens": [base64.b64encode(s.tobytes()).decode() for s in self._screens],
            "lives": int(self.lives),
            "episode_step": int(self.episode_step),
            "last_noops": int(self.last_noops),
            "needs_reset": bool(self._needs_reset),
        }

    def set_state(self, state: dict) -> None:
        """Restores a snapshot taken by `get_state`."""
        from ale_py import ALEState

        if state["game"] != self.game:
            raise ValueError(f"snapshot of {state['game']} cannot restore a {self.game} env")
        self._ale.restoreState(ALEState(base64.b64decode(state["ale"])))
        self._rng.bit_generator.state = state["rng"]
        for screen, data in zip(self._screens, state["screens"]):
            screen[...] = np.frombuffer(base64.b64decode(data), np.uint8).reshape(screen.shape)
        self.lives = int(state["lives"])
        self.episode_step = int(state["episode_step"])
        self.last_noops = int(state["last_noops"])
        self._needs_reset = bool(state["needs_reset"])

    def ram(self) -> np.ndarray:
        """The console's 128-byte RAM now (uint8 [128]; scripted controllers read it)."""
        return self._ale.getRAM()

    def reset(self) -> np.ndarray:
        """Starts a new episode (plus random no-ops under atari100k). Returns uint8 [84, 84]."""
        self._ale.reset_game()
        self.lives = self._ale.lives()
        self._ale.getScreenGrayscale(self._screens[0])
        self._screens[1].fill(0)
        obs = pool_and_resize(self._screens[0], self._screens[1])
        self.episode_step = 0
        self._needs_reset = False
        self.last_noops = 0
        if self.protocol.noop_max > 0:
            noops = int(self._rng.integers(0, self.protocol.noop_max))
            for _ in range(noops):
                obs, _, game_over, _ = self._skip_frames(0)
                if game_over:  # practically never; start afresh without no-ops
                    self._ale.reset_game()
                    self.lives = self._ale.lives()
                    self._ale.getScreenGrayscale(self._screens[0])
                    self._screens[1].fill(0)
                    obs = pool_and_resize(self._screens[0], self._screens[1])
                    break
            self.last_noops = noops
        return obs

    def _skip_frames(self, action: int) -> tuple[np.ndarray, float, bool, bool]:
        """Repeats `action` for FRAME_SKIP frames; returns (obs, reward, game_over, life_lost)."""
        ale, ale_action = self._ale, self._actions[action]
        reward = 0.0
        game_over = life_lost = False
        for i in range(FRAME_SKIP):
            reward += ale.act(ale_action)
            game_over = ale.game_over()
            lives = ale.lives()
            life_lost = life_lost or lives < self.lives
            self.lives = lives
            if game_over or (life_lost and self.protocol.life_loss_terminal):
                # Stopped early (as Dopamine): return the current frame, unpooled.
                ale.getScreenGrayscale(self._screens[0])
                self._screens[1][:] = self._screens[0]
                break
            if i >= FRAME_SKIP - 2:
                ale.getScreenGrayscale(self._screens[i - (FRAME_SKIP - 2)])
        return pool_and_resize(self._screens[0], self._screens[1]), reward, game_over, life_lost

    def step(self, action: int) -> Step:
        """Takes agent action `action` (index into the minimal action set)."""
        check_step(self, self._needs_reset, action)
        obs, reward, game_over, life_lost = self._skip_frames(int(action))
        self.episode_step += 1
        truncated = not game_over and self.episode_step >= self.max_episode_steps
        self._needs_reset = game_over or truncated
        terminal = game_over or (life_lost and self.protocol.life_loss_terminal)
        return Step(obs, float(reward), bool(game_over), bool(truncated), bool(life_lost), terminal)
