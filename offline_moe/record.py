"""Command: record real ALE episodes as an RL Unplugged-layout RLDS dataset, or straight into
a replay cache (no TensorFlow: `--cache`).

    python -m offline_moe.record --game=Pong --steps=20000 --checkpoints=2 --out=data/rlds
    python -m offline_moe.record --game=Pong --steps=20000 --checkpoints=2 --cache=data/cache/x

The library, with the protocol, policies and split rules, is `offline_moe.data.record`.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from offline_moe.data import rlu_format
from offline_moe.data.record import POLICIES, record, record_cache
from offline_moe.errors import MissingExtraError


def _define_flags():
    from absl import flags

    flags.DEFINE_string(
        "game", "Pong", "Game to play: one of the 46 RL Unplugged games, or Catch (known answer)."
    )
    flags.DEFINE_integer("steps", 10_000, "Total agent steps (transitions) to record.")
    flags.DEFINE_enum("policy", "random", list(POLICIES), "Behaviour policy (see module doc).")
    flags.DEFINE_float(
        "eps", 0.1, "Random-action probability of --policy=eps_greedy and --policy=scripted."
    )
    flags.DEFINE_integer("checkpoints", 1, "Number of checkpoint_XX splits to spread steps over.")
    flags.DEFINE_integer("run", 1, "Run index: the config is named {Game}_run_{run}.")
    flags.DEFINE_integer("seed", 0, "Seed of ALE (sticky actions) and of the policy.")
    flags.DEFINE_string(
        "out", None, "TFDS data directory to write the RLDS dataset into (needs TensorFlow)."
    )
    flags.DEFINE_string(
        "cache",
        None,
        "Replay cache directory to write instead of a dataset: the cache ingest would make of "
        "it, made without TensorFlow.",
    )
    flags.DEFINE_float(
        "percent", 100.0, "With --cache: the first PERCENT% of each split's episodes."
    )
    flags.DEFINE_integer(
        "workers", 1, "With --cache: processes playing checkpoint splits side by side."
    )
    flags.DEFINE_string(
        "name",
        rlu_format.DEFAULT_NAME,
        "Dataset name; the dataset goes to OUT/NAME/{Game}_run_{run}/1.1.0.",
    )
    flags.DEFINE_integer(
        "max_episode_steps", None, "Per-episode step cap (default: the protocol's 27,000)."
    )
    flags.DEFINE_boolean(
        "with_clipped", False, "Also write the older schema's clipped_reward fields."
    )
    flags.DEFINE_boolean("overwrite", False, "Replace an existing dataset of the same config.")
    flags.register_multi_flags_validator(
        ["out", "cache"],
        lambda v: (v["out"] is None) != (v["cache"] is None),
        message="give exactly one of --out (an RLDS dataset) or --cache (a replay cache)",
    )


def main(argv) -> None:
    from absl import app, flags, logging

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    if not f["verbosity"].present:  # TFDS logs every dataset it opens at INFO
        logging.set_verbosity(logging.WARNING)
    try:
        if f.cache is not None:
            meta = record_cache(
                f.game,
                f.steps,
                f.cache,
                percent=f.percent,
                workers=f.workers,
                overwrite=f.overwrite,
                progress=True,
                **_play_args(f),
            )
            print(
                f"wrote {f.cache}: {meta['num_transitions']:,} transitions, "
                f"{meta['num_episodes']:,} episodes of {meta['game']}"
            )
            return
        summary = record(
            f.game,
            f.steps,
            f.out,
            with_clipped=f.with_clipped,
            overwrite=f.overwrite,
            progress=True,
            **_play_args(f),
        )
    except (ValueError, FileExistsError, MissingExtraError) as e:
        print(f"record: error: {e}", file=sys.stderr)
        sys.exit(1)
    returns = summary["returns"]
    print(
        f"wrote {summary['dataset_dir']}: {summary['steps']:,} steps, {len(returns)} episodes "
        f"({summary['terminated_episodes']} terminated), splits {summary['episodes']}, "
        f"mean return {np.mean(returns):.2f}"
    )


def _play_args(f) -> dict:
    return dict(
        policy=f.policy,
        checkpoints=f.checkpoints,
        run=f.run,
        seed=f.seed,
        eps=f.eps,
        name=f.name,
        max_episode_steps=f.max_episode_steps,
    )


if __name__ == "__main__":
    from absl import app

    # Quiet TensorFlow's C++ start-up banner in the command line (a user's setting wins).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _define_flags()
    app.run(main)
