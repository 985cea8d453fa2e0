"""CQL+C51 (paper Table 3): dueling C51 head (51 atoms on [-10, 10]), double Q, n = 3.

Loss: C51 cross-entropy + 0.1 * CQL term on the expected Q-values.
    --config=offline_moe/configs/cql_c51.py:game=Pong
    --config=offline_moe/configs/cql_c51.py:game=Pong,preset=dopamine_counter

Presets (`preset=NAME`):
  cql_period        the default: target period 2000 updates, the same as CQL.
  dopamine_counter  target period 50 updates, Dopamine's offline Rainbow reading.
  minatar           Table 3 scaled to MinAtar (`common.apply_minatar_offline`); the default
                    for a MinAtar game (game=MinAtarBreakout, ...).
The paper does not state CQL+C51's target period. Dopamine's offline Rainbow gin sets 100,
but its offline agent advances the training counter twice per gradient update (the offline
`_training_step_update` and full Rainbow's `_train_step` both increment it), so its target
syncs every 50 updates. The default keeps the one period Dopamine's CQL (DR3) agent uses with
one increment per update, so both offline agents differ only in head and loss; the preset
runs the other reading.
See `offline_moe.configs.common` for the argument and every field.
"""

from offline_moe.configs import common

PRESETS = {
    "cql_period": "target period 2000 updates, the CQL value (default)",
    "dopamine_counter": "target period 50 updates (Dopamine's 100 with its double counter)",
}


def get_config(arg: str | None = None):
    where = "offline_moe/configs/cql_c51.py"
    c = common.offline_config("cql_c51", arg, where=where)
    c.preset = common.offline_preset(c, PRESETS, "cql_period", where=where)
    c.learner.learning_rate = 6.25e-5  # Table 3
    c.learner.adam_eps = 1.5e-4  # Table 3
    c.learner.n_step = 3  # Table 3
    c.learner.cql_coefficient = 0.1  # Table 3
    c.learner.num_atoms = 51  # Table 3
    c.learner.v_min = -10.0
    c.learner.v_max = 10.0
    if c.preset == "dopamine_counter":
        c.learner.target_update_period = 50
    if c.preset == "minatar":
        common.apply_minatar_offline(c)
    if c.smoke:
        common.apply_offline_smoke(c)
    return c
