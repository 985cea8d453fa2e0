"""Replay cache: a directory of flat `.npy` arrays plus `meta.json` (no TensorFlow).

This module holds the format and reads it (`load_cache`, `read_meta`, fingerprints); the writer
is `offline_moe.replay.cache_writer`, and what made a cache (its identity) is
`offline_moe.replay.identity`.

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

Writing (`offline_moe.replay.cache_writer`) is streaming and atomic: a crash never leaves a
half cache that looks whole.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from offline_moe.errors import CacheError
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
RESERVED_META = (
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


def check_frame_layout(where: str, shape, dtype, stack) -> None:
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"{where}: frame_shape must be [H, W] or [H, W, C], got {list(shape)}")
    if np.dtype(dtype).name not in FRAME_DTYPES:
        raise ValueError(f"{where}: frame_dtype must be one of {FRAME_DTYPES}, got {dtype}")
    if int(stack) < 1:
        raise ValueError(f"{where}: frame_stack must be >= 1, got {stack}")


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
        check_frame_layout(f"replay cache {cache_dir}: {META_FILE}", *frame_spec(meta))
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
