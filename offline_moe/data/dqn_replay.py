"""Reads the original DQN-Replay logs (Dopamine `OutOfGraphReplayBuffer.save` format).

A run's `replay_logs/` directory holds, for each checkpoint suffix N (0..49), one 1M-transition
replay buffer as gzip-compressed `np.save` files::

    $store$_observation_ckpt.N.gz   uint8 [1000000, 84, 84]  single frames
    $store$_action_ckpt.N.gz        int32 [1000000]
    $store$_reward_ckpt.N.gz        float32 [1000000]         (clipped by Dopamine's runner)
    $store$_terminal_ckpt.N.gz      uint8 [1000000]           1: the game ended after action
    add_count_ckpt.N.gz             int64 scalar              transitions added so far
    invalid_range_ckpt.N.gz         int [k]                   indices near the write cursor

Row i holds the frame action i was taken on, its reward and terminal flag: the replay-cache
row semantics already (`offline_moe.replay.cache`). The terminal (game-over) frame is never stored.

Subsampling, as batch_rl's `FixedReplayBuffer` with `replay_capacity = percent * 10,000`
does: keep the first n = int(percent / 100 * min(add_count, buffer length)) rows of each
checkpoint (the first 50,000 of 1M at 5%). `invalid_range` is not needed: the kept prefix
starts at row 0 of the buffer, which the cache marks as an episode start (zero frames before
it), so no stack reaches across the write cursor.

Episodes: boundaries come from `terminal`. Row 0 of a checkpoint usually continues an episode
of the previous checkpoint; it is treated as an episode start. The last, cut episode of the
prefix is truncated (not terminal): if row n exists in the buffer its frame is stored as the
observation-only row after it (so all n transitions are kept); at 100% the last row itself
becomes observation-only.

Streaming: only the prefix of each file is decompressed, frames are read episode by episode,
and one checkpoint is open at a time.
"""

from __future__ import annotations

import glob
import gzip
import os
import re
import zlib
from collections.abc import Iterator

import numpy as np

from offline_moe.data.common import Episode, IngestError, prefix_count

STORE_FIELDS = ("observation", "action", "reward", "terminal")
_SUFFIX_RE = re.compile(r"^\$store\$_observation_ckpt\.(\d+)\.gz$")
_READ_ERRORS = (OSError, EOFError, zlib.error, ValueError, gzip.BadGzipFile)


def store_path(replay_dir: str, field: str, checkpoint: int) -> str:
    """Path of `$store$_{field}_ckpt.{checkpoint}.gz`."""
    return os.path.join(replay_dir, f"$store$_{field}_ckpt.{checkpoint}.gz")


def meta_path(replay_dir: str, name: str, checkpoint: int) -> str:
    """Path of `{name}_ckpt.{checkpoint}.gz` (add_count, invalid_range)."""
    return os.path.join(replay_dir, f"{name}_ckpt.{checkpoint}.gz")


def list_checkpoints(replay_dir: str) -> list[int]:
    """Checkpoint suffixes with an observation file in `replay_dir`, sorted."""
    if not os.path.isdir(replay_dir):
        raise IngestError(f"--source dqn_replay: directory {replay_dir} does not exist")
    found = []
    for path in glob.glob(os.path.join(glob.escape(replay_dir), "$store$_observation_ckpt.*.gz")):
        m = _SUFFIX_RE.match(os.path.basename(path))
        if m:
            found.append(int(m.group(1)))
    return sorted(found)


class GzipNpyReader:
    """Reads rows of a gzip-compressed .npy file front to back without loading it whole.

    Attributes:
      path: the file.
      shape, dtype: from the .npy header.
    """

    def __init__(self, path: str, field: str = "array"):
        self.path = path
        self.field = field
        if not os.path.isfile(path):
            raise IngestError(f"{path}: missing file (field {field})")
        try:
            self._file = gzip.open(path, "rb")
            version = np.lib.format.read_magic(self._file)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(self._file)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(self._file)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except _READ_ERRORS as e:
            self.close()
            raise IngestError(
                f"{path}: corrupt or not a gzip-compressed .npy file (field {field}): {e}"
            ) from e
        if fortran and len(shape) > 1:
            self.close()
            raise IngestError(f"{path}: Fortran-ordered arrays are not supported (field {field})")
        if dtype.hasobject:
            self.close()
            raise IngestError(f"{path}: holds Python objects, expected a numeric array")
        self.shape = tuple(shape)
        self.dtype = dtype
        self._row_shape = self.shape[1:]
        self._row_bytes = int(dtype.itemsize * np.prod(self._row_shape, dtype=np.int64))
        self.rows_read = 0

    def read(self, count: int) -> np.ndarray:
        """The next `count` rows; IngestError if the file ends early."""
        count = int(count)
        num_bytes = count * self._row_bytes
        try:
            data = self._file.read(num_bytes)
        except _READ_ERRORS as e:
            raise IngestError(
                f"{self.path}: corrupt or truncated gzip data (field {self.field}) after "
                f"{self.rows_read} rows: {e}"
            ) from e
        if len(data) != num_bytes:
            raise IngestError(
                f"{self.path}: truncated (field {self.field}): header says {self.shape[0]} rows "
                f"but the data ends within row {self.rows_read + len(data) // self._row_bytes}"
            )
        self.rows_read += count
        return np.frombuffer(data, self.dtype).reshape((count, *self._row_shape))

    def read_scalar(self) -> np.ndarray:
        """A 0-d array file (add_count)."""
        try:
            data = self._file.read(self.dtype.itemsize)
        except _READ_ERRORS as e:
            raise IngestError(f"{self.path}: corrupt gzip data (field {self.field}): {e}") from e
        if len(data) != self.dtype.itemsize:
            raise IngestError(f"{self.path}: truncated (field {self.field})")
        return np.frombuffer(data, self.dtype)[0]

    def close(self) -> None:
        if getattr(self, "_file", None) is not None:
            self._file.close()

    def __enter__(self) -> GzipNpyReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_add_count(replay_dir: str, checkpoint: int) -> int:
    """The `add_count` of one checkpoint."""
    path = meta_path(replay_dir, "add_count", checkpoint)
    with GzipNpyReader(path, "add_count") as reader:
        if reader.shape not in ((), (1,)) or not np.issubdtype(reader.dtype, np.integer):
            raise IngestError(
                f"{path}: add_count is {reader.dtype} {reader.shape}, expected an integer scalar"
            )
        value = int(reader.read_scalar())
    if value < 0:
        raise IngestError(f"{path}: add_count is {value}, expected >= 0")
    return value


_EXPECTED = {
    "observation": ("uint8 [N, 84, 84]", lambda r: r.dtype == np.uint8 and r.shape[1:] == (84, 84)),
    "action": ("integer [N]", lambda r: np.issubdtype(r.dtype, np.integer) and len(r.shape) == 1),
    "reward": ("number [N]", lambda r: np.issubdtype(r.dtype, np.number) and len(r.shape) == 1),
    "terminal": (
        "integer or bool [N]",
        lambda r: (np.issubdtype(r.dtype, np.integer) or r.dtype == np.bool_) and len(r.shape) == 1,
    ),
}


def checkpoint_plan(replay_dir: str, checkpoint: int, percent: float) -> dict:
    """Checks one checkpoint's files (headers only) and computes its prefix length.

    Returns:
      dict(checkpoint, total (valid rows), keep (n transitions kept), rows (array length)).
    """
    shapes = {}
    for field in STORE_FIELDS:
        path = store_path(replay_dir, field, checkpoint)
        if not os.path.isfile(path):
            raise IngestError(
                f"{path}: missing file for checkpoint {checkpoint} (field {field}); each "
                f"checkpoint needs $store$_{{{','.join(STORE_FIELDS)}}}_ckpt.N.gz and "
                "add_count_ckpt.N.gz"
            )
        with GzipNpyReader(path, field) as reader:
            expected, ok = _EXPECTED[field]
            if not reader.shape or not ok(reader):
                raise IngestError(
                    f"{path}: field {field} is {reader.dtype} {reader.shape}, expected {expected}"
                )
            shapes[field] = reader.shape[0]
    if len(set(shapes.values())) != 1:
        raise IngestError(
            f"{replay_dir}: checkpoint {checkpoint} arrays of unequal length {shapes} "
            "($store$_*_ckpt.{checkpoint}.gz)"
        )
    rows = shapes["observation"]
    total = min(read_add_count(replay_dir, checkpoint), rows)
    return {
        "checkpoint": checkpoint,
        "rows": rows,
        "total": total,
        "keep": prefix_count(percent, total),
    }


def iter_checkpoint_episodes(replay_dir: str, plan: dict) -> Iterator[Episode]:
    """Yields the episodes of one checkpoint's kept prefix (see module docstring)."""
    ckpt, keep, total = plan["checkpoint"], plan["keep"], plan["total"]
    if keep == 0:
        return
    # Rows needed: the kept transitions plus, if present, the frame after the last one.
    read_rows = min(keep + 1, total)
    small = {}
    for field in ("action", "reward", "terminal"):
        with GzipNpyReader(store_path(replay_dir, field, ckpt), field) as reader:
            small[field] = reader.read(read_rows)
    terminal = small["terminal"][:keep].astype(bool)
    ends = list(np.flatnonzero(terminal) + 1)  # exclusive ends of terminated episodes
    if not ends or ends[-1] != keep:
        ends.append(keep)  # the cut (truncated) episode
    with GzipNpyReader(store_path(replay_dir, "observation", ckpt), "observation") as frames:
        start = 0
        for end in ends:
            obs = frames.read(end - start)
            terminated = bool(terminal[end - 1])
            final = None
            if not terminated and end < read_rows:
                final = frames.read(1)[0]
            episode = _episode(obs, small, start, end, terminated, final, ckpt)
            if episode.num_transitions > 0:
                yield episode
            start = end


def _episode(obs, small: dict, start: int, end: int, terminated: bool, final, ckpt) -> Episode:
    """The Episode of rows [start, end) of a checkpoint (obs: their frames)."""
    return Episode(
        observations=obs,
        actions=small["action"][start:end].astype(np.int32),
        rewards=small["reward"][start:end].astype(np.float32),
        terminated=terminated,
        final_observation=final,
        checkpoint=ckpt,
    )


def episode_bounds(terminal: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)) of the episodes of a checkpoint's rows, from its terminal flags.

    Row 0 starts an episode (it usually continues one of the previous checkpoint); the last
    episode ends at the last row, terminated or cut.
    """
    ends = list(np.flatnonzero(np.asarray(terminal, bool)) + 1)
    if not ends or ends[-1] != len(terminal):
        ends.append(len(terminal))
    starts = [0, *ends[:-1]]
    return [(a, b) for a, b in zip(starts, ends) if b > a]


def random_plan(replay_dir: str, plan: dict, seed: int) -> dict:
    """`plan` (from `checkpoint_plan`) with whole episodes drawn at random (`random_episodes`)
    instead of the prefix: adds `episodes`, the kept [(start, end)), and resets `keep`."""
    from offline_moe.data.common import random_episodes

    ckpt, total = plan["checkpoint"], plan["total"]
    with GzipNpyReader(store_path(replay_dir, "terminal", ckpt), "terminal") as reader:
        terminal = reader.read(total).astype(bool)
    bounds = episode_bounds(terminal)
    chosen = random_episodes([b - a for a, b in bounds], plan["keep"], seed, ckpt)
    episodes = [bounds[i] for i in chosen]
    return {**plan, "episodes": episodes, "keep": int(sum(b - a for a, b in episodes))}


def iter_random_episodes(replay_dir: str, plan: dict) -> Iterator[Episode]:
    """Yields the episodes `random_plan` chose, whole, in checkpoint order.

    A chosen episode cut by the end of the checkpoint is truncated (its last row becomes the
    observation-only row, as at 100% in the prefix rule); all others end as in the data.
    """
    ckpt, total = plan["checkpoint"], plan["total"]
    if not plan["episodes"]:
        return
    small = {}
    for field in ("action", "reward", "terminal"):
        with GzipNpyReader(store_path(replay_dir, field, ckpt), field) as reader:
            small[field] = reader.read(total)
    terminal = small["terminal"].astype(bool)
    with GzipNpyReader(store_path(replay_dir, "observation", ckpt), "observation") as frames:
        position = 0
        for start, end in plan["episodes"]:
            if start > position:
                frames.read(start - position)  # skip the episodes not drawn
            obs = frames.read(end - start)
            position = end
            terminated = bool(terminal[end - 1])
            final = None
            if not terminated and end - start < 2:
                continue  # a single cut frame holds no transition
            if not terminated:  # cut by the checkpoint's end: its last frame ends it
                obs, final = obs[:-1], obs[-1]
                end -= 1
            episode = _episode(obs, small, start, end, terminated, final, ckpt)
            if episode.num_transitions > 0:
                yield episode
