"""Experiment settings per environment, and one (agent, torso) run through the real pipeline.

Per-environment settings live in one `EnvHook` per environment (`HOOKS`), used by the learning
bench (`python -m offline_moe.bench learning`), the sweep (`offline_moe.launch.sweep`) and the
default benchmark; an environment is added by adding a hook. Catch's hook (`CATCH`) states its
settings and why; they are `config.x=y` overrides of each agent's `smoke` config, so the same
run is `python -m offline_moe.train_offline --config=offline_moe/configs/cql.py:smoke,game=Catch
--config.x=y ...`.

Real games with a scripted controller (`offline_moe.envs.scripted`: Pong, Freeway) have a hook
of their own (`real_game_hook`): the offline data are recorded by a scripted policy with 25%
random actions (a medium-quality dataset). Other ALE games get a plain hook (`atari_hook`).

`run_one` trains one (agent, torso) run the way a paper-scale run trains. Offline agents (cql,
cql_c51): episodes recorded by `offline_moe.record` into an RLDS dataset (RL Unplugged layout),
read by `offline_moe.ingest` into a replay cache (both in subprocesses, via
`offline_moe.local_data`), trained by `train_offline.train_and_evaluate` (DeviceReplay, the
learner, the batched evaluation in the environment). Online agents (der, drq_eps):
`train_online.train_and_evaluate`. Each (agent, torso) is one run directory
(`<root>/<env>/<agent>/<variant>/seeds_0-<N-1>`, seeds vmapped in one program) that
`offline_moe.report` reads; `run_one` returns its JSON line: the evaluation return per
iteration and per seed, the random policy's score, the steps after which the mean over seeds
first reached the environment's threshold (Catch: 0.9), the 95% CI of the final return over
seeds and whether it excludes the random policy's score.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence

import numpy as np

from offline_moe.configs import agents as agent_table
from offline_moe.configs.overrides import TorsoVariant, apply_overrides

OFFLINE_AGENTS = agent_table.OFFLINE_AGENTS
ONLINE_AGENTS = agent_table.ONLINE_AGENTS
AGENTS = agent_table.COMPARED_AGENTS


# ---------------------------------------------------------------------------------------------
# Per-environment hooks.


@dataclasses.dataclass(frozen=True)
class EnvHook:
    """Everything `bench learning` needs to know about one environment.

    Attributes:
      game: canonical game name ('Catch', 'Pong').
      threshold: a return that counts as "learned" (None: no known answer; no steps-to-reach).
      data_steps: random-policy agent steps recorded for the offline agents.
      budgets: default budget per agent: gradient updates (offline) or agent steps (online).
      overrides: (agent, budget) -> 'config.x=y' overrides of the agent's smoke config.
      random_score: (seed) -> the uniformly random policy's mean return, and how it was got.
      policy, eps: the behaviour policy that records the offline data (`offline_moe.record`).
    """

    game: str
    threshold: float | None
    data_steps: int
    budgets: dict[str, int]
    overrides: Callable[[str, int], list[str]]
    random_score: Callable[[int], dict]
    policy: str = "random"
    eps: float | None = None


def play_random(
    game: str,
    episodes: int,
    seed: int = 0,
    protocol: str = "dqn_replay",
    max_episode_steps: int | None = None,
) -> dict:
    """Mean return of the uniformly random policy over `episodes` full (or capped) episodes."""
    from offline_moe.envs import make_env

    cap = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    env = make_env(game, protocol=protocol, seed=seed, **cap)
    rng = np.random.default_rng(seed)
    returns = []
    for _ in range(episodes):
        env.reset()
        total, over = 0.0, False
        while not over:
            st = env.step(int(rng.integers(env.num_actions)))
            total += st.reward
            over = st.terminated or st.truncated
        returns.append(total)
    return {
        "mean": float(np.mean(returns)),
        "sem": float(np.std(returns) / np.sqrt(len(returns))),
        "episodes": episodes,
        "how": f"uniform random actions, {episodes} episodes, {protocol}, seed {seed}"
        + (f", capped at {max_episode_steps} agent steps" if max_episode_steps else ""),
    }


# Catch settings (deviations from each agent's smoke config, and why):
#   * offline data: 9,000 random-policy steps (1,000 episodes); a random policy catches 1 ball
#     in 5, so there are ~200 catches to learn from;
#   * the smoke torsos (Nature encoder, Dense(64) baseline, 2 experts with H = 64) and batch 32;
#   * learning rate 1e-3 (Adam) on both tracks, instead of Table 3's 5e-5 (tuned for 62.5M-update
#     runs) offline and Dopamine's 1e-4 online (tuned for 100k steps): measured on Catch, DER at
#     1e-4 ended at 0.4 and 1.0 on seeds 1 and 2 after 2,000 agent steps, at 1e-3 at 1.0 on
#     seeds 0-2 from 1,500 steps on (README, "Learning evidence");
#   * target network synced every 100 updates (offline and DER): the reward is 9 steps from the
#     start, so value must travel 9 backups; with a period of 2,000 that is 18,000 updates;
#   * offline: 200 updates per iteration and an evaluation after each over >= 450 agent steps
#     per seed (50 full episodes; eps 0.001 as in the paper's protocol);
#   * online: n = 10 (DER's and DrQ(eps)'s value; it covers a whole 9-step episode), 500 agent
#     steps per iteration, evaluation over 20 episodes, 200 steps of warm-up replay, DrQ(eps)'s
#     eps decay over 1,000 steps instead of 5,000 (the whole budget is 3,000), batch 32.
CATCH_EVAL_STEPS = 450
CATCH_UPDATES_PER_ITERATION = 200
CATCH_ITERATION_STEPS = 500


def catch_overrides(agent: str, budget: int) -> list[str]:
    """'config.x=y' overrides of `agent`'s smoke config that make the Catch runs (see above)."""
    if agent in OFFLINE_AGENTS:
        per = CATCH_UPDATES_PER_ITERATION
        if budget % per:
            raise ValueError(f"--budget: Catch offline budgets are multiples of {per} updates")
        return [
            "config.game=Catch",
            f"config.num_iterations={budget // per}",
            f"config.updates_per_iteration={per}",
            "config.scan_steps=10",
            f"config.log_interval={per}",
            "config.learner.batch_size=32",
            "config.learner.learning_rate=0.001",
            "config.learner.target_update_period=100",
            f"config.eval.steps={CATCH_EVAL_STEPS}",
            "config.eval.num_envs=10",
            "config.eval.max_episode_steps=27000",
            "config.repr.batch_size=32",
        ]
    if agent in ONLINE_AGENTS:
        per = CATCH_ITERATION_STEPS
        if budget % per:
            raise ValueError(f"--budget: Catch online budgets are multiples of {per} agent steps")
        out = [
            "config.game=Catch",
            f"config.total_steps={budget}",
            f"config.iteration_steps={per}",
            "config.eval.episodes=20",
            "config.eval.max_episode_steps=27000",
            f"config.log_interval={per}",
            "config.replay.min_replay=200",
            "config.learner.batch_size=32",
            "config.learner.learning_rate=0.001",
            f"config.replay.capacity={budget + 16}",
        ]
        if agent == "der":
            out.append("config.learner.target_update_period=100")
        else:
            out.append("config.learner.epsilon_decay_steps=1000")
        return out
    raise ValueError(f"--agents: unknown agent {agent!r}; valid: {', '.join(AGENTS)}")


def _catch_random(seed: int) -> dict:
    return play_random("Catch", 2000, seed)


CATCH = EnvHook(
    game="Catch",
    threshold=0.9,
    data_steps=9000,
    budgets={"cql": 2000, "cql_c51": 2000, "der": 3000, "drq_eps": 3000},
    overrides=catch_overrides,
    random_score=_catch_random,
)


# CatchBoard (`offline_moe.envs.catch`): Catch's settings above, the same data and budgets'
# units, on the 10x5 board with MinAtar's encoder (Conv 16 3x3 VALID -> 8x3x16 = 384 features;
# smoke torsos as a MinAtar game's: baseline Dense(128), 2 experts of width 128) and DrQ's
# shift of one cell instead of 4 pixels (`config.learner.augmentation_pad`).
def catch_board_overrides(agent: str, budget: int) -> list[str]:
    """'config.x=y' overrides of `agent`'s smoke config that make the CatchBoard runs."""
    out = [
        "config.game=CatchBoard",
        *(o for o in catch_overrides(agent, budget) if o != "config.game=Catch"),
        "config.torso.builtin.encoder=minatar",
        "config.torso.builtin.expert_width=128",
        "config.torso.builtin.width=1.0",
    ]
    if agent in ONLINE_AGENTS:
        out.append("config.learner.augmentation_pad=1")
    return out


def _catch_board_random(seed: int) -> dict:
    return play_random("CatchBoard", 2000, seed)


CATCH_BOARD = dataclasses.replace(
    CATCH, game="CatchBoard", overrides=catch_board_overrides, random_score=_catch_board_random
)

HOOKS: dict[str, EnvHook] = {"Catch": CATCH, "CatchBoard": CATCH_BOARD}


def known_answer_hook(game: str) -> EnvHook | None:
    """The hook of a known-answer env ('catch' -> `CATCH`, 'catch_board' -> `CATCH_BOARD`),
    else None (ALE games)."""
    from offline_moe.envs import registry

    name = registry.known_answer_game(game)
    return HOOKS.get(name) if name else None


def hook_for(env: str, policy: str | None = None, eps: float | None = None) -> EnvHook:
    """The hook of `env` ('catch', 'Catch'; games with a scripted controller:
    `real_game_hook`; other Atari games: `atari_hook`). `policy` / `eps` replace the hook's
    data policy (None: keep it)."""
    from offline_moe.envs import canonical_game, scripted

    game = canonical_game(env)
    if game in HOOKS:
        hook = HOOKS[game]
    elif game in scripted.CONTROLLERS:
        hook = real_game_hook(game)
    else:
        hook = atari_hook(game)
    if policy is not None:
        hook = dataclasses.replace(hook, policy=policy, eps=eps if policy != "random" else None)
    elif eps is not None:
        hook = dataclasses.replace(hook, eps=eps)
    return hook


# Real-game settings (deviations from each offline agent's smoke config, and why), chosen so
# that 3 seeds of CQL fit a 2-core CPU in about an hour (README: "Learning on a real game"):
#   * data: the scripted controller with 25% random actions (a medium dataset): 50,000 steps of
#     Pong (16 full games), 20,000 of Freeway (10 games);
#   * the smoke torsos (Nature encoder, Dense(64) baseline), batch 32;
#   * learning rate 2.5e-4 (Table 3's 5e-5 is tuned for 62.5M-update runs), CQL coefficient 1.0
#     (Kumar et al. 2020's Atari value; 0.1 of Table 3 leans on TD, which needs far more updates
#     to carry a sparse reward back), target network synced every 500 updates;
#   * evaluation after every iteration over 2 episodes per seed (2 envs, >= 1,000 steps) capped
#     at 1,000 agent steps, with sticky actions and eps 0.001 (the paper's protocol, capped);
#     the random score is measured with the same cap.
REAL_GAME_EVAL_CAP = 1000
REAL_GAME_DATA_STEPS = {"Pong": 50_000, "Freeway": 20_000}
REAL_GAME_UPDATES_PER_ITERATION = {"Pong": 500, "Freeway": 200}
REAL_GAME_BUDGETS = {"Pong": 4000, "Freeway": 1200}


def real_game_hook(game: str, per: int | None = None) -> EnvHook:
    """The hook of an ALE game that has a scripted controller (see the settings above);
    `per`: updates per iteration (one evaluation each), instead of the game's default."""
    per = per or REAL_GAME_UPDATES_PER_ITERATION.get(game, 500)

    def overrides(agent: str, budget: int) -> list[str]:
        if agent not in OFFLINE_AGENTS:
            return [f"config.game={game}", f"config.total_steps={budget}"]
        if budget % per:
            raise ValueError(f"--budget: {game} offline budgets are multiples of {per} updates")
        return [
            f"config.game={game}",
            f"config.num_iterations={budget // per}",
            f"config.updates_per_iteration={per}",
            "config.scan_steps=5",
            f"config.log_interval={per}",
            "config.learner.batch_size=32",
            "config.learner.learning_rate=0.00025",
            "config.learner.cql_coefficient=1.0",
            "config.learner.target_update_period=500",
            "config.eval.steps=1000",
            "config.eval.num_envs=2",
            f"config.eval.max_episode_steps={REAL_GAME_EVAL_CAP}",
            "config.repr.batch_size=32",
        ]

    def random_score(seed: int) -> dict:
        return play_random(game, 10, seed, max_episode_steps=REAL_GAME_EVAL_CAP)

    budget = REAL_GAME_BUDGETS.get(game, 4000)
    budgets = {a: budget for a in OFFLINE_AGENTS} | {a: 100_000 for a in ONLINE_AGENTS}
    steps = REAL_GAME_DATA_STEPS.get(game, 50_000)
    return EnvHook(game, None, steps, budgets, overrides, random_score, "scripted", 0.25)


def ci95_over_seeds(final: Sequence[float], random_mean: float | None) -> dict:
    """The mean over seeds with its 95% percentile-bootstrap CI (`analysis.stats`), and whether
    the CI lies wholly above the random policy's mean."""
    from offline_moe.analysis import stats

    x = np.asarray(final, np.float64).reshape(-1, 1)  # [seeds, 1 game]
    point, lo, hi = stats.stratified_bootstrap_ci(x, stats.mean, reps=10_000)
    above = None if random_mean is None else bool(lo > random_mean)
    return {"mean": point, "ci95": [lo, hi], "excludes_random": above}


def atari_hook(game: str) -> EnvHook:
    """A plain hook for an ALE game: the smoke configs on `game`, no threshold; the random
    score is the reference table's (baselines/atari_scores.csv)."""

    def overrides(agent: str, budget: int) -> list[str]:
        if agent in OFFLINE_AGENTS:
            return [f"config.game={game}", "config.updates_per_iteration=100",
                    f"config.num_iterations={max(1, budget // 100)}"]  # fmt: skip
        return [f"config.game={game}", f"config.total_steps={budget}"]

    def random_score(seed: int) -> dict:
        del seed
        from offline_moe.analysis import stats

        ref = stats.reference_score(game)
        return {"mean": ref.random, "how": f"reference table ({ref.source})"}

    return EnvHook(game, None, 3000, {a: 200 for a in AGENTS}, overrides, random_score)


# ---------------------------------------------------------------------------------------------
# Configs and runs.


def make_config(
    hook: EnvHook,
    agent: str,
    torso: str,
    budget: int,
    seeds: int,
    seed: int = 0,
    overrides: Sequence[str] = (),
):
    """The agent's smoke config with the hook's overrides, the torso variant, the seeds and
    then `overrides` ('config.x=y')."""
    module = importlib.import_module(agent_table.get(agent).config_module)
    config = module.get_config("smoke")
    extra = TorsoVariant.parse(torso).overrides()
    extra += [f"config.num_seeds={seeds}", f"config.seed={seed}"]
    return apply_overrides(config, [*hook.overrides(agent, budget), *extra, *overrides])


def steps_to_threshold(steps: Sequence[int], returns, threshold: float | None):
    """(first step where the mean over seeds >= threshold, the same per seed); None = never."""
    if threshold is None or not len(steps):
        return None, None
    r = np.asarray(returns, np.float64)  # [iterations, seeds]

    def first(ok):
        hits = np.flatnonzero(ok)
        return int(steps[hits[0]]) if hits.size else None

    return first(r.mean(axis=1) >= threshold), [
        first(r[:, s] >= threshold) for s in range(r.shape[1])
    ]


def run_one(
    env: str,
    agent: str,
    torso: str,
    *,
    seeds: int,
    budget: int | None = None,
    root: str = os.path.join("runs", "bench_learning"),
    data_dir: str = "data",
    seed: int = 0,
    random_score: dict | None = None,
    fresh: bool = True,
    log=None,
    policy: str | None = None,
    eps: float | None = None,
    stop_at: float | None = None,
    cache_dir: str | None = None,
    overrides: Sequence[str] = (),
    hook: EnvHook | None = None,
) -> dict:
    """Trains one (agent, torso) run through the real pipeline; returns its JSON line.

    With `fresh` the run directory is made anew; otherwise a finished run is read back (its
    wall time is then the one it recorded, offline) and an unfinished one resumed. `policy`
    and `eps` replace the hook's data policy (`hook_for`). `stop_at` (offline agents): a
    `time.time()` deadline after which training stops, resumably (`train.offline`); the line
    then says `finished: false` and holds the evaluations so far. `cache_dir` (offline): train
    on this replay cache instead of recording the hook's data; `overrides`: 'config.x=y'
    strings applied last (`make_config`); `hook`: use this one instead of `hook_for(env)`.
    """
    hook = hook or hook_for(env, policy, eps)
    budget = budget or hook.budgets[agent]
    config = make_config(hook, agent, torso, budget, seeds, seed, overrides)
    label = TorsoVariant.parse(torso).label
    workdir = os.path.join(root, hook.game, agent, label, f"seeds_{seed}-{seed + seeds - 1}")
    if fresh:
        shutil.rmtree(workdir, ignore_errors=True)
    t0 = time.time()
    if agent in OFFLINE_AGENTS:
        from offline_moe.data.local import ensure_local_cache
        from offline_moe.train.offline import train_and_evaluate

        who = {"policy": hook.policy, "eps": hook.eps}
        config.data.cache_dir = cache_dir or ensure_local_cache(
            hook.game, hook.data_steps, data_dir, **who
        )
        t_train = time.time()
        summary = train_and_evaluate(
            config, workdir, stop_at=stop_at, **({"log": log} if log else {})
        )
        unit = "updates"
    else:
        from offline_moe.train.online import train_and_evaluate

        t_train = time.time()
        summary = train_and_evaluate(config, workdir)
        unit = "agent_steps"
    wall = time.time() - t_train
    if not fresh and (summary or {}).get("wall_s"):
        wall = float(summary["wall_s"])
    evals = [json.loads(line) for line in open(os.path.join(workdir, "eval.jsonl"))]
    steps = [int(e["step"]) for e in evals]
    returns = [[float(x) for x in e["returns"]] for e in evals]
    reach, reach_seed = steps_to_threshold(steps, returns, hook.threshold)
    if random_score is None:
        random_score = hook.random_score(seed)
    final = returns[-1] if returns else []
    return {
        "bench": "learning",
        "game": hook.game,
        "agent": agent,
        "torso": torso,
        "seeds": list(range(seed, seed + seeds)),
        "budget": budget,
        "unit": unit,
        "steps": steps,
        "returns": returns,  # [iteration][seed]
        "mean_return": [float(np.mean(r)) for r in returns],
        "final_return_mean": float(np.mean(final)) if final else None,
        "random_score": random_score,
        "data_policy": (
            {"policy": hook.policy, "eps": hook.eps, "steps": hook.data_steps}
            if cache_dir is None
            else {"cache_dir": cache_dir}
        ),
        "final": ci95_over_seeds(final, random_score.get("mean")) if final else None,
        "threshold": hook.threshold,
        f"{unit}_to_threshold": reach,
        f"{unit}_to_threshold_per_seed": reach_seed,
        "finished": summary is not None,
        "wall_s": wall,
        "data_s": t_train - t0,
        "workdir": workdir,
    }
