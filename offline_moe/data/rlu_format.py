"""The `rlu_atari_checkpoints_ordered` RLDS layout: features, version, naming, and a writer.

This is the dataset definition of the local recorder (`offline_moe.record`) and of the
synthetic test datasets; `datasets/rlu_atari_local/` is a thin TFDS folder around it. It
matches TFDS `rl_unplugged/atari_utils.py` (`features_dict`, `atari_example_to_rlds`):

episode: `checkpoint_id` int64, `episode_id` int64, `episode_return` float32, and `steps`, a
dataset of `observation` Image(84, 84, 1) uint8 PNG, `action` int64, `reward` float32,
`discount` float32, `is_first`, `is_last`, `is_terminal` bool. The older published schema
(rlu_atari <= 1.2.0, rlu_atari_checkpoints_ordered 1.0.0) adds `steps/clipped_reward` and
`clipped_episode_return` (`with_clipped=True`).

RLDS step conventions (as TFDS converts RL Unplugged): an episode of T actions has T + 1
steps. Step t < T holds the frame o_t, the action a_t taken on it, the reward r_t after it and
the discount of that transition. Step T (`is_last`) holds only the final frame o_T; its action
and reward are padding (0). `is_first` is set on step 0 only. If the game ended, step T has
`is_terminal` and the discounts are shifted so that step T - 1 (the transition into the
terminal frame) and step T carry 0; otherwise all discounts are 1 and `is_terminal` is false
everywhere (a truncated episode).

Other frames (a MinAtar state, bool [10, 10, C]) are stored as a `Tensor` feature of the
frame's shape and dtype with raw-bytes encoding (`features_dict(frame_shape=...,
frame_dtype=...)`); the reader (`offline_moe.data.tfds_source`) takes either.

Configs are named `{Game}_run_{r}` and splits `checkpoint_{XX:02d}`; datasets live in
`DATA_DIR/<name>/<Game>_run_<r>/<version>/`, so both `tfds.builder('<name>/<Game>_run_<r>',
data_dir=DATA_DIR)` and `tfds.builder_from_directory(...)` load them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping

import numpy as np

from offline_moe.data.common import import_tfds
from offline_moe.replay.cache_writer import install_dir
from offline_moe.replay.identity import LOCAL_DATASET

DEFAULT_NAME = LOCAL_DATASET  # local recordings (the identity module names them)
PUBLIC_NAME = "rlu_atari_checkpoints_ordered"
VERSION = "1.1.0"
FRAME_SHAPE = (84, 84, 1)


def config_name(game: str, run: int) -> str:
    """TFDS config name of one run, e.g. 'Pong_run_1'."""
    return f"{game}_run_{int(run)}"


def split_name(checkpoint: int) -> str:
    """TFDS split of one 1M-transition checkpoint, e.g. 'checkpoint_03'."""
    return f"checkpoint_{int(checkpoint):02d}"


def _as_split(split: int | str) -> str:
    return split if isinstance(split, str) else split_name(split)


def split_index(split: str) -> int | None:
    """'checkpoint_03' -> 3; other split names (e.g. 'train') -> None."""
    prefix = "checkpoint_"
    if split.startswith(prefix) and split[len(prefix) :].isdigit():
        return int(split[len(prefix) :])
    return None


def dataset_dir(data_dir: str, game: str, run: int, name: str = DEFAULT_NAME) -> str:
    """Directory of one prepared config: DATA_DIR/name/Game_run_r/VERSION."""
    return os.path.join(data_dir, name, config_name(game, run), VERSION)


def is_atari_frame(frame_shape, frame_dtype) -> bool:
    """Whether frames of this layout are RLU Atari's (uint8 [84, 84]: PNG images)."""
    return (
        tuple(frame_shape) in (FRAME_SHAPE, FRAME_SHAPE[:2]) and np.dtype(frame_dtype) == np.uint8
    )


def observation_feature(frame_shape=FRAME_SHAPE, frame_dtype=np.uint8):
    """The steps/observation feature: RLU Atari's PNG Image (84, 84, 1), or for any other
    frame a Tensor of its shape and dtype stored as raw bytes."""
    tfds = import_tfds("the RL Unplugged features")

    if is_atari_frame(frame_shape, frame_dtype):
        return tfds.features.Image(shape=FRAME_SHAPE, dtype=np.uint8, encoding_format="png")
    return tfds.features.Tensor(
        shape=tuple(frame_shape), dtype=np.dtype(frame_dtype), encoding=tfds.features.Encoding.BYTES
    )


def features_dict(with_clipped: bool = False, frame_shape=FRAME_SHAPE, frame_dtype=np.uint8):
    """The RLU Atari FeaturesDict (`with_clipped`: the older schema with clipped fields), with
    `observation_feature(frame_shape, frame_dtype)` as steps/observation."""
    tfds = import_tfds("the RL Unplugged features")

    steps = {
        "observation": observation_feature(frame_shape, frame_dtype),
        "action": np.int64,
        "reward": tfds.features.Scalar(dtype=np.float32),
        "is_terminal": np.bool_,
        "is_first": np.bool_,
        "is_last": np.bool_,
        "discount": np.float32,
    }
    episode = {
        "checkpoint_id": np.int64,
        "episode_id": np.int64,
        "episode_return": tfds.features.Scalar(dtype=np.float32),
    }
    if with_clipped:
        steps["clipped_reward"] = np.float32
        episode["clipped_episode_return"] = np.float32
    return tfds.features.FeaturesDict({"steps": tfds.features.Dataset(steps), **episode})


def make_episode(
    observations: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    *,
    terminated: bool,
    checkpoint_id: int,
    episode_id: int,
    with_clipped: bool = False,
) -> dict:
    """Builds one RLDS episode (numpy) from T actions and T + 1 frames.

    Args:
      observations: uint8 [T + 1, 84, 84] (or [T + 1, 84, 84, 1]); the last is the final frame.
        Other frames (MinAtar bool [T + 1, 10, 10, C]) are kept as they are.
      actions: integer [T]; actions[t] was taken on observations[t].
      rewards: float [T]; reward after actions[t] (stored unclipped, as TFDS fills `reward`
        from the source's unclipped rewards).
      terminated: the game ended after the last action (see module docstring).
      checkpoint_id: episode-level checkpoint index.
      episode_id: episode index within the checkpoint.
      with_clipped: also write the older schema's clipped fields.

    Returns:
      A dict in the layout of `features_dict(with_clipped)`.
    """
    observations = np.asarray(observations)
    t = len(actions)
    if is_atari_frame(observations.shape[1:], observations.dtype) and observations.ndim == 3:
        observations = observations[..., None]
    if observations.shape[0] != t + 1:
        raise ValueError(f"expected {t + 1} frames, got {observations.shape}")
    action = np.zeros(t + 1, np.int64)
    action[:t] = actions
    reward = np.zeros(t + 1, np.float32)
    reward[:t] = rewards
    discount = np.ones(t + 1, np.float32)
    is_terminal = np.zeros(t + 1, np.bool_)
    if terminated:
        discount[t - 1 :] = 0.0
        is_terminal[t] = True
    is_first = np.zeros(t + 1, np.bool_)
    is_first[0] = True
    is_last = np.zeros(t + 1, np.bool_)
    is_last[t] = True
    steps = {
        "observation": observations,
        "action": action,
        "reward": reward,
        "discount": discount,
        "is_first": is_first,
        "is_last": is_last,
        "is_terminal": is_terminal,
    }
    episode = {
        "checkpoint_id": np.int64(checkpoint_id),
        "episode_id": np.int64(episode_id),
        "episode_return": np.float32(reward.sum()),
    }
    if with_clipped:
        steps["clipped_reward"] = np.clip(reward, -1.0, 1.0)
        episode["clipped_episode_return"] = np.float32(steps["clipped_reward"].sum())
    return {"steps": steps, **episode}


class RLDSWriter:
    """Writes RLU-layout episodes into per-checkpoint splits of a TFDS dataset directory.

    Streaming (one episode in memory) and atomic: files go to a temporary directory next to
    the target that is renamed into place by `close()`; an error (or `abort()`) removes it.
    An existing target is refused unless `overwrite`.

    Args:
      data_dir: TFDS data dir; the dataset goes to `dataset_dir(data_dir, game, run, name)`.
      game, run: name the config `{game}_run_{run}`.
      splits: checkpoint indices that will receive episodes (each becomes `checkpoint_XX`),
        or split names as strings (e.g. 'train', the rlu_atari layout).
      name: dataset name (default 'rlu_atari_local').
      with_clipped: write the older schema with clipped fields.
      overwrite: replace an existing dataset of the same name/config/version.
      max_episodes_per_shard: TFRecord shard size.
      description: free text stored in dataset_info.json.
      frame_shape, frame_dtype: one frame's layout (default RLU Atari's; `observation_feature`).
    """

    def __init__(
        self,
        data_dir: str,
        *,
        game: str,
        run: int,
        splits: list[int | str],
        name: str = DEFAULT_NAME,
        with_clipped: bool = False,
        overwrite: bool = False,
        max_episodes_per_shard: int = 1000,
        description: str = "",
        frame_shape=FRAME_SHAPE,
        frame_dtype=np.uint8,
    ):
        tfds = import_tfds("writing an RLDS dataset (record --out)")

        self.target = os.path.abspath(dataset_dir(data_dir, game, run, name))
        if os.path.exists(self.target) and not overwrite:
            raise FileExistsError(
                f"dataset {self.target} already exists; pass overwrite=True (--overwrite)"
            )
        parent = os.path.dirname(self.target)
        os.makedirs(parent, exist_ok=True)
        self.tmp_dir = tempfile.mkdtemp(prefix=VERSION + ".tmp-", dir=parent)
        self.with_clipped = with_clipped
        self._closed = False
        try:
            identity = tfds.core.dataset_info.DatasetIdentity(
                name=name,
                version=tfds.core.Version(VERSION),
                data_dir=self.tmp_dir,
                module_name="",
                config_name=config_name(game, run),
                config_description=f"{game} run {run} (RL Unplugged Atari layout)",
            )
            info = tfds.core.DatasetInfo(
                builder=identity,
                description=description or f"{name}: Atari episodes in the RL Unplugged layout",
                features=features_dict(with_clipped, frame_shape, frame_dtype),
                disable_shuffling=True,
            )
            self._writer = tfds.core.SequentialWriter(
                info, max_examples_per_shard=max_episodes_per_shard, overwrite=True
            )
            self._writer.initialize_splits([_as_split(c) for c in splits])
        except BaseException:
            self.abort()
            raise
        self.episodes_per_split: dict[str, int] = {_as_split(c): 0 for c in splits}

    def add_episode(self, split: int | str, episode: Mapping) -> None:
        """Appends one episode (from `make_episode`) to `checkpoint_XX` (int) or a named split."""
        self._writer.add_examples({_as_split(split): [episode]})
        self.episodes_per_split[_as_split(split)] += 1

    def close(self) -> str:
        """Finishes the splits and moves the dataset into place; returns its directory."""
        if self._closed:
            return self.target
        try:
            self._writer.close_all()
            install_dir(self.tmp_dir, self.target)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.target

    def abort(self) -> None:
        """Removes everything written so far."""
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self._closed = True

    def __enter__(self) -> RLDSWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
