"""Command: results report (tables, aggregate statistics, curves, plots, verdict).

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
    arg = parser.add_argument
    arg("--runs", default="runs", help="root of the run directories (must exist)")
    arg("--out", default="report", help="output directory")
    arg("--reps", type=int, default=50_000, help="bootstrap replicates (rliable's 50,000)")
    arg("--seed", type=int, default=0, help="bootstrap seed")
    arg("--include_unfinished", action="store_true", help="aggregate unfinished runs too")
    arg("--include_capped", action="store_true", help="aggregate capped evaluations too")
    arg("--scores", action="append", default=None, help="reference-score CSV (repeatable)")
    arg("--no_plots", action="store_true", help="write no figures")
    arg("--quiet", action="store_true", help="do not print results.md")
    args = parser.parse_args(list(argv[1:]) if argv is not None else None)
    try:
        text = write_report(
            args.runs,
            args.out,
            reps=args.reps,
            seed=args.seed,
            include_unfinished=args.include_unfinished,
            include_capped=args.include_capped,
            scores=args.scores,
            plots=not args.no_plots,
        )
    except FileNotFoundError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(text)
    print(f"[report] wrote {Path(args.out) / 'results.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
