"""Command: ingest offline Atari data (TFDS, RLDS directory, DQN-Replay logs) into a replay cache.

    python -m offline_moe.ingest --source=tfds:rlu_atari_checkpoints_ordered/Pong_run_1 \
        --data_dir=~/tensorflow_datasets --percent=5 --out=data/cache/Pong_run1_5pct
    python -m offline_moe.ingest --source=dqn_replay:/data/dqn/Pong/1/replay_logs \
        --game=Pong --run=1 --checkpoints=0-49 --percent=5 --out=data/cache/Pong_run1_5pct

The flags map one to one onto `offline_moe.data.ingest.ingest(...)`, where the sources are
described.
"""

from __future__ import annotations

import os
import sys

from offline_moe.data.common import format_checkpoints
from offline_moe.data.ingest import ingest
from offline_moe.errors import MissingExtraError


def _define_flags():
    from absl import flags

    flags.DEFINE_string(
        "source",
        None,
        "Where to read: tfds:NAME (e.g. tfds:rlu_atari_checkpoints_ordered/Pong_run_1, with "
        "--data_dir), rlds_dir:DIR (a prepared TFDS/RLDS dataset directory) or dqn_replay:DIR "
        "(a DQN-Replay replay_logs directory of $store$_*_ckpt.N.gz files).",
    )
    flags.DEFINE_string("data_dir", None, "TFDS data directory for tfds: sources.")
    flags.DEFINE_string(
        "game",
        None,
        "Game name, e.g. Pong. Optional: read from the dataset config or the replay_logs path; "
        "must agree with it when given.",
    )
    flags.DEFINE_integer("run", None, "Run index 1..5 (metadata; read from the source if unset).")
    flags.DEFINE_string(
        "checkpoints",
        None,
        "Checkpoints to read, e.g. '0-49' or '0-4,10'; default all present.",
    )
    flags.DEFINE_float(
        "percent",
        5.0,
        "Percent in (0, 100] of each checkpoint to keep: the first percent of the episodes of "
        "each TFDS split, or of the transitions of each DQN-Replay checkpoint.",
    )
    flags.DEFINE_enum(
        "sample",
        "prefix",
        ["prefix", "random"],
        "How --percent is drawn from each checkpoint: prefix (the first percent, as Dopamine and "
        "batch_rl read DQN-Replay) or random (whole episodes drawn at random with "
        "--sample_seed until the same budget; the paper says its 5% is 'drawn randomly').",
    )
    flags.DEFINE_integer(
        "sample_seed", 0, "Seed of --sample=random (recorded in meta.json with the sample)."
    )
    flags.DEFINE_boolean("clip_rewards", True, "Clip rewards to [-1, 1].")
    flags.DEFINE_string("out", None, "Replay cache directory to write.")
    flags.DEFINE_boolean("overwrite", False, "Replace an existing cache at --out.")
    flags.DEFINE_boolean("progress", True, "Show a progress line with transitions/s on stderr.")
    flags.mark_flags_as_required(["source", "out"])


def main(argv) -> None:
    from absl import app, flags, logging

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    if not f["verbosity"].present:  # TFDS logs every dataset it opens at INFO
        logging.set_verbosity(logging.WARNING)
    try:
        meta = ingest(
            f.source,
            f.out,
            data_dir=f.data_dir,
            game=f.game,
            run=f.run,
            checkpoints=f.checkpoints,
            percent=f.percent,
            sample=f.sample,
            sample_seed=f.sample_seed,
            clip_rewards=f.clip_rewards,
            overwrite=f.overwrite,
            progress=f.progress,
        )
    except (ValueError, MissingExtraError) as e:  # IngestError, CacheError: says what to fix
        print(f"ingest: error: {e}", file=sys.stderr)
        sys.exit(1)
    ckpts = format_checkpoints(meta["checkpoints"] or [])
    print(
        f"wrote {f.out}: {meta['num_transitions']:,} transitions, {meta['num_episodes']:,} "
        f"episodes, game {meta['game']}, checkpoints {ckpts}"
    )


if __name__ == "__main__":
    from absl import app

    # Quiet TensorFlow's C++ start-up banner in the command line (a user's setting wins).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _define_flags()
    app.run(main)
