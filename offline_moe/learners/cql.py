"""CQL and CQL+C51 (Obando-Ceron et al. 2024, Sec. 5.1 and Table 3): losses and factories.

CQL (Kumar et al. 2020, discrete CQL(H)), per transition:
  td  = Huber(r + gamma^n (1 - terminal) max_a' Q_target(s', a') - Q(s, a))   (no double Q)
  cql = logsumexp_a Q(s, a) - Q(s, a)
  loss = td + cql_coefficient * cql                              (coefficient 0.1)
CQL+C51 (dueling C51 head, 51 atoms on [-10, 10]):
  a* = argmax_a Q_online(s', a); target = Project(r + gamma^n (1 - terminal) z, p_target(s', a*))
  td  = cross-entropy(target, logits(s, a))
  cql = logsumexp_a Q(s, a) - Q(s, a) on the expected Q-values (gradient through the softmax)
  loss = td_coefficient * td + cql_coefficient * cql              (1.0 and 0.1)
The torso's aux loss is added by the shared SGD step (`learners.core.Learner.sgd_step`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from offline_moe.configs import agents as agent_table
from offline_moe.learners import losses
from offline_moe.learners.core import Batch, Learner, Metrics, apply_network
from offline_moe.networks.heads import DuelingC51Head, QHead, QNetwork

AGENTS = agent_table.OFFLINE_AGENTS


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """Learner hyper-parameters (unpacked from the `learner` config block; see configs/).

    Attributes:
      agent: 'cql' or 'cql_c51'.
      learning_rate: Adam step size.
      adam_eps: Adam epsilon.
      gamma: discount per agent step.
      n_step: n of the n-step return.
      batch_size: transitions per update.
      cql_coefficient: weight of the CQL term.
      td_coefficient: weight of the TD / cross-entropy term.
      target_update_period: updates between target syncs.
      huber_delta: Huber threshold (CQL).
      num_atoms: C51 atoms (CQL+C51).
      v_min: lowest atom.
      v_max: highest atom.
      compute_dtype: 'float32' (the paper's) or 'bfloat16' (matmuls and convolutions of torso
        and head in bfloat16; parameters, optimizer and losses stay float32).
    """

    agent: str = "cql"
    learning_rate: float = 5e-5
    adam_eps: float = 3.125e-4
    gamma: float = 0.99
    n_step: int = 1
    batch_size: int = 32
    cql_coefficient: float = 0.1
    td_coefficient: float = 1.0
    target_update_period: int = 2000
    huber_delta: float = 1.0
    num_atoms: int = 51
    v_min: float = -10.0
    v_max: float = 10.0
    compute_dtype: str = "float32"

    def __post_init__(self):
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(
                f"learner.compute_dtype {self.compute_dtype!r} unknown; valid: "
                f"{', '.join(COMPUTE_DTYPES)}"
            )
        if self.agent not in AGENTS:
            raise ValueError(f"learner.agent {self.agent!r} unknown; valid: {', '.join(AGENTS)}")
        if self.target_update_period < 1:
            raise ValueError(
                f"learner.target_update_period must be >= 1, got {self.target_update_period}"
            )

    @classmethod
    def from_config(cls, block) -> LearnerConfig:
        """Builds from a config block (ConfigDict or dict); unknown keys are an error."""
        block = dict(block)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(block) - names
        if unknown:
            raise ValueError(
                f"config.learner: unknown field(s) {sorted(unknown)}; valid: {sorted(names)}"
            )
        return cls(**block)


COMPUTE_DTYPES = {"float32": None, "bfloat16": jnp.bfloat16}


def _data_q(q: jax.Array, a: jax.Array) -> jax.Array:
    return jnp.take_along_axis(q, a[:, None], axis=-1)[:, 0]  # [B]


def _cql_metrics(td: jax.Array, cql: jax.Array, q_tm1: jax.Array, a: jax.Array) -> Metrics:
    return {
        "td_loss": jnp.mean(td),
        "cql_loss": jnp.mean(cql),
        "q_data": jnp.mean(_data_q(q_tm1, a)),
        "q_max": jnp.mean(jnp.max(q_tm1, axis=-1)),
    }


def _forward(network, params, target_params, batch: Batch) -> tuple[dict, dict]:
    """Online outputs at obs (with gradients) and target outputs at next_obs (stopped)."""
    out_tm1 = apply_network(network, params, batch["obs"], train=True)
    out_t = jax.lax.stop_gradient(
        apply_network(network, target_params, batch["next_obs"], train=False)
    )
    return out_tm1, out_t


@dataclasses.dataclass(frozen=True)
class CQLLoss:
    """Huber TD with a max target + cql_coefficient * CQL term (per transition).

    A `learners.core.LossFn`: (network, params, target_params, batch, key) -> (per_example
    [B], extras); deterministic, so `key` is unused.
    """

    cql_coefficient: float = 0.1
    td_coefficient: float = 1.0
    huber_delta: float = 1.0

    def __call__(self, network, params, target_params, batch: Batch, key):
        del key
        out_tm1, out_t = _forward(network, params, target_params, batch)
        q_tm1 = out_tm1["q_values"]  # [B, A]
        q_t = out_t["q_values"]  # [B, A]
        a, r, d = batch["action"], batch["reward"], batch["discount"]
        td = jax.vmap(lambda *x: losses.q_learning_huber(*x, delta=self.huber_delta))(
            q_tm1, a, r, d, q_t
        )
        cql = jax.vmap(losses.cql_loss)(q_tm1, a)
        per_example = self.td_coefficient * td + self.cql_coefficient * cql
        return per_example, {"aux": out_tm1["aux"], **_cql_metrics(td, cql, q_tm1, a)}


@dataclasses.dataclass(frozen=True)
class CQLC51Loss:
    """C51 cross-entropy with a double-Q target + cql_coefficient * CQL on expected Q.

    A `learners.core.LossFn` (see `CQLLoss`).
    """

    num_atoms: int = 51
    v_min: float = -10.0
    v_max: float = 10.0
    cql_coefficient: float = 0.1
    td_coefficient: float = 1.0

    def __call__(self, network, params, target_params, batch: Batch, key):
        del key
        out_tm1, out_t_target = _forward(network, params, target_params, batch)
        # Double Q: the online network picks the bootstrap action (van Hasselt et al. 2016).
        q_t_selector = jax.lax.stop_gradient(
            apply_network(network, params, batch["next_obs"], train=False)["q_values"]
        )
        support = jnp.linspace(self.v_min, self.v_max, self.num_atoms, dtype=jnp.float32)
        a, r, d = batch["action"], batch["reward"], batch["discount"]
        ce = jax.vmap(losses.categorical_double_q_loss, in_axes=(0, 0, 0, 0, 0, 0, None))(
            out_tm1["logits"],  # [B, A, K]
            a,
            r,
            d,
            out_t_target["probabilities"],  # [B, A, K]
            q_t_selector,  # [B, A]
            support,
        )
        q_tm1 = out_tm1["q_values"]  # [B, A], expected values
        cql = jax.vmap(losses.cql_loss)(q_tm1, a)
        per_example = self.td_coefficient * ce + self.cql_coefficient * cql
        return per_example, {"aux": out_tm1["aux"], **_cql_metrics(ce, cql, q_tm1, a)}


def make_learner(cfg: LearnerConfig, torso, num_actions: int) -> Learner:
    """Builds the CQL or CQL+C51 learner around an already-built torso module."""
    optimizer = optax.adam(cfg.learning_rate, eps=cfg.adam_eps)
    if cfg.agent == "cql":
        head = QHead(num_actions=num_actions)
        loss = CQLLoss(cfg.cql_coefficient, cfg.td_coefficient, cfg.huber_delta)
    else:
        head = DuelingC51Head(
            num_actions=num_actions, num_atoms=cfg.num_atoms, v_min=cfg.v_min, v_max=cfg.v_max
        )
        loss = CQLC51Loss(
            cfg.num_atoms, cfg.v_min, cfg.v_max, cfg.cql_coefficient, cfg.td_coefficient
        )
    network = QNetwork(torso=torso, head=head, compute_dtype=COMPUTE_DTYPES[cfg.compute_dtype])
    return Learner(network, loss, optimizer, cfg.target_update_period)
