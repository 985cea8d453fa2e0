"""Command: record and ingest local offline data for the given games.

    python -m offline_moe.local_data --games=Pong,Breakout --steps=3000 --data_dir=data

The library is `offline_moe.data.local` (`ensure_local_cache`).
"""

from __future__ import annotations

import sys

from offline_moe.data.local import VIAS, ensure_local_cache


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m offline_moe.local_data",
        description="Record and ingest local ALE data for offline runs (see module docstring).",
    )
    parser.add_argument("--games", required=True, help="comma-separated games, e.g. Pong,Breakout")
    parser.add_argument("--steps", type=int, default=3000, help="agent steps recorded per game")
    parser.add_argument("--data_dir", default="data", help="root of datasets and caches")
    parser.add_argument("--seed", type=int, default=0, help="recorder seed")
    parser.add_argument(
        "--via",
        choices=VIAS,
        default="direct",
        help="direct: record straight into the cache (no TensorFlow); rlds: record an RLDS "
        "dataset (RL Unplugged layout, kept) and ingest it; auto: rlds where "
        "tensorflow-datasets is installed (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    for game in (g.strip() for g in args.games.split(",") if g.strip()):
        print(ensure_local_cache(game, args.steps, args.data_dir, seed=args.seed, via=args.via))
    return 0


if __name__ == "__main__":
    sys.exit(main())
