"""Command: results report (tables, aggregate statistics, plots, verdict against the paper).

    python -m offline_moe.report --runs=runs/ --out=report/ [--reps=50000]

What it writes and the score rules: `offline_moe.analysis.report`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from offline_moe.analysis.report import write_report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offline_moe.report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--runs", default="runs", help="root of the run directories")
    parser.add_argument("--out", default="report", help="output directory")
    parser.add_argument("--reps", type=int, default=50_000, help="bootstrap replicates")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--include_unfinished", action="store_true",
                        help="aggregate unfinished runs at their last evaluation")  # fmt: skip
    parser.add_argument("--scores", action="append", default=None,
                        help="reference-score CSV (repeatable; later files override)")  # fmt: skip
    parser.add_argument("--no_plots", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="do not print results.md")
    args = parser.parse_args(list(argv[1:]) if argv is not None else None)
    text = write_report(
        args.runs,
        args.out,
        reps=args.reps,
        seed=args.seed,
        include_unfinished=args.include_unfinished,
        scores=args.scores,
        plots=not args.no_plots,
    )
    if not args.quiet:
        print(text)
    print(f"[report] wrote {Path(args.out) / 'results.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
