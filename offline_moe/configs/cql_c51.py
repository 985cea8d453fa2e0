"""CQL+C51 (paper Table 3): dueling C51 head (51 atoms on [-10, 10]), double Q, n = 3.

Loss: C51 cross-entropy + 0.1 * CQL term on the expected Q-values.
    --config=offline_moe/configs/cql_c51.py:game=Pong
See `offline_moe.configs.common` for every field.
"""

from offline_moe.configs.common import base_config


def get_config(arg: str | None = None):
    c = base_config("cql_c51", arg)
    c.learner.learning_rate = 6.25e-5  # Table 3
    c.learner.adam_eps = 1.5e-4  # Table 3
    c.learner.n_step = 3  # Table 3
    c.learner.cql_coefficient = 0.1  # Table 3
    c.learner.num_atoms = 51  # Table 3
    c.learner.v_min = -10.0
    c.learner.v_max = 10.0
    return c
