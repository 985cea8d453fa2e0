"""Record Atari episodes from real ALE games into an RL Unplugged-layout RLDS dataset.

Plays `offline_moe.envs.make_env(game, protocol='dqn_replay')`: for an ALE game an
`AtariEnv` (Dopamine preprocessing: frame-skip 4, max-pool of the last two frames, grayscale,
84x84 area resize, sticky actions 0.25, minimal action set as DQN-Replay, 27,000-step cap),
for `--game=Catch` the known-answer env (`offline_moe.envs.catch`), for a MinAtar game
(`--game=MinAtarBreakout`) MinAtar's own env and protocol (`offline_moe.envs.minatar`; its
bool [10, 10, C] states stored as raw tensors, `rlu_format.observation_feature`), and writes the
episodes with the `rlu_atari_checkpoints_ordered` features and splits (see
`offline_moe.data.rlu_format`), to `DATA_DIR/<name>/<Game>_run_<run>/1.1.0/`. The result
loads with `tfds.builder_from_directory` or `tfds.builder('<name>/<Game>_run_<run>',
data_dir=DATA_DIR)`, and `offline_moe.ingest` reads it unchanged::

    python -m offline_moe.record ... --dataset_dir=data/rlds   # see `... record --help`
    python -m offline_moe.ingest --source=tfds:rlu_atari_local/Pong_run_1 \\
        --tfds_dir=data/rlds --percent=100 --cache_dir=data/Pong_local

`--steps` counts agent steps (transitions) in total; they are split evenly over
`--num_checkpoints` splits `checkpoint_00, checkpoint_01, ...`. Each split is played by its own
environment and policy, seeded from (`--seed`, split index), so splits are independent and
reproducible one by one. An episode never spans two splits: when a split's budget runs out
mid-episode that episode is truncated (is_last without is_terminal). Episodes that reach the
step cap are truncated the same way.

Policies (`--policy`):
  random      uniform over the minimal action set.
  eps_greedy  epsilon-greedy on a running estimate of each action's mean immediate reward
              (a bandit: it knows nothing of the screen): with probability `--epsilon` a uniform
              action, else the action with the highest estimate (ties broken at random).
              It is a cheap, deterministic-given-seed stand-in for a learning agent's
              data: not uniform, yet still exploring.
  scripted    a controller that reads the emulator RAM (`offline_moe.envs.scripted`; Pong),
              with probability `--epsilon` replaced by a uniform action: --epsilon=0 expert,
              e.g. 0.3 medium, 1 exactly the random policy (D4RL-style dataset qualities).

Rewards are stored unclipped in `steps/reward` (as the TFDS converter fills it from the
source's unclipped rewards); `episode_return` is their sum. Everything is seeded by `--seed`
(ALE's sticky actions and the policy), so a recording can be replayed exactly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import numpy as np

from offline_moe.data import games as games_lib
from offline_moe.data import rlu_format
from offline_moe.replay.identity import RECORDER, description_identity

POLICIES = ("random", "eps_greedy", "scripted")


class RandomPolicy:
    """Uniform random actions."""

    def __init__(self, num_actions: int, rng: np.random.Generator):
        self.num_actions = num_actions
        self.rng = rng

    def act(self) -> int:
        return int(self.rng.integers(self.num_actions))

    def observe(self, action: int, reward: float) -> None:
        del action, reward


class EpsGreedyBanditPolicy:
    """Epsilon-greedy on per-action mean immediate reward (see module docstring)."""

    def __init__(self, num_actions: int, rng: np.random.Generator, eps: float):
        self.num_actions = num_actions
        self.rng = rng
        self.eps = eps
        self.sums = np.zeros(num_actions)
        self.counts = np.zeros(num_actions)

    def act(self) -> int:
        if self.rng.random() < self.eps:
            return int(self.rng.integers(self.num_actions))
        means = self.sums / np.maximum(self.counts, 1)
        best = np.flatnonzero(means == means.max())
        return int(self.rng.choice(best))

    def observe(self, action: int, reward: float) -> None:
        self.sums[action] += reward
        self.counts[action] += 1


def make_policy(name: str, num_actions: int, rng: np.random.Generator, eps: float, env=None):
    """The behaviour policy; `scripted` reads `env`'s RAM (without an env only checks `eps`)."""
    if name == "random":
        return RandomPolicy(num_actions, rng)
    if name == "eps_greedy":
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"--epsilon: expected a probability in [0, 1], got {eps}")
        return EpsGreedyBanditPolicy(num_actions, rng, eps)
    if name == "scripted":
        from offline_moe.envs import scripted

        if env is None:
            if not 0.0 <= eps <= 1.0:
                raise ValueError(f"--epsilon: expected a probability in [0, 1], got {eps}")
            return None
        return scripted.ScriptedPolicy(env, rng, eps)
    raise ValueError(f"--policy: unknown policy {name!r}; valid: {', '.join(POLICIES)}")


def _description(game, steps, *, policy, checkpoints, run, seed, eps, name) -> str:
    """The recorder's account of a recording (the dataset description; `description_identity`
    reads it back), as JSON."""
    from offline_moe.envs import num_actions

    return json.dumps(
        {
            "recorder": RECORDER,
            "name": name,
            "game": game,
            "run": run,
            "checkpoints": checkpoints,
            "policy": policy,
            "eps": eps if policy in ("eps_greedy", "scripted") else None,
            "seed": seed,
            "steps": steps,
            "protocol": "dqn_replay",
            "num_actions": num_actions(game, protocol="dqn_replay"),
        }
    )


def recordable_game(game: str) -> str:
    """`game` checked against the RL Unplugged games, the known-answer envs ('catch' ->
    'Catch') and the MinAtar games ('minatar/breakout' -> 'MinAtarBreakout'); Atari names
    must be spelled as in the TFDS configs, e.g. 'MsPacman'."""
    from offline_moe.envs import registry

    if registry.is_known_answer(game) or registry.is_minatar(game):
        return registry.canonical_game(game)
    return games_lib.check_game(game, games=games_lib.RECORDABLE_GAMES)


def check_request(game: str, steps: int, *, policy: str, eps: float, checkpoints: int) -> str:
    """The canonical game, once the arguments of a recording are checked (before any play)."""
    game = recordable_game(game)
    make_policy(policy, 1, np.random.default_rng(0), eps)  # validate before writing
    if policy == "scripted":
        from offline_moe.envs import canonical_game, scripted

        scripted.check_game(canonical_game(game))
    if checkpoints < 1:
        raise ValueError(f"--num_checkpoints: expected >= 1 split, got {checkpoints}")
    if steps < checkpoints:
        raise ValueError(f"--steps: expected at least one step per split (>= {checkpoints})")
    return game


def split_budget(steps: int, checkpoints: int) -> list[int]:
    """Agent steps per split: `steps` spread as evenly as possible (earlier splits get more)."""
    base, extra = divmod(int(steps), int(checkpoints))
    return [base + (1 if k < extra else 0) for k in range(int(checkpoints))]


def split_seed(seed: int, checkpoint: int) -> int:
    """Seed of ALE and the policy for one checkpoint split (independent streams per split)."""
    return int(np.random.SeedSequence([int(seed), int(checkpoint)]).generate_state(1)[0] >> 1)


def record_split(
    game: str,
    checkpoint: int,
    budget: int,
    *,
    policy: str = "random",
    seed: int = 0,
    eps: float = 0.1,
    max_episode_steps: int | None = None,
    with_clipped: bool = False,
) -> Iterator[dict]:
    """Plays `budget` agent steps for split `checkpoint`; yields RLDS episode dicts.

    One fresh environment and policy per split, seeded by `split_seed(seed, checkpoint)`, so
    a split can be generated (and replayed) on its own. The last episode is truncated when
    the budget runs out.
    """
    from offline_moe.envs import make_env

    game = recordable_game(game)
    sub_seed = split_seed(seed, checkpoint)
    env = make_env(game, protocol="dqn_replay", seed=sub_seed, max_episode_steps=max_episode_steps)
    agent = make_policy(policy, env.num_actions, np.random.default_rng(sub_seed), eps, env=env)
    episode_id = 0
    while budget > 0:
        frames = [env.reset()]
        actions: list[int] = []
        rewards: list[float] = []
        terminated = False
        while budget > 0:
            action = agent.act()
            result = env.step(action)
            agent.observe(action, result.reward)
            actions.append(action)
            rewards.append(result.reward)
            frames.append(result.obs)
            budget -= 1
            if result.terminated or result.truncated:
                terminated = result.terminated
                break
        yield rlu_format.make_episode(
            np.stack(frames),
            np.asarray(actions),
            np.asarray(rewards, np.float32),
            terminated=terminated,
            checkpoint_id=checkpoint,
            episode_id=episode_id,
            with_clipped=with_clipped,
        )
        episode_id += 1


def record(
    game: str,
    steps: int,
    out: str,
    *,
    policy: str = "random",
    checkpoints: int = 1,
    run: int = 1,
    seed: int = 0,
    eps: float = 0.1,
    name: str = rlu_format.DEFAULT_NAME,
    max_episode_steps: int | None = None,
    with_clipped: bool = False,
    overwrite: bool = False,
    progress: bool = False,
) -> dict:
    """Plays `steps` agent steps of `game` and writes them as an RLDS dataset under `out`.

    Args:
      game: one of the 46 RL Unplugged games, or 'Catch' (any case).
      steps: total agent steps (transitions) to record, >= checkpoints.
      out: TFDS data dir; the dataset goes to `out/<name>/<game>_run_<run>/1.1.0`.
      policy: 'random', 'eps_greedy' or 'scripted' (module docstring).
      checkpoints: number of splits `checkpoint_00..`; steps are divided evenly.
      run: run index in the config name.
      seed: seeds ALE and the policy (per split: `split_seed(seed, checkpoint)`).
      eps: exploration probability of 'eps_greedy' and 'scripted'.
      name: dataset name (default 'rlu_atari_local'; use 'rlu_atari_checkpoints_ordered' to
        stand in for the public dataset under a separate data dir).
      max_episode_steps: step cap per episode (default the protocol's 27,000).
      with_clipped: also write the older schema's clipped fields.
      overwrite: replace an existing dataset.
      progress: print a progress line on stderr.

    Returns:
      A summary dict: dataset_dir, game, run, steps, episodes (per split), terminated
      episodes, returns (per episode, in order), num_actions.
    """
    from offline_moe.envs import num_actions, observation_spec

    game = check_request(game, steps, policy=policy, eps=eps, checkpoints=checkpoints)
    out = os.path.expanduser(os.fspath(out))
    actions = num_actions(game, protocol="dqn_replay")
    description = _description(
        game, steps, policy=policy, checkpoints=checkpoints, run=run, seed=seed, eps=eps, name=name
    )
    returns: list[float] = []
    terminated_count = 0
    done_steps = 0
    from offline_moe.data.ingest import Progress  # live on a terminal, plain lines in a file

    bar = Progress(steps, enabled=progress, name="record")
    with rlu_format.RLDSWriter(
        out,
        game=game,
        run=run,
        splits=list(range(checkpoints)),
        name=name,
        with_clipped=with_clipped,
        overwrite=overwrite,
        description=description,
        frame_shape=observation_spec(game)[0],
        frame_dtype=observation_spec(game)[1],
    ) as writer:
        for ckpt, budget in enumerate(split_budget(steps, checkpoints)):
            for episode in record_split(
                game,
                ckpt,
                budget,
                policy=policy,
                seed=seed,
                eps=eps,
                max_episode_steps=max_episode_steps,
                with_clipped=with_clipped,
            ):
                writer.add_episode(ckpt, episode)
                t = len(episode["steps"]["action"]) - 1
                done_steps += t
                returns.append(float(episode["steps"]["reward"][:t].sum()))
                terminated_count += int(episode["steps"]["is_terminal"][-1])
                bar.update(t, label=f"checkpoint {ckpt}  episodes {len(returns)}")
        episodes = dict(writer.episodes_per_split)
    bar.close()
    return {
        "dataset_dir": writer.target,
        "game": game,
        "run": run,
        "steps": done_steps,
        "episodes": episodes,
        "terminated_episodes": terminated_count,
        "returns": returns,
        "num_actions": actions,
    }


# ---------------------------------------------------------------------------------------------
# Straight into a replay cache (no TensorFlow).


def _split_rows(game, checkpoint, budget, percent, kwargs) -> list:
    """The cache rows (`data.common.Episode`s) of one split: its first `percent`% of episodes,
    converted exactly as ingest converts the RLDS episodes `record` writes."""
    from offline_moe.data.common import prefix_count
    from offline_moe.data.tfds_source import steps_to_episode

    episodes = list(record_split(game, checkpoint, budget, **kwargs))
    keep = episodes[: prefix_count(percent, len(episodes))]
    out = []
    for i, episode in enumerate(keep):
        rows = steps_to_episode(episode["steps"], where=f"split {checkpoint} episode {i}")
        if rows is not None:
            rows.checkpoint = checkpoint
            out.append(rows)
    return out


def record_cache(
    game: str,
    steps: int,
    out: str,
    *,
    policy: str = "random",
    checkpoints: int = 1,
    run: int = 1,
    seed: int = 0,
    eps: float = 0.1,
    name: str = rlu_format.DEFAULT_NAME,
    max_episode_steps: int | None = None,
    percent: float = 100.0,
    clip_rewards: bool = True,
    overwrite: bool = False,
    workers: int = 1,
    progress: bool = False,
) -> dict:
    """Plays as `record` does and writes a replay cache directly: no RLDS, no TensorFlow.

    The cache is the one `ingest --source=tfds:NAME/{Game}_run_{run} --percent=P` makes of the
    dataset `record` writes with the same arguments: the same rows, and the same meta.json
    (identity, action count, recorder's policy, steps and seed) except `source_detail`, which
    says it was recorded directly. So a machine with JAX but no TensorFlow (a GPU host) can
    make training data from real games, and the trainers cannot tell the two apart.

    Args:
      game, steps, policy, checkpoints, run, seed, eps, name, max_episode_steps: as `record`.
      out: the replay cache directory to write (atomically, as ingest does).
      percent: the first `percent`% of the episodes of each split, as ingest reads a split.
      clip_rewards: clip rewards to [-1, 1] (recorded in meta.json), as ingest.
      overwrite: replace an existing cache at `out`.
      workers: processes playing splits side by side (splits are independent and seeded on
        their own, so the cache does not depend on it); 1 plays them in this process.
      progress: print progress lines on stderr.

    Returns:
      The meta dict written to `out/meta.json`.
    """
    from offline_moe.data.common import check_percent
    from offline_moe.data.ingest import Progress, write_episodes
    from offline_moe.errors import CacheError

    game = check_request(game, steps, policy=policy, eps=eps, checkpoints=checkpoints)
    percent = check_percent(percent)
    out = os.path.expanduser(os.fspath(out))
    if os.path.exists(out) and not overwrite:
        raise CacheError(f"--cache_dir: {out} already exists; pass --overwrite to replace it")
    description = _description(
        game, steps, policy=policy, checkpoints=checkpoints, run=run, seed=seed, eps=eps, name=name
    )
    kwargs = dict(policy=policy, seed=seed, eps=eps, max_episode_steps=max_episode_steps)
    budgets = split_budget(steps, checkpoints)

    def episodes():
        if workers <= 1:
            for ckpt, budget in enumerate(budgets):
                yield from _split_rows(game, ckpt, budget, percent, kwargs)
            return
        import concurrent.futures
        import multiprocessing

        # spawn: the caller may hold JAX's threads, which a fork would copy half-alive.
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(min(workers, checkpoints), ctx) as pool:
            futures = [
                pool.submit(_split_rows, game, ckpt, budget, percent, kwargs)
                for ckpt, budget in enumerate(budgets)
            ]
            for future in futures:  # in split order, whichever finishes first
                yield from future.result()

    detail = {
        "recorder": description_identity(description),
        "dataset": name,
        "config": rlu_format.config_name(game, run),
        "version": rlu_format.VERSION,
        "data_dir": None,
        "written_by": f"{RECORDER} --cache_dir (directly, no RLDS dataset)",
    }
    total = steps if percent == 100.0 else None
    return write_episodes(
        out,
        episodes(),
        source=f"tfds:{name}/{rlu_format.config_name(game, run)}",
        game=game,
        run=run,
        checkpoints=list(range(checkpoints)),
        percent=percent,
        clip_rewards=clip_rewards,
        detail=detail,
        overwrite=overwrite,
        progress=Progress(total, enabled=progress, name="record"),
    )
