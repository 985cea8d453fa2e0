"""DER (data-efficient Rainbow) on the Atari 100k protocol (Dopamine's atari_100k DER.gin).

  python -m offline_moe.train_online --config=offline_moe/configs/der.py:game=Pong --workdir=runs/x
  --config=offline_moe/configs/der.py:smoke   (Breakout, a few hundred steps, for tests)
  --config=offline_moe/configs/der.py:preset=fig12,frames=50000000 --config.torso.name=soft_moe

Presets (`preset=NAME`; the torso settings the built-in torsos get, baseline included):
  dopamine_moes  Nature CNN, 4 experts: Dopamine's labs/moes DER.gin (the default)
  fig12          Impala (ResNet) encoder, 8 experts: the paper's Fig. 12
  fig16          Impala (ResNet) encoder, 4 experts: the paper's Fig. 16
The budget is `agent_steps=N` or `frames=F` (default 100k agent steps; Figs. 12 and 16 run to
50M frames, where the paper's MoE gains appear; at 100k it reports no real difference).
Noisy layers as in Dopamine: the head (C51, dueling) and the torso's hidden layer
(FullRainbowNetwork's 512-unit Dense; the first layer of each expert in labs/moes ExpertModel).
See `offline_moe.configs.common` for the argument and every field.
"""

from __future__ import annotations

import ml_collections

from offline_moe.configs import common

PRESETS = common.ONLINE_PRESETS


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = common.online_config("der", arg, where="offline_moe/configs/der.py")
    c.learner.num_atoms = 51
    c.learner.v_max = 10.0
    c.learner.noisy = True  # factorised noisy head: no eps-greedy while training
    c.torso.noisy = True  # noisy torso hidden layers (a torso without `noisy` is an error)
    c.learner.target_update_period = 2000
    c.learner.epsilon_decay_steps = 2000  # unused while noisy (Dopamine's DER.gin value)
    c.learner.augmentation = False
    c.replay.prioritized = True
    if c.smoke:
        common.apply_online_smoke(c)
        c.learner.target_update_period = 50
    return c
