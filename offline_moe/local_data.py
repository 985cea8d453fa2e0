"""Command: record and ingest local offline data for the given games.

    python -m offline_moe.local_data --games=Pong,Breakout --steps=3000 --data_dir=data

The library is `offline_moe.data.local` (`ensure_local_cache`).
"""

from __future__ import annotations

import sys

from absl import flags

from offline_moe.data.local import VIAS, ensure_local_cache
from offline_moe.flags_common import define_data_dir, parse


def define_flags(fv: flags.FlagValues) -> None:
    """The command's flags, in `fv`."""
    kw = dict(flag_values=fv)
    flags.DEFINE_list("games", None, "Games, comma-separated, e.g. Pong,Breakout.", **kw)
    flags.DEFINE_integer("steps", 3000, "Agent steps recorded per game.", lower_bound=1, **kw)
    define_data_dir(fv)
    flags.DEFINE_integer(
        "seed", 0, "Seed (local_data, record: of the recorder).", lower_bound=0, **kw
    )
    flags.DEFINE_enum(
        "via",
        "direct",
        list(VIAS),
        "direct: record straight into the cache (no TensorFlow); rlds: record an RLDS "
        "dataset (RL Unplugged layout, kept) and ingest it; auto: rlds where "
        "tensorflow-datasets is installed.",
        **kw,
    )
    flags.mark_flag_as_required("games", flag_values=fv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv, define_flags, prog="local_data", doc=__doc__)
    for game in args.games:
        print(ensure_local_cache(game, args.steps, args.data_dir, seed=args.seed, via=args.via))
    return 0


if __name__ == "__main__":
    from offline_moe.flags_common import run_main

    sys.exit(run_main(main, "local_data"))
