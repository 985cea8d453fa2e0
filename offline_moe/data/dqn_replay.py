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

What the buffer holds besides steps (Dopamine `tf/replay_memory/circular_replay_buffer.py`,
`OutOfGraphReplayBuffer.add` and `_add_zero_transition`): before the first step of every
episode, `add` writes `stack_size - 1` = 3 padding rows (zero frame, action 0, reward 0, not
terminal), so the rows after a terminal, and rows 0-2 of a buffer that never wrapped, are
padding. The buffer is circular: once `add_count` exceeds its length, row `add_count % length`
(the write cursor) is the oldest row and the row before it the newest, so the cursor cuts an
episode, and the steps before the oldest row were overwritten.

Which rows are read (batch_rl `FixedReplayBuffer` with `replay_capacity = percent * 10,000`,
as Dopamine's `labs/offline_rl/fixed_replay.py` `JaxFixedReplayBuffer._load_buffer` slices
each buffer): the first n = int(percent / 100 * min(add_count, buffer length)) rows (the
first 50,000 of 1M at 5%). Which of them start transitions follows that buffer's sampler
(`is_valid_transition`): padding rows never do (their stack holds the previous terminal),
stacks never reach past an episode start (the padding frames are the stack's zero frames),
and no stack or n-step window crosses the write cursor (its `invalid_range`). The cache holds
exactly the real steps: padding rows are dropped, each episode starts at its first real step
(zero frames before it, as the padding gave), the episode the cursor cuts ends truncated at
the newest row, and one that begins without its first steps (at row 0, whose history lies
outside the prefix, or at the oldest row, whose history was overwritten) opens with up to 3
context rows (`Episode.context`): their frames fill the later stacks but start no transition.
Where the sliced buffer's sampler reads rows that are not the real history it is not
followed: with its capacity set to n it wraps indices modulo n, so rows 0-2 would stack frames
from the end of the prefix and the last row would bootstrap from row 0; here those rows are
context and the last row's next frame is row n, the real next step.

Episodes: boundaries come from `terminal`, the padding and the cursor. The last, cut episode of
the prefix is truncated (not terminal): if row n exists in the buffer and continues it, its
frame is stored as the observation-only row after it; otherwise (at 100%, or when row n is the
cursor) the last row itself becomes observation-only.

Streaming: only the prefix of each file is decompressed, frames are read episode by episode,
and one checkpoint is open at a time.

Any game's frames: the logs of a game the env registry knows are read in its layout
(`envs.registry.observation_spec`): Atari uint8 [N, 84, 84] with Dopamine's stack of 4 (3
padding rows before each episode), MinAtar bool [N, 10, 10, C] with a stack of 1 (no padding
rows, as Dopamine's buffer writes `stack_size - 1` of them). `write_checkpoint` writes such
logs (the MinAtar behaviour DQN of `offline_moe.configs.dqn`).
"""

from __future__ import annotations

import glob
import gzip
import os
import re
import zlib
from collections.abc import Iterator

import numpy as np

from offline_moe.data.common import Episode, prefix_count
from offline_moe.errors import IngestError

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


# DQN-Replay's frame stack: the logging agent's `stack_size` (Dopamine's Atari default, 4), so
# its logs hold STACK_SIZE - 1 padding rows before every episode.
STACK_SIZE = 4


def checkpoint_plan(
    replay_dir: str, checkpoint: int, percent: float, layout: dict | None = None
) -> dict:
    """Checks one checkpoint's files and plans the episodes of its kept prefix.

    Reads the headers, `add_count` and the terminal flags (1 byte a row); no frames.

    Args:
      replay_dir, checkpoint, percent: the logs, the suffix, the share kept.
      layout: the game's frame_shape, frame_dtype and frame_stack (`ingest.env_frame_layout`;
        empty or None: Atari's uint8 [84, 84] frames, stack 4).

    Returns:
      dict(checkpoint, rows (array length), add_count, total (written rows), prefix (rows
      read, the first `percent`% of total), segments (the episodes, see `segments`), keep
      (transitions they hold)).
    """
    layout = layout or {}
    stack = int(layout.get("frame_stack", STACK_SIZE))
    expect = dict(_EXPECTED)
    if layout:
        shape, dtype = tuple(layout["frame_shape"]), np.dtype(layout["frame_dtype"])
        expect["observation"] = (
            f"{dtype.name} [N, {', '.join(map(str, shape))}]",
            lambda r: r.dtype == dtype and r.shape[1:] == shape,
        )
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
            expected, ok = expect[field]
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
    add_count = read_add_count(replay_dir, checkpoint)
    total = min(add_count, rows)
    prefix = prefix_count(percent, total)
    with GzipNpyReader(store_path(replay_dir, "terminal", checkpoint), "terminal") as reader:
        terminal = reader.read(rows).astype(bool)
    plan = {
        "checkpoint": checkpoint,
        "rows": rows,
        "add_count": add_count,
        "total": total,
        "prefix": prefix,
        "terminal": terminal,
        "stack": stack,
    }
    return _with_segments(plan, segments(terminal, add_count, prefix, stack))


def _with_segments(plan: dict, chosen: list[tuple]) -> dict:
    return {**plan, "segments": chosen, "keep": int(sum(seg[-1] for seg in chosen))}


def padding_rows(terminal: np.ndarray, add_count: int, stack: int = STACK_SIZE):
    """Which rows of a Dopamine replay buffer are `add`'s padding, and each row's write order.

    Args:
      terminal: bool [R], the buffer's terminal flags.
      add_count: the buffer's `add_count` (rows written, padding included).
      stack: the logging agent's stack size.

    Returns:
      padding: bool [R], a padding row (one of the `stack - 1` rows written before an
        episode's first step). Rows right after the cursor whose earlier rows were
        overwritten are not marked (it is unknown whether they are padding).
      age: int [R], the write order of each row (0: the oldest row, at the cursor of a
        wrapped buffer; row i of a buffer that never wrapped).
    """
    terminal = np.asarray(terminal, bool)
    rows = terminal.size
    wrapped = add_count > rows
    age = np.arange(rows)
    if wrapped:
        age = (age - add_count % rows) % rows
    padding = np.zeros(rows, bool)
    for j in range(1, stack):
        padding |= np.roll(terminal, j) & (age >= j)  # a terminal j rows earlier
    if not wrapped:
        padding[: stack - 1] = True  # the first episode's padding
    return padding, age


def segments(
    terminal: np.ndarray, add_count: int, stop: int, stack: int = STACK_SIZE
) -> list[tuple[int, int, int, bool, bool, int]]:
    """The episodes of rows [0, stop) of a Dopamine replay buffer, padding left out.

    Args:
      terminal, add_count, stack: as in `padding_rows`.
      stop: rows [0, stop) are read (the prefix).

    Returns:
      [(start, end, context, terminated, final, transitions)]: rows [start, end) are real
      steps of one episode; the first `context` of them only fill frame stacks (the steps
      before `start` are not in the prefix or were overwritten); `final` says row `end` is the
      next step of a truncated episode (its frame is stored after it); `transitions` is what
      the episode adds to a cache. Episodes without a transition are left out.
    """
    terminal = np.asarray(terminal, bool)
    rows = terminal.size
    total = min(add_count, rows)
    stop = min(stop, total)
    if stop <= 0:
        return []
    padding, age = padding_rows(terminal, add_count, stack)
    real = ~padding[:stop]
    i = np.arange(stop)
    before_real = np.append(False, real[:-1])
    before_terminal = np.append(False, terminal[: stop - 1])
    begins = np.flatnonzero(real & ((i == 0) | ~before_real | before_terminal | (age[:stop] == 0)))
    out = []
    for k, s in enumerate(begins):
        limit = begins[k + 1] if k + 1 < len(begins) else stop
        gaps = np.flatnonzero(~real[s:limit])
        e = int(s + gaps[0]) if gaps.size else int(limit)
        terminated = bool(terminal[e - 1])
        fresh = age[s] >= 1 and padding[(s - 1) % rows]  # the padding ran right before s
        context = 0 if fresh else min(stack - 1, e - s)
        # Row e continues the episode unless it is past the written rows or the cursor.
        final = not terminated and e == stop and e < total and age[e] == age[e - 1] + 1
        transitions = e - s - context - (0 if terminated or final else 1)
        if transitions > 0:
            out.append((int(s), e, context, terminated, bool(final), int(transitions)))
    return out


def iter_checkpoint_episodes(replay_dir: str, plan: dict) -> Iterator[Episode]:
    """Yields the episodes of `plan["segments"]` (see module docstring), in row order.

    Frames are read front to back, one episode at a time; the rows between episodes (padding,
    episodes not drawn) are read and dropped.
    """
    ckpt = plan["checkpoint"]
    chosen = plan["segments"]
    if not chosen:
        return
    last = chosen[-1]
    read_rows = last[1] + int(last[4])
    small = {}
    for field in ("action", "reward"):
        with GzipNpyReader(store_path(replay_dir, field, ckpt), field) as reader:
            small[field] = reader.read(read_rows)
    with GzipNpyReader(store_path(replay_dir, "observation", ckpt), "observation") as frames:
        position = 0
        for start, end, context, terminated, final, _ in chosen:
            if start > position:
                frames.read(start - position)  # padding, or episodes not drawn
            obs = frames.read(end - start)
            position = end
            final_frame = None
            if final:
                final_frame = frames.read(1)[0]
                position += 1
            yield Episode(
                observations=obs,
                actions=small["action"][start:end].astype(np.int32),
                rewards=small["reward"][start:end].astype(np.float32),
                terminated=terminated,
                final_observation=final_frame,
                checkpoint=ckpt,
                context=context,
            )


def random_plan(replay_dir: str, plan: dict, seed: int) -> dict:
    """`plan` (from `checkpoint_plan`) with whole episodes drawn at random (`random_episodes`)
    from all written rows instead of the prefix, until its transition budget is reached."""
    from offline_moe.data.common import random_episodes

    ckpt = plan["checkpoint"]
    every = segments(plan["terminal"], plan["add_count"], plan["total"], plan["stack"])
    chosen = random_episodes([seg[-1] for seg in every], plan["keep"], seed, ckpt)
    return _with_segments(plan, [every[i] for i in chosen])


iter_random_episodes = iter_checkpoint_episodes  # the plan says which episodes


def write_checkpoint(
    replay_dir: str,
    checkpoint: int,
    *,
    observation: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    terminal: np.ndarray,
) -> None:
    """Writes one checkpoint of a stack-1 logger in Dopamine's `OutOfGraphReplayBuffer.save`
    format (gzip-compressed `np.save` files, see the module docstring).

    The rows are the checkpoint's transitions in the order they happened, a full buffer of
    exactly that many rows that never wrapped (add_count = rows), so no padding rows (stack
    1) and no overwritten history. Each file is written under a temporary name and renamed,
    so a killed writer never leaves a half file under a real name (a rerun rewrites it).

    Args:
      replay_dir: the `replay_logs` directory (created if missing).
      checkpoint: the suffix N.
      observation: [R, *frame] frames; row i is the frame action i was taken on.
      action: int [R]; reward: float [R] (raw); terminal: bool [R] (the game ended after
        action i).
    """
    os.makedirs(replay_dir, exist_ok=True)
    rows = len(action)
    cursor = 0  # add_count % rows: the buffer is exactly full
    arrays = {
        store_path(replay_dir, "observation", checkpoint): np.asarray(observation),
        store_path(replay_dir, "action", checkpoint): np.asarray(action, np.int32),
        store_path(replay_dir, "reward", checkpoint): np.asarray(reward, np.float32),
        store_path(replay_dir, "terminal", checkpoint): np.asarray(terminal, np.uint8),
        meta_path(replay_dir, "add_count", checkpoint): np.asarray(rows, np.int64),
        # Dopamine's invalid_range(cursor, capacity, stack_size=1, update_horizon=1).
        meta_path(replay_dir, "invalid_range", checkpoint): np.asarray(
            [(cursor - 1) % rows, cursor % rows], np.int64
        ),
    }
    for path, array in list(arrays.items())[:4]:
        if array.shape[0] != rows:
            raise ValueError(f"{path}: {array.shape[0]} rows, expected {rows}")
    for path, array in arrays.items():
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as out:
            np.save(out, array, allow_pickle=False)
        os.replace(tmp, path)
