"""Command: results report (tables, aggregate statistics, curves, plots, verdict).

    python -m offline_moe.report --runs_dir=runs/ --report_dir=report/ [--reps=50000]
    python -m offline_moe.report --runs_dir=runs/grid,runs/controls --report_dir=report/controls

What it writes and the score rules: `offline_moe.analysis.report`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from absl import flags

from offline_moe.analysis.report import write_report
from offline_moe.flags_common import fail, parse


def define_flags(fv: flags.FlagValues) -> None:
    """The command's flags, in `fv`."""
    kw = dict(flag_values=fv)
    flags.DEFINE_list(
        "runs_dir",
        ["runs"],
        "Root of the run directories (must exist); several, comma-separated, are read as one "
        "tree (e.g. a grid's runs and a later sweep's controls).",
        **kw,
    )
    flags.DEFINE_string("report_dir", "report", "Directory the report is written to.", **kw)
    flags.DEFINE_integer(
        "reps", 50_000, "Bootstrap replicates (rliable's 50,000).", lower_bound=1, **kw
    )
    flags.DEFINE_integer("seed", 0, "Seed (report: of the bootstrap).", lower_bound=0, **kw)
    flags.DEFINE_boolean("include_unfinished", False, "Aggregate unfinished runs too.", **kw)
    flags.DEFINE_boolean("include_capped", False, "Aggregate capped evaluations too.", **kw)
    flags.DEFINE_multi_string("scores", None, "Reference-score CSV (repeatable).", **kw)
    flags.DEFINE_boolean("plots", True, "Write the figures (--noplots: none).", **kw)
    flags.DEFINE_boolean("quiet", False, "Do not print results.md.", **kw)
    flags.DEFINE_multi_string(
        "compare",
        None,
        "X:Y, repeatable: add P(X > Y) on final scores with its 95% CI to every group holding "
        "both variants (a label such as soft_moe[normalize_tokens=True], or a torso name with "
        "one variant), e.g. --compare=soft_moe:soft_moe_uniform.",
        **kw,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv, define_flags, prog="report", doc=__doc__)
    pairs = []
    for item in args.compare or []:
        x, sep, y = item.partition(":")
        if not (sep and x and y):
            fail("report", f"--compare={item}: expected X:Y, two variants, e.g. soft_moe:baseline")
        pairs.append((x, y))
    try:
        text = write_report(
            args.runs_dir or ["."],
            args.report_dir,
            reps=args.reps,
            seed=args.seed,
            include_unfinished=args.include_unfinished,
            include_capped=args.include_capped,
            scores=args.scores,
            plots=args.plots,
            compare=pairs,
        )
    except FileNotFoundError as e:
        fail("report", str(e))
    if not args.quiet:
        print(text)
    print(f"[report] wrote {Path(args.report_dir) / 'results.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    from offline_moe.flags_common import run_main

    sys.exit(run_main(main, "report"))
