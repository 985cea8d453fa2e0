"""Ingest offline Atari data into a replay cache.

Sources:
  tfds:NAME        a TFDS RLDS dataset by name, e.g. `tfds:rlu_atari_checkpoints_ordered/Pong_run_1`
                   (or `rlu_atari/Pong_run_1`, or `rlu_atari_local/Pong_run_1` from
                   `offline_moe.record`), read from `--tfds_dir`.
  rlds_dir:DIR     any prepared TFDS/RLDS dataset directory with the RL Unplugged Atari step
                   features (`tfds.builder_from_directory`).
  dqn_replay:DIR   the original DQN-Replay logs, `.../{Game}/{run}/replay_logs/`.

The command is `python -m offline_moe.ingest`; its flags map one to one onto `ingest(...)`. Only the
`tfds:` and `rlds_dir:` sources import TensorFlow (lazily, in `offline_moe.data`).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterable, Iterator

import numpy as np

from offline_moe.data import games as games_lib
from offline_moe.data.common import (
    Episode,
    check_percent,
    check_sample,
    format_checkpoints,
    parse_checkpoints,
    random_episodes,
)
from offline_moe.errors import CacheError, CacheWriteError, IngestError
from offline_moe.replay.cache import row_bytes
from offline_moe.replay.cache_writer import CacheWriter

SOURCE_KINDS = ("tfds", "rlds_dir", "dqn_replay")


def parse_source(source: str) -> tuple[str, str]:
    """'tfds:NAME' -> ('tfds', 'NAME'); raises IngestError on other forms."""
    kind, sep, rest = str(source).partition(":")
    if not sep or kind not in SOURCE_KINDS or not rest:
        raise IngestError(
            f"--source: expected tfds:NAME, rlds_dir:DIR or dqn_replay:DIR, got {source!r}"
        )
    return kind, os.path.expanduser(rest) if kind != "tfds" else rest


# TFDS datasets of the public RL Unplugged Atari data: configs {Game}_run_{1..5} of the 46 games.
PUBLIC_TFDS = ("rlu_atari", "rlu_atari_checkpoints", "rlu_atari_checkpoints_ordered")
_CONFIG_RE = re.compile(r"^(?P<game>[A-Za-z]+)_run_(?P<run>\d+)$")


def check_source_game(source: str, game: str | None = None) -> None:
    """Checks the game of a source (a tfds: config name, --game) before anything is opened.

    Cheap and without TensorFlow, so a typo ends at once: a tfds: config of the public data
    must be {Game}_run_{1..5} of the 46 RL Unplugged games (others: a recordable game).

    Raises:
      IngestError: an unknown game or config, naming the nearest valid name.
    """
    kind, name = parse_source(source)
    games, label = games_lib.RECORDABLE_GAMES, "RL Unplugged (or known-answer, MinAtar)"
    if kind == "dqn_replay":
        games, label = games_lib.DQN_REPLAY_GAMES + games_lib.MINATAR_GAMES, "DQN-Replay"
    if kind == "tfds" and "/" in name:
        dataset, config = name.split("/", 1)
        config = config.split(":")[0]  # a version may follow
        public = dataset in PUBLIC_TFDS
        m = _CONFIG_RE.match(config)
        if m is None:
            raise IngestError(
                f"--source: TFDS config {config!r} of {dataset} is not {{Game}}_run_{{N}} "
                "(e.g. Pong_run_1)"
            )
        valid = games_lib.RLU_GAMES if public else games
        try:
            games_lib.check_game(
                m["game"], games=valid, option="--source", label="RL Unplugged" if public else label
            )
        except ValueError as e:
            raise IngestError(str(e)) from None
        if public and int(m["run"]) not in games_lib.RUNS:
            raise IngestError(f"--source: run {m['run']} of {config}; the runs are 1..5")
    if game is not None:
        try:
            games_lib.check_game(game, games=games, label=label)
        except ValueError as e:
            raise IngestError(str(e)) from None


def env_num_actions(game: str) -> int | None:
    """Actions of `game` under the DQN-Replay protocol, from offline_moe.envs (None if n/a;
    Catch: 3)."""
    try:
        from offline_moe.envs import num_actions
    except ImportError:
        return None
    try:
        return int(num_actions(game, protocol="dqn_replay"))
    except Exception:  # noqa: BLE001 (unknown to the env module: fall back to the data)
        return None


def env_frame_layout(game: str | None) -> dict:
    """CacheWriter's frame_shape, frame_dtype and frame_stack for `game` (the env's
    `observation_spec`: MinAtar bool [10, 10, C] unstacked); Atari's for a game the env
    registry does not know. The writer refuses episodes whose frames differ."""
    try:
        from offline_moe.envs import observation_spec

        shape, dtype, stack = observation_spec(game) if game else ((84, 84), np.uint8, 4)
    except (ImportError, ValueError):  # unknown to the env registry: RLU Atari frames
        return {}
    return {"frame_shape": shape, "frame_dtype": dtype, "frame_stack": stack}


class Progress:
    """Progress on stderr: transitions, transitions/s, checkpoint.

    On a terminal one live line (redrawn with a carriage return every `interval` s); into a
    file or pipe a plain line every `file_interval` s, so a captured log reads line by line.
    """

    def __init__(
        self,
        total: int | None,
        enabled: bool = True,
        interval: float = 0.5,
        *,
        name: str = "ingest",
        file_interval: float = 10.0,
    ):
        self.total = total
        self.enabled = enabled
        self.live = sys.stderr.isatty()
        self.interval = interval if self.live else file_interval
        self.name = name
        self.count = 0
        self.start = time.perf_counter()
        self._last = self.start
        self.label = ""

    def update(self, transitions: int, label: str = "") -> None:
        self.count += transitions
        self.label = label or self.label
        now = time.perf_counter()
        if self.enabled and now - self._last >= self.interval:
            self._last = now
            self._draw(now)

    def rate(self) -> float:
        return self.count / max(time.perf_counter() - self.start, 1e-9)

    def _draw(self, now: float, end: str = "") -> None:
        rate = self.count / max(now - self.start, 1e-9)
        if self.total:
            frac = min(self.count / self.total, 1.0)
            bar = "#" * int(frac * 30)
            head = f"[{bar:<30s}] {self.count:,}/{self.total:,}"
        else:
            head = f"{self.count:,}"
        line = f"[{self.name}] {head} transitions  {rate:,.0f}/s  {self.label}"
        if self.live:
            sys.stderr.write("\r" + line.ljust(100) + end)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.perf_counter(), end="\n")


def _clip(episode: Episode, clip_rewards: bool) -> Episode:
    if clip_rewards:
        episode.rewards = np.clip(episode.rewards, -1.0, 1.0).astype(np.float32)
    return episode


def _resolve_game(game: str | None, found: str | None, *, where: str, games, label) -> str | None:
    if game is not None:
        try:
            games_lib.check_game(game, games=games, label=label)
        except ValueError as e:
            raise IngestError(str(e)) from e
        if found is not None and found != game:
            raise IngestError(f"--game={game} disagrees with {where}, which holds {found}")
        return game
    if found is not None:
        try:
            games_lib.check_game(found, games=games, option=where, label=label)
        except ValueError as e:
            raise IngestError(str(e)) from e
    return found


def _tfds_plan(kind, name, *, data_dir, game, run, checkpoints, percent, sample, sample_seed):
    from offline_moe.data import tfds_source

    builder = tfds_source.open_builder(kind, name, data_dir)
    tfds_source.check_features(builder)
    found_game, found_run = tfds_source.builder_game_run(builder)
    game = _resolve_game(
        game,
        found_game,
        where=f"the dataset config of {name}",
        games=games_lib.RECORDABLE_GAMES,
        label="RL Unplugged (or known-answer)",
    )
    if run is not None and found_run is not None and int(run) != found_run:
        raise IngestError(
            f"--run={run} disagrees with the dataset config of {name} (run {found_run})"
        )
    run = found_run if run is None else int(run)
    splits = tfds_source.select_splits(builder, checkpoints)
    split_plan = tfds_source.plan(builder, splits, percent)
    chosen = [c for _, c, _, _ in split_plan if c is not None] or checkpoints
    drawn = None
    if sample == "random":  # n whole episodes of each split, drawn with the recorded seed
        drawn = {
            split: set(random_episodes(np.ones(total), n, sample_seed, i if c is None else c))
            for i, (split, c, n, total) in enumerate(split_plan)
        }

    def episodes() -> Iterator[Episode]:
        yield from tfds_source.iter_episodes(
            builder, split_plan, checkpoints=checkpoints, drawn=drawn
        )

    from offline_moe.replay.identity import description_identity

    detail = {
        # What a recording by offline_moe.record states about itself (None for public data).
        "recorder": description_identity(builder.info.description),
        "dataset": builder.info.name,
        "config": builder.info.config_name,
        "version": str(builder.info.version),
        "data_dir": os.fspath(builder.data_dir),
        "episodes_per_split": {s: [n, total] for s, _, n, total in split_plan},
    }
    return game, run, chosen, None, episodes, detail


def _dqn_plan(replay_dir, *, game, run, checkpoints, percent, sample, sample_seed):
    from offline_moe.data import dqn_replay

    present = dqn_replay.list_checkpoints(replay_dir)
    if checkpoints is None:
        if not present:
            raise IngestError(
                f"--source dqn_replay:{replay_dir}: no $store$_observation_ckpt.N.gz files"
            )
        checkpoints = present
    else:
        missing = [c for c in checkpoints if c not in present]
        if missing:
            raise IngestError(
                f"--checkpoints: checkpoint(s) {missing} not in {replay_dir} (no "
                f"$store$_observation_ckpt.N.gz); present: {format_checkpoints(present) or 'none'}"
            )
    # Dopamine layout .../{Game}/{run}/replay_logs: read game and run from the path if unset.
    parts = os.path.normpath(os.path.abspath(replay_dir)).split(os.sep)
    path_game = path_run = None
    if len(parts) >= 3 and parts[-1] == "replay_logs" and parts[-2].isdigit():
        path_game, path_run = parts[-3], int(parts[-2])
    # DQN-Replay's 60 Atari games, or a MinAtar game's logs from `offline_moe.configs.dqn`.
    known = games_lib.DQN_REPLAY_GAMES + games_lib.MINATAR_GAMES
    if game is None and path_game in known:
        game = path_game
    elif game is not None:
        game = _resolve_game(game, None, where="", games=known, label="DQN-Replay")
    if run is None:
        run = path_run
    layout = env_frame_layout(game) if game in games_lib.MINATAR_GAMES else {}
    plans = [dqn_replay.checkpoint_plan(replay_dir, c, percent, layout) for c in checkpoints]
    if sample == "random":
        plans = [dqn_replay.random_plan(replay_dir, p, sample_seed) for p in plans]
    total = sum(p["keep"] for p in plans)
    read = dqn_replay.iter_random_episodes if sample == "random" else None
    read = read or dqn_replay.iter_checkpoint_episodes

    def episodes() -> Iterator[Episode]:
        for p in plans:
            yield from read(replay_dir, p)

    detail = {"transitions_per_checkpoint": {str(p["checkpoint"]): p["keep"] for p in plans}}
    return game, run, checkpoints, total, episodes, detail


def ingest(
    source: str,
    out: str,
    *,
    data_dir: str | None = None,
    game: str | None = None,
    run: int | None = None,
    checkpoints: str | Iterable[int] | None = None,
    percent: float = 5.0,
    sample: str = "prefix",
    sample_seed: int = 0,
    clip_rewards: bool = True,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Reads `source` and writes the replay cache `out`; returns the cache's meta dict.

    Args:
      source: 'tfds:NAME', 'rlds_dir:DIR' or 'dqn_replay:DIR' (see module docstring).
      out: cache directory to create (atomically; see `offline_moe.replay.cache`).
      data_dir: TFDS data dir for 'tfds:' sources.
      game: the game; checked against the 46 RLU games and Catch (60 for DQN-Replay). Read from the
        dataset config / the replay-log path when not given, and must agree with it if given.
      run: run index (metadata; checked against the dataset config).
      checkpoints: '0-49'-style ranges or a list of ints; default all present.
      percent: in (0, 100]: the first `percent`% of the episodes of each TFDS checkpoint
        split, or of the transitions of each DQN-Replay checkpoint.
      sample: 'prefix' (the first `percent`%, as Dopamine and batch_rl read DQN-Replay) or
        'random': whole episodes of each checkpoint drawn at random (seeded by `sample_seed`
        and the checkpoint) until the same budget is reached, so every stack and n-step
        window of a kept transition is the one in the data (`data.common.random_episodes`).
      sample_seed: the seed of `sample='random'` (recorded in meta.json).
      clip_rewards: clip rewards to [-1, 1] (recorded in meta.json).
      overwrite: replace an existing cache at `out`.
      progress: draw a progress line with transitions/s on stderr.

    Returns:
      The meta dict written to `out/meta.json`.

    Raises:
      IngestError: bad option, unknown game, missing split / checkpoint / file, corrupt or
        truncated data, arrays of unequal length, or an empty result. Nothing is written.
      CacheError: `out` exists and `overwrite` is false.
    """
    percent = check_percent(percent)
    sample = check_sample(sample)
    kind, name = parse_source(source)
    check_source_game(source, game)  # before TensorFlow is imported
    out = os.path.expanduser(os.fspath(out))
    data_dir = os.path.expanduser(os.fspath(data_dir)) if data_dir else data_dir
    checkpoints = parse_checkpoints(
        checkpoints if isinstance(checkpoints, str | None) else list(checkpoints)
    )
    if os.path.exists(out) and not overwrite:
        raise CacheError(f"--cache_dir: {out} already exists; pass --overwrite to replace it")
    what = dict(game=game, run=run, checkpoints=checkpoints, percent=percent)
    what.update(sample=sample, sample_seed=sample_seed)
    if kind == "dqn_replay":
        game, run, checkpoints, total, episodes, detail = _dqn_plan(name, **what)
    else:
        game, run, checkpoints, total, episodes, detail = _tfds_plan(
            kind, name, data_dir=data_dir, **what
        )
    return write_episodes(
        out,
        episodes(),
        source=source,
        game=game,
        run=run,
        checkpoints=checkpoints,
        percent=percent,
        sample=sample,
        sample_seed=sample_seed,
        clip_rewards=clip_rewards,
        detail=detail,
        overwrite=overwrite,
        progress=Progress(total, enabled=progress),
    )


def write_episodes(
    out: str,
    episodes: Iterable[Episode],
    *,
    source: str,
    game: str | None,
    run: int | None,
    checkpoints: list[int] | None,
    percent: float,
    sample: str = "prefix",
    sample_seed: int = 0,
    clip_rewards: bool = True,
    detail: dict,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> dict:
    """Writes `episodes` into the replay cache `out` with ingest's meta; returns the meta.

    The one writer of every cache made from episodes: `ingest` (from TFDS / DQN-Replay) and
    `offline_moe.data.record.record_cache` (straight from the emulator, no TensorFlow), so
    both give the same cache, identity included, for the same episodes. `detail` is the
    source's own account (`source_detail`); its 'recorder' entry, when a recording states
    one (`data.record.description_identity`), gives the policy, steps and seed.
    """
    detail = dict(detail)
    num_actions = env_num_actions(game) if game else None
    recorded = detail.pop("recorder", None) or {}
    meta = {
        "source": source,
        "game": game,
        "run": run,
        "checkpoints": list(checkpoints) if checkpoints is not None else None,
        "percent": percent,
        "sample": sample,  # prefix | random (whole episodes drawn per checkpoint)
        "sample_seed": int(sample_seed) if sample == "random" else None,
        "clip_rewards": bool(clip_rewards),
        "num_actions": num_actions,
        "policy": recorded.get("policy"),
        "steps": recorded.get("steps"),
        "seed": recorded.get("seed"),
        "source_detail": detail,
    }
    bar = progress or Progress(None, enabled=False)
    max_action = -1
    writer = CacheWriter(out, meta=meta, overwrite=overwrite, **env_frame_layout(game))
    try:
        for episode in episodes:
            episode = _clip(episode, clip_rewards)
            max_action = max(max_action, int(episode.actions.max()))
            if num_actions is not None and max_action >= num_actions:
                raise IngestError(
                    f"{source}: checkpoint {episode.checkpoint} holds action {max_action}, but "
                    f"{game} has {num_actions} actions under the DQN-Replay protocol"
                )
            writer.add_episode(
                episode.observations,
                episode.actions,
                episode.rewards,
                terminated=episode.terminated,
                final_observation=episode.final_observation,
                context=episode.context,
            )
            bar.update(episode.num_transitions, label=f"checkpoint {episode.checkpoint}")
        if writer.num_transitions == 0:
            raise IngestError(
                f"{source}: empty result: no transitions at --percent={percent} of checkpoints "
                f"{format_checkpoints(list(checkpoints or [])) or 'all'}"
            )
        if num_actions is None:  # no action count known for this game: infer it from the data
            writer.update_meta(num_actions=max_action + 1)
        writer.close()
    except BaseException as e:
        writer.abort()  # removes the temporary directory, even on a full disk
        bar.close()
        if isinstance(e, CacheWriteError):
            raise CacheError(f"{e}{_space_needed(bar.total, writer)}") from e
        raise
    bar.close()
    from offline_moe.replay.cache import read_meta

    return read_meta(out)


def _space_needed(total: int | None, writer: CacheWriter) -> str:
    """How much space the cache needs (from the planned transitions where they are known)."""
    per_row = row_bytes(writer.frame_shape, writer.frame_dtype)
    if total:
        return (
            f"; the whole cache needs about {total * per_row:,} bytes ({total:,} transitions "
            f"x {per_row:,} bytes), {writer.bytes_written:,} were written"
        )
    return f"; {writer.bytes_written:,} bytes were written before it ({per_row:,} per row)"
