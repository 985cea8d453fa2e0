"""Replay caches shipped with the repository, one compressed file per cache.

    cache_dir = ensure_shipped_cache("MinAtarBreakout_run1_5pct", data_dir="data")
    python -m offline_moe.data.shipped --cache_dir=data/cache/MinAtarBreakout_run1_5pct

A cache directory (`offline_moe.replay.cache`) is stored as one `numpy.savez_compressed` file,
`datasets/minatar/{name}.npz`: its meta.json as text and every array, boolean frames packed
eight to a byte along the flattened frame (`numpy.packbits`). Unpacking writes the same
arrays and meta.json (byte-equal `.npy` payloads; the cache fingerprint is equal) into
DATA_DIR/cache/{name} through a temporary directory, so a crash leaves no partial cache, and
the result passes `load_cache`'s checks before it is installed.

The shipped MinAtar caches are 5% of each of the 10 replay checkpoints of a 1M-step behaviour
DQN per game (`offline_moe/configs/dqn.py`, then `ingest --source=dqn_replay:... --percent=5`;
docs/minatar.md).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from offline_moe.errors import CacheError
from offline_moe.replay.cache import (
    META_FILE,
    fields,
    frame_spec,
    load_cache,
    read_meta,
)
from offline_moe.replay.cache_writer import install_dir

SHIPPED_DIR = Path(__file__).resolve().parents[2] / "datasets" / "minatar"
_META_KEY = "meta_json"


def shipped_names(directory: str | os.PathLike = SHIPPED_DIR) -> list[str]:
    """Names of the caches shipped in `directory` (file names less `.npz`), sorted."""
    if not os.path.isdir(directory):
        return []
    return sorted(p[: -len(".npz")] for p in os.listdir(directory) if p.endswith(".npz"))


def pack_cache(cache_dir: str, path: str) -> dict:
    """Writes the cache at `cache_dir` into one compressed file at `path`; returns its sizes."""
    arrays, meta = load_cache(cache_dir, mmap=True)
    payload = {_META_KEY: np.frombuffer(json.dumps(meta, sort_keys=True).encode(), np.uint8)}
    for name, array in arrays.items():
        if array.dtype == np.bool_:
            payload[name] = np.packbits(np.asarray(array).reshape(len(array), -1), axis=1)
        else:
            payload[name] = np.asarray(array)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.npz"
    np.savez_compressed(tmp, **payload)
    os.replace(tmp, path)
    raw = sum(os.path.getsize(os.path.join(cache_dir, n + ".npy")) for n in arrays)
    return {"path": path, "bytes": os.path.getsize(path), "cache_bytes": raw}


def unpack_cache(path: str, cache_dir: str) -> str:
    """Restores the cache packed at `path` into `cache_dir` (replacing it); returns the dir."""
    try:
        packed = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise CacheError(f"shipped cache {path}: not a readable .npz file: {e}") from e
    with packed:
        if _META_KEY not in packed.files:
            raise CacheError(f"shipped cache {path}: no {_META_KEY} entry (not a packed cache)")
        meta = json.loads(packed[_META_KEY].tobytes().decode())
        parent = os.path.dirname(os.path.abspath(cache_dir))
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=os.path.basename(cache_dir) + ".tmp-", dir=parent)
        try:
            for name, (dtype, row_shape) in fields(*frame_spec(meta)[:2]).items():
                if name not in packed.files:
                    raise CacheError(f"shipped cache {path}: missing array {name!r}")
                array = packed[name]
                if dtype == np.bool_:
                    size = int(np.prod(row_shape))
                    array = np.unpackbits(array, axis=1, count=size).astype(bool)
                    array = array.reshape((len(array), *row_shape))
                np.save(os.path.join(tmp, name + ".npy"), array.astype(dtype, copy=False))
            with open(os.path.join(tmp, META_FILE), "w") as f:
                json.dump(meta, f, indent=1, sort_keys=True)
            load_cache(tmp)  # every check a trainer makes, before the cache is in place
            install_dir(tmp, cache_dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return cache_dir


def ensure_shipped_cache(
    name: str, data_dir: str = "data", directory: str | os.PathLike = SHIPPED_DIR
) -> str:
    """DATA_DIR/cache/{name}, unpacked from the shipped file unless it is already there."""
    path = os.path.join(directory, name + ".npz")
    if not os.path.isfile(path):
        names = ", ".join(shipped_names(directory)) or "none"
        raise CacheError(f"no shipped cache {name!r} in {directory} (shipped: {names})")
    cache_dir = os.path.join(data_dir, "cache", name)
    if os.path.isfile(os.path.join(cache_dir, META_FILE)):
        with np.load(path, allow_pickle=False) as packed:
            want = json.loads(packed[_META_KEY].tobytes().decode())
        have = read_meta(cache_dir)
        if {k: v for k, v in have.items() if k != "created"} == {
            k: v for k, v in want.items() if k != "created"
        }:
            return cache_dir
        raise CacheError(
            f"{cache_dir} exists but is not the shipped cache {path} (meta.json differs); "
            "move it away or pass another --data_dir"
        )
    print(f"[shipped] unpacking {path} -> {cache_dir}", flush=True)
    return unpack_cache(path, cache_dir)


def restore_if_shipped(cache_dir: str, directory: str | os.PathLike = SHIPPED_DIR) -> bool:
    """Unpacks the shipped cache named like `cache_dir`'s last component into `cache_dir`, if
    one is shipped (a fresh clone trains on MinAtar without making the data); False if none."""
    path = os.path.join(directory, os.path.basename(os.path.normpath(cache_dir)) + ".npz")
    if not os.path.isfile(path):
        return False
    print(f"[shipped] unpacking {path} -> {cache_dir}", flush=True)
    unpack_cache(path, cache_dir)
    return True


def define_flags(fv) -> None:
    """The packing command's flags, in `fv`."""
    from absl import flags

    kw = dict(flag_values=fv)
    flags.DEFINE_string("cache_dir", None, "Replay cache directory (data.shipped: packed).", **kw)
    flags.DEFINE_string(
        "shipped_dir", str(SHIPPED_DIR), "Where the packed .npz goes (datasets/minatar/).", **kw
    )
    flags.mark_flag_as_required("cache_dir", flag_values=fv)


def main(argv=None) -> None:
    import sys

    from offline_moe.flags_common import parse

    args = parse(
        argv, define_flags, prog="data.shipped", doc="Pack a replay cache into datasets/minatar/."
    )
    name = os.path.basename(os.path.normpath(args.cache_dir))
    info = pack_cache(args.cache_dir, os.path.join(args.shipped_dir, name + ".npz"))
    print(json.dumps(info), file=sys.stdout)


if __name__ == "__main__":
    main()
