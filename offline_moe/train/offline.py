r"""Train CQL / CQL+C51 offline from a replay cache, evaluate in ALE, write a run directory.

The command `python -m offline_moe.train_offline` parses flags and calls
`train_and_evaluate(config, workdir)`. The run directory layout and crash-safety rules are in
`offline_moe.train.rundir`.

Per iteration (the loop of both tracks is `offline_moe.train.loop`; this module is the
offline `Track`): `updates_per_iteration` gradient updates per seed, run as jitted calls of
`scan_steps` fused updates that sample from the DeviceReplay on device; metrics leave the
device every `log_interval` updates and go to metrics.jsonl and the TensorBoard event files at
once, with a progress line (`offline_moe.train.progress`); then (every `eval.interval`
iterations and after the last) an ALE evaluation and representation metrics on a fixed replay
batch, appended to eval.jsonl; then the iteration's checkpoint is saved.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from offline_moe.envs import registry as envs
from offline_moe.envs.evaluate import EvalConfig, evaluate
from offline_moe.envs.frames import stacked_shape
from offline_moe.errors import InputError
from offline_moe.learners import (
    MAX_CPU_UNROLL,
    LearnerConfig,
    effective_scan_steps,
    init_seeds,
    make_act_fn,
    make_features_fn,
    make_learner,
    make_train_fn,
    num_params,
    seed_keys,
)
from offline_moe.learners.core import HostTrainStep
from offline_moe.replay.cache import cache_pin, describe_pin, frame_spec
from offline_moe.replay.host import HostReplay
from offline_moe.replay.identity import cache_dir_for, cache_identity, source_kind
from offline_moe.train import loop
from offline_moe.train import protocol as protocol_lib
from offline_moe.train import rundir as rundir_lib
from offline_moe.train.repr_metrics import representation_metrics

# fold_in tags of a seed's random streams (`train.loop`: the training and evaluation streams
# of both tracks); the representation batch is the same for every run on the same cache.
TRAIN_STREAM, EVAL_STREAM, REPR_STREAM = loop.TRAIN_STREAM, loop.EVAL_STREAM, 2


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Top-level run settings (unpacked from the config; nothing inside jit reads a config).

    Attributes: see `offline_moe.configs.common` for the meaning of every field.
    """

    agent: str
    game: str
    seed: int
    num_seeds: int
    num_iterations: int
    updates_per_iteration: int
    scan_steps: int
    log_interval: int
    cpu_unroll: int
    cache_dir: str
    stack: int | None  # None: the cache's frame_stack (meta.json; the game's)
    replay: str
    repr_batch_size: int
    srank_threshold: float
    max_to_keep: int

    def __post_init__(self):
        if self.num_seeds < 1 or self.num_iterations < 1:
            raise ValueError("config: num_seeds and num_iterations must be >= 1")
        if self.updates_per_iteration % self.scan_steps:
            raise ValueError(
                f"config: updates_per_iteration ({self.updates_per_iteration}) must be a multiple "
                f"of scan_steps ({self.scan_steps})"
            )
        if self.log_interval % self.scan_steps:
            raise ValueError(
                f"config: log_interval ({self.log_interval}) must be a multiple of scan_steps "
                f"({self.scan_steps})"
            )


def default_cache_dir(config: Mapping) -> str:
    """data/cache/{game}_run{run}_{percent}pct (`cache_dir_for`) for DQN-Replay data.

    Raises:
      ValueError: config.data.source is 'record': a recording's cache is named by how it was
        recorded (steps, policy, seed), so it has no default; the message says how to make one.
    """
    d = config["data"]
    if d["source"] == "record":
        raise ValueError(
            "config.data.cache_dir is empty and config.data.source is 'record': a recorded cache "
            "is named by its recording, so there is no default. Make one with `python -m "
            f"offline_moe.local_data --games={config['game']} --steps=3000` (it prints the path, "
            f"e.g. data/cache/{config['game']}_random_3000steps_seed0) and pass "
            "--config.data.cache_dir=PATH"
        )
    identity = {"source": d["source"], "game": config["game"], "run": d["run"],
                "percent": d["percent"], "sample": d.get("sample"),
                "sample_seed": d.get("sample_seed")}  # fmt: skip
    return cache_dir_for(identity)


def check_cache_data(data: Mapping, identity: Mapping, cache_dir: str) -> None:
    """config.data.percent and .source against what the cache's meta.json says it holds.

    A field the cache does not record (null) is not compared.
    """
    held = identity.get("percent")
    if held is not None and float(held) != float(data["percent"]):
        raise ValueError(
            f"config.data.percent is {float(data['percent']):g} but the replay cache "
            f"{cache_dir!r} holds {float(held):g}% of its source ({identity.get('source')}, "
            f"meta.json); pass --config.data.percent={float(held):g}, or point "
            f"config.data.cache_dir at a {float(data['percent']):g}% cache"
        )
    held_sample = identity.get("sample") or "prefix"  # caches before --sample hold prefixes
    if held_sample != data.get("sample", "prefix"):
        raise ValueError(
            f"config.data.sample is {data.get('sample')!r} but the replay cache {cache_dir!r} "
            f"holds a {held_sample!r} sample of its source (meta.json); pass "
            f"--config.data.sample={held_sample} or point config.data.cache_dir at a cache "
            f"ingested with --sample={data.get('sample')} (valid: prefix, random)"
        )
    kind = source_kind(identity)
    if kind is not None and kind != data["source"]:
        raise ValueError(
            f"config.data.source is {data['source']!r} but the replay cache {cache_dir!r} holds "
            f"{kind!r} data (source {identity.get('source')}, meta.json); pass "
            f"--config.data.source={kind} or use another cache (valid sources: tfds, "
            "dqn_replay, record)"
        )


def unpack(config: Mapping) -> tuple[TrainConfig, LearnerConfig, EvalConfig]:
    """Config dict -> frozen dataclasses (the boundary between configs and code)."""
    learner_block = dict(config["learner"])
    if learner_block.get("agent", config["agent"]) != config["agent"]:
        raise ValueError(
            f"config.agent ({config['agent']!r}) and config.learner.agent "
            f"({learner_block['agent']!r}) disagree"
        )
    learner_block["agent"] = config["agent"]
    tc = TrainConfig(
        agent=config["agent"],
        game=config["game"],
        seed=int(config["seed"]),
        num_seeds=int(config["num_seeds"]),
        num_iterations=int(config["num_iterations"]),
        updates_per_iteration=int(config["updates_per_iteration"]),
        scan_steps=int(config["scan_steps"]),
        log_interval=int(config["log_interval"]),
        # Runs from before the option unrolled up to MAX_CPU_UNROLL updates per call on CPU.
        cpu_unroll=int(config.get("cpu_unroll", MAX_CPU_UNROLL)),
        cache_dir=config["data"]["cache_dir"] or default_cache_dir(config),
        stack=None if config["data"].get("stack") is None else int(config["data"]["stack"]),
        replay=str(config["data"].get("replay", "auto")),  # runs from before the option: auto
        repr_batch_size=int(config["repr"]["batch_size"]),
        srank_threshold=float(config["repr"]["srank_threshold"]),
        max_to_keep=int(config["checkpoint"]["max_to_keep"]),
    )
    return tc, LearnerConfig.from_config(learner_block), EvalConfig.from_config(config["eval"])


def preflight(config: Mapping) -> None:
    """The checks of a new run's config that need no data, made before its run directory is
    created: agent, game and torso (`configs.check`), the unpacked fields, and that the replay
    cache exists (or is shipped; `build` unpacks it).

    Raises:
      InputError: what is wrong and what to do.
    """
    from offline_moe.configs.check import check_config
    from offline_moe.data.shipped import SHIPPED_DIR

    config = _to_dict(config)
    check_config(config)
    try:
        tc, _, _ = unpack(config)
    except ValueError as e:
        raise InputError(str(e)) from None
    shipped = os.path.join(SHIPPED_DIR, os.path.basename(os.path.normpath(tc.cache_dir)) + ".npz")
    if not os.path.isdir(tc.cache_dir) and not os.path.isfile(shipped):
        raise InputError(
            f"config.data.cache_dir: replay cache {os.path.abspath(tc.cache_dir)!r} not found; "
            f"make it with `offline-moe ingest ... --cache_dir={tc.cache_dir}` or `offline-moe "
            f"local_data --games={tc.game}` (docs/data.md), or pass --config.data.cache_dir=PATH"
        )


def _to_dict(config: Any) -> dict:
    if hasattr(config, "to_dict"):
        return config.to_dict()
    return json.loads(json.dumps(config))


_log = rundir_lib.printer("train_offline")


def _mean_over_calls(pending: list[dict]) -> dict[str, np.ndarray]:
    """Averages fetched per-call metrics ([S] or [S, n] each) over calls."""
    fetched = jax.device_get(pending)
    return {k: np.mean(np.stack([m[k] for m in fetched]), axis=0) for k in fetched[0]}


def obs_spec(cache_meta: Mapping, stack: int) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of one agent observation of `stack` frames of the cache's layout."""
    shape, dtype, _ = frame_spec(cache_meta)
    return stacked_shape(shape, stack), dtype


def check_frames(tc: TrainConfig, game: str, cache_meta: Mapping) -> int:
    """The frame stack of the run (config.data.stack, else the cache's frame_stack), after
    checking that the cache's frames are what the evaluation env returns."""
    shape, dtype, stack = frame_spec(cache_meta)
    env_shape, env_dtype, _ = envs.observation_spec(game)
    if (tuple(shape), dtype) != (tuple(env_shape), env_dtype):
        raise ValueError(
            f"replay cache {tc.cache_dir!r} holds {dtype} {list(shape)} frames (meta.json "
            f"frame_shape, frame_dtype) but {game} returns {env_dtype} {list(env_shape)} frames; "
            "the cache is from another game: re-ingest it or set config.game"
        )
    return stack if tc.stack is None else tc.stack


def build(config: Mapping, log=_log):
    """Builds (train config, learner, replay, torso meta) for a config dict.

    The memory plan (`offline_moe.replay.memory`) is made and logged before the cache is
    loaded; a cache that does not fit is refused then, naming the sizes and the options.
    """
    from offline_moe.data.shipped import restore_if_shipped
    from offline_moe.networks import make_torso, torso_spec
    from offline_moe.replay import memory
    from offline_moe.replay.cache import load_cache, read_meta
    from offline_moe.replay.device import DeviceReplay

    tc, lc, ec = unpack(config)
    if not os.path.isdir(tc.cache_dir) and not restore_if_shipped(tc.cache_dir):
        raise FileNotFoundError(
            f"replay cache {tc.cache_dir!r} not found (config.data.cache_dir). Create it with "
            f"`python -m offline_moe.ingest ... --cache_dir={tc.cache_dir}` (see docs/data.md) "
            "or run `./run.sh` for a small locally recorded dataset."
        )
    # Checked before the first update, not at the first evaluation: the evaluation game and
    # its action count, which the cache's actions must lie in (content checked on load).
    try:
        game = envs.canonical_game(tc.game)
        game_actions = envs.num_actions(game, ec.protocol)
    except ValueError as e:
        raise ValueError(f"config.game / config.eval.protocol: {e}") from None
    # The game first: a cache of another game would otherwise be refused for its action count
    # (or its frames) without naming either game.
    cache_game = read_meta(tc.cache_dir).get("game")
    if cache_game and str(cache_game).replace("_", "").lower() != game.lower():
        raise ValueError(
            f"config.game is {tc.game!r} but the replay cache {tc.cache_dir!r} holds {cache_game!r}"
        )
    arrays, cache_meta = load_cache(tc.cache_dir, mmap=True, num_actions=game_actions)
    tc = dataclasses.replace(tc, stack=check_frames(tc, game, cache_meta))
    clipped = cache_meta.get("clip_rewards")
    if clipped is not None and bool(clipped) != bool(config["data"]["clip_rewards"]):
        raise ValueError(
            f"config.data.clip_rewards is {config['data']['clip_rewards']} but the replay cache "
            f"{tc.cache_dir!r} was ingested with clip_rewards={clipped}; re-ingest or change "
            "the config"
        )
    check_cache_data(config["data"], cache_identity(cache_meta), tc.cache_dir)
    torso_name, torso_kwargs = torso_spec(config["torso"])
    if torso_kwargs.get("noisy"):
        raise ValueError(
            "config.torso.noisy=True: the offline agents (cql, cql_c51) act and learn without "
            "noisy layers; noisy torsos are for DER (offline_moe/configs/der.py)"
        )
    torso = make_torso(torso_name, **torso_kwargs)
    learner = make_learner(lc, torso, game_actions)
    plan = memory.plan_memory(
        int(cache_meta["num_rows"]),
        replay=tc.replay,
        state_bytes=memory.state_bytes(learner, tc.num_seeds, *obs_spec(cache_meta, tc.stack)),
        num_seeds=tc.num_seeds,
        cache_dir=tc.cache_dir,
        frame_bytes=arrays["observation"][0].nbytes,
    )
    log(plan.describe())
    cls = DeviceReplay if plan.replay == "device" else HostReplay
    replay = cls.load(
        tc.cache_dir, stack=tc.stack, n_step=lc.n_step, gamma=lc.gamma, num_actions=game_actions
    )
    torso_meta = {"name": torso_name, "kwargs": torso_kwargs}
    return tc, lc, ec, learner, replay, torso_meta


def run_protocol(config: Mapping, tc: TrainConfig, ec: EvalConfig, meta: Mapping, torso_meta):
    """The run's protocol block (`train.protocol.protocol_block`): the data the cache holds (its
    meta.json identity), the torso, the update budget and the evaluation settings."""
    from offline_moe.envs.registry import env_protocol

    identity = cache_identity(meta)
    percent = identity["percent"] if identity["percent"] is not None else config["data"]["percent"]
    protocol = env_protocol(tc.game, ec.protocol)
    return protocol_lib.protocol_block(
        track="offline",
        agent=tc.agent,
        game=tc.game,
        data={
            "source": source_kind(identity) or config["data"]["source"],
            "percent": percent,
            "cache": identity,
        },
        encoder=torso_meta["kwargs"].get("encoder"),
        torso=torso_meta,
        budget={
            "iterations": tc.num_iterations,
            "steps_per_iteration": tc.updates_per_iteration,
            "unit": "updates",
        },
        evaluation={
            "protocol": ec.protocol,
            "epsilon": ec.epsilon,
            "max_episode_steps": ec.max_episode_steps,
            "standard_max_episode_steps": protocol.max_episode_steps,
            "min_steps": ec.steps,
            "episodes": None,
            "interval": ec.interval,
        },
        sticky_actions=protocol.sticky_action_prob,
    )


def train_and_evaluate(
    config: Any,
    workdir: str,
    *,
    max_iterations: int | None = None,
    stop_at: float | None = None,
    log=_log,
) -> dict | None:
    """Trains (or resumes) the run in `workdir`; returns summary.json's content when done.

    Args:
      config: ConfigDict or dict (see `offline_moe.configs.common`), or None to resume from
        workdir/config.json.
      workdir: run directory (see `offline_moe.train.rundir`; `rundir.open_run` is the
        preamble: lock, config comparison, build, then inputs.json and config.json).
      max_iterations: stop after this many iterations in THIS call (checkpointed, no summary);
        a later call resumes. For job schedulers with time limits, and for tests.
      stop_at: a `time.time()` deadline: stop (checkpointed, no summary) after the first
        iteration after which another one, as long as the last, would end past it. For a
        machine lent for minutes (`bench device`); a later call resumes.
      log: progress printer.

    Returns:
      The summary dict, or None if stopped by `max_iterations` or `stop_at` before the end.
    """
    config = None if config is None else _to_dict(config)
    with open_run(workdir, config, log=log) as run:
        if run.finished:
            return run.summary
        return loop.run_iterations(
            run, OfflineTrack(run, log), max_iterations=max_iterations, stop_at=stop_at, log=log
        )


def open_run(workdir: str, config: dict | None, *, log=_log):
    """The run-directory preamble (`rundir.open_run`) with this track's build; the run pins
    its replay cache (path, fingerprint and identity in inputs.json)."""

    def build_pinned(cfg: dict):
        built = build(cfg, log=log)
        return built, {"cache": cache_pin(built[0].cache_dir, built[4].meta)}

    return rundir_lib.open_run(
        workdir,
        config,
        build=build_pinned,
        describe_input=describe_pin,
        max_to_keep=lambda cfg: int(cfg["checkpoint"]["max_to_keep"]),
        log=log,
    )


class OfflineTrack:
    """The offline track's parts of the iteration loop (`offline_moe.train.loop.Track`):
    fused update calls on the replay, evaluation in the game plus representation metrics on a
    fixed replay batch, the seeds' TrainState in each checkpoint."""

    name, unit = "offline", "updates"

    def __init__(self, run: rundir_lib.Run, log):
        self.config = run.config
        tc, lc, ec, learner, replay, torso_meta = run.built
        self.tc, self.ec, self.replay, self.torso_meta = tc, ec, replay, torso_meta
        self.num_iterations, self.seed, self.num_seeds = tc.num_iterations, tc.seed, tc.num_seeds
        self.total_steps = tc.num_iterations * tc.updates_per_iteration
        self.eval_interval = ec.interval
        obs0 = jnp.zeros((1, *replay.obs_shape), frame_spec(replay.meta)[1])
        self.state = init_seeds(learner, seed_keys(tc.seed, tc.num_seeds, TRAIN_STREAM), obs0)
        self.n_params = num_params(jax.tree.map(lambda x: x[0], self.state.params))
        self.scan_steps = effective_scan_steps(tc.scan_steps, tc.cpu_unroll)  # smaller on CPU
        if isinstance(replay, HostReplay):
            self.train_step = HostTrainStep(
                learner, replay, self.state, batch_size=lc.batch_size, num_steps=self.scan_steps
            )
        else:
            train_fn = make_train_fn(learner, lc.batch_size, self.scan_steps)
            self.train_step = lambda state: train_fn(state, replay)
        self.act_fn = make_act_fn(learner)
        self.features_fn = make_features_fn(learner)
        repr_key = jax.random.fold_in(jax.random.PRNGKey(0), REPR_STREAM)
        self.repr_batch = replay.sample(repr_key, tc.repr_batch_size)
        log(
            f"{tc.agent} on {tc.game}: torso {torso_meta['name']} ({self.n_params:,} params), "
            f"{tc.num_seeds} seed(s), {replay.num_valid:,} transitions in {tc.cache_dir}; "
            f"{tc.num_iterations} x {tc.updates_per_iteration:,} updates, K={self.scan_steps}"
        )

    def protocol(self) -> dict:
        return run_protocol(self.config, self.tc, self.ec, self.replay.meta, self.torso_meta)

    def restore(self, rd: rundir_lib.RunDir, iteration: int) -> dict:
        self.state, meta = rd.restore_checkpoint(self.state, iteration)
        return meta

    def step_at(self, it: int) -> int:
        return (it + 1) * self.tc.updates_per_iteration

    def train(self, it: int):
        tc, k = self.tc, self.scan_steps
        calls = tc.updates_per_iteration // k
        pending: list[dict] = []
        for call in range(calls):
            self.state, m = self.train_step(self.state)
            pending.append(m)
            done = (call + 1) * k
            if done % tc.log_interval == 0 or call == calls - 1:
                metrics = _mean_over_calls(pending)  # blocks: the only device -> host copy
                n = len(pending) * k
                yield loop.Block(
                    step=it * tc.updates_per_iteration + done,
                    steps=n,
                    updates=n,
                    metrics={k_: v.tolist() for k_, v in metrics.items()},
                    check={"loss": metrics["loss"]},
                )
                pending = []

    def evaluate(self, it: int) -> dict:
        tc, s_ = self.tc, self.tc.num_seeds
        keys, env_seeds = loop.eval_seeds(tc.seed, s_, it)
        result = evaluate(
            self.act_fn,
            self.state.params,
            game=tc.game,
            cfg=self.ec,
            keys=keys,
            env_seeds=env_seeds,
            stack=tc.stack,
        )
        out = self.features_fn(self.state.params, self.repr_batch["obs"])
        reprs = [
            representation_metrics(
                out["features"][s],
                {k: v[s] for k, v in out["aux"].items()},
                srank_threshold=tc.srank_threshold,
            )
            for s in range(s_)
        ]
        for key in reprs[0]:
            result[f"repr/{key}"] = [r[key] for r in reprs]
        return result

    def checkpoint(self, it: int) -> tuple[Any, dict]:
        tc = self.tc
        return self.state, {
            "agent": tc.agent,
            "game": tc.game,
            "num_seeds": tc.num_seeds,
            "seed": tc.seed,
            "torso": self.torso_meta,
            "num_actions": self.replay.num_actions,
            "params": self.n_params,
        }

    def summary(self) -> dict:
        tc = self.tc
        return {"agent": tc.agent, "game": tc.game, "torso": self.torso_meta,
                "updates": self.total_steps, "params": self.n_params}  # fmt: skip

    def close(self) -> None:
        if isinstance(self.train_step, HostTrainStep):
            self.train_step.close()  # the prefetch thread
