"""Writing a replay cache: streaming, atomic, in the format `offline_moe.replay.cache` defines.

`CacheWriter` appends each episode straight to `.npy` files (whose headers are rewritten with
the final length on close) inside a temporary directory `<out_dir>.tmp-XXXX` next to the
target, and renames it into place only on success (`install_dir`). Any exception removes the
temporary directory, so a crash never leaves a half cache that looks whole. `write_cache`
writes whole arrays at once (tests, small caches).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from offline_moe.errors import CacheError, CacheWriteError
from offline_moe.replay.cache import (
    FORMAT_VERSION,
    FRAME_DTYPE,
    FRAME_SHAPE,
    FRAME_STACK,
    META_FILE,
    RESERVED_META,
    STANDARD_META,
    check_frame_layout,
    fields,
    row_bytes,
)

# Fixed total .npy header size: enough for any shape, multiple of 64 as numpy prefers.
_NPY_HEADER_BYTES = 128
_NPY_MAGIC = b"\x93NUMPY\x01\x00"


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
    bad = sorted(set(meta) & set(RESERVED_META))
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
        in `STANDARD_META`. Keys in `RESERVED_META` are computed here and may not be given.
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
        check_frame_layout("CacheWriter", self.frame_shape, self.frame_dtype, self.frame_stack)
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
