"""TFDS dataset folder `rlu_atari_local`: Atari episodes recorded from real ALE games.

A thin TFDS builder around the recorder; the layout (features, version 1.1.0, config names
`{Game}_run_{r}`, splits `checkpoint_XX`) is defined once, in
`offline_moe/data/rlu_format.py`, and the episodes come from `offline_moe.record.record_split`
(DQN-Replay protocol via `offline_moe.envs.atari.AtariEnv`). `python -m offline_moe.record`
writes the very same dataset without this file::

    tfds build datasets/rlu_atari_local --config=Pong_run_1 --data_dir=data/rlds

records 20,000 random-policy steps in two splits (seed = run). Notes:
- the `tfds` command line of tensorflow-datasets 4.9.10 imports apache-beam at start-up, so
  it needs `pip install apache-beam` (this builder itself does not use Beam);
- for another size or policy use the recorder CLI (`--steps`, `--checkpoints`, `--policy`),
  which keeps the `{Game}_run_{r}` config names (TFDS refuses custom configs named like
  predefined ones).

Then `python -m offline_moe.ingest --source=tfds:rlu_atari_local/Pong_run_1
--data_dir=data/rlds --out=...`. This folder is not a Python package (no __init__.py):
TFDS loads it by path, and `datasets` stays free for the Hugging Face library's name.
"""

from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds

from offline_moe.data import games, rlu_format
from offline_moe.data.record import record_split, split_budget


@dataclasses.dataclass
class LocalAtariConfig(tfds.core.BuilderConfig):
    """One recording: game, run, total agent steps, splits, behaviour policy.

    Attributes:
      game: one of the 46 RL Unplugged games.
      run: run index (the config is `{game}_run_{run}`); also the default seed.
      steps: total agent steps, divided evenly over `checkpoints` splits.
      checkpoints: number of `checkpoint_XX` splits.
      policy: 'random' or 'eps_greedy' (see offline_moe.record).
      eps: exploration probability of 'eps_greedy'.
      seed: seed of ALE and the policy (None: `run`).
      max_episode_steps: per-episode step cap (None: the protocol's 27,000).
    """

    game: str = "Pong"
    run: int = 1
    steps: int = 20_000
    checkpoints: int = 2
    policy: str = "random"
    eps: float = 0.1
    seed: int | None = None
    max_episode_steps: int | None = None


class Builder(tfds.core.GeneratorBasedBuilder):
    """Locally recorded Atari episodes in the rlu_atari_checkpoints_ordered layout."""

    VERSION = tfds.core.Version(rlu_format.VERSION)
    RELEASE_NOTES = {rlu_format.VERSION: "Same features as rlu_atari_checkpoints_ordered 1.1.0."}
    BUILDER_CONFIGS = [
        LocalAtariConfig(name=rlu_format.config_name(g, r), game=g, run=r)
        for g in games.RECORDABLE_GAMES  # 46 RLU games, 2 known-answer, 5 MinAtar
        for r in games.RUNS
    ]

    def _frame_layout(self):
        """The config's game's frame (uint8 [84, 84]; MinAtar bool [10, 10, C])."""
        from offline_moe.envs import observation_spec

        return observation_spec(self.builder_config.game)[:2]

    def _info(self) -> tfds.core.DatasetInfo:
        # DatasetInfo directly, not dataset_info_from_configs: the latter looks for metadata
        # files through importlib resources, which fails for a folder loaded by path.
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "Atari episodes recorded with offline_moe.record (DQN-Replay protocol: "
                "frame-skip 4, max-pool, grayscale 84x84, sticky actions 0.25, 27k-step cap) "
                "in the RL Unplugged rlu_atari_checkpoints_ordered layout."
            ),
            features=rlu_format.features_dict(
                frame_shape=self._frame_layout()[0], frame_dtype=self._frame_layout()[1]
            ),
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: episodes are played here
        config = self.builder_config
        budgets = split_budget(config.steps, config.checkpoints)
        return {
            rlu_format.split_name(c): self._generate_examples(c, budget)
            for c, budget in enumerate(budgets)
        }

    def _generate_examples(self, checkpoint: int, budget: int):
        config = self.builder_config
        episodes = record_split(
            config.game,
            checkpoint,
            budget,
            policy=config.policy,
            seed=config.run if config.seed is None else config.seed,
            eps=config.eps,
            max_episode_steps=config.max_episode_steps,
        )
        for i, episode in enumerate(episodes):
            # Same key scheme as rlu_atari_checkpoints_ordered: keeps episodes in order.
            yield checkpoint * 10**10 + i, episode
