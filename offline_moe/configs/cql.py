"""CQL (paper Table 3): Huber TD with a max target (no double Q), Dense(A) head, n = 1.

    --config=offline_moe/configs/cql.py            paper defaults (Pong, soft_moe, 5%)
    --config=offline_moe/configs/cql.py:smoke,game=Breakout
See `offline_moe.configs.common` for every field.
"""

from offline_moe.configs.common import base_config


def get_config(arg: str | None = None):
    c = base_config("cql", arg)
    c.learner.learning_rate = 5e-5  # Table 3
    c.learner.adam_eps = 3.125e-4  # Table 3
    c.learner.n_step = 1  # Table 3
    c.learner.cql_coefficient = 0.1  # Table 3
    return c
