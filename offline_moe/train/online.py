"""Online training on the Atari 100k protocol: DER and DrQ(eps) with any torso.

The command is `python -m offline_moe.train_online` (flags: --config, --workdir).

Protocol (Dopamine's DataEfficientAtariRunner, dopamine/labs/atari_100k/eval_run_experiment.py):
no sticky actions, 0..29 random no-ops at each reset, a life loss is terminal for learning only
(the game and its return go on, the frame stack restarts), rewards clipped to [-1, 1] for
learning only, 27k agent-step episode cap, 100k agent steps as 10 iterations of 10k,
evaluation over 100 episodes (one per parallel environment) with eps = 0.001 and the noisy
head's noise off.

Each agent step is one jitted call (store + update + act, `offline_moe.learners.online`) plus
the emulator step. Seeds train side by side (`config.num_seeds`), each with its own emulator.

Run directory (`offline_moe.train.rundir`): config.json, metrics.jsonl, eval.jsonl, checkpoints/
(the whole OnlineState incl. the replay, plus the emulators' exact states in the JSON meta),
summary.json. The iteration loop is `offline_moe.train.loop`, shared with the offline track
(this module is the online `Track`): a run stopped at any moment resumes from its last
iteration checkpoint with `--workdir` alone and ends with the same parameters as an
uninterrupted run; a non-finite loss stops the run and keeps the last good checkpoint.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np

from offline_moe.envs import canonical_game, make_env, observation_spec
from offline_moe.envs import num_actions as env_num_actions
from offline_moe.envs.evaluate import EvalConfig
from offline_moe.envs.evaluate import evaluate as shared_evaluate
from offline_moe.envs.registry import env_protocol
from offline_moe.learners import env_seed, make_act_fn, num_params, online, seed_keys
from offline_moe.networks import torso_spec
from offline_moe.train import loop
from offline_moe.train.protocol import protocol_block
from offline_moe.train.replay_logs import ReplayLog
from offline_moe.train.rundir import Run, RunDir, open_run, printer

# fold_in tags of a seed's random streams, as on the offline track (`train.loop`).
TRAIN_STREAM, EVAL_STREAM = loop.TRAIN_STREAM, loop.EVAL_STREAM


# ---------------------------------------------------------------------------------------------
# Config -> frozen dataclasses.


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The run-loop part of a config (everything that is not the agent's hyper-parameters)."""

    agent: str
    game: str
    protocol: str
    seed: int
    num_seeds: int
    total_steps: int
    iteration_steps: int
    eval: EvalConfig  # `EvalConfig.from_config` of config.eval: num_envs = episodes per seed
    max_episode_steps: int
    log_every: int
    export_replay: str
    replay_logs: bool = False

    @property
    def num_iterations(self) -> int:
        return -(-self.total_steps // self.iteration_steps)


def run_config(config: ml_collections.ConfigDict) -> RunConfig:
    """The run-loop part of a sectioned config (`offline_moe.configs.common.online_config`)."""
    rc = RunConfig(
        agent=config.agent,
        game=config.game,
        protocol=config.env.protocol,
        seed=config.seed,
        num_seeds=config.num_seeds,
        total_steps=config.total_steps,
        iteration_steps=config.iteration_steps,
        eval=EvalConfig.from_config(config.eval, protocol=config.env.protocol),
        max_episode_steps=config.env.max_episode_steps,
        log_every=config.log_interval,
        export_replay=config.export_replay,
        replay_logs=bool(config.get("replay_logs", False)),
    )
    if rc.agent not in online.AGENTS:
        raise ValueError(f"config.agent {rc.agent!r}; valid: {', '.join(online.AGENTS)}")
    return rc


def agent_config(config: ml_collections.ConfigDict, num_actions: int) -> online.OnlineAgentConfig:
    """Unpacks the agent's hyper-parameters (config.learner, .replay, .eval, .torso)."""
    learner = dict(config.learner)
    if learner.pop("agent", config.agent) != config.agent:
        raise ValueError(
            f"config.agent ({config.agent!r}) and config.learner.agent "
            f"({config.learner.agent!r}) disagree"
        )
    name, kwargs = torso_spec(config.torso)
    frame_shape, frame_dtype, stack = observation_spec(config.game)  # the game's frames
    return online.OnlineAgentConfig(
        agent=config.agent,
        num_actions=num_actions,
        stack=stack,
        frame_shape=tuple(frame_shape),
        frame_dtype=frame_dtype.name,
        torso_name=name,
        torso_kwargs=tuple(sorted(kwargs.items())),
        min_replay=config.replay.min_replay,
        prioritized=config.replay.prioritized,
        clip_rewards=config.replay.clip_rewards,
        replay_capacity=config.replay.capacity,
        epsilon_eval=config.eval.epsilon,
        **learner,
    )


@functools.lru_cache(maxsize=8)
def compiled_fns(agent: online.OnlineAgent, num_seeds: int):
    """(init, step, eval_act) jitted functions, cached per agent so repeated runs reuse them."""
    del num_seeds  # the functions are shape-polymorphic in the seed axis
    return online.make_init_fn(agent), online.make_step_fn(agent), make_act_fn(agent.learner)


def init_keys(rc: RunConfig) -> jax.Array:
    """Keys [S, 2] of the run's seeds for `make_init_fn` (the seed rule of both tracks)."""
    return seed_keys(rc.seed, rc.num_seeds, TRAIN_STREAM)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(a.tobytes()).decode("ascii")


# ---------------------------------------------------------------------------------------------
# The actor loop.


@dataclasses.dataclass
class Actors:
    """Host side of the training seeds: one emulator each, and what the next call needs."""

    envs: list
    frame: np.ndarray  # uint8 [S, 84, 84], o_t
    first: np.ndarray  # bool [S]
    reward: np.ndarray  # float32 [S], reward after a_{t-1}
    terminal: np.ndarray  # bool [S], learning terminal after a_{t-1}
    ep_return: np.ndarray  # float64 [S], running unclipped game return
    ep_length: np.ndarray  # int64 [S]
    finished: list  # per seed: returns of games finished since the last log line
    t: int = 0  # agent steps taken (= replay rows written)
    game_starts: list = dataclasses.field(default_factory=list)  # per seed: rows of new games
    game_overs: list = dataclasses.field(default_factory=list)  # per seed: rows ending a game
    log: ReplayLog | None = None  # the iteration's transitions, when the run logs its replay

    @classmethod
    def create(cls, rc: RunConfig, game: str) -> Actors:
        s = rc.num_seeds
        envs = [
            make_env(
                game,
                protocol=rc.protocol,
                seed=env_seed(rc.seed + i, "train"),
                max_episode_steps=rc.max_episode_steps,
            )
            for i in range(s)
        ]
        frame = np.stack([env.reset() for env in envs])
        return cls(
            envs=envs,
            frame=frame,
            first=np.ones(s, bool),
            reward=np.zeros(s, np.float32),
            terminal=np.zeros(s, bool),
            ep_return=np.zeros(s, np.float64),
            ep_length=np.zeros(s, np.int64),
            finished=[[] for _ in range(s)],
            game_starts=[[0] for _ in range(s)],
            game_overs=[[] for _ in range(s)],
        )

    def step(self, actions: np.ndarray) -> None:
        """Steps every emulator; resets finished games; prepares the next call's inputs."""
        for i, env in enumerate(self.envs):
            st = env.step(int(actions[i]))
            if self.log is not None:  # o_t (not yet overwritten), a_t, r_t, game over
                self.log.add(i, self.frame[i], actions[i], st.reward, st.terminated)
            self.reward[i] = st.reward
            self.terminal[i] = st.terminal
            self.ep_return[i] += st.reward
            self.ep_length[i] += 1
            if st.terminated or st.truncated:
                # Row t ended this game; the reset frame becomes row t + 1.
                self.game_starts[i].append(self.t + 1)
                if st.terminated:
                    self.game_overs[i].append(self.t)
                self.finished[i].append(float(self.ep_return[i]))
                self.ep_return[i] = 0.0
                self.ep_length[i] = 0
                self.frame[i] = env.reset()
                self.first[i] = True
            else:
                self.frame[i] = st.obs
                # A life loss (terminal for learning) starts a new learning episode.
                self.first[i] = st.terminal
        self.t += 1

    def snapshot(self) -> dict:
        if self.log is not None and not self.log.empty:
            raise RuntimeError("replay log rows pending at a checkpoint (flush them first)")
        return {
            # The emulators' exact states (for resume); `set_state` checks the game on restore.
            "envs": [env.get_state() for env in self.envs],
            "frame": [_b64(f) for f in self.frame],
            "first": self.first.tolist(),
            "reward": self.reward.tolist(),
            "terminal": self.terminal.tolist(),
            "ep_return": self.ep_return.tolist(),
            "ep_length": self.ep_length.tolist(),
            "finished": self.finished,
            "t": self.t,
            "game_starts": self.game_starts,
            "game_overs": self.game_overs,
        }

    def restore(self, snap: dict) -> None:
        for env, es in zip(self.envs, snap["envs"]):
            env.set_state(es)
        self.frame = np.stack(
            [
                np.frombuffer(base64.b64decode(f), self.frame.dtype).reshape(self.frame.shape[1:])
                for f in snap["frame"]
            ]
        )
        self.first = np.asarray(snap["first"], bool)
        self.reward = np.asarray(snap["reward"], np.float32)
        self.terminal = np.asarray(snap["terminal"], bool)
        self.ep_return = np.asarray(snap["ep_return"], np.float64)
        self.ep_length = np.asarray(snap["ep_length"], np.int64)
        self.finished = [list(x) for x in snap["finished"]]
        self.t = int(snap["t"])
        self.game_starts = [list(x) for x in snap["game_starts"]]
        self.game_overs = [list(x) for x in snap["game_overs"]]


def evaluate(
    act_fn,
    params: Any,
    *,
    game: str,
    rc: RunConfig,
    iteration: int,
    num_episodes: int | None = None,
    epsilon: float | None = None,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(mean unclipped return per seed [S], episodes per seed [S]) of `evaluation_record`."""
    rec = evaluation_record(
        act_fn, params, game=game, rc=rc, iteration=iteration,
        num_episodes=num_episodes, epsilon=epsilon, workers=workers,
    )  # fmt: skip
    return np.asarray(rec["returns"]), np.asarray(rec["episodes"])


def evaluation_record(
    act_fn,
    params: Any,
    *,
    game: str,
    rc: RunConfig,
    iteration: int,
    num_episodes: int | None = None,
    epsilon: float | None = None,
    workers: int | None = None,
) -> dict:
    """Plays `num_episodes` games per seed, one per parallel emulator, noise off.

    The offline track's evaluation (`offline_moe.envs.evaluate.evaluate`: batched emulators
    that stack frames themselves, one jitted act call per step) with a budget of one agent
    step per seed, so each emulator plays exactly its first game to the end; the keys and
    emulator seeds of `loop.eval_seeds`.

    Args:
      act_fn: `learners.core.make_act_fn` of the agent's learner.
      params: online parameters, seeds stacked.
      game, rc: the game and the run config (its `eval` settings are the defaults below).
      iteration: the 0-based iteration after which this evaluation runs.
      num_episodes: games per seed (default: config.eval.episodes).
      epsilon: eps-greedy exploration (default: config.eval.epsilon, the agent's epsilon_eval).
      workers: processes stepping the emulators (0 = this process; same results either way;
        default: config.eval.workers).

    Returns:
      The evaluation's eval.jsonl fields: returns, episodes, agent_steps, episode_returns per
      seed, eval_s, env_steps_per_s. A game that reaches `eval.max_episode_steps` is cut there
      and counted with its return so far.
    """
    given = {"num_envs": num_episodes, "epsilon": epsilon, "workers": workers}
    cfg = dataclasses.replace(rc.eval, **{k: v for k, v in given.items() if v is not None})
    keys, seeds = loop.eval_seeds(rc.seed, rc.num_seeds, iteration)
    return shared_evaluate(act_fn, params, game=game, cfg=cfg, keys=keys, env_seeds=seeds)


def interval_means(sums: dict, count: np.ndarray, prev_sums: dict, prev_count: np.ndarray):
    """Per-seed means of the update metrics since the previous log line.

    Args:
      sums: running metric sums, each [S] or [S, ...] (vector metrics such as expert_usage).
      count: int [S] updates summed so far.
      prev_sums, prev_count: the same at the previous log line.

    Returns:
      dict of [S] / [S, ...] means (zeros when no update happened in between).
    """
    n = np.maximum(np.asarray(count) - np.asarray(prev_count), 1)
    return {
        k: (np.asarray(v) - np.asarray(prev_sums[k])) / n.reshape(-1, *[1] * (np.ndim(v) - 1))
        for k, v in sums.items()
    }


def _host(tree):
    return jax.tree.map(np.asarray, jax.device_get(tree))


def build(config: ml_collections.ConfigDict) -> tuple[RunConfig, str, online.OnlineAgent]:
    """(run config, canonical game name, agent) from a full config."""
    rc = run_config(config)
    game = canonical_game(rc.game)
    num_actions = env_num_actions(game, rc.protocol)
    return rc, game, online.OnlineAgent(agent_config(config, num_actions))


def run_protocol(rc: RunConfig, game: str, cfg: online.OnlineAgentConfig) -> dict:
    """The run's protocol block (`train.protocol.protocol_block`): online interaction, the
    torso, the agent-step budget and the evaluation settings."""
    protocol = env_protocol(game, rc.protocol)
    return protocol_block(
        track="online",
        agent=rc.agent,
        game=game,
        data={"source": "online", "percent": None, "cache": None},
        encoder=dict(cfg.torso_kwargs).get("encoder"),
        torso={"name": cfg.torso_name, "kwargs": dict(cfg.torso_kwargs)},
        budget={
            "iterations": rc.num_iterations,
            "steps_per_iteration": rc.iteration_steps,
            "unit": "agent_steps",
            "updates_per_step": cfg.updates_per_step,
            "update_period": cfg.update_period,
        },
        evaluation={
            "protocol": rc.protocol,
            "epsilon": cfg.epsilon_eval,
            "max_episode_steps": rc.eval.max_episode_steps,
            "standard_max_episode_steps": protocol.max_episode_steps,
            "min_steps": None,
            "episodes": rc.eval.num_envs,
            "interval": rc.eval.interval,
        },
        sticky_actions=protocol.sticky_action_prob,
    )


def restore_state(workdir: str, iteration: int | None = None) -> tuple[online.OnlineState, dict]:
    """The OnlineState (seeds stacked) and meta of a run's checkpoint (default: the latest)."""
    rd = RunDir(workdir)
    rc, _, agent = build(ml_collections.ConfigDict(rd.read_config()))
    init_fn, _, _ = compiled_fns(agent, rc.num_seeds)
    template = init_fn(init_keys(rc))
    try:
        return rd.restore_checkpoint(template, iteration)
    finally:
        rd.close()


def train_and_evaluate(
    config: ml_collections.ConfigDict | None,
    workdir: str,
    *,
    max_iterations: int | None = None,
    log=None,
) -> dict | None:
    """Trains (or resumes) one online run in `workdir`; returns the summary.

    Args:
      config: the full config, or None to resume from `workdir/config.json`.
      workdir: the run directory.
      max_iterations: stop after this many iterations in this call (checkpointed, no summary);
        a later call resumes. For job schedulers with time limits, and for tests.
      log: progress printer (default: `rundir.printer("train_online")`).

    Returns:
      The summary dict, or None if stopped by `max_iterations` before the end (the stop knob
      and return contract of the offline trainer).
    """
    log = log or printer("train_online")

    def build_run(cfg: dict):
        return build(ml_collections.ConfigDict(cfg)), {}  # no cache: nothing else to pin

    given = None if config is None else json.loads(config.to_json())
    # One checkpoint kept: each holds the whole replay (~0.7 GB per seed for a 100k run).
    with open_run(workdir, given, build=build_run, max_to_keep=1, log=log) as run:
        if run.finished:
            return run.summary
        track = OnlineTrack(run, workdir)
        return loop.run_iterations(run, track, max_iterations=max_iterations, log=log)


class OnlineTrack:
    """The online track's parts of the iteration loop (`offline_moe.train.loop.Track`): one
    jitted store + update + act call and one emulator step per agent step, evaluation over
    `eval.episodes` games per seed, the OnlineState (replay included) and the emulators'
    exact states in each checkpoint."""

    name, unit = "online", "agent_steps"

    def __init__(self, run: Run, workdir: str):
        rc, game, agent = run.built
        self.rc, self.game, self.agent, self.workdir = rc, game, agent, workdir
        self.num_iterations, self.total_steps = rc.num_iterations, rc.total_steps
        self.eval_interval, self.seed, self.num_seeds = rc.eval.interval, rc.seed, rc.num_seeds
        self.init_fn, self.step_fn, self.eval_act = compiled_fns(agent, rc.num_seeds)
        self.state = self.init_fn(init_keys(rc))
        self.actors = Actors.create(rc, game)
        if rc.replay_logs:
            self.actors.log = ReplayLog(rc.num_seeds)
        self._mark()
        cfg = agent.config
        self.torso_meta = {"name": cfg.torso_name, "kwargs": dict(cfg.torso_kwargs)}

    def _mark(self) -> None:
        """The metric sums and update count at the last log line."""
        self.marked = (_host(self.state.metric_sums), np.asarray(self.state.metric_count))

    def protocol(self) -> dict:
        return run_protocol(self.rc, self.game, self.agent.config)

    def restore(self, rd: RunDir, iteration: int) -> dict:
        self.state, meta = rd.restore_checkpoint(self.state, iteration)
        self.actors.restore(meta["actors"])
        self._mark()
        return meta

    def step_at(self, it: int) -> int:
        return min((it + 1) * self.rc.iteration_steps, self.rc.total_steps)

    def train(self, it: int):
        rc, actors = self.rc, self.actors
        begin, end = it * rc.iteration_steps, self.step_at(it)
        last = begin
        for t in range(begin, end):
            self.state, actions = self.step_fn(
                self.state,
                actors.frame,
                actors.first,
                actors.reward,
                actors.terminal,
                self.agent.trains_at(t),
            )
            actors.step(np.asarray(actions))
            if (t + 1) % rc.log_every == 0 or t + 1 == end:
                prev_count = int(self.marked[1][0])
                sums, count = _host(self.state.metric_sums), np.asarray(self.state.metric_count)
                means = interval_means(sums, count, *self.marked)
                self.marked = (sums, count)
                record = {"updates": count, "train_episode_returns": actors.finished, **means}
                actors.finished = [[] for _ in range(rc.num_seeds)]
                yield loop.Block(t + 1, t + 1 - last, int(count[0]) - prev_count, record, means)
                last = t + 1

    def evaluate(self, it: int) -> dict:
        params = self.state.train.params
        rec = evaluation_record(self.eval_act, params, game=self.game, rc=self.rc, iteration=it)
        return {**rec, "updates": np.asarray(self.state.train.step)}

    def checkpoint(self, it: int) -> tuple[Any, dict]:
        if self.actors.log is not None:  # before the checkpoint: see `train.replay_logs`
            self.actors.log.flush(self.workdir, self.game, checkpoint=it)
        meta = {"torso": self.torso_meta, "agent": self.rc.agent, "game": self.game}
        return self.state, {**meta, "actors": self.actors.snapshot()}

    def summary(self) -> dict:
        rc = self.rc
        params = num_params(jax.tree.map(lambda x: x[0], self.state.train.params))
        out = {"agent": rc.agent, "game": self.game, "torso": self.torso_meta,
               "total_steps": rc.total_steps, "params": params}  # fmt: skip
        if rc.export_replay:
            out["export_replay"] = export_replay(self.state, rc, self.game, self.actors)
        return out

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------------------------
# Replay export to RLDS (rlu_atari_checkpoints_ordered layout).


def replay_episodes(
    state: online.OnlineState, seed_index: int, game_starts: list[int], game_overs: list[int]
) -> list[dict]:
    """The replay of one seed cut into GAME episodes (numpy, host side).

    Life losses stay inside their game (the DQN-Replay / RL Unplugged data were recorded
    without life-loss terminals). Each episode is a dict with `observations` uint8
    [T + 1, 84, 84], `actions` int64 [T], `rewards` float32 [T] (raw, unclipped) and
    `terminated`, i.e. the arguments of `offline_moe.data.rlu_format.make_episode`:
      * a game that ended by game over: all its rows are transitions; the final frame is not
        in the replay (nothing reads the frame after a game over), so a zero frame stands in;
      * a game cut by the step cap or still running when training stopped: its last stored
        frame is the final, observation-only step (truncated, not terminal).

    Args:
      state: the run's OnlineState (seeds stacked).
      seed_index: which seed.
      game_starts: rows where a new game began (from `Actors`).
      game_overs: rows whose action ended a game by game over.
    """
    replay = jax.tree.map(lambda x: np.asarray(x[seed_index]), state.replay)
    count = int(replay.count)
    cap = replay.frames.shape[0]
    if count > cap:
        raise ValueError(
            f"replay of seed {seed_index} wrapped ({count} rows > capacity {cap}); export needs "
            "the whole run in the buffer (replay_capacity >= total_steps)"
        )
    overs = set(game_overs)
    bounds = [b for b in game_starts if b < count] + [count]
    episodes = []
    for b0, b1 in zip(bounds[:-1], bounds[1:]):
        if b1 - 1 in overs:
            zero = np.zeros((1, *replay.frames.shape[1:]), replay.frames.dtype)
            frames = np.concatenate([replay.frames[b0:b1], zero])
            last = b1  # rows b0..b1-1 are transitions
        else:
            frames = replay.frames[b0:b1]
            last = b1 - 1  # the last row is the observation-only step
        if last <= b0:
            continue
        episodes.append(
            {
                "observations": frames,
                "actions": replay.action[b0:last].astype(np.int64),
                "rewards": replay.reward[b0:last].astype(np.float32),
                "terminated": b1 - 1 in overs,
            }
        )
    return episodes


def export_replay(state: online.OnlineState, rc: RunConfig, game: str, actors: Actors) -> str:
    """Writes each seed's replay as an RLDS dataset in the RL Unplugged Atari layout.

    Seed i becomes config `{Game}_run_{i+1}` of dataset `rlu_atari_local` under
    `rc.export_replay`, all episodes in split `checkpoint_00`, so the offline track ingests it
    with `--source=tfds:rlu_atari_local/{Game}_run_1 --tfds_dir=DIR`. Imports TensorFlow
    (lazily; only here).

    Returns:
      The export directory.
    """
    from offline_moe.data import rlu_format  # TF side, lazily

    out = os.path.abspath(rc.export_replay)
    for s in range(rc.num_seeds):
        episodes = replay_episodes(state, s, actors.game_starts[s], actors.game_overs[s])
        with rlu_format.RLDSWriter(
            out,
            game=game,
            run=s + 1,
            splits=[0],
            overwrite=True,
            description=f"replay of an online {rc.agent} run (seed {s}) on {game}, Atari 100k",
        ) as writer:
            for k, ep in enumerate(episodes):
                writer.add_episode(0, rlu_format.make_episode(**ep, checkpoint_id=0, episode_id=k))
    return out
