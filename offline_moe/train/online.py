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
summary.json. A run stopped at any moment resumes from its last iteration checkpoint with
`--workdir` alone and ends with the same parameters as an uninterrupted run. A non-finite
loss stops the run and keeps the last good checkpoint.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from offline_moe.envs import canonical_game, make_env, observation_spec
from offline_moe.envs import num_actions as env_num_actions
from offline_moe.envs.evaluate import EvalConfig
from offline_moe.envs.evaluate import evaluate as shared_evaluate
from offline_moe.envs.registry import env_protocol
from offline_moe.learners import make_act_fn, online, seed_keys
from offline_moe.networks import torso_spec
from offline_moe.train.progress import Progress
from offline_moe.train.protocol import build_summary, protocol_block
from offline_moe.train.replay_logs import ReplayLog
from offline_moe.train.rundir import SUMMARY, Run, RunDir, check_finite, open_run, printer

# fold_in tags of a seed's random streams, as on the offline track (`learners.seed_keys`).
TRAIN_STREAM, EVAL_STREAM = 0, 1


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
    eval_every_iterations: int
    eval_episodes: int
    eval_max_steps: int
    eval_workers: int
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
        eval_every_iterations=config.eval.interval,
        eval_episodes=config.eval.episodes,
        eval_max_steps=config.eval.max_episode_steps,
        eval_workers=config.eval.workers,
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


def env_seed(seed: int, stream: str) -> int:
    """Reproducible emulator seed of the seed numbered `seed` for a stream ('train'/'eval-k').

    Seed s of a run with base seed b passes b + s (the seed rule of `learners.seed_keys`).
    """
    entropy = [seed, *map(ord, stream)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


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
    num_episodes: int,
    epsilon: float,
    workers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Plays `num_episodes` games per seed, one per parallel emulator, noise off.

    The offline track's evaluation (`offline_moe.envs.evaluate.evaluate`: batched emulators that
    stack frames themselves, one jitted act call per step) with a budget of one agent step per
    seed, so each emulator plays exactly its first game to the end.

    Args:
      act_fn: `learners.core.make_act_fn` of the agent's learner.
      params: online parameters, seeds stacked.
      game, rc: the game and the run config.
      iteration: seeds the emulators and the eps-greedy keys.
      num_episodes: games per seed.
      epsilon: eps-greedy exploration (the agent's epsilon_eval).
      workers: processes stepping the emulators (0 = this process; same results either way).

    Returns:
      (mean unclipped return per seed [S], episodes per seed [S]). A game that reaches
      `eval_max_steps` is cut there and counted with its return so far.
    """
    s = rc.num_seeds
    cfg = EvalConfig(
        interval=1,
        steps=1,
        num_envs=num_episodes,
        epsilon=epsilon,
        max_episode_steps=rc.eval_max_steps,
        protocol=rc.protocol,
        workers=workers,
    )
    keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(
        seed_keys(rc.seed, s, EVAL_STREAM), iteration
    )
    seeds = [env_seed(rc.seed + k, f"eval-{iteration}") for k in range(s)]
    result = shared_evaluate(act_fn, params, game=game, cfg=cfg, keys=keys, env_seeds=seeds)
    return np.asarray(result["returns"]), np.asarray(result["episodes"])


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
    """The run's protocol block (`rundir.protocol_block`): online interaction, the torso, the
    agent-step budget and the evaluation settings."""
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
            "max_episode_steps": rc.eval_max_steps,
            "standard_max_episode_steps": protocol.max_episode_steps,
            "min_steps": None,
            "episodes": rc.eval_episodes,
            "interval": rc.eval_every_iterations,
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


def _is_eval_iteration(iteration: int, rc: RunConfig) -> bool:
    """Evaluation after every `eval_every_iterations`-th iteration and the last (1-based)."""
    return iteration % rc.eval_every_iterations == 0 or iteration == rc.num_iterations


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
        return _train(run, workdir, max_iterations=max_iterations, log=log)


def _train(run: Run, workdir: str, *, max_iterations: int | None, log) -> dict | None:
    rd = run.rd
    rc, game, agent = run.built
    rd.write_protocol(run_protocol(rc, game, agent.config))
    init_fn, step_fn, eval_act = compiled_fns(agent, rc.num_seeds)

    state = init_fn(init_keys(rc))
    actors = Actors.create(rc, game)
    if rc.replay_logs:
        actors.log = ReplayLog(rc.num_seeds)
    last = run.last_checkpoint  # the logs are truncated to it
    start_iteration = 0
    metric_snapshot = (_host(state.metric_sums), np.asarray(state.metric_count))
    if last is not None:
        state, meta = rd.restore_checkpoint(state, last)
        actors.restore(meta["actors"])
        start_iteration = int(meta["iteration"])
        metric_snapshot = (_host(state.metric_sums), np.asarray(state.metric_count))
        log(f"resuming {workdir} after iteration {start_iteration}")

    torso_meta = {"name": agent.config.torso_name, "kwargs": dict(agent.config.torso_kwargs)}
    seeds = list(range(rc.seed, rc.seed + rc.num_seeds))
    done_this_call = 0
    log_time = time.time()
    log_step = start_iteration * rc.iteration_steps
    log_updates = int(np.asarray(state.metric_count)[0])
    eval_its = [i for i in range(1, rc.num_iterations + 1) if _is_eval_iteration(i, rc)]
    evals_done = sum(i <= start_iteration for i in eval_its)
    progress = Progress(rc.total_steps, len(eval_its), evals_done, "step", rc.num_seeds)
    for it in range(start_iteration, rc.num_iterations):
        iteration = it + 1
        end = min(iteration * rc.iteration_steps, rc.total_steps)
        for t in range(it * rc.iteration_steps, end):
            state, actions = step_fn(
                state,
                actors.frame,
                actors.first,
                actors.reward,
                actors.terminal,
                agent.trains_at(t),
            )
            actors.step(np.asarray(actions))
            if (t + 1) % rc.log_every == 0 or t + 1 == end:
                sums, count = _host(state.metric_sums), np.asarray(state.metric_count)
                means = interval_means(sums, count, *metric_snapshot)
                metric_snapshot = (sums, count)
                check_finite(means, iteration=iteration, step=t + 1, rundir=rd, seeds=seeds)
                now = time.time()
                steps_per_sec = (t + 1 - log_step) / max(now - log_time, 1e-9)
                updates_per_sec = (int(count[0]) - log_updates) / max(now - log_time, 1e-9)
                progress.block(t + 1 - log_step, now - log_time)  # the first includes compiling
                record = {
                    "iteration": iteration,
                    "step": t + 1,
                    "steps_per_sec": steps_per_sec,
                    "updates": count,
                    "train_episode_returns": actors.finished,
                    **{k: v for k, v in means.items()},
                }
                log_time, log_step, log_updates = now, t + 1, int(count[0])
                actors.finished = [[] for _ in range(rc.num_seeds)]
                rd.append_metrics(record)
                rates = {"agent steps/s": steps_per_sec, "updates/s": updates_per_sec}
                loss = float(np.mean(means["loss"]))
                log(progress.line(iteration, rc.num_iterations, t + 1, loss, rates))
        if _is_eval_iteration(iteration, rc):
            t_eval = time.time()
            returns, episodes = evaluate(
                eval_act,
                state.train.params,
                game=game,
                rc=rc,
                iteration=iteration,
                num_episodes=rc.eval_episodes,
                epsilon=agent.config.epsilon_eval,
                workers=rc.eval_workers,
            )
            rd.append_eval(
                {
                    "iteration": iteration,
                    "step": end,
                    "returns": returns,
                    "episodes": episodes,
                    "updates": np.asarray(state.train.step),
                }
            )
            progress.evaluation(time.time() - t_eval)
            rounded = [round(float(r), 2) for r in returns]
            log(
                f"eval it {iteration}: step {end:,} returns {rounded} ({time.time() - t_eval:.1f}s)"
            )
            log_time = time.time()  # the next block's rate leaves the evaluation out
        if actors.log is not None:  # before the checkpoint: see `train.replay_logs`
            actors.log.flush(workdir, game, checkpoint=it)
        rd.save_checkpoint(
            iteration,
            state,
            {"torso": torso_meta, "agent": rc.agent, "game": game, "actors": actors.snapshot()},
        )
        done_this_call += 1
        if max_iterations is not None and done_this_call >= max_iterations:
            if iteration < rc.num_iterations:
                return None

    summary = build_summary(
        rd.read_evals(),
        agent=rc.agent,
        game=game,
        torso=torso_meta,
        num_seeds=rc.num_seeds,
        total_steps=rc.total_steps,
    )
    if rc.export_replay:
        summary["export_replay"] = export_replay(state, rc, game, actors)
    rd.write_summary(summary)
    log(f"done: final returns {summary['final_return']} -> {rd.path(SUMMARY)}")
    return rd.read_summary()


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
    with `--source=tfds:rlu_atari_local/{Game}_run_1 --data_dir=DIR`. Imports TensorFlow
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
