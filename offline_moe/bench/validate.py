"""Load-time cost of the replay-cache checks at paper size: are they cheap enough to run on
every load of a paper-scale cache?

    python -m offline_moe.bench validate --rows=2500000 --cache_dir=/tmp/validate_cache

Writes a synthetic cache of `--rows` rows (episodes of 1,000 rows; actions, rewards and flags
real, the 84x84 frames a sparse file, so 2.5M rows take 17.6 GB of address space but no
disk), then times, best of `--repeats`: the layout load (`np.load` of every file, mmap), the
episode-flag checks, the content checks (action range, finite/clipped rewards; on mapped
pages and on fresh maps, i.e. with the first touch of every page), the fingerprint a run pins,
and `load_cache` with and without the content checks. One JSON line per measurement, then a
summary line on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from absl import flags

from offline_moe.flags_common import parse
from offline_moe.replay import cache as cache_lib
from offline_moe.replay import cache_writer


def write_synthetic(out: str, rows: int, episode: int = 1000, num_actions: int = 6) -> str:
    """A valid cache of `rows` rows; observation.npy is sparse (header + holes)."""
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(0)
    start = np.zeros(rows, bool)
    start[::episode] = True
    terminal = np.zeros(rows, bool)
    terminal[episode - 1 :: episode] = True
    terminal[-1] = False
    obs_only = np.zeros(rows, bool)
    obs_only[-1] = True  # the last episode is truncated
    arrays = {
        "action": rng.integers(0, num_actions, rows).astype(np.int32),
        "reward": rng.choice(np.float32([-1, 0, 0, 0, 1]), rows),
        "terminal": terminal,
        "episode_start": start,
        "observation_only": obs_only,
    }
    for name, array in arrays.items():
        np.save(os.path.join(out, f"{name}.npy"), array)
    with open(os.path.join(out, "observation.npy"), "wb") as f:
        f.write(cache_writer._npy_header(np.dtype(np.uint8), (rows, 84, 84)))
        f.truncate(cache_writer._NPY_HEADER_BYTES + rows * 84 * 84)
    meta = {k: None for k in cache_lib.STANDARD_META}
    meta.update(
        source="synthetic",
        game="Pong",
        num_actions=num_actions,
        clip_rewards=True,
        format_version=cache_lib.FORMAT_VERSION,
        num_rows=rows,
        num_transitions=int((~obs_only).sum()),
        num_episodes=int(start.sum()),
        frame_shape=list(cache_lib.FRAME_SHAPE),
        created="synthetic",
    )
    with open(os.path.join(out, cache_lib.META_FILE), "w") as f:
        json.dump(meta, f)
    return out


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def define_flags(fv: flags.FlagValues) -> None:
    """The benchmark's flags, in `fv`."""
    kw = dict(flag_values=fv)
    flags.DEFINE_integer("rows", 2_500_000, "Rows of the synthetic cache.", lower_bound=1, **kw)
    flags.DEFINE_string(
        "cache_dir",
        "/tmp/offline_moe_validate",
        "Replay cache directory (bench validate: written).",
        **kw,
    )
    flags.DEFINE_integer(
        "repeats", 3, "Timed repeats (bench validate: the best is kept).", lower_bound=1, **kw
    )


def main(argv: list[str]) -> None:
    args = parse(argv, define_flags, prog="bench validate", doc=__doc__)
    out = write_synthetic(args.cache_dir, args.rows)
    meta = cache_lib.read_meta(out)

    def layout():
        return {
            name: np.load(os.path.join(out, f"{name}.npy"), mmap_mode="r")
            for name in cache_lib.FIELDS
        }

    def content_on_fresh_maps():
        cache_lib._check_content(out, layout(), meta, 6)  # first touch of every page included

    def load_without_content_checks():
        check, cache_lib._check_content = cache_lib._check_content, lambda *a: None
        try:
            cache_lib.load_cache(out, num_actions=6)
        finally:
            cache_lib._check_content = check

    arrays = layout()
    cache_lib._check_flags(out, arrays, meta)  # page the small files in once (page cache)
    timings = {
        "layout_load_s": _best(layout, args.repeats),
        "flag_checks_s": _best(lambda: cache_lib._check_flags(out, arrays, meta), args.repeats),
        "content_checks_s": _best(
            lambda: cache_lib._check_content(out, arrays, meta, 6), args.repeats
        ),
        "content_checks_fresh_maps_s": _best(content_on_fresh_maps, args.repeats),
        "fingerprint_s": _best(lambda: cache_lib.fingerprint(out, meta), args.repeats),
        "load_cache_without_content_checks_s": _best(load_without_content_checks, args.repeats),
        "load_cache_s": _best(lambda: cache_lib.load_cache(out, num_actions=6), args.repeats),
    }
    for name, seconds in timings.items():
        record = {"bench": "validate", "rows": args.rows, "measure": name}
        print(json.dumps({**record, "seconds": round(seconds, 4)}), flush=True)
    frames_gb = args.rows * 84 * 84 / 1e9
    t = {k: v * 1e3 for k, v in timings.items()}
    added = t["load_cache_s"] - t["load_cache_without_content_checks_s"] + t["fingerprint_s"]
    print(
        f"[bench validate] {args.rows:,} rows ({frames_gb:.1f} GB of frames): load_cache "
        f"{t['load_cache_s']:.0f} ms with the content checks, "
        f"{t['load_cache_without_content_checks_s']:.0f} ms without; content checks "
        f"{t['content_checks_s']:.0f} ms on mapped pages, {t['content_checks_fresh_maps_s']:.0f} "
        f"ms on fresh maps; fingerprint {t['fingerprint_s']:.1f} ms; added per start ~{added:.0f} "
        f"ms (the frames' copy to the device alone reads {frames_gb:.1f} GB)",
        file=sys.stderr,
    )
