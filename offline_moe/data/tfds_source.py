"""Reads RLDS Atari episodes (RL Unplugged layout) from TFDS into replay-cache episodes.

Sources (the `--source` flag of `offline_moe.ingest`):
  `tfds:rlu_atari_checkpoints_ordered/Pong_run_1` (with `data_dir`): a TFDS dataset by name,
      registered (`rlu_atari_checkpoints_ordered`, `rlu_atari`) or only present on disk
      (e.g. `rlu_atari_local/Pong_run_1` written by `offline_moe.record`).
  `rlds_dir:PATH`: any prepared TFDS/RLDS dataset directory with the same step features
      (`tfds.builder_from_directory`). PATH is the version directory holding
      dataset_info.json, or a parent with exactly one such directory below it.

Both published schemas are accepted (with and without `steps/clipped_reward` and
`clipped_episode_return`); the ingest always reads `steps/reward` and clips it itself.

Subsampling (Dopamine `uniformly_subsampled_atari_data`, RLDS RLU notebook): for each
checkpoint split `checkpoint_XX` take the first int(percent / 100 * num_episodes) episodes,
read as the TFDS split slice `checkpoint_XX[:n]`. Splits are read one after another, one
episode at a time (never all splits in memory). `rlu_atari` has a single `train` split that
mixes checkpoints: the prefix is taken of that split, and `checkpoints` then filters episodes
by their `checkpoint_id`.

Decoding: steps are read as one batch per episode with `tfds.decode.SkipDecoding()` (the
RLDS FAQ's recipe), and the PNG frames are decoded with OpenCV in a small thread pool:
about 1.6x less CPU per frame than `tf.io.decode_png` under `tf.map_fn` on this machine.
Frames that are not RLU Atari images (a MinAtar state: a raw-bytes `Tensor` feature, see
`rlu_format.observation_feature`) are read back with `numpy.frombuffer` in the feature's
shape and dtype.

Row mapping (RLDS episode of L = T + 1 steps -> cache rows, see `offline_moe.replay.cache`):
steps 0..T-1 are the T transitions (frame, action, reward). The final step (`is_last`)
carries only a frame: if it `is_terminal` the frame is dropped (a terminal target never
bootstraps) and the last transition is terminal; otherwise the episode was truncated and the
frame becomes the observation-only row after the last transition. An episode with a single
step has no transition and is skipped.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator, Mapping

import numpy as np

from offline_moe.data import rlu_format
from offline_moe.data.common import Episode, import_tfds, prefix_count
from offline_moe.errors import IngestError

REQUIRED_STEP_FIELDS = ("observation", "action", "reward", "is_first", "is_terminal")
_CONFIG_RE = re.compile(r"^(?P<game>[A-Za-z]+)_run_(?P<run>\d+)$")


def _tfds():
    tfds = import_tfds("reading a TFDS / RLDS dataset")
    import tensorflow as tf  # present: import_tfds checked it

    # Ingest shares the host with JAX: keep TF off any GPU so it reserves no device memory.
    try:
        tf.config.set_visible_devices([], "GPU")
    except (RuntimeError, ValueError):
        pass
    return tfds


def find_dataset_dir(path: str) -> str:
    """Returns the directory holding dataset_info.json at or below `path` (3 levels max)."""
    if os.path.isfile(os.path.join(path, "dataset_info.json")):
        return path
    if not os.path.isdir(path):
        raise IngestError(f"--source rlds_dir: directory {path} does not exist")
    found = sorted(
        glob.glob(os.path.join(path, "*", "dataset_info.json"))
        + glob.glob(os.path.join(path, "*", "*", "dataset_info.json"))
        + glob.glob(os.path.join(path, "*", "*", "*", "dataset_info.json"))
    )
    if len(found) != 1:
        listing = ", ".join(os.path.dirname(f) for f in found) or "none"
        raise IngestError(
            f"--source rlds_dir:{path}: expected a TFDS dataset directory with "
            f"dataset_info.json (or exactly one below it), found: {listing}"
        )
    return os.path.dirname(found[0])


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def _present_configs(name: str, data_dir: str | None) -> str:
    """'name/config' entries that have a dataset_info.json under data_dir (for errors)."""
    if not data_dir:
        return "none (no --tfds_dir given)"
    base = name.split("/")[0].split(":")[0]
    found = glob.glob(os.path.join(data_dir, base, "*", "*", "dataset_info.json"))
    found += glob.glob(os.path.join(data_dir, base, "*", "dataset_info.json"))
    names = sorted({os.path.relpath(os.path.dirname(f), data_dir) for f in found})
    return ", ".join(names) or "none"


def open_builder(kind: str, name: str, data_dir: str | None = None):
    """Opens a TFDS builder for `tfds:NAME` (kind 'tfds') or `rlds_dir:PATH` ('rlds_dir')."""
    tfds = _tfds()
    if kind == "tfds":
        try:
            builder = tfds.builder(name, data_dir=data_dir)
        except Exception as e:  # tfds raises several types for unknown names/configs
            raise IngestError(
                f"--source tfds:{name}: cannot open the TFDS dataset under --tfds_dir="
                f"{data_dir} ({type(e).__name__}: {_first_line(e)}); "
                f"prepared configs found there: {_present_configs(name, data_dir)}"
            ) from e
        if not builder.info.splits:
            raise IngestError(
                f"--source tfds:{name}: no prepared data under --tfds_dir={data_dir} "
                f"(expected {builder.data_dir}/dataset_info.json with splits); download or "
                f"record the dataset first; prepared configs found there: "
                f"{_present_configs(name, data_dir)}"
            )
        return builder
    if kind == "rlds_dir":
        path = find_dataset_dir(name)
        try:
            return tfds.builder_from_directory(path)
        except Exception as e:
            raise IngestError(f"--source rlds_dir:{path}: cannot open dataset: {e}") from e
    raise IngestError(f"--source: unknown kind {kind!r}; expected tfds:, rlds_dir: or dqn_replay:")


def builder_game_run(builder) -> tuple[str | None, int | None]:
    """(game, run) from a config name like 'Pong_run_1', else (None, None)."""
    config = builder.builder_config.name if builder.builder_config else None
    config = config or getattr(builder.info, "config_name", None)
    if not config:
        # builder_from_directory: the config is the parent of the version directory.
        config = os.path.basename(os.path.dirname(os.fspath(builder.data_dir)))
    m = _CONFIG_RE.match(config or "")
    if not m:
        return None, None
    return m.group("game"), int(m.group("run"))


def check_features(builder) -> None:
    """Checks that the dataset has the RLU Atari step features; IngestError otherwise.

    steps/observation is RLU Atari's uint8 (84, 84, 1) image, or a raw-bytes tensor of a frame
    of another game (`rlu_format.observation_feature`; MinAtar bool (10, 10, C)).
    """
    where = os.path.join(os.fspath(builder.data_dir), "features.json")
    features = builder.info.features
    if "steps" not in features:
        raise IngestError(f"{where}: no 'steps' feature; expected an RLDS episode dataset")
    steps = features["steps"]
    step_features = getattr(steps, "feature", steps)
    keys = set(step_features.keys())
    missing = [k for k in REQUIRED_STEP_FIELDS if k not in keys]
    if missing:
        raise IngestError(
            f"{where}: steps lack field(s) {missing}; expected the RL Unplugged Atari step "
            f"features {sorted(REQUIRED_STEP_FIELDS + ('is_last', 'discount'))}"
        )
    obs = step_features["observation"]
    shape, dtype = tuple(obs.shape), np.dtype(obs.np_dtype)
    if _is_image(obs):
        ok = shape == rlu_format.FRAME_SHAPE and dtype == np.uint8
    else:  # a raw tensor frame (another game's)
        ok = len(shape) in (2, 3) and dtype.name in ("uint8", "bool")
    if not ok:
        raise IngestError(
            f"{where}: steps/observation is {dtype} {shape}, expected uint8 (84, 84, 1) images "
            "(RL Unplugged Atari) or a uint8/bool tensor frame [H, W(, C)] (e.g. MinAtar)"
        )


def _is_image(feature) -> bool:
    return type(feature).__name__ == "Image"


def decode_tensors(raw, feature, *, where: str = "episode") -> np.ndarray:
    """Raw-bytes tensor frames (one bytes object per step) -> [T, *shape] of the feature."""
    shape, dtype = tuple(feature.shape), np.dtype(feature.np_dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    if any(len(r) != size for r in raw):
        raise IngestError(f"{where}: steps/observation holds frames that are not {dtype} {shape}")
    return np.frombuffer(b"".join(raw), dtype).reshape(len(raw), *shape)


def select_splits(builder, checkpoints: list[int] | None) -> list[tuple[str, int | None]]:
    """Chooses the splits to read: [(split_name, checkpoint index or None)].

    Checkpoint-ordered datasets: `checkpoint_XX` for each requested index (default: all).
    Others (e.g. rlu_atari 'train'): every split; `checkpoints` filters episodes later.
    """
    names = sorted(builder.info.splits.keys())
    indexed = {rlu_format.split_index(s): s for s in names if rlu_format.split_index(s) is not None}
    where = os.path.join(os.fspath(builder.data_dir), "dataset_info.json")
    if indexed:
        wanted = sorted(indexed) if checkpoints is None else checkpoints
        missing = [c for c in wanted if c not in indexed]
        if missing:
            raise IngestError(
                f"--checkpoints: split(s) {[rlu_format.split_name(c) for c in missing]} not "
                f"in {where}; available splits: {', '.join(names)}"
            )
        return [(indexed[c], c) for c in wanted]
    if not names:
        raise IngestError(f"{where}: the dataset has no splits")
    return [(s, None) for s in names]


def steps_to_episode(steps: Mapping[str, np.ndarray], *, where: str = "episode") -> Episode | None:
    """Maps one decoded RLDS episode's steps to cache-row form (see module docstring).

    Args:
      steps: numpy arrays over the L steps: observation uint8 [L, 84, 84, 1] (or
        [L, 84, 84]), action, reward, is_first, is_terminal, optionally is_last.
      where: names the episode in errors.

    Returns:
      The Episode, or None if it has no transition (L < 2).

    Raises:
      IngestError: unequal field lengths, or flags that break the RLDS conventions.
    """
    lengths = {k: len(v) for k, v in steps.items() if k in REQUIRED_STEP_FIELDS + ("is_last",)}
    if len(set(lengths.values())) != 1:
        raise IngestError(f"{where}: step fields have unequal lengths {lengths}")
    num_steps = lengths["action"]
    if num_steps < 2:
        return None
    obs = np.asarray(steps["observation"])
    # RLU Atari's (84, 84, 1) images -> [84, 84] frames; other frames (MinAtar's, CatchBoard's
    # [10, 5, 1]) keep their channel axis.
    if obs.ndim == 4 and rlu_format.is_atari_frame(obs.shape[1:], obs.dtype):
        obs = obs[..., 0]
    is_terminal = np.asarray(steps["is_terminal"], bool)
    if is_terminal[:-1].any():
        raise IngestError(
            f"{where}: steps/is_terminal set on step {int(np.flatnonzero(is_terminal)[0])} of "
            f"{num_steps}; expected it only on the final (is_last) step"
        )
    if "is_last" in steps and not bool(steps["is_last"][-1]):
        raise IngestError(f"{where}: steps/is_last is not set on the final step")
    actions = np.asarray(steps["action"])
    if actions.min() < 0:
        raise IngestError(f"{where}: steps/action holds negative values")
    t = num_steps - 1
    terminated = bool(is_terminal[-1])
    return Episode(
        observations=obs[:t],
        actions=actions[:t].astype(np.int32),
        rewards=np.asarray(steps["reward"][:t], np.float32),
        terminated=terminated,
        final_observation=None if terminated else obs[t],
    )


def decode_pngs(pngs, *, where: str = "episode", pool=None) -> np.ndarray:
    """Decodes a sequence of single-channel 84x84 PNG frames into uint8 [T, 84, 84].

    OpenCV's decoder releases the GIL, so a thread `pool` (concurrent.futures) decodes
    chunks in parallel; without one the frames are decoded in this thread.
    """
    import cv2

    out = np.empty((len(pngs), *rlu_format.FRAME_SHAPE[:2]), np.uint8)

    def run(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            frame = cv2.imdecode(np.frombuffer(pngs[i], np.uint8), cv2.IMREAD_UNCHANGED)
            if frame is None or frame.shape[:2] != out.shape[1:]:
                raise IngestError(f"{where}: steps/observation {i} is not a valid 84x84 PNG frame")
            out[i] = frame if frame.ndim == 2 else frame[..., 0]

    n = len(pngs)
    workers = getattr(pool, "_max_workers", 1) if pool is not None else 1
    if workers <= 1 or n < 256:
        run(0, n)
    else:
        bounds = np.linspace(0, n, workers + 1).astype(int)
        list(pool.map(lambda b: run(*b), zip(bounds[:-1], bounds[1:])))
    return out


def shard_of(builder, split: str, index: int) -> tuple[str, str]:
    """(file path, 'shard k of n') holding episode `index` of `split` (files read in order)."""
    info = builder.info.splits[split]
    paths = [os.fspath(p) for p in info.filepaths]
    lengths = list(info.shard_lengths)
    if len(lengths) == len(paths):
        k = int(np.searchsorted(np.cumsum(lengths), index, side="right"))
        k = min(k, len(paths) - 1)
        return paths[k], f"shard {k + 1} of {len(paths)}"
    return ", ".join(paths), f"{len(paths)} shard(s)"


def _guard_shards(builder, split: str, episodes) -> Iterator[tuple[int, dict]]:
    """enumerate(episodes), turning TensorFlow's read errors into one naming file and split."""
    import tensorflow as tf

    i = 0
    iterator = iter(episodes)
    while True:
        try:
            episode = next(iterator)
        except StopIteration:
            return
        except tf.errors.OpError as e:  # DataLossError (bad CRC, truncated), parse errors
            path, shard = shard_of(builder, split, i)
            raise IngestError(
                f"{path} (split {split}, {shard}, episode {i}): corrupt or truncated TFRecord "
                f"data: {type(e).__name__}: {_first_line(e)}. Re-download or re-build the dataset"
            ) from None
        yield i, episode
        i += 1


def plan(builder, splits, percent: float) -> list[tuple[str, int | None, int, int]]:
    """[(split, checkpoint, episodes kept, episodes in split)] for `percent`."""
    out = []
    for split, ckpt in splits:
        total = builder.info.splits[split].num_examples
        out.append((split, ckpt, prefix_count(percent, total), total))
    return out


def iter_episodes(
    builder,
    split_plan: list[tuple[str, int | None, int, int]],
    *,
    checkpoints: list[int] | None = None,
    decode_threads: int | None = None,
    drawn: dict[str, set[int]] | None = None,
) -> Iterator[Episode]:
    """Yields the episodes of each planned split prefix in order, one at a time.

    Args:
      builder: from `open_builder`.
      split_plan: from `plan`.
      checkpoints: for datasets without checkpoint splits, keep only episodes whose
        `checkpoint_id` is listed.
      decode_threads: threads decoding PNG frames (default: min(4, CPU count)).
      drawn: per split, the indices of the episodes to keep (ingest's sample='random'); the
        whole split is read and the others skipped undecoded. None: the planned prefixes.
    """
    import concurrent.futures

    tfds = _tfds()

    threads = decode_threads or min(4, os.cpu_count() or 1)
    where_base = os.fspath(builder.data_dir)
    obs_feature = getattr(builder.info.features["steps"], "feature", None)
    obs_feature = obs_feature["observation"] if obs_feature is not None else None
    images = obs_feature is None or _is_image(obs_feature)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for split, ckpt, n, _ in split_plan:
            if n == 0:
                continue
            ds = builder.as_dataset(
                split=split if drawn is not None else f"{split}[:{n}]",
                decoders={"steps": tfds.decode.SkipDecoding()},
                shuffle_files=False,
                read_config=tfds.ReadConfig(interleave_cycle_length=1),
            ).prefetch(2)
            for i, episode in _guard_shards(builder, split, tfds.as_numpy(ds)):
                if drawn is not None and i not in drawn[split]:
                    continue
                ep_ckpt = int(episode.get("checkpoint_id", -1)) if ckpt is None else ckpt
                if ckpt is None and checkpoints is not None and ep_ckpt not in checkpoints:
                    continue
                where = f"{where_base} split {split} episode {i}"
                steps = dict(episode["steps"])
                raw = steps["observation"]
                steps["observation"] = (
                    decode_pngs(raw, where=where, pool=pool)
                    if images
                    else decode_tensors(raw, obs_feature, where=where)
                )
                out = steps_to_episode(steps, where=where)
                if out is not None:
                    out.checkpoint = ep_ckpt
                    yield out
