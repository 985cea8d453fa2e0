"""Command: record real ALE episodes as an RL Unplugged-layout RLDS dataset, or straight into
a replay cache (no TensorFlow: `--cache_dir`).

    python -m offline_moe.record --game=Pong --steps=20000 --num_checkpoints=2 \
        --dataset_dir=data/rlds
    python -m offline_moe.record --game=Pong --steps=20000 --num_checkpoints=2 \
        --cache_dir=data/cache/x

The library, with the protocol, policies and split rules, is `offline_moe.data.record`.
"""

from __future__ import annotations

import re
import sys

import numpy as np

from offline_moe.data import games as games_lib
from offline_moe.data import rlu_format
from offline_moe.data.record import POLICIES, record, record_cache
from offline_moe.errors import MissingExtraError


def define_flags(fv=None) -> None:
    """The command's flags, in `fv` (default: absl's global FLAGS)."""
    from absl import flags

    fv = flags.FLAGS if fv is None else fv
    kw = dict(flag_values=fv)
    flags.DEFINE_string(
        "game",
        "Pong",
        "Game to play: one of the 46 RL Unplugged games, a MinAtar game, or Catch / CatchBoard "
        "(known answers).",
        **kw,
    )
    flags.DEFINE_integer(
        "steps", 10_000, "Total agent steps (transitions) to record.", lower_bound=1, **kw
    )
    flags.DEFINE_enum(
        "policy", "random", list(POLICIES), "Behaviour policy (see module doc).", **kw
    )
    flags.DEFINE_float(
        "epsilon",
        0.1,
        "Random-action probability of --policy=eps_greedy and --policy=scripted.",
        lower_bound=0.0,
        upper_bound=1.0,
        **kw,
    )
    flags.DEFINE_integer(
        "num_checkpoints",
        1,
        "Number of checkpoint_XX splits to spread steps over.",
        lower_bound=1,
        **kw,
    )
    flags.DEFINE_integer(
        "run", 1, "Run index: the config is named {Game}_run_{run}.", lower_bound=1, **kw
    )
    flags.DEFINE_integer(
        "seed", 0, "Seed of ALE (sticky actions) and of the policy.", lower_bound=0, **kw
    )
    flags.DEFINE_string(
        "dataset_dir",
        None,
        "TFDS data directory the RLDS dataset is written into (record: needs TensorFlow).",
        **kw,
    )
    flags.DEFINE_string(
        "cache_dir",
        None,
        "Replay cache directory (record: written instead of a dataset, the cache ingest would "
        "make of it, without TensorFlow).",
        **kw,
    )
    flags.DEFINE_float(
        "percent",
        100.0,
        "With --cache_dir: the first PERCENT% of each split's episodes.",
        lower_bound=0.0,
        upper_bound=100.0,
        **kw,
    )
    flags.DEFINE_integer(
        "workers",
        1,
        "With --cache_dir: processes playing checkpoint splits side by side.",
        lower_bound=1,
        **kw,
    )
    flags.DEFINE_string(
        "name",
        rlu_format.DEFAULT_NAME,
        "Dataset name; the dataset goes to DATASET_DIR/NAME/{Game}_run_{run}/1.1.0.",
        **kw,
    )
    flags.register_validator(
        "name",
        lambda v: re.fullmatch(r"[a-z][a-z0-9_]*", v) is not None,
        "expected a TFDS dataset name (lower case letters, digits, '_'), e.g. rlu_atari_local",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "max_episode_steps",
        None,
        "Per-episode step cap (default: the protocol's 27,000).",
        lower_bound=1,
        **kw,
    )
    flags.DEFINE_boolean(
        "with_clipped", False, "Also write the older schema's clipped_reward fields.", **kw
    )
    flags.DEFINE_boolean("overwrite", False, "Replace an existing output.", **kw)
    flags.register_multi_flags_validator(
        ["dataset_dir", "cache_dir"],
        lambda v: (v["dataset_dir"] is None) != (v["cache_dir"] is None),
        message="give exactly one of --dataset_dir (an RLDS dataset) or --cache_dir (a replay "
        "cache)",
        flag_values=fv,
    )


def main(argv) -> None:
    from absl import app, flags

    from offline_moe.envs.registry import canonical_game
    from offline_moe.flags_common import fail
    from offline_moe.ingest import quiet_third_party

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    quiet_third_party()
    try:  # before ALE, TensorFlow or any file
        games_lib.check_game(canonical_game(f.game), games=games_lib.RECORDABLE_GAMES)
    except ValueError:
        near = games_lib.nearest(f.game, games_lib.RECORDABLE_GAMES)
        hint = f" (did you mean {near!r}?)" if near else ""
        valid = ", ".join(games_lib.RECORDABLE_GAMES)
        fail("record", f"--game: unknown game {f.game!r}{hint}; valid: {valid}")
    try:
        if f.cache_dir is not None:
            meta = record_cache(
                f.game,
                f.steps,
                f.cache_dir,
                percent=f.percent,
                workers=f.workers,
                overwrite=f.overwrite,
                progress=True,
                **_play_args(f),
            )
            print(
                f"[record] wrote {f.cache_dir}: {meta['num_transitions']:,} transitions, "
                f"{meta['num_episodes']:,} episodes of {meta['game']}"
            )
            return
        summary = record(
            f.game,
            f.steps,
            f.dataset_dir,
            with_clipped=f.with_clipped,
            overwrite=f.overwrite,
            progress=True,
            **_play_args(f),
        )
    except (ValueError, FileExistsError, MissingExtraError) as e:
        fail("record", str(e))
    returns = summary["returns"]
    print(
        f"[record] wrote {summary['dataset_dir']}: {summary['steps']:,} steps, "
        f"{len(returns)} episodes "
        f"({summary['terminated_episodes']} terminated), splits {summary['episodes']}, "
        f"mean return {np.mean(returns):.2f}"
    )


def _play_args(f) -> dict:
    return dict(
        policy=f.policy,
        checkpoints=f.num_checkpoints,
        run=f.run,
        seed=f.seed,
        eps=f.epsilon,
        name=f.name,
        max_episode_steps=f.max_episode_steps,
    )


if __name__ == "__main__":
    from offline_moe.flags_common import run_app

    run_app(main, define_flags, prog="record", doc=__doc__, argv=sys.argv)
