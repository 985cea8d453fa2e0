"""Replay cache: a directory of flat `.npy` arrays plus `meta.json` (no TensorFlow).

Every data source (TFDS RLDS episodes, DQN-Replay logs, the local ALE recorder) is ingested
into this one format, which `offline_moe.replay.device.DeviceReplay` loads onto the accelerator.

Layout of a cache directory (FORMAT_VERSION = 1), N rows::

    observation.npy       uint8   [N, 84, 84]  single frames, stored once (never pre-stacked);
                                               any game's frame: [N, *frame_shape] of
                                               frame_dtype (MinAtar: bool [N, 10, 10, C])
    action.npy            int32   [N]
    reward.npy            float32 [N]          reward received after `action` (clipped at
                                               ingest when meta['clip_rewards'] is true)
    terminal.npy          bool    [N]          the episode terminated right after `action`
    episode_start.npy     bool    [N]          first row of an episode
    observation_only.npy  bool    [N]          the row carries a frame but no transition
    meta.json                                  see below

Row semantics (transition-aligned, as in Dopamine / DQN-Replay logs). Episodes occupy
contiguous rows; row i holds the frame `observation[i]` on which `action[i]` was taken, the
reward `reward[i]` that followed, and `terminal[i]` if the game ended right after it. A row
with `observation_only[i]` set carries only a frame: no transition starts there (its action
and reward are not part of any transition's first step). Rules:

* `episode_start` is set on the first row of each episode, and on row 0.
* A terminated episode of T transitions takes T rows; `terminal` is set on its last row only.
  The frame after the last action (the game-over screen) is not stored: a terminal target
  never bootstraps, so it is never needed.
* A truncated episode (time limit, or data that stops mid-episode) is not terminal. If its
  final observation (the frame after the last action) is known it is stored as one extra
  row with `observation_only` set, so that the last transition can still be bootstrapped.
  If it is not known, the last row itself becomes `observation_only`: its frame can serve as
  the next state of the row before, but its own transition has no next state.
* An episode whose first steps are lost (data that begins mid-episode, e.g. a DQN-Replay
  checkpoint read from row 0 or from its write cursor) may open with `context` rows: frames
  that only fill the frame stacks of the rows after them, flagged `observation_only`.
* `terminal` is only ever set on the last row of an episode; `observation_only` only on the
  last row or on leading context rows; never both on one row.

Worked example: episode A terminates after 3 actions, episode B is truncated after 2 actions
with its final frame f2 known, episode C is truncated after 2 actions with no final frame::

    row  observation  action  reward  terminal  episode_start  observation_only
     0      A:f0        a0      r0      .           X              .
     1      A:f1        a1      r1      .           .              .
     2      A:f2        a2      r2      X           .              .
     3      B:f0        b0      s0      .           X              .
     4      B:f1        b1      s1      .           .              .
     5      B:f2        0       0       .           .              X   (final_observation)
     6      C:f0        c0      t0      .           X              .
     7      C:f1        c1      t1      .           .              X   (no final frame given)

    num_rows = 8, num_episodes = 3, num_transitions = 6 (rows 0, 1, 2, 3, 4, 6: all rows
    without observation_only). Row 2 is terminal (its target never bootstraps), row 4's next
    frame is row 5, and row 6's next frame is row 7.

(`num_transitions` counts rows without `observation_only`; whether a transition is sampled
for a given frame stack and n-step horizon is decided by `DeviceReplay`.)

meta.json holds `format_version`, `num_rows`, `num_transitions`, `num_episodes`, `created`
(UTC ISO time), the frame layout `frame_shape`, `frame_dtype` and `frame_stack` (frames per
agent observation, the game's: `offline_moe.envs.registry.observation_spec`; a cache written
before these fields existed is Atari's: [84, 84] uint8 frames stacked 4, `frame_spec`), and the
caller's keys; by convention `source`, `game`, `run`,
`checkpoints`, `percent`, `clip_rewards`, `num_actions`, and for locally recorded data the
recorder's `policy`, `steps` and `seed` (missing ones are written as null). The identity of a
cache (what made it: `IDENTITY_FIELDS`) is compared before a cache is reused or trained on,
and names its conventional directory (`cache_dir_for`).

Writing is streaming and atomic: `CacheWriter` appends each episode straight to `.npy` files
(whose headers are rewritten with the final length on close) inside a temporary directory
`<out_dir>.tmp-XXXX` next to the target, and renames it into place only on success. Any
exception removes the temporary directory, so a crash never leaves a half cache that looks
whole.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from offline_moe.errors import CacheError, CacheWriteError
from offline_moe.replay.identity import cache_identity

FORMAT_VERSION = 1
# The frame layout of Atari (DQN-Replay) caches, and of every cache written before meta.json
# recorded it (`frame_spec`).
FRAME_SHAPE = (84, 84)
FRAME_DTYPE = np.dtype(np.uint8)
FRAME_STACK = 4
FRAME_DTYPES = ("uint8", "bool")  # what an observation may be stored as
META_FILE = "meta.json"

# name -> (dtype, per-row shape) for Atari's frames; `fields` gives them for any cache's.
# Order is the order files are checked in `load_cache`.
FIELDS: dict[str, tuple[np.dtype, tuple[int, ...]]] = {
    "observation": (FRAME_DTYPE, FRAME_SHAPE),
    "action": (np.dtype(np.int32), ()),
    "reward": (np.dtype(np.float32), ()),
    "terminal": (np.dtype(np.bool_), ()),
    "episode_start": (np.dtype(np.bool_), ()),
    "observation_only": (np.dtype(np.bool_), ()),
}

# Keys the writer computes; callers may not set them.
_RESERVED_META = (
    "format_version",
    "num_rows",
    "num_transitions",
    "num_episodes",
    "created",
    "frame_shape",
    "frame_dtype",
    "frame_stack",
)
# Keys every cache carries by convention (null when the caller gives none).
STANDARD_META = (
    "source",
    "game",
    "run",
    "checkpoints",
    "percent",
    "clip_rewards",
    "num_actions",
    "policy",
    "steps",
    "seed",
)

# Fixed total .npy header size: enough for any shape, multiple of 64 as numpy prefers.
_NPY_HEADER_BYTES = 128
_NPY_MAGIC = b"\x93NUMPY\x01\x00"


def fields(frame_shape=FRAME_SHAPE, frame_dtype=FRAME_DTYPE) -> dict:
    """`FIELDS` with the observation of a cache's frame layout."""
    return {**FIELDS, "observation": (np.dtype(frame_dtype), tuple(int(d) for d in frame_shape))}


def row_bytes(frame_shape=FRAME_SHAPE, frame_dtype=FRAME_DTYPE) -> int:
    """Bytes one row takes over all arrays (the frame + int32 action + float32 reward + 3 flags)."""
    items = fields(frame_shape, frame_dtype).values()
    return sum(int(np.prod(shape, dtype=np.int64)) * dt.itemsize for dt, shape in items)


ROW_BYTES = row_bytes()  # an Atari row: 7,056 + 11 bytes


def frame_spec(meta: Mapping[str, Any]) -> tuple[tuple[int, ...], np.dtype, int]:
    """(frame shape, frame dtype, frame stack) of a cache from its meta.json; the fields a cache
    written before they existed lacks are Atari's ([84, 84], uint8, 4)."""
    shape = tuple(int(d) for d in (meta.get("frame_shape") or FRAME_SHAPE))
    dtype = np.dtype(meta.get("frame_dtype") or FRAME_DTYPE)
    stack = int(meta.get("frame_stack") or FRAME_STACK)
    return shape, dtype, stack


def _check_frame_layout(where: str, shape, dtype, stack) -> None:
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"{where}: frame_shape must be [H, W] or [H, W, C], got {list(shape)}")
    if np.dtype(dtype).name not in FRAME_DTYPES:
        raise ValueError(f"{where}: frame_dtype must be one of {FRAME_DTYPES}, got {dtype}")
    if int(stack) < 1:
        raise ValueError(f"{where}: frame_stack must be >= 1, got {stack}")


def _npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """A version-1.0 .npy header padded to exactly `_NPY_HEADER_BYTES` bytes."""
    text = f"{{'descr': {dtype.str!r}, 'fortran_order': False, 'shape': {tuple(shape)!r}, }}"
    pad = _NPY_HEADER_BYTES - len(_NPY_MAGIC) - 2 - len(text) - 1
    if pad < 0:
        raise ValueError(f"shape {shape} too long for the .npy header")
    text = text + " " * pad + "\n"
    return _NPY_MAGIC + len(text).to_bytes(2, "little") + text.encode("latin1")


class _NpyAppender:
    """Appends rows to one .npy file; the header is rewritten with the row count on close."""

    def __init__(self, path: str, dtype: np.dtype, row_shape: tuple[int, ...]):
        self.path = path
        self.dtype = dtype
        self.row_shape = row_shape
        self.rows = 0
        self._file = open(path, "wb")  # noqa: SIM115 (closed in close())
        self._file.write(_npy_header(dtype, (0, *row_shape)))

    def append(self, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array, dtype=self.dtype)
        assert array.shape[1:] == self.row_shape, (array.shape, self.row_shape)
        try:
            self._file.write(memoryview(array).cast("B"))
        except OSError as e:
            raise CacheWriteError(self.path, e, array.nbytes) from e
        self.rows += array.shape[0]

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._file.seek(0)
            self._file.write(_npy_header(self.dtype, (self.rows, *self.row_shape)))
            self._file.close()
        except OSError as e:
            raise CacheWriteError(self.path, e, 0) from e

    def abort(self) -> None:
        """Closes the file, ignoring errors: closing flushes, which fails again on a full disk."""
        if not self._file.closed:
            try:
                self._file.close()
            except OSError:
                pass
            if not self._file.closed:  # the flush failed before the descriptor was closed
                with contextlib.suppress(OSError):
                    os.close(self._file.fileno())


def _is_cache_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, META_FILE))


def _check_caller_meta(meta: Mapping[str, Any]) -> None:
    """Caller meta must not set the writer's own keys and must be JSON-serialisable."""
    bad = sorted(set(meta) & set(_RESERVED_META))
    if bad:
        raise ValueError(f"CacheWriter meta: keys {bad} are computed by the writer")
    try:
        json.dumps(meta)
    except TypeError as e:
        raise ValueError(f"CacheWriter meta is not JSON-serialisable: {e}") from e


def install_dir(tmp_dir: str, target: str) -> None:
    """Moves a finished temporary directory into place, replacing `target` if it exists.

    The old directory is moved aside first and removed only after the rename, so a crash never
    leaves neither. mkdtemp made `tmp_dir` private (0700); it gets the usual mode.
    """
    old = None
    if os.path.exists(target):
        old = tempfile.mkdtemp(
            prefix=os.path.basename(target) + ".old-", dir=os.path.dirname(target)
        )
        os.rmdir(old)
        os.rename(target, old)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_dir, 0o777 & ~umask)
    os.rename(tmp_dir, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class CacheWriter:
    """Streams episodes into a new replay cache directory (atomic; see module docstring).

    Use as a context manager::

        with CacheWriter(out_dir, meta={"source": ..., "game": "Pong", ...}) as writer:
            for episode in episodes:
                writer.add_episode(obs, actions, rewards, terminated=True)

    Memory use is bounded by one episode: rows go straight to disk.

    Args:
      out_dir: the cache directory to create.
      meta: caller metadata stored in meta.json (JSON-serialisable); by convention the keys
        in `STANDARD_META`. Keys in `_RESERVED_META` are computed here and may not be given.
      overwrite: replace an existing cache at `out_dir`. Even then, a non-empty directory
        that is not a cache (no meta.json) is refused, so a typo cannot delete other data.
      frame_shape, frame_dtype: one frame's layout (default Atari's uint8 [84, 84]; MinAtar
        bool [10, 10, C]); every episode's frames must have it.
      frame_stack: frames per agent observation, recorded for the trainers (the game's:
        `offline_moe.envs.registry.observation_spec`; default Atari's 4).

    Raises:
      CacheError: `out_dir` exists and `overwrite` is false (or it is not a cache).
    """

    def __init__(
        self,
        out_dir: str,
        *,
        meta: Mapping[str, Any] | None = None,
        overwrite=False,
        frame_shape=FRAME_SHAPE,
        frame_dtype=FRAME_DTYPE,
        frame_stack: int = FRAME_STACK,
    ):
        self.out_dir = os.path.abspath(os.fspath(out_dir))
        self.overwrite = overwrite
        meta = dict(meta or {})
        _check_caller_meta(meta)
        self.frame_shape = tuple(int(d) for d in frame_shape)
        self.frame_dtype = np.dtype(frame_dtype)
        self.frame_stack = int(frame_stack)
        _check_frame_layout("CacheWriter", self.frame_shape, self.frame_dtype, self.frame_stack)
        self._meta = {k: None for k in STANDARD_META}
        self._meta.update(meta)
        self._check_target()
        parent = os.path.dirname(self.out_dir)
        os.makedirs(parent, exist_ok=True)
        self.tmp_dir = tempfile.mkdtemp(prefix=os.path.basename(self.out_dir) + ".tmp-", dir=parent)
        self._files: dict[str, _NpyAppender] = {}
        try:
            for name, (dtype, row_shape) in fields(self.frame_shape, self.frame_dtype).items():
                path = os.path.join(self.tmp_dir, name + ".npy")
                self._files[name] = _NpyAppender(path, dtype, row_shape)
        except BaseException:
            self.abort()
            raise
        self.num_rows = 0
        self.num_transitions = 0
        self.num_episodes = 0
        self._closed = False

    def _check_target(self) -> None:
        if not os.path.exists(self.out_dir):
            return
        if not os.path.isdir(self.out_dir):
            raise CacheError(f"cache output {self.out_dir} exists and is not a directory")
        if not self.overwrite:
            raise CacheError(
                f"cache output {self.out_dir} already exists; pass overwrite=True "
                "(--overwrite) to replace it"
            )
        if os.listdir(self.out_dir) and not _is_cache_dir(self.out_dir):
            raise CacheError(
                f"refusing to overwrite {self.out_dir}: it is a non-empty directory without "
                f"{META_FILE}, so it is not a replay cache"
            )

    # -- writing ---------------------------------------------------------------------------

    def update_meta(self, **meta: Any) -> None:
        """Sets caller meta keys before `close` (e.g. `num_actions` inferred from the data)."""
        _check_caller_meta(meta)
        self._meta.update(meta)

    def add_episode(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        *,
        terminated: bool,
        final_observation: np.ndarray | None = None,
        context: int = 0,
    ) -> None:
        """Appends one episode of T rows (T - context transitions, fewer when truncated).

        Args:
          observations: [T, *frame_shape] of frame_dtype (Atari: uint8 [T, 84, 84]);
            observations[t] is the frame action t was taken on.
          actions: integer [T].
          rewards: float [T]; reward after action t (already clipped if the caller clips).
          terminated: the game ended after the last action (terminal flag on the last row).
            False means truncated: see `final_observation`.
          final_observation: one frame, the frame after the last action of a truncated
            episode; stored as an observation-only row. Ignored (not stored) if `terminated`.
            If truncated and None, the last row becomes observation-only.
          context: how many leading rows are frame-stack history only (observation-only; the
            episode's earlier steps are not in the data).
        """
        if self._closed:
            raise RuntimeError("CacheWriter is closed")
        observations = np.asarray(observations)
        actions = np.asarray(actions)
        rewards = np.asarray(rewards)
        t = observations.shape[0] if observations.ndim else 0
        frame = f"{self.frame_dtype} {list(self.frame_shape)}"
        if observations.dtype != self.frame_dtype or observations.shape[1:] != self.frame_shape:
            raise ValueError(
                f"add_episode: observations must be {frame} frames [T, ...], got "
                f"{observations.dtype} {observations.shape}"
            )
        if t == 0:
            raise ValueError("add_episode: an episode needs at least one transition")
        if actions.shape != (t,) or rewards.shape != (t,):
            raise ValueError(
                f"add_episode: actions and rewards must have shape ({t},) like observations, "
                f"got {actions.shape} and {rewards.shape}"
            )
        if not np.issubdtype(actions.dtype, np.integer):
            raise ValueError(f"add_episode: actions must be integers, got {actions.dtype}")
        if t and (actions.min() < 0 or actions.max() > np.iinfo(np.int32).max):
            raise ValueError("add_episode: actions must be non-negative int32 values")
        if final_observation is not None and not terminated:
            final_observation = np.asarray(final_observation)
            if (final_observation.dtype, final_observation.shape) != (
                self.frame_dtype,
                self.frame_shape,
            ):
                raise ValueError(
                    f"add_episode: final_observation must be a frame of {frame}, got "
                    f"{final_observation.dtype} {final_observation.shape}"
                )
        extra = 1 if (final_observation is not None and not terminated) else 0
        n = t + extra
        if not 0 <= context < n - (0 if terminated or extra else 1):
            raise ValueError(
                f"add_episode: context={context} leaves no transition in an episode of {t} rows"
            )
        terminal = np.zeros(n, np.bool_)
        start = np.zeros(n, np.bool_)
        obs_only = np.zeros(n, np.bool_)
        start[0] = True
        obs_only[:context] = True
        if terminated:
            terminal[t - 1] = True
        else:
            obs_only[n - 1] = True
        f = self._files
        f["observation"].append(observations)
        f["action"].append(actions.astype(np.int32))
        f["reward"].append(rewards.astype(np.float32))
        if extra:
            f["observation"].append(final_observation[None])
            f["action"].append(np.zeros(1, np.int32))
            f["reward"].append(np.zeros(1, np.float32))
        f["terminal"].append(terminal)
        f["episode_start"].append(start)
        f["observation_only"].append(obs_only)
        self.num_rows += n
        self.num_transitions += n - int(obs_only.sum())
        self.num_episodes += 1

    # -- finishing -------------------------------------------------------------------------

    def close(self) -> str:
        """Finalises the files and renames the cache into place. Returns `out_dir`."""
        if self._closed:
            return self.out_dir
        try:
            if self.num_rows == 0:
                raise CacheError(f"cache {self.out_dir}: no episodes were written (empty cache)")
            for appender in self._files.values():
                appender.close()
            meta = dict(self._meta)
            meta.update(
                format_version=FORMAT_VERSION,
                num_rows=self.num_rows,
                num_transitions=self.num_transitions,
                num_episodes=self.num_episodes,
                frame_shape=list(self.frame_shape),
                frame_dtype=self.frame_dtype.name,
                frame_stack=self.frame_stack,
                created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            )
            with open(os.path.join(self.tmp_dir, META_FILE), "w") as fh:
                json.dump(meta, fh, indent=1, sort_keys=True)
                fh.write("\n")
            self._install()
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.out_dir

    def _install(self) -> None:
        self._check_target()  # something may have appeared while we were writing
        install_dir(self.tmp_dir, self.out_dir)

    def abort(self) -> None:
        """Discards everything written so far (removes the temporary directory)."""
        for appender in getattr(self, "_files", {}).values():
            appender.abort()  # never raises, so the directory below is always removed
        if os.path.isdir(self.tmp_dir):
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self._closed = True

    @property
    def bytes_written(self) -> int:
        """Bytes of array data written so far (all files)."""
        return self.num_rows * row_bytes(self.frame_shape, self.frame_dtype)

    def __enter__(self) -> CacheWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_cache(
    out_dir: str,
    episodes,
    *,
    meta: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    **frame_layout,
) -> str:
    """Writes an iterable of episode dicts (keys as `CacheWriter.add_episode` arguments);
    `frame_layout`: CacheWriter's frame_shape, frame_dtype, frame_stack."""
    with CacheWriter(out_dir, meta=meta, overwrite=overwrite, **frame_layout) as writer:
        for ep in episodes:
            writer.add_episode(
                ep["observations"],
                ep["actions"],
                ep["rewards"],
                terminated=ep["terminated"],
                final_observation=ep.get("final_observation"),
            )
    return writer.out_dir


def read_meta(cache_dir: str) -> dict:
    """Reads and checks meta.json of a cache (format version included)."""
    cache_dir = os.fspath(cache_dir)
    if not os.path.isdir(cache_dir):
        raise CacheError(f"replay cache directory {cache_dir} does not exist")
    path = os.path.join(cache_dir, META_FILE)
    if not os.path.isfile(path):
        raise CacheError(f"replay cache {cache_dir}: missing {META_FILE}")
    try:
        with open(path) as fh:
            meta = json.load(fh)
    except (OSError, ValueError) as e:
        raise CacheError(f"replay cache {cache_dir}: {META_FILE} is not valid JSON: {e}") from e
    if not isinstance(meta, dict):
        raise CacheError(f"replay cache {cache_dir}: {META_FILE} must hold a JSON object")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise CacheError(
            f"replay cache {cache_dir}: {META_FILE} field format_version is {version!r}, "
            f"expected {FORMAT_VERSION}; re-ingest the data with this version of offline_moe"
        )
    try:
        _check_frame_layout(f"replay cache {cache_dir}: {META_FILE}", *frame_spec(meta))
    except (TypeError, ValueError) as e:
        raise CacheError(str(e)) from None
    return meta


def load_cache(
    cache_dir: str, mmap: bool = True, *, num_actions: int | None = None
) -> tuple[dict[str, np.ndarray], dict]:
    """Loads and validates a replay cache (layout, episode flags and content).

    Content checks (all rows; a few ms per million rows, the frames are not read): actions in
    0..A-1, where A is `num_actions` (the game's action count) or meta.json's num_actions;
    finite rewards, within [-1, 1] when meta.json says clip_rewards.

    Args:
      cache_dir: directory written by `CacheWriter`.
      mmap: memory-map the arrays (read-only) instead of reading them into RAM.
      num_actions: the action count the caller expects (e.g. the game's); must agree with
        meta.json's num_actions when both are known.

    Returns:
      (arrays, meta): arrays maps each name in `FIELDS` to its [N, ...] array.

    Raises:
      CacheError: naming the file and field, on a missing directory or file, a corrupt
        .npy, wrong dtype or shape, unequal lengths, an empty cache, a count that disagrees
        with meta.json, inconsistent episode flags, or another format version.
    """
    cache_dir = os.fspath(cache_dir)
    meta = read_meta(cache_dir)
    arrays: dict[str, np.ndarray] = {}
    for name, (dtype, row_shape) in fields(*frame_spec(meta)[:2]).items():
        path = os.path.join(cache_dir, name + ".npy")
        if not os.path.isfile(path):
            raise CacheError(f"replay cache {cache_dir}: missing file {name}.npy")
        try:
            array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise CacheError(
                f"replay cache {cache_dir}: {name}.npy is corrupt or truncated: {e}"
            ) from e
        if array.dtype != dtype:
            raise CacheError(
                f"replay cache {cache_dir}: {name}.npy has dtype {array.dtype}, expected {dtype}"
            )
        if array.ndim != 1 + len(row_shape) or array.shape[1:] != row_shape:
            raise CacheError(
                f"replay cache {cache_dir}: {name}.npy has shape {array.shape}, expected "
                f"[N{''.join(f', {d}' for d in row_shape)}]"
            )
        arrays[name] = array
    lengths = {name: a.shape[0] for name, a in arrays.items()}
    n = lengths["observation"]
    if len(set(lengths.values())) != 1:
        raise CacheError(f"replay cache {cache_dir}: arrays of unequal length {lengths}")
    if n == 0:
        raise CacheError(f"replay cache {cache_dir}: empty cache (0 rows)")
    if meta.get("num_rows") != n:
        raise CacheError(
            f"replay cache {cache_dir}: {META_FILE} field num_rows is {meta.get('num_rows')!r} "
            f"but the arrays have {n} rows"
        )
    _check_flags(cache_dir, arrays, meta)
    _check_content(cache_dir, arrays, meta, num_actions)
    return arrays, meta


def _first_bad(cache_dir: str, name: str, bad: np.ndarray, values: np.ndarray, expected: str):
    row = int(np.flatnonzero(bad)[0])
    return CacheError(
        f"replay cache {cache_dir}: {name}.npy row {row} holds {values[row].item()!r}, "
        f"expected {expected} ({int(bad.sum()):,} bad rows in all)"
    )


def _check_content(cache_dir: str, arrays: Mapping, meta: Mapping, num_actions: int | None):
    """Actions within the action set, finite (and clipped, if so recorded) rewards."""
    meta_actions = meta.get("num_actions")
    if num_actions is not None and meta_actions is not None and int(meta_actions) != num_actions:
        raise CacheError(
            f"replay cache {cache_dir}: {META_FILE} field num_actions is {meta_actions} but the "
            f"game has {num_actions} actions; the cache is from another game or action set"
        )
    count = num_actions if num_actions is not None else meta_actions
    action = np.asarray(arrays["action"])
    lo, hi = int(action.min()), int(action.max())
    if lo < 0 or (count is not None and hi >= int(count)):
        if count is None:
            bad, expected = action < 0, "a non-negative action"
        else:
            bad = (action < 0) | (action >= int(count))
            why = "meta.json num_actions" if num_actions is None else "the game's action set"
            expected = f"an action in 0..{int(count) - 1} ({why})"
        raise _first_bad(cache_dir, "action", bad, action, expected)
    reward = np.asarray(arrays["reward"])
    bound = 1.0 if meta.get("clip_rewards") else np.inf
    # Two passes: min and max propagate NaN, and a NaN fails every comparison.
    lo, hi = float(reward.min()), float(reward.max())
    if not (-bound <= lo and hi <= bound and np.isfinite(lo) and np.isfinite(hi)):
        bad = ~np.isfinite(reward) | (np.abs(reward) > bound)
        expected = (
            "a reward in [-1, 1] (meta.json clip_rewards)" if bound == 1.0 else "a finite reward"
        )
        raise _first_bad(cache_dir, "reward", bad, reward, expected)


# Bytes read per sampled chunk and chunks per file for the fingerprint.
_CHUNK_BYTES = 4096
_CHUNKS = 16


def fingerprint(cache_dir: str, meta: Mapping | None = None) -> str:
    """A cheap content fingerprint: sha256 of meta.json (less `created`), file sizes and 16
    evenly spaced 4 KiB chunks of each array file (headers included).

    Milliseconds even for a paper-size cache (under 0.5 MB read). A re-ingest of the same
    data gives the same fingerprint; another recording, size or subset gives another one.
    """
    meta = dict(read_meta(cache_dir) if meta is None else meta)
    meta.pop("created", None)
    h = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in FIELDS:
        path = os.path.join(cache_dir, name + ".npy")
        size = os.path.getsize(path)
        h.update(f"{name}:{size}".encode())
        with open(path, "rb") as f:
            for k in range(_CHUNKS):
                f.seek(max(size - _CHUNK_BYTES, 0) * k // (_CHUNKS - 1))
                h.update(f.read(_CHUNK_BYTES))
    return h.hexdigest()


def cache_pin(cache_dir: str, meta: Mapping | None = None) -> dict:
    """What a run records about its cache (inputs.json): path, `fingerprint` (what a resume
    compares), the identity fields (`cache_identity`) and the counts, for messages."""
    meta = dict(read_meta(cache_dir) if meta is None else meta)
    return {
        "path": os.path.abspath(cache_dir),
        "fingerprint": fingerprint(cache_dir, meta),
        "identity": cache_identity(meta),
        **{k: meta.get(k) for k in ("num_rows", "num_episodes", "created")},
    }


def describe_pin(pin: Mapping) -> str:
    """One line naming a cache pin (for error messages)."""
    ident = pin.get("identity") or {}
    return (
        f"{pin.get('path')} (game {ident.get('game')}, run {ident.get('run')}, source "
        f"{ident.get('source')}, {pin.get('num_rows')} rows, {pin.get('num_episodes')} "
        f"episodes, created {pin.get('created')}, fingerprint {str(pin.get('fingerprint'))[:12]})"
    )


def _check_flags(cache_dir: str, arrays: Mapping[str, np.ndarray], meta: Mapping) -> None:
    """Checks the episode-flag rules of the module docstring (cheap: bool arrays only)."""
    start = np.asarray(arrays["episode_start"])
    terminal = np.asarray(arrays["terminal"])
    obs_only = np.asarray(arrays["observation_only"])
    if not start[0]:
        raise CacheError(f"replay cache {cache_dir}: episode_start.npy row 0 must be True")
    # A row is the last of its episode iff the next row starts an episode (or it is last).
    last = np.append(start[1:], True)
    # Context rows: observation-only rows from an episode's first row on (a run of them).
    context = obs_only & start
    for i in np.flatnonzero(obs_only[1:] & ~start[1:]) + 1:
        context[i] = context[i - 1]
    for name, flag in (("terminal", terminal), ("observation_only", obs_only & ~context)):
        bad = np.flatnonzero(flag & ~last)
        if bad.size:
            raise CacheError(
                f"replay cache {cache_dir}: {name}.npy is set on row {bad[0]}, which is not "
                "the last row of its episode"
            )
    both = np.flatnonzero(terminal & obs_only)
    if both.size:
        raise CacheError(
            f"replay cache {cache_dir}: row {both[0]} is both terminal and observation_only"
        )
    counts = {
        "num_transitions": int((~obs_only).sum()),
        "num_episodes": int(start.sum()),
    }
    for key, value in counts.items():
        if meta.get(key) != value:
            raise CacheError(
                f"replay cache {cache_dir}: {META_FILE} field {key} is {meta.get(key)!r} "
                f"but the arrays give {value}"
            )
