"""DrQ(eps) on the Atari 100k protocol (Dopamine's DrQ_eps.gin; REFERENCE 5.1).

  python -m offline_moe.train_online --config=offline_moe/configs/drq_eps.py:game=Pong --workdir=x

Dueling double DQN with a Huber loss (no C51, no noisy nets), eps-greedy 1.0 -> 0.01 over 5,000
steps after min replay, DrQ augmentation, uniform replay, target period 1 (target = online).
"""

from __future__ import annotations

import ml_collections

from offline_moe.configs.der import apply_overrides, base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = base_config("drq_eps")
    c.num_atoms = 1  # scalar Q-values, Huber loss
    c.v_max = 10.0  # unused with one atom
    c.noisy = False
    c.per_sample_noise = False  # unused without noisy nets
    c.prioritized = False
    c.target_update_period = 1
    c.epsilon_decay_steps = 5000
    c.augmentation = True
    apply_overrides(c, arg)
    if "smoke" in (arg or ""):
        c.epsilon_decay_steps = 100
    return c
