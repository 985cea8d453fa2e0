"""DER (data-efficient Rainbow) on the Atari 100k protocol (Dopamine's DER.gin; REFERENCE 5.1).

  python -m offline_moe.train_online --config=offline_moe/configs/der.py:game=Pong --workdir=runs/x
  --config=offline_moe/configs/der.py:smoke,game=Breakout   (a few hundred steps, for tests)
  --config.torso.name=soft_moe   (paper's low-data MoE setting: nature encoder, 4 experts)

`get_config(arg)`: comma-separated tokens; `smoke` shrinks everything, `key=value` sets a
top-level field (`game=Pong`, `num_seeds=3`, `seed=1`).
"""

from __future__ import annotations

import ml_collections


def torso_block() -> ml_collections.ConfigDict:
    """One flat torso block serving every torso (filter_torso_kwargs keeps what each accepts).

    The paper's low-data MoE runs use the Nature CNN encoder and 4 experts (DER.gin).
    """
    return ml_collections.ConfigDict(
        {
            "name": "baseline",
            "encoder": "nature",
            "width": 1.0,
            "num_experts": 4,
            "expert_width": 512,
            "tokenization": "per_conv",
            "patch_size": 3,
            "capacity_factor": 1.0,
            "normalize_tokens": False,
            "importance_weight": 0.0,
            "load_weight": 0.0,
        }
    )


def base_config(agent: str) -> ml_collections.ConfigDict:
    """Fields shared by DER and DrQ(eps): the Atari 100k protocol and the run loop."""
    c = ml_collections.ConfigDict()
    c.agent = agent
    c.game = "Pong"
    c.protocol = "atari100k"  # no sticky actions, life loss terminal for learning, no-op starts
    c.seed = 0
    c.num_seeds = 1
    c.torso = torso_block()
    # Atari 100k: 100,000 agent steps (400k frames) as 10 iterations of 10,000 steps.
    c.total_steps = 100_000
    c.iteration_steps = 10_000
    c.eval_every_iterations = 1  # evaluate after every iteration (Dopamine's runner)
    c.eval_episodes = 100  # one episode per parallel environment
    c.eval_max_steps = 27_000  # agent steps per evaluation episode (the protocol's cap)
    c.eval_workers = -1  # processes stepping the eval emulators; -1: one per spare CPU core
    c.max_episode_steps = 27_000  # training episode cap (truncation, not a terminal)
    c.log_every = 1000  # agent steps between metrics.jsonl lines
    c.export_replay = ""  # directory: write the agent's replay as an RLDS dataset at the end
    # Learning.
    c.gamma = 0.99
    c.n_step = 10
    c.min_replay = 1600
    c.updates_per_step = 1  # replay ratio 1 (Dopamine: update period 1, 1 update per step)
    c.batch_size = 32
    c.learning_rate = 1e-4
    c.adam_eps = 1.5e-4
    c.clip_rewards = True
    c.dueling = True
    c.double_q = True
    c.epsilon_train = 0.01
    c.epsilon_eval = 0.001
    # Every transition of the run fits: no row is ever overwritten in 100k steps (Dopamine's
    # capacity is 1M, which a 100k run never reaches either).
    c.replay_capacity = c.total_steps + 16
    return c


def apply_overrides(c: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
    """Applies `smoke` and `key=value` tokens of the config-file argument."""
    tokens = [t.strip() for t in (arg or "").split(",") if t.strip()]
    if "smoke" in tokens:
        smoke(c)
    for token in tokens:
        if token == "smoke":
            continue
        if "=" not in token:
            raise ValueError(f"config argument {token!r}: expected 'smoke' or key=value")
        key, value = token.split("=", 1)
        if key not in c:
            raise ValueError(f"config argument {token!r}: unknown field; valid: {sorted(c)}")
        old = c[key]
        c[key] = type(old)(value) if not isinstance(old, bool) else value.lower() == "true"
    return c


def smoke(c: ml_collections.ConfigDict) -> None:
    """Shrinks a run to a few hundred agent steps for tests on 2 CPU cores."""
    c.game = "Breakout"
    c.total_steps = 240
    c.iteration_steps = 120
    c.eval_episodes = 2
    c.eval_max_steps = 60
    c.eval_workers = 0  # two short games: worker start-up would cost more than it saves
    c.max_episode_steps = 27_000
    c.log_every = 60
    c.min_replay = 100
    c.batch_size = 4
    c.replay_capacity = 512
    c.torso.width = 0.125  # Dense(64): a cheap penultimate layer
    c.torso.expert_width = 64


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = base_config("der")
    c.num_atoms = 51
    c.v_max = 10.0
    c.noisy = True  # factorised noisy head: no eps-greedy while training
    # One noise draw per batch (Dopamine's DER); True = a draw per sample (its MoE DER agent).
    c.per_sample_noise = False
    c.prioritized = True
    c.target_update_period = 2000
    c.epsilon_decay_steps = 2000  # unused while noisy (Dopamine's DER.gin value)
    c.augmentation = False
    apply_overrides(c, arg)
    if "smoke" in (arg or ""):
        c.target_update_period = 50
    return c
