"""MinAtar: the five 10x10 Atari-like games, through the `minatar` package, behind `AtariEnv`'s
interface (no TensorFlow).

MinAtar (Young & Tian 2019, "MinAtar: An Atari-Inspired Testbed for Thorough and Reproducible
Reinforcement Learning Experiments", arXiv:1903.03176; github.com/kenjyoung/MinAtar) is the
reference: `MinAtarEnv` wraps `minatar.Environment` and adds nothing to its dynamics, so a
seeded `MinAtarEnv` and a raw `minatar.Environment` seeded alike step identically
(tests/envs/test_minatar.py).

Names: 'MinAtar' + the game's CamelCase name: MinAtarAsterix, MinAtarBreakout, MinAtarFreeway,
MinAtarSeaquest, MinAtarSpaceInvaders (`GAMES`). Case, '/', ':', '-' and '_' are ignored when
reading a name, so MinAtar's own gymnasium ids without the version ('MinAtar/Breakout'),
'minatar:space_invaders' and 'minatar_breakout' name the same games. The canonical name has no
separator because game names become TFDS configs ('MinAtarBreakout_run_1'), cache directories
('data/cache/MinAtarBreakout_dqn_...') and table rows, which take CamelCase as the Atari names.
A bare 'Breakout' stays ALE's Breakout.

Observations: MinAtar's state, bool [10, 10, C] (C = 4 Asterix, 4 Breakout, 7 Freeway,
10 Seaquest, 6 SpaceInvaders: one binary channel per object kind), stored and fed to the
network as is (1 byte a cell; `offline_moe.networks.preprocess_obs` reads bool as 0/1). Frame
stack 1: the state is Markov by design (trail channels give directions), and MinAtar's DQN
(examples/dqn.py) feeds single states. `OBSERVATION` in `observation_spec`.

Protocol (`minatar_protocol`): MinAtar's own, the same for both of the suite's protocol names
(data generation, offline evaluation and the online track alike): sticky actions with
probability 0.1 (`minatar.Environment`'s default: with that probability the previous action
is repeated), difficulty ramping on (its default; Asterix, Seaquest and SpaceInvaders speed
up over an episode), no life-loss terminals (a MinAtar game has one life), no no-op starts.
MinAtar has no step cap; the cap here is the Atari protocols' 27,000 agent steps, so that a
policy that never loses (Breakout's bricks refill) still ends its evaluation episodes (a
truncation, not a terminal, as for ALE). Freeway ends by itself after 2,500 steps.

Action set: all 6 of MinAtar's actions (no-op, left, up, right, down, fire) in every game,
agent action a = MinAtar action a. MinAtar's DQN and its published baselines (examples/dqn.py:
`num_actions = env.num_actions()`, 6), and Dopamine's MinAtar environment used by Obando-Ceron
& Castro 2021 ("Revisiting Rainbow") and by the MinAtar MoE study of Willi, Obando-Ceron et
al. 2024, act over all 6, so scores and behaviour data compare with theirs. (The minimal
sets, 3 to 6 actions per game, are `minatar.Environment.minimal_action_set()`.)

Randomness: `minatar.Environment.seed(seed)` makes one `numpy.random.RandomState` that draws
the sticky actions and every spawn, ball start and speed of the game. `get_state` /
`set_state` snapshot the whole environment (that generator included; pickled, base64 text in
the JSON snapshot) so a resumed run continues bit-identically, as `AtariEnv`'s snapshots do.
"""

from __future__ import annotations

import base64
import functools
import pickle

import numpy as np

from offline_moe.envs import atari

PREFIX = "MinAtar"
# Canonical name -> minatar's module name.
GAMES: dict[str, str] = {
    "MinAtarAsterix": "asterix",
    "MinAtarBreakout": "breakout",
    "MinAtarFreeway": "freeway",
    "MinAtarSeaquest": "seaquest",
    "MinAtarSpaceInvaders": "space_invaders",
}
NUM_ACTIONS = 6  # minatar.Environment.num_actions(): n, l, u, r, d, f in every game
STICKY_ACTION_PROB = 0.1  # minatar.Environment's default (Young & Tian 2019, Sec. 3)
DIFFICULTY_RAMPING = True  # minatar.Environment's default
MAX_EPISODE_STEPS = atari.MAX_EPISODE_STEPS  # MinAtar has none (module docstring)
STACK = 1  # MinAtar's DQN acts on single states
SIZE = 10  # every MinAtar state is 10 x 10 x C


def _key(game: str) -> str:
    text = str(game).lower()
    for sep in "/:-_ ":
        text = text.replace(sep, "")
    return text


def minatar_game(game: str) -> str | None:
    """The canonical name if `game` names a MinAtar game ('minatar/breakout' ->
    'MinAtarBreakout'), else None."""
    key = _key(game)
    for name in GAMES:
        if name.lower() == key:
            return name
    return None


def module_name(game: str) -> str:
    name = minatar_game(game)
    if name is None:
        raise ValueError(f"unknown MinAtar game {game!r}; valid: {', '.join(GAMES)}")
    return GAMES[name]


def minatar_protocol(protocol: str | atari.Protocol) -> atari.Protocol:
    """What a protocol name means for MinAtar: its name, MinAtar's knobs (module docstring)."""
    name = atari.get_protocol(protocol).name
    return atari.Protocol(name, STICKY_ACTION_PROB, False, False, 0, MAX_EPISODE_STEPS)


@functools.cache
def num_channels(game: str) -> int:
    """C of the game's bool [10, 10, C] state (from minatar itself)."""
    import minatar

    return int(minatar.Environment(module_name(game)).state_shape()[2])


def observation_spec(game: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """(frame shape, dtype, frame stack): ((10, 10, C), bool, 1)."""
    return (SIZE, SIZE, num_channels(game)), np.dtype(np.bool_), STACK


class MinAtarEnv:
    """One MinAtar game behind `AtariEnv`'s interface (reset, step -> `atari.Step`, snapshots).

    Args:
      game: a MinAtar game name (module docstring).
      protocol: 'dqn_replay' or 'atari100k' (or a `Protocol`): recorded; MinAtar's knobs
        apply under both (module docstring).
      seed: seeds minatar's generator (sticky actions and the game's own draws).
      max_episode_steps: truncates episodes after this many steps (default 27,000).
      sticky_action_prob: overrides MinAtar's 0.1 (e.g. 0 for a deterministic test).

    Attributes:
      num_actions (6), action_set ((0, ..., 5)), game, protocol, lives (0), episode_step,
      last_noops (0), sticky_action_prob, max_episode_steps.
    """

    def __init__(
        self,
        game: str,
        *,
        protocol: str | atari.Protocol = "dqn_replay",
        seed: int = 0,
        max_episode_steps: int | None = None,
        sticky_action_prob: float | None = None,
    ):
        import minatar

        module_name(game)  # raises on an unknown game, listing the valid ones
        self.game = minatar_game(game)
        self.protocol = p = minatar_protocol(protocol)
        self.sticky_action_prob = (
            p.sticky_action_prob if sticky_action_prob is None else float(sticky_action_prob)
        )
        self.max_episode_steps = max_episode_steps or p.max_episode_steps
        self._env = minatar.Environment(
            GAMES[self.game],
            sticky_action_prob=self.sticky_action_prob,
            difficulty_ramping=DIFFICULTY_RAMPING,
        )
        self._env.seed(int(seed) % 2**32)  # RandomState takes 32-bit seeds
        self.action_set = tuple(range(NUM_ACTIONS))
        self.num_actions = NUM_ACTIONS
        self.lives = 0
        self.last_noops = 0
        self.episode_step = 0
        self._needs_reset = True

    def get_state(self) -> dict:
        """Exact, JSON-serialisable snapshot (the whole minatar environment, its generator
        included, pickled; counters)."""
        return {
            "game": self.game,
            "minatar": base64.b64encode(pickle.dumps(self._env)).decode(),
            "episode_step": int(self.episode_step),
            "needs_reset": bool(self._needs_reset),
        }

    def set_state(self, state: dict) -> None:
        """Restores a snapshot taken by `get_state` (same game)."""
        if state["game"] != self.game:
            raise ValueError(f"snapshot of {state['game']} cannot restore a {self.game} env")
        self._env = pickle.loads(base64.b64decode(state["minatar"]))  # noqa: S301 (our own)
        self.episode_step = int(state["episode_step"])
        self._needs_reset = bool(state["needs_reset"])

    def reset(self) -> np.ndarray:
        """Starts an episode (`minatar.Environment.reset`). Returns bool [10, 10, C]."""
        self._env.reset()
        self.episode_step, self._needs_reset = 0, False
        return self._env.state()

    def step(self, action: int) -> atari.Step:
        """`minatar.Environment.act(action)` (sticky actions included); agent action a is
        MinAtar action a."""
        atari.check_step(self, self._needs_reset, action)
        reward, terminated = self._env.act(self.action_set[int(action)])
        terminated = bool(terminated)
        self.episode_step += 1
        truncated = not terminated and self.episode_step >= self.max_episode_steps
        self._needs_reset = terminated or truncated
        return atari.Step(
            self._env.state(), float(reward), terminated, truncated, False, terminated
        )
