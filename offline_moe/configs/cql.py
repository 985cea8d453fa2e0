"""CQL (paper Table 3): Huber TD with a max target (no double Q), Dense(A) head, n = 1.

    --config=offline_moe/configs/cql.py            paper defaults (Pong, baseline torso, 5%)
    --config=offline_moe/configs/cql.py:torso=soft_moe     the same with the Soft MoE torso
    --config=offline_moe/configs/cql.py:smoke      tiny budget (Breakout, local recording)

Presets (`preset=NAME`):
  paper    Table 3's values, target period 2000 (Dopamine's jax_dr3.gin); the default.
  minatar  Table 3 scaled to MinAtar (`common.apply_minatar_offline`); the default for a
           MinAtar game (game=MinAtarBreakout, ...).
See `offline_moe.configs.common` for the argument and every field.
"""

from offline_moe.configs import common

PRESETS = {"paper": "Table 3's values, target period 2000 (Dopamine's jax_dr3.gin)"}


def get_config(arg: str | None = None):
    c = common.offline_config("cql", arg, where="offline_moe/configs/cql.py")
    c.preset = common.offline_preset(c, PRESETS, "paper", where="offline_moe/configs/cql.py")
    c.learner.learning_rate = 5e-5  # Table 3
    c.learner.adam_eps = 3.125e-4  # Table 3
    c.learner.n_step = 1  # Table 3
    c.learner.cql_coefficient = 0.1  # Table 3
    if c.preset == "minatar":
        common.apply_minatar_offline(c)
    if c.smoke:
        common.apply_offline_smoke(c)
    return c
