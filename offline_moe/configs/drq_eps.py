"""DrQ(eps) on the Atari 100k protocol (Dopamine's atari_100k DrQ_eps.gin).

  python -m offline_moe.train_online --config=offline_moe/configs/drq_eps.py:game=Pong --workdir=x

Dueling double DQN with a Huber loss (no C51, no noisy nets), eps-greedy 1.0 -> 0.01 over 5,000
steps after min replay, DrQ augmentation, uniform replay, target period 1 (target = online).
Presets and the budget (`agent_steps=` / `frames=`) as in `der.py`.
See `offline_moe.configs.common` for the argument and every field.
"""

from __future__ import annotations

import ml_collections

from offline_moe.configs import common

PRESETS = common.ONLINE_PRESETS


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = common.online_config("drq_eps", arg, where="offline_moe/configs/drq_eps.py")
    c.learner.num_atoms = 1  # scalar Q-values, Huber loss
    c.learner.v_max = 10.0  # unused with one atom
    c.learner.noisy = False
    c.learner.per_sample_noise = False  # unused without noisy nets
    c.learner.target_update_period = 1
    c.learner.epsilon_decay_steps = 5000
    c.learner.augmentation = True
    c.replay.prioritized = False
    if c.smoke:
        common.apply_online_smoke(c)
        c.learner.epsilon_decay_steps = 100
    return c
