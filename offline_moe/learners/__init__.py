"""Learners of both tracks: pure init/update pairs over a TrainState (`learners.core`), with
the offline losses (CQL, CQL+C51) in `learners.cql` and the online agents (DER, DrQ(eps), DQN)
in `learners.online`.

from offline_moe.learners import LearnerConfig, make_learner
learner = make_learner(LearnerConfig(agent="cql"), make_torso("soft_moe"), num_actions=6)
"""

from offline_moe.learners.core import (
    CPU_UNROLL,
    MAX_CPU_UNROLL,
    Learner,
    TrainState,
    effective_scan_steps,
    env_seed,
    init_seeds,
    make_act_fn,
    make_bare_train_fn,
    make_features_fn,
    make_train_fn,
    num_params,
    seed_keys,
)
from offline_moe.learners.cql import CQLC51Loss, CQLLoss, LearnerConfig, make_learner

__all__ = [
    "CPU_UNROLL",
    "MAX_CPU_UNROLL",
    "effective_scan_steps",
    "CQLC51Loss",
    "CQLLoss",
    "Learner",
    "LearnerConfig",
    "TrainState",
    "env_seed",
    "init_seeds",
    "make_act_fn",
    "make_bare_train_fn",
    "make_features_fn",
    "make_learner",
    "make_train_fn",
    "num_params",
    "seed_keys",
]
