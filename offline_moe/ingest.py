"""Command: ingest offline Atari data (TFDS, RLDS directory, DQN-Replay logs) into a replay cache.

    python -m offline_moe.ingest --source=tfds:rlu_atari_checkpoints_ordered/Pong_run_1 \
        --tfds_dir=~/tensorflow_datasets --percent=5 --cache_dir=data/cache/Pong_run1_5pct
    python -m offline_moe.ingest --source=dqn_replay:/data/dqn/Pong/1/replay_logs \
        --game=Pong --run=1 --checkpoints=0-49 --percent=5 --cache_dir=data/cache/Pong_run1_5pct
    python -m offline_moe.ingest --suite=offline_paper --tfds_dir=~/tensorflow_datasets \
        --percent=5 --data_dir=data     # every game of a suite, caches the sweep reads

The flags map one to one onto `offline_moe.data.ingest.ingest(...)`, where the sources are
described. With --suite, each game's cache goes where the trainers and the sweep look for it
(DATA_DIR/cache/{Game}_run{run}_{percent}pct) and a cache already there is kept; --source,
if given, is a template with {game} and {run} (default
tfds:rlu_atari_checkpoints_ordered/{game}_run_{run}). The game (and a tfds: config name) is
checked before TensorFlow is imported: a typo costs a second, not TensorFlow's start-up.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from offline_moe.data.common import format_checkpoints
from offline_moe.data.ingest import check_source_game, ingest
from offline_moe.errors import MissingExtraError
from offline_moe.flags_common import define_data_dir

SUITE_SOURCE = "tfds:rlu_atari_checkpoints_ordered/{game}_run_{run}"


def define_flags(fv=None) -> None:
    """The command's flags, in `fv` (default: absl's global FLAGS)."""
    fv = flags.FLAGS if fv is None else fv
    kw = dict(flag_values=fv)
    flags.DEFINE_string(
        "source",
        None,
        "Where to read: tfds:NAME (e.g. tfds:rlu_atari_checkpoints_ordered/Pong_run_1, with "
        "--tfds_dir), rlds_dir:DIR (a prepared TFDS/RLDS dataset directory) or dqn_replay:DIR "
        "(a DQN-Replay replay_logs directory of $store$_*_ckpt.N.gz files). With --suite: a "
        f"template with {{game}} and {{run}} (default {SUITE_SOURCE}).",
        **kw,
    )
    flags.DEFINE_string(
        "tfds_dir",
        None,
        "TFDS data directory of a tfds: source (read; ~/tensorflow_datasets).",
        **kw,
    )
    flags.DEFINE_string(
        "game",
        None,
        "Game name, e.g. Pong. Optional: read from the dataset config or the replay_logs path; "
        "must agree with it when given.",
        **kw,
    )
    flags.DEFINE_integer(
        "run",
        None,
        "Run index 1..5 (metadata; read from the source if unset; --suite: 1).",
        lower_bound=1,
        **kw,
    )
    flags.DEFINE_string(
        "checkpoints",
        None,
        "Range of checkpoints to read, e.g. '0-49' or '0-4,10'; default all present.",
        **kw,
    )
    flags.DEFINE_float(
        "percent",
        5.0,
        "Percent in (0, 100] of each checkpoint to keep: the first percent of the episodes of "
        "each TFDS split, or of the transitions of each DQN-Replay checkpoint.",
        lower_bound=0.0,
        upper_bound=100.0,
        **kw,
    )
    flags.DEFINE_enum(
        "sample",
        "prefix",
        ["prefix", "random"],
        "How --percent is drawn from each checkpoint: prefix (the first percent, as Dopamine and "
        "batch_rl read DQN-Replay) or random (whole episodes drawn at random with "
        "--sample_seed until the same budget; the paper says its 5% is 'drawn randomly').",
        **kw,
    )
    flags.DEFINE_integer(
        "sample_seed",
        0,
        "Seed of --sample=random (recorded in meta.json with the sample).",
        lower_bound=0,
        **kw,
    )
    flags.DEFINE_boolean("clip_rewards", True, "Clip rewards to [-1, 1].", **kw)
    flags.DEFINE_string("cache_dir", None, "Replay cache directory (ingest: written).", **kw)
    flags.DEFINE_string(
        "suite",
        None,
        "Ingest every game of this suite (offline_moe.analysis.suites, or Game1,Game2) into "
        "DATA_DIR/cache, keeping caches already there; instead of --cache_dir.",
        **kw,
    )
    define_data_dir(fv)
    flags.DEFINE_boolean("overwrite", False, "Replace an existing output.", **kw)
    flags.DEFINE_boolean(
        "progress",
        True,
        "Show progress on stderr: a live line on a terminal, a line every few seconds in a file.",
        **kw,
    )


def quiet_third_party() -> None:
    """Before TensorFlow is imported: no C++ start-up banner, no oneDNN notice (a user's own
    setting wins), absl logging at WARNING unless --verbosity was given."""
    from absl import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    if "verbosity" not in flags.FLAGS or not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # TFDS logs every dataset it opens at INFO


def suite_jobs(
    suite: str,
    *,
    source: str | None,
    run: int | None,
    percent: float,
    sample: str,
    sample_seed: int,
    data_dir: str,
) -> list[tuple[str, str, str]]:
    """(game, source, cache_dir) of every game of `suite`, the cache where trainers look.

    Raises:
      KeyError: an unknown suite (valid ones named); IngestError: an unknown game.
    """
    from offline_moe.analysis import suites
    from offline_moe.replay.identity import cache_dir_for

    run = 1 if run is None else run
    template = source or SUITE_SOURCE
    jobs = []
    for game in suites.get_suite(suite):
        src = template.format(game=game, run=run)
        check_source_game(src, game)
        identity = dict(game=game, run=run, percent=percent, source=src)
        identity.update(sample=sample, sample_seed=sample_seed)
        jobs.append((game, src, cache_dir_for(identity, data_dir)))
    return jobs


def main(argv) -> None:
    from absl import app

    from offline_moe.flags_common import fail

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    quiet_third_party()
    common = dict(
        tfds_dir=f.tfds_dir,
        checkpoints=f.checkpoints,
        percent=f.percent,
        sample=f.sample,
        sample_seed=f.sample_seed,
        clip_rewards=f.clip_rewards,
        overwrite=f.overwrite,
        progress=f.progress,
    )
    try:
        if f.suite is not None:
            if f.cache_dir is not None or f.game is not None:
                fail("ingest", "--suite names the games and their caches: drop --cache_dir/--game")
            jobs = suite_jobs(
                f.suite, source=f.source, run=f.run, percent=f.percent, sample=f.sample,
                sample_seed=f.sample_seed, data_dir=f.data_dir,
            )  # fmt: skip
            for i, (game, source, cache_dir) in enumerate(jobs, 1):
                if os.path.exists(os.path.join(cache_dir, "meta.json")) and not f.overwrite:
                    print(f"[ingest] {i}/{len(jobs)} {game}: {cache_dir} exists, kept", flush=True)
                    continue
                print(f"[ingest] {i}/{len(jobs)} {game}: {source} -> {cache_dir}", flush=True)
                _ingest_one(source, cache_dir, game=game, run=f.run or 1, **common)
            return
        if f.source is None or f.cache_dir is None:
            fail("ingest", "give --source and --cache_dir (or --suite): --help shows the flags")
        _ingest_one(f.source, f.cache_dir, game=f.game, run=f.run, **common)
    except KeyError as e:  # an unknown suite
        fail("ingest", f"--suite: {e.args[0]}")
    except (ValueError, MissingExtraError) as e:  # IngestError, CacheError: says what to fix
        fail("ingest", str(e))


def _ingest_one(source: str, cache_dir: str, *, tfds_dir, **kwargs) -> None:
    meta = ingest(source, cache_dir, data_dir=tfds_dir, **kwargs)
    ckpts = format_checkpoints(meta["checkpoints"] or [])
    print(
        f"[ingest] wrote {cache_dir}: {meta['num_transitions']:,} transitions, "
        f"{meta['num_episodes']:,} episodes, game {meta['game']}, checkpoints {ckpts}",
        flush=True,
    )


if __name__ == "__main__":
    from offline_moe.flags_common import run_app

    run_app(main, define_flags, prog="ingest", doc=__doc__, argv=sys.argv)
