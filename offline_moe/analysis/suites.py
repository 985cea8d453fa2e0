"""Named game lists (suites) for sweeps and reports.

- ``offline_paper`` (17 games): the paper (Obando-Ceron et al. 2024, Sec. 5.1) runs its offline
  experiments on "17 Atari games following Kumar et al. (2021b)" (DR3) without printing them.
  We use the 17 games of DR3's offline Atari experiments (its per-game appendix tables, 1%/5%/10%
  DQN-Replay): Asterix, BeamRider, Breakout, DemonAttack, DoubleDunk, Enduro, IceHockey,
  Jamesbond, MsPacman, Pong, Qbert, RoadRunner, Seaquest, SpaceInvaders, WizardOfWor,
  YarsRevenge, Zaxxon. The list was transcribed from DR3 from memory, not checked against the
  PDF in this environment (see baselines/README.md). Whatever its provenance, every game is
  in the 46 games of RL Unplugged Atari (checked in tests), has the standard random/human pair,
  and the list includes the 5 games of Kumar et al. 2021a (Asterix, Breakout, Pong, Seaquest,
  SpaceInvaders).
- ``rlu46``: the 46 games of TFDS ``rlu_atari*`` (``atari_utils._GAMES``).
- ``atari100k``: the 26 Atari 100k games (Kaiser et al. 2020).
- ``paper20``: the paper's 20-game set (App. A). AirRaid has no standard human score and is
  reported raw only unless extra reference scores are supplied.
- ``smoke``: Pong and Breakout, which run on CPU.
- ``catch``: the known-answer env Catch (bsuite), which agents solve on a CPU in minutes.
- ``minatar``: the five MinAtar games (Young & Tian 2019), the offline protocol at laptop scale
  (data from ``configs/dqn.py``; scores min-max normalised between the random policy and the
  behaviour DQN, ``baselines/minatar_scores.csv``).
"""

from __future__ import annotations

from offline_moe import errors

RLU46 = (
    "Alien", "Amidar", "Assault", "Asterix", "Atlantis", "BankHeist", "BattleZone", "BeamRider",
    "Boxing", "Breakout", "Carnival", "Centipede", "ChopperCommand", "CrazyClimber",
    "DemonAttack", "DoubleDunk", "Enduro", "FishingDerby", "Freeway", "Frostbite", "Gopher",
    "Gravitar", "Hero", "IceHockey", "Jamesbond", "Kangaroo", "Krull", "KungFuMaster",
    "MsPacman", "NameThisGame", "Phoenix", "Pong", "Pooyan", "Qbert", "Riverraid", "RoadRunner",
    "Robotank", "Seaquest", "SpaceInvaders", "StarGunner", "TimePilot", "UpNDown",
    "VideoPinball", "WizardOfWor", "YarsRevenge", "Zaxxon",
)  # fmt: skip

OFFLINE_PAPER = (
    "Asterix", "BeamRider", "Breakout", "DemonAttack", "DoubleDunk", "Enduro", "IceHockey",
    "Jamesbond", "MsPacman", "Pong", "Qbert", "RoadRunner", "Seaquest", "SpaceInvaders",
    "WizardOfWor", "YarsRevenge", "Zaxxon",
)  # fmt: skip

ATARI100K = (
    "Alien", "Amidar", "Assault", "Asterix", "BankHeist", "BattleZone", "Boxing", "Breakout",
    "ChopperCommand", "CrazyClimber", "DemonAttack", "Freeway", "Frostbite", "Gopher", "Hero",
    "Jamesbond", "Kangaroo", "Krull", "KungFuMaster", "MsPacman", "Pong", "PrivateEye", "Qbert",
    "RoadRunner", "Seaquest", "UpNDown",
)  # fmt: skip

PAPER20 = (
    "AirRaid", "Asterix", "Asteroids", "Bowling", "Breakout", "DemonAttack", "Freeway",
    "Gravitar", "Jamesbond", "MontezumaRevenge", "MsPacman", "Pong", "PrivateEye", "Qbert",
    "Seaquest", "SpaceInvaders", "Venture", "WizardOfWor", "YarsRevenge", "Zaxxon",
)  # fmt: skip

SMOKE = ("Pong", "Breakout")

# The known-answer env (offline_moe.envs.catch); the sweep gives it its Catch settings
# (offline_moe.launch.experiments.CATCH).
CATCH = ("Catch",)

MINATAR = (
    "MinAtarAsterix", "MinAtarBreakout", "MinAtarFreeway", "MinAtarSeaquest",
    "MinAtarSpaceInvaders",
)  # fmt: skip

SUITES: dict[str, tuple[str, ...]] = {
    "offline_paper": OFFLINE_PAPER,
    "rlu46": RLU46,
    "atari100k": ATARI100K,
    "paper20": PAPER20,
    "smoke": SMOKE,
    "catch": CATCH,
    "minatar": MINATAR,
}


class UnknownSuiteError(errors.InputError, KeyError):
    """A suite name that is not in SUITES (a KeyError, as a lookup, and an InputError)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0])


def get_suite(name_or_games: str) -> tuple[str, ...]:
    """Games of a named suite, or of a comma-separated list of games ('Pong,Breakout').

    Raises:
      UnknownSuiteError (a KeyError): an unknown suite name (the message names the nearest and
        lists valid suites).
    """
    if name_or_games in SUITES:
        return SUITES[name_or_games]
    if "," in name_or_games or name_or_games[:1].isupper():
        return tuple(g.strip() for g in name_or_games.split(",") if g.strip())
    raise UnknownSuiteError(
        str(
            errors.unknown(
                "suite",
                name_or_games,
                sorted(SUITES),
                "or a comma-separated list of CamelCase game names; `offline-moe list suites`",
            )
        )
    )
