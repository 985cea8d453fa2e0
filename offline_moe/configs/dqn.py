"""DQN on MinAtar with MinAtar's published settings: the behaviour agent of the MinAtar
DQN-Replay datasets (its replay logged as checkpoints, as DQN-Replay was made).

  python -m offline_moe.train_online --config=offline_moe/configs/dqn.py:game=MinAtarBreakout \
      --workdir=runs/dqn/MinAtarBreakout/1
  --config=offline_moe/configs/dqn.py:smoke   (a few hundred steps, for tests)

Then 5% of each logged checkpoint becomes a replay cache:
  python -m offline_moe.ingest --source=dqn_replay:runs/dqn/MinAtarBreakout/1/dqn_replay/\
MinAtarBreakout/1/replay_logs --percent=5 --cache_dir=data/cache/MinAtarBreakout_run1_5pct

Preset `minatar` (the only one): the values of MinAtar's examples/dqn.py (Young & Tian 2019,
github.com/kenjyoung/MinAtar at 4241f24, constants at its top and `QNetwork`, `train`,
`world_dynamics`), where they differ from Dopamine's Atari DQN:
  network      Conv(16, 3x3, stride 1, VALID) + ReLU -> Dense(128) + ReLU -> Dense(A)
               (`QNetwork`; the torso registry's `minatar` encoder + baseline, width 1)
  optimizer    centered RMSprop, lr 0.00025, decay ("alpha", SQUARED_GRAD_MOMENTUM) 0.95,
               eps (MIN_SQUARED_GRAD) 0.01 outside the square root (torch.optim.RMSprop)
  loss         Huber (smooth_l1_loss, delta 1), mean over the batch; max_a target Q (no
               double Q, no dueling, 1-step, no C51, no noisy nets)
  batch        32 (BATCH_SIZE)
  replay       100,000 (REPLAY_BUFFER_SIZE), uniform; rewards not clipped (it does not clip)
  warm-up      5,000 agent steps of uniform random actions before the first update
               (REPLAY_START_SIZE)
  epsilon      1.0 -> 0.1 linearly over the 100,000 steps after the warm-up (FIRST_N_FRAMES,
               END_EPSILON), then 0.1
  target       synced every 1,000 updates (TARGET_NETWORK_UPDATE_FREQ)
  gamma        0.99 (GAMMA)
  env          MinAtar's own: sticky actions 0.1, difficulty ramping, all 6 actions, no
               episode cap (its training loop has none), one state per observation
Scaled to the time budget (the five datasets in under 2 hours of a 2-core CPU):
  run length   1,000,000 agent steps (MinAtar's NUM_FRAMES: 5,000,000; a MinAtar frame is
               one agent step)
  update       one update every 4 agent steps (MinAtar's TRAINING_FREQ: 1), Dopamine's Atari
               DQN `update_period = 4` (dopamine/jax/agents/dqn/configs/dqn.gin), which made
               DQN-Replay (Agarwal et al. 2020, "An Optimistic Perspective on Offline RL")
Logged data: 10 iterations of 100,000 agent steps; each iteration's transitions are one
checkpoint of Dopamine log files (`config.replay_logs`, `offline_moe.train.replay_logs`).
Evaluation: the final agent only, 100 episodes at epsilon 0.001 capped at 27,000 steps, the
offline track's evaluation settings, so its mean return is the "behaviour DQN" score that
MinAtar offline scores are normalised by. The learning curve is metrics.jsonl's
`train_episode_returns` per log interval (every 10,000 agent steps).
"""

from __future__ import annotations

import ml_collections

from offline_moe.configs import common

PRESETS = {"minatar": "MinAtar's examples/dqn.py, 1M agent steps, update period 4 (docstring)"}
_PRESET_TORSO = {"minatar": {"encoder": "minatar", "width": 1.0, "expert_width": 128}}
DEFAULT_GAME = "MinAtarBreakout"
AGENT_STEPS = 1_000_000  # scaled (module docstring); MinAtar's NUM_FRAMES is 5M
DATA_CHECKPOINTS = 10  # logged checkpoints: one per iteration, one tenth of the run each


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    where = "offline_moe/configs/dqn.py"
    if "frames=" in (arg or ""):
        raise ValueError(
            f"{where}: give the budget as agent_steps= (a MinAtar frame is one agent step)"
        )
    arg = arg if "agent_steps=" in (arg or "") else f"{arg or ''},agent_steps={AGENT_STEPS}"
    c = common.online_config(
        "dqn",
        arg,
        where=where,
        presets=PRESETS,
        preset_torso=_PRESET_TORSO,
        default_game=DEFAULT_GAME,
    )
    if not common.is_minatar_game(c.game):
        raise ValueError(
            f"{where}: game {c.game!r} is not a MinAtar game; the dqn agent is "
            "MinAtar's DQN (MinAtarAsterix, MinAtarBreakout, MinAtarFreeway, "
            "MinAtarSeaquest, MinAtarSpaceInvaders)"
        )
    c.env.protocol = "dqn_replay"  # MinAtar's knobs under either name (envs/minatar.py)
    c.env.max_episode_steps = 10**9  # no cap: MinAtar's dqn.py plays each game to its end

    c.iteration_steps = max(1, c.total_steps // DATA_CHECKPOINTS)
    c.log_interval = 10_000
    c.replay_logs = True

    lr = c.learner
    lr.gamma = 0.99  # GAMMA
    lr.n_step = 1
    lr.updates_per_step = 1
    lr.update_period = 4  # scaled: Dopamine's Atari DQN (MinAtar: 1; docstring)
    lr.batch_size = 32  # BATCH_SIZE
    lr.optimizer = "rmsprop_centered"
    lr.learning_rate = 0.00025  # STEP_SIZE
    lr.rmsprop_decay = 0.95  # SQUARED_GRAD_MOMENTUM (torch's alpha)
    lr.rmsprop_eps = 0.01  # MIN_SQUARED_GRAD (torch's eps)
    lr.dueling = False
    lr.double_q = False
    lr.num_atoms = 1  # scalar Q-values, Huber loss
    lr.noisy = False
    lr.per_sample_noise = False
    lr.augmentation = False
    lr.target_update_period = 1000  # TARGET_NETWORK_UPDATE_FREQ, in updates
    lr.epsilon_train = 0.1  # END_EPSILON
    lr.epsilon_decay_steps = 100_000  # FIRST_N_FRAMES, after the warm-up

    c.replay.min_replay = 5000  # REPLAY_START_SIZE
    c.replay.capacity = 100_000  # REPLAY_BUFFER_SIZE
    c.replay.prioritized = False
    c.replay.clip_rewards = False

    c.eval.interval = DATA_CHECKPOINTS  # the final agent only
    c.eval.episodes = 100
    c.eval.epsilon = 0.001  # the offline track's evaluation epsilon
    c.eval.max_episode_steps = 27_000  # the offline track's evaluation cap
    if c.smoke:
        common.apply_online_smoke(c)
        c.total_steps = 600
        c.iteration_steps = 200
        c.log_interval = 100
        c.learner.batch_size = 8
        c.learner.target_update_period = 20
        c.learner.epsilon_decay_steps = 200
        c.eval.interval = 3
    return c
