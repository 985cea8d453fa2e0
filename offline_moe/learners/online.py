"""Online data-efficient agents for Atari 100k: DER and DrQ(eps), any torso.

DER (van Hasselt et al. 2019, "When to use parametric models in reinforcement learning?"):
Rainbow tuned for 100k steps: C51 (51 atoms, v_max 10), dueling, double Q, factorised noisy
head (no eps-greedy while noisy), n-step 10, prioritized replay, target period 2,000.
DrQ(eps) (Kostrikov et al. 2021 as re-tuned by Agarwal et al. 2021): dueling double DQN with a
Huber loss, eps-greedy 1.0 -> 0.01 over 5,000 steps after min replay, DrQ augmentation, uniform
replay, target period 1. Both: gamma 0.99, min replay 1,600, one update per agent step,
batch 32, Adam(1e-4, eps 1.5e-4) (Dopamine: labs/atari_100k/configs/DER.gin and DrQ_eps.gin).

DQN (`agent='dqn'`, `offline_moe.configs.dqn`: MinAtar's examples/dqn.py, the behaviour agent
of the MinAtar DQN-Replay data): 1-step Huber TD to max_a of the target network (no double Q,
no dueling), centered RMSprop (`make_optimizer`), uniform replay, one update every
`update_period` agent steps.

Each agent is a small loss (`C51DoubleQLoss` for DER, `DoubleQHuberLoss` for DrQ(eps) and,
with `double_q=False`, DQN) plugged
into the SGD step shared with the offline learners (`learners.core.Learner.sgd_step`), over the
same `QNetwork` wrapper with a `RainbowHead`.

One agent step is one jitted call (`make_step_fn`): finish the previous replay row, write the
new frame, (after min replay) sample + update + re-prioritise, then act with the updated
parameters (Dopamine's order: store, train, select action). The host only steps the emulator.
Seeds are a leading axis, each seed with its own replay and its own environment: the replay
work is vmapped (its buffers are updated in place), the network work is lifted as on the offline
track (`learners.core.over_seeds`: vmap on accelerators, one seed after another on CPU).

Randomness: the key of agent step t of a seed is fold_in(train.rng, t), split into sampling,
update and acting keys, so a restored state continues exactly where it stopped. Seed s of a
run with base seed b starts from the key `learners.core.seed_keys(b, S)[s]`, the rule of the
offline track.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from offline_moe.configs import agents as agent_table
from offline_moe.envs.frames import stacked_shape
from offline_moe.learners import losses
from offline_moe.learners.augment import drq_augment
from offline_moe.learners.core import Learner, TrainState, apply_network, over_seeds
from offline_moe.networks import make_torso, preprocess_obs
from offline_moe.networks.heads import QNetwork
from offline_moe.networks.noisy import RainbowHead
from offline_moe.replay import online as online_replay

Array = jax.Array

AGENTS = agent_table.names(agent_table.ONLINE, compared=False)  # der, drq_eps, dqn
OPTIMIZERS = ("adam", "rmsprop_centered")


@dataclasses.dataclass(frozen=True)
class OnlineAgentConfig:
    """Hyper-parameters of one online agent (unpacked from the ml_collections config).

    Attributes:
      agent: 'der' or 'drq_eps' (for the record; behaviour is set by the fields below).
      num_actions: A.
      torso_name: registered torso name or 'package.module:Name'.
      torso_kwargs: the torso's keyword arguments (sorted (key, value) pairs).
      num_atoms: 51 for C51 (cross-entropy loss), 1 for a scalar Q (Huber loss).
      v_max: C51 support [-v_max, v_max].
      dueling: dueling head.
      double_q: double-Q bootstrap action (online argmax, target evaluation).
      noisy: factorised noisy head; training acts greedily w.r.t. the noisy net (eps = 0).
      per_sample_noise: a noise draw per batch row (Dopamine's MoE DER) instead of per batch.
      n_step: return horizon.
      gamma: discount.
      min_replay: agent steps before the first update.
      updates_per_step: gradient updates per agent step once training (the replay ratio).
      target_update_period: sync the target network every this many updates.
      prioritized: prioritized replay (else uniform).
      batch_size: transitions per update.
      learning_rate: the optimizer's step size.
      adam_eps: Adam epsilon.
      optimizer: 'adam' (DER, DrQ(eps)) or 'rmsprop_centered' (MinAtar's DQN: PyTorch's
        centered RMSprop, eps added outside the square root; `make_optimizer`).
      rmsprop_decay: RMSprop's decay of the squared- and mean-gradient averages.
      rmsprop_eps: RMSprop's epsilon (outside the square root, as PyTorch's).
      update_period: agent steps per training round (Dopamine's `update_period`; a round is
        `updates_per_step` updates), counted from min_replay (`trains_at`).
      epsilon_train: final training epsilon (non-noisy agents).
      epsilon_eval: evaluation epsilon.
      epsilon_decay_steps: linear decay length after min replay.
      augmentation: DrQ augmentation of obs and next_obs in the update.
      augmentation_pad: DrQ's shift range in pixels (cells) per side: 4 on 84x84 frames
        (Kostrikov et al. 2021, Sec. 3.1); 1 on a board (MinAtar, CatchBoard), where a cell is
        what 4 pixels are to an Atari frame, about a sprite's width.
      clip_rewards: clip rewards to [-1, 1] for learning.
      replay_capacity: rows of the circular replay.
      stack: frames per observation.
      frame_shape, frame_dtype: one env frame (`envs.registry.observation_spec`; Atari's
        uint8 [84, 84], MinAtar's bool [10, 10, C]).
    """

    agent: str
    num_actions: int
    torso_name: str = "baseline"
    torso_kwargs: tuple[tuple[str, Any], ...] = ()
    num_atoms: int = 51
    v_max: float = 10.0
    dueling: bool = True
    double_q: bool = True
    noisy: bool = True
    per_sample_noise: bool = False
    n_step: int = 10
    gamma: float = 0.99
    min_replay: int = 1600
    updates_per_step: int = 1
    target_update_period: int = 2000
    prioritized: bool = True
    batch_size: int = 32
    learning_rate: float = 1e-4
    adam_eps: float = 1.5e-4
    optimizer: str = "adam"
    rmsprop_decay: float = 0.95
    rmsprop_eps: float = 0.01
    update_period: int = 1
    epsilon_train: float = 0.01
    epsilon_eval: float = 0.001
    epsilon_decay_steps: int = 2000
    augmentation: bool = False
    augmentation_pad: int = 4
    clip_rewards: bool = True
    replay_capacity: int = 100_016
    stack: int = 4
    frame_shape: tuple[int, ...] = (84, 84)
    frame_dtype: str = "uint8"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)}")
        if self.update_period < 1:
            raise ValueError(f"update_period ({self.update_period}) must be >= 1")
        if self.augmentation_pad < 1:
            raise ValueError(f"augmentation_pad ({self.augmentation_pad}) must be >= 1")
        if self.min_replay < self.n_step + self.stack + 1:
            raise ValueError(
                f"min_replay ({self.min_replay}) must be > n_step + stack ({self.n_step} + "
                f"{self.stack}) so the first update has valid transitions to sample"
            )
        if self.replay_capacity <= self.min_replay:
            raise ValueError(
                f"replay_capacity ({self.replay_capacity}) must exceed min_replay "
                f"({self.min_replay})"
            )


def make_optimizer(c: OnlineAgentConfig) -> optax.GradientTransformation:
    """The agent's optimizer: Adam(lr, eps) or centered RMSprop as PyTorch's `RMSprop(lr,
    alpha=decay, eps, centered=True)` (MinAtar's examples/dqn.py): v = decay v + (1 - decay) g^2,
    m = decay m + (1 - decay) g, step = -lr g / (sqrt(v - m^2) + eps), no momentum."""
    if c.optimizer == "rmsprop_centered":
        return optax.rmsprop(
            c.learning_rate,
            decay=c.rmsprop_decay,
            eps=c.rmsprop_eps,
            eps_in_sqrt=False,
            centered=True,
        )
    return optax.adam(c.learning_rate, eps=c.adam_eps)


def linearly_decaying_epsilon(
    step: Array | int, warmup_steps: int, decay_steps: int, final_epsilon: float
) -> Array:
    """Dopamine's eps schedule: 1.0 until warmup, linear to `final_epsilon` over decay_steps.

    eps(t) = final + clip((1 - final) * (decay + warmup - t) / decay, 0, 1 - final).
    """
    steps_left = decay_steps + warmup_steps - jnp.asarray(step, jnp.float32)
    bonus = (1.0 - final_epsilon) * steps_left / decay_steps
    return final_epsilon + jnp.clip(bonus, 0.0, 1.0 - final_epsilon)


@dataclasses.dataclass(frozen=True)
class _OnlineForward:
    """The forward passes both online losses need (DrQ augmentation and noise keys included).

    Attributes:
      augmentation: DrQ augmentation of obs and next_obs (Kostrikov et al. 2021, Sec. 3.1).
      augmentation_pad: its shift range per side (`drq_augment`'s pad).
      noisy: the head is noisy: every training pass draws noise from its own key.
      double_q: the online network picks the bootstrap action.
      target_is_online: target_update_period == 1, so the target equals the online network
        at every update and one pass at next_obs serves as target and selector.
    """

    augmentation: bool = False
    augmentation_pad: int = 4
    noisy: bool = True
    double_q: bool = True
    target_is_online: bool = False

    def outputs(self, network, params, target_params, batch, key):
        """(out_tm1, out_t_target, q_t_selector [B, A]); only out_tm1 carries gradients."""
        k_obs, k_next, k_online, k_online_next, k_target = jax.random.split(key, 5)
        noise = (lambda k: k) if self.noisy else (lambda k: None)
        obs = preprocess_obs(batch["obs"])
        next_obs = preprocess_obs(batch["next_obs"])
        if self.augmentation:
            obs = drq_augment(k_obs, obs, pad=self.augmentation_pad)
            next_obs = drq_augment(k_next, next_obs, pad=self.augmentation_pad)
        out_tm1 = apply_network(network, params, obs, train=True, key=noise(k_online))
        if self.target_is_online and not self.noisy:
            out_t = jax.lax.stop_gradient(apply_network(network, params, next_obs, train=True))
            return out_tm1, out_t, out_t["q_values"]
        out_t = jax.lax.stop_gradient(
            apply_network(network, target_params, next_obs, train=True, key=noise(k_target))
        )
        selector = out_t["q_values"]
        if self.double_q:
            selector = jax.lax.stop_gradient(
                apply_network(network, params, next_obs, train=True, key=noise(k_online_next))[
                    "q_values"
                ]
            )
        return out_tm1, out_t, selector


def _online_extras(out_tm1: dict, per_example: Array) -> dict:
    return {
        "aux": out_tm1["aux"],
        "td_loss": jnp.mean(per_example),
        "q_mean": jnp.mean(out_tm1["q_values"]),
    }


@dataclasses.dataclass(frozen=True)
class C51DoubleQLoss(_OnlineForward):
    """DER's loss: C51 cross-entropy to the projected double-Q target (Hessel et al. 2018).

    A `learners.core.LossFn`; per-example values also become the PER priorities.

    Attributes:
      num_atoms: atoms of the support linspace(-v_max, v_max, num_atoms).
      v_max: support bound.
    """

    num_atoms: int = 51
    v_max: float = 10.0

    def __call__(self, network, params, target_params, batch, key):
        out_tm1, out_t, selector = self.outputs(network, params, target_params, batch, key)
        support = jnp.linspace(-self.v_max, self.v_max, self.num_atoms)
        per_example = jax.vmap(
            lambda lg, a, r, d, p, qs: losses.categorical_double_q_loss(lg, a, r, d, p, qs, support)
        )(
            out_tm1["logits"],  # [B, A, K]
            batch["action"],
            batch["reward"],
            batch["discount"],
            out_t["probabilities"],  # [B, A, K]
            selector,  # [B, A]
        )
        return per_example, _online_extras(out_tm1, per_example)


@dataclasses.dataclass(frozen=True)
class DoubleQHuberLoss(_OnlineForward):
    """DrQ(eps)'s loss: Huber TD error to the double-Q target (`losses.double_q_huber`).

    A `learners.core.LossFn`.
    """

    def __call__(self, network, params, target_params, batch, key):
        out_tm1, out_t, selector = self.outputs(network, params, target_params, batch, key)
        per_example = jax.vmap(losses.double_q_huber)(
            out_tm1["q_values"],  # [B, A]
            batch["action"],
            batch["reward"],
            batch["discount"],
            out_t["q_values"],  # [B, A]
            selector,  # [B, A]
        )
        return per_example, _online_extras(out_tm1, per_example)


def has_noise(c: OnlineAgentConfig) -> bool:
    """Noisy head or noisy torso layers (`noisy=True` torso kwarg): passes need noise keys."""
    return c.noisy or bool(dict(c.torso_kwargs).get("noisy", False))


def make_loss(c: OnlineAgentConfig) -> C51DoubleQLoss | DoubleQHuberLoss:
    """The agent's loss: C51 for num_atoms > 1 (DER), Huber for a scalar head (DrQ(eps))."""
    forward = dict(
        augmentation=c.augmentation,
        augmentation_pad=c.augmentation_pad,
        noisy=has_noise(c),
        double_q=c.double_q,
        target_is_online=c.target_update_period == 1,
    )
    if c.num_atoms > 1:
        return C51DoubleQLoss(**forward, num_atoms=c.num_atoms, v_max=c.v_max)
    return DoubleQHuberLoss(**forward)


class OnlineState(struct.PyTreeNode):
    """Everything an online seed carries between agent steps (checkpointed whole).

    Attributes:
      train: the TrainState (params, target_params, opt_state, step = updates, rng).
      replay: the seed's on-device replay (its `count` is the number of agent steps).
      metric_sums: running sums of the update metrics (host logs differences).
      metric_count: number of updates summed.
    """

    train: TrainState
    replay: online_replay.OnlineReplay
    metric_sums: dict
    metric_count: Array


@dataclasses.dataclass(frozen=True)
class OnlineAgent:
    """init / step of one online agent (pure functions over OnlineState)."""

    config: OnlineAgentConfig

    @functools.cached_property
    def learner(self) -> Learner:
        """The shared learner: QNetwork(torso, RainbowHead), the agent's loss, Adam."""
        c = self.config
        torso = make_torso(c.torso_name, **dict(c.torso_kwargs))
        head = RainbowHead(
            num_actions=c.num_actions,
            num_atoms=c.num_atoms,
            v_max=c.v_max,
            dueling=c.dueling,
            noisy=c.noisy,
            per_sample_noise=c.per_sample_noise,
        )
        return Learner(
            network=QNetwork(torso=torso, head=head),
            loss=make_loss(c),
            optimizer=make_optimizer(c),
            target_update_period=c.target_update_period,
        )

    # ----- init -----
    def init(self, rng: Array) -> OnlineState:
        """One seed: network params, optimizer, empty replay, zero metric sums."""
        c = self.config
        obs = jnp.zeros((1, *stacked_shape(c.frame_shape, c.stack)), c.frame_dtype)
        train = self.learner.init(rng, obs)
        replay = online_replay.OnlineReplay.create(
            c.replay_capacity,
            stack=c.stack,
            n_step=c.n_step,
            gamma=c.gamma,
            frame_shape=c.frame_shape,
            frame_dtype=c.frame_dtype,
        )
        metric_shapes = jax.eval_shape(
            lambda tr, rp: self._update_from_replay(tr, rp, jax.random.key(0))[2], train, replay
        )
        sums = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metric_shapes)
        return OnlineState(
            train=train, replay=replay, metric_sums=sums, metric_count=jnp.zeros((), jnp.int32)
        )

    # ----- learning -----
    def _sample(
        self, replay: online_replay.OnlineReplay, key: Array
    ) -> tuple[Array, Array, dict, Array]:
        """(indices, probabilities, batch, key of the SGD step) of one update of one seed."""
        k_sample, k_update = jax.random.split(key)
        idx, probs = online_replay.sample_proportional(
            k_sample, replay.priority, self.config.batch_size
        )
        batch = online_replay.gather_transitions(replay, idx, self.config.clip_rewards)
        return idx, probs, batch, k_update

    def _update_from_replay(
        self, train: TrainState, replay: online_replay.OnlineReplay, key: Array, lifts=None
    ) -> tuple[TrainState, online_replay.OnlineReplay, dict]:
        """One update: sample, SGD step, re-prioritise. `lifts` = (replay, network) lifts of
        per-seed functions to the seed axis (`_SEED_LIFTS`); None: one seed, no axis."""
        c = self.config
        data, net = lifts or (_same, _same)
        idx, probs, batch, k_update = data(self._sample)(replay, key)
        weights = data(online_replay.importance_weights)(probs) if c.prioritized else None
        train, per_example, metrics = net(self.learner.sgd_step)(train, batch, k_update, weights)
        if c.prioritized:
            replay = data(online_replay.update_priorities)(replay, idx, per_example)
        return train, replay, metrics

    def trains_at(self, agent_step: int) -> bool:
        """Whether agent step t trains (host side): t >= min_replay and (t - min_replay) is a
        multiple of update_period (every step for DER and DrQ(eps))."""
        c = self.config
        return agent_step >= c.min_replay and (agent_step - c.min_replay) % c.update_period == 0

    # ----- acting -----
    def epsilon(self, agent_step: Array) -> Array:
        """Training epsilon at an agent step (0 for a noisy agent)."""
        c = self.config
        if c.noisy:
            return jnp.zeros((), jnp.float32)
        return linearly_decaying_epsilon(
            agent_step, c.min_replay, c.epsilon_decay_steps, c.epsilon_train
        )

    def _store(self, state: OnlineState, frame, first, reward_prev, terminal_prev):
        """Store o_t (finishing row t-1) in one seed's replay."""
        replay = state.replay
        new_priority = replay.max_priority if self.config.prioritized else jnp.float32(1.0)
        replay = online_replay.begin_step(
            replay, frame, first, reward_prev, terminal_prev, new_priority
        )
        return state.replace(replay=replay)

    def _step_keys(self, state: OnlineState):
        """(update key, act key, epsilon) of agent step t = count - 1 (after `_store`)."""
        t = state.replay.count - 1
        key = jax.random.fold_in(state.train.rng, t)
        k_update, k_act = jax.random.split(key)
        return k_update, k_act, self.epsilon(t)

    def _act(self, params, obs: Array, key: Array, epsilon: Array):
        """a_t for one seed's observation [84, 84, K] (Atari)."""
        noise = has_noise(self.config)
        return self.learner.act(params, obs[None], key, epsilon, noise=noise)[0]

    # ----- the fused agent step -----
    def step(
        self,
        state: OnlineState,
        frame: Array,
        first: Array,
        reward_prev: Array,
        terminal_prev: Array,
        *,
        do_update: bool,
        lifts=None,
    ) -> tuple[OnlineState, Array]:
        """One agent step: store, (update), act. See the module docstring.

        Args:
          state: the seed's state after step t-1 (with `lifts`: seeds stacked, [S, ...]).
          frame: uint8 [84, 84] o_t.
          first: bool [] o_t starts a learning episode (reset or life loss).
          reward_prev: float [] raw reward after a_{t-1}.
          terminal_prev: bool [] learning terminal after a_{t-1}.
          do_update: static; whether this step trains (`trains_at`).
          lifts: None for one seed; else (replay lift, network lift) of per-seed functions to
            the leading seed axis (`make_step_fn`).

        Returns:
          (new state, action a_t int32 []).
        """
        data = (lifts or (_same, _same))[0]
        state = data(self._store)(state, frame, first, reward_prev, terminal_prev)
        return self.train_and_act(state, do_update=do_update, lifts=lifts)

    def train_and_act(
        self, state: OnlineState, *, do_update: bool, lifts=None
    ) -> tuple[OnlineState, Array]:
        """The rest of agent step t once o_t is stored (`step`): (update), act."""
        c = self.config
        data, net = lifts or (_same, _same)
        replay = state.replay
        k_update, k_act, epsilon = data(self._step_keys)(state)
        train, sums, count = state.train, state.metric_sums, state.metric_count
        if do_update:
            for u in range(c.updates_per_step):  # replay ratio (1 for DER and DrQ(eps))
                k = k_update if u == 0 else data(lambda x, u=u: jax.random.fold_in(x, u))(k_update)
                train, replay, metrics = self._update_from_replay(train, replay, k, lifts)
                sums = jax.tree.map(jnp.add, sums, metrics)
                count = count + 1
        # Gathered by the replay lift, so only the observations enter the network lift.
        obs = data(online_replay.current_obs)(replay)
        action = net(self._act)(train.params, obs, k_act, epsilon)
        replay = data(online_replay.set_action)(replay, action)
        state = OnlineState(train=train, replay=replay, metric_sums=sums, metric_count=count)
        return state, action


def _same(fn):
    return fn


def make_init_fn(agent: OnlineAgent):
    """Jitted keys [S, 2] (from `learners.core.seed_keys`) -> OnlineState[S]."""
    return jax.jit(jax.vmap(agent.init))


def make_step_fn(agent: OnlineAgent, seed_axis: str = "auto"):
    """Jitted agent step over the seed axis (one or two jitted calls); the state is donated.

    (state[S], frame uint8 [S, 84, 84], first bool [S], reward float [S], terminal bool [S],
     do_update: static bool) -> (state[S], action int32 [S]).

    Replay work (store, sample, gather, re-prioritise) is vmapped, so the donated buffers are
    updated in place; network work (SGD step, acting) is lifted by `learners.core.over_seeds`:
    vmap on accelerators, one seed after another on CPU, where vmapped convolutions become
    grouped convolutions (DER on Catch, 2 CPU cores: 411 ms per agent step for 3 seeds vmapped,
    39 ms for one seed). Lifting the whole step that way would copy every seed's replay out of
    the state and back each step instead.
    """

    def net(fn):
        lifted = over_seeds(lambda per_seed, _: fn(*per_seed), seed_axis)
        return lambda *args: lifted(args, None)

    lifts = (jax.vmap, net)
    # An updating step is two calls: storing o_t, then training and acting. In one call XLA
    # fused the new frame's write into the sampled gathers, which then read the old buffer,
    # so it copied the whole frame buffer every update (33 ms an agent step for a 100k-row
    # MinAtar replay on CPU, 2.5 ms as two calls; an optimization barrier did not stop it).
    # A step without an update reads one row only and stays one call (0.38 ms against 0.53).
    store = jax.jit(jax.vmap(agent._store), donate_argnums=0)
    train_and_act = jax.jit(
        lambda state: agent.train_and_act(state, do_update=True, lifts=lifts), donate_argnums=0
    )
    fused = jax.jit(
        lambda state, frame, first, reward, terminal: agent.step(
            state, frame, first, reward, terminal, do_update=False, lifts=lifts
        ),
        donate_argnums=0,
    )

    def step(state, frame, first, reward, terminal, do_update):
        if do_update:
            return train_and_act(store(state, frame, first, reward, terminal))
        return fused(state, frame, first, reward, terminal)

    return step
