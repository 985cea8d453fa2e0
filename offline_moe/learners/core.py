"""Learner machinery shared by every agent: TrainState, the SGD step, seeds, fused steps, acting.

A learner is a pair of pure functions, like an optax GradientTransformation:

    learner = Learner(network, loss, optimizer, target_update_period)
    state = learner.init(rng, obs)                 # TrainState
    state, metrics = learner.update(state, batch)  # one gradient step

Agents (CQL and CQL+C51 in `learners.cql`, DER and DrQ(eps) in `learners.online`) differ only
by their network head and their loss, a function with one signature (the shape of acme's
`LossFn`, acme/agents/jax/dqn/learning_lib.py):

    loss(network, params, target_params, batch, key) -> (per_example [B], extras)

`extras` holds the loss's scalar metrics and, under 'aux', the torso's aux dict of the forward
pass at `batch['obs']`. `Learner.sgd_step` is the one SGD step: it weights and averages the
per-example values (importance weights of prioritised replay, or none), adds the torso's
`aux['aux_loss']`, applies the optimizer, syncs the target with `optax.periodic_update` after
the update that brings `step` to a multiple of `target_update_period`, and returns the
per-example values too (they become the new priorities of prioritised replay), and logs the
size of the update to a router's parameters (`networks.moe.router_update_size`, by parameter
name). Learners never look at which torso they got.

Seeds are a batch axis: `init_seeds` vmaps `init` over S keys, and `make_train_fn` builds one
jitted function that, for every seed (vmap on accelerators, one call per seed on CPU, see
`jit_over_seeds`), runs K updates (lax.scan; on CPU unrolled, and K cut to `cpu_unroll`, see
`resolve_unroll` and `effective_scan_steps`), each sampling its own batch from a
`DeviceReplay` passed as an argument. Randomness: the key of update number k of a seed is
`fold_in(state.rng, k)`, so a restored state continues exactly where it stopped. The seed
rule of both tracks is `seed_keys`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from offline_moe.networks.moe import router_update_size
from offline_moe.networks.noisy import NOISE_RNG
from offline_moe.replay.device import SAMPLE_STREAM, assemble_batch
from offline_moe.replay.host import HostReplay, Prefetcher

Array = jax.Array
Batch = Mapping[str, Array]
Metrics = dict[str, Array]


class TrainState(struct.PyTreeNode):
    """Everything that changes during training (a pytree; seeds stack on a leading axis).

    Attributes:
      params: online network parameters.
      target_params: target network parameters.
      opt_state: optimizer state.
      step: int32 [], number of updates done.
      rng: uint32 [2], this seed's base key; per-update keys are fold_in(rng, step).
    """

    params: Any
    target_params: Any
    opt_state: Any
    step: Array
    rng: Array


def apply_network(
    network: nn.Module, params: Any, obs: Array, *, train: bool, key: Array | None = None
) -> dict:
    """Forward pass of a `QNetwork`; `key` feeds a noisy head's noise (train=True only).

    A network with a `compute_dtype` (bfloat16 matmuls) gets its float32 parameters cast to
    it here, the one place every agent's forward pass goes through.
    """
    dtype = getattr(network, "compute_dtype", None)
    if dtype is not None:
        params = jax.tree.map(
            lambda p: p.astype(dtype) if jnp.issubdtype(p.dtype, jnp.floating) else p, params
        )
    rngs = {NOISE_RNG: key} if key is not None else None
    return network.apply({"params": params}, obs, train=train, rngs=rngs)


class LossFn(Protocol):
    """An agent's loss (see the module docstring): per-example values [B] and extras."""

    def __call__(
        self, network: nn.Module, params: Any, target_params: Any, batch: Batch, key: Array
    ) -> tuple[Array, dict]: ...


def epsilon_greedy(key: Array, q_values: Array, epsilon: float | Array) -> Array:
    """Epsilon-greedy actions int32 [B] for Q-values [B, A] (ties go to the lowest action)."""
    greedy = jnp.argmax(q_values, axis=-1).astype(jnp.int32)
    k_explore, k_action = jax.random.split(key)
    explore = jax.random.uniform(k_explore, greedy.shape) < epsilon
    num_actions = q_values.shape[-1]
    random_action = jax.random.randint(k_action, greedy.shape, 0, num_actions, jnp.int32)
    return jnp.where(explore, random_action, greedy)


@dataclasses.dataclass(frozen=True)
class Learner:
    """init / sgd_step / act for one network + loss (see the module docstring).

    Attributes:
      network: a `offline_moe.networks.heads.QNetwork`: uint8 obs [B, 84, 84, K] to a dict
        with 'q_values', 'features', 'aux'.
      loss: the agent's `LossFn`.
      optimizer: an optax transformation.
      target_update_period: sync the target every this many updates.
    """

    network: nn.Module
    loss: LossFn
    optimizer: optax.GradientTransformation
    target_update_period: int

    def init(self, rng: Array, obs: Array) -> TrainState:
        """Initialises one seed from its key and an example observation batch [B, 84, 84, K]."""
        init_key, state_key = jax.random.split(rng)
        params = self.network.init(init_key, obs, train=False)["params"]
        return TrainState(
            params=params,
            target_params=params,
            opt_state=self.optimizer.init(params),
            step=jnp.zeros((), jnp.int32),
            rng=state_key,
        )

    def apply(self, params: Any, obs: Array, *, train: bool, key: Array | None = None) -> dict:
        return apply_network(self.network, params, obs, train=train, key=key)

    def sgd_step(
        self, state: TrainState, batch: Batch, key: Array, weights: Array | None = None
    ) -> tuple[TrainState, Array, Metrics]:
        """One gradient step on `batch`.

        Args:
          state: the seed's TrainState.
          batch: dict of obs, action, reward, discount, next_obs ([B, ...] each).
          key: randomness of the loss (augmentation, noise); unused by deterministic losses.
          weights: optional float [B] per-example weights (prioritised replay).

        Returns:
          (new state, per-example loss [B] with the gradient stopped, metrics).
        """

        def total_loss(params):
            per_example, extras = self.loss(self.network, params, state.target_params, batch, key)
            extras = dict(extras)
            aux = extras.pop("aux")
            aux_loss = jnp.asarray(aux["aux_loss"], jnp.float32)
            weighted = per_example if weights is None else weights * per_example
            total = jnp.mean(weighted) + aux_loss
            metrics = {**extras, "loss": total, "aux_loss": aux_loss}
            for name, value in aux.items():
                if name != "aux_loss":
                    metrics[f"torso/{name}"] = jnp.asarray(value, jnp.float32)
            return total, (per_example, metrics)

        grads, (per_example, metrics) = jax.grad(total_loss, has_aux=True)(state.params)
        updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        step = state.step + 1
        target_params = optax.periodic_update(
            params, state.target_params, step, self.target_update_period
        )
        metrics["grad_norm"] = optax.global_norm(grads)
        for name, value in router_update_size(state.params, updates).items():
            metrics[f"torso/{name}"] = value
        new_state = state.replace(
            params=params, target_params=target_params, opt_state=opt_state, step=step
        )
        return new_state, jax.lax.stop_gradient(per_example), metrics

    def update(
        self, state: TrainState, batch: Batch, key: Array | None = None
    ) -> tuple[TrainState, Metrics]:
        """`sgd_step` without weights; the loss key defaults to this update's LOSS_STREAM key."""
        if key is None:
            key = jax.random.fold_in(update_key(state), LOSS_STREAM)
        state, _, metrics = self.sgd_step(state, batch, key)
        return state, metrics

    def act(
        self, params: Any, obs: Array, key: Array, epsilon: float | Array, *, noise: bool = False
    ) -> Array:
        """Epsilon-greedy actions int32 [B] for uint8 obs [B, 84, 84, K].

        `noise` turns a noisy head's noise on (training actions of DER); its key is split off
        first, so acting without noise uses `key` exactly as `epsilon_greedy` does.
        """
        noise_key = None
        if noise:
            noise_key, key = jax.random.split(key)
        q = self.apply(params, obs, train=noise, key=noise_key)["q_values"]  # [B, A]
        return epsilon_greedy(key, q, epsilon)


# ----- seeds, fused steps -----

LOSS_STREAM = 1  # fold_in tag of an update's loss key (its sampling key: SAMPLE_STREAM)


def update_key(state: TrainState) -> Array:
    """The key of the next update of one seed: fold_in(state.rng, state.step)."""
    return jax.random.fold_in(state.rng, state.step)


def seed_keys(seed: int, num_seeds: int, stream: int = 0) -> Array:
    """Keys [S, 2] of seeds seed, seed+1, ..., seed+S-1 for one random stream.

    The seed rule of both tracks: seed s of a run with base seed b uses
    fold_in(PRNGKey(b + s), stream), so seed 1 of a 2-seed run with base seed 0 is the same as
    a 1-seed run with base seed 1, and `sweep --seeds_per_run` never changes a seed's result.
    """
    return jnp.stack(
        [jax.random.fold_in(jax.random.PRNGKey(seed + s), stream) for s in range(num_seeds)]
    )


def env_seed(seed: int, stream: str) -> int:
    """Emulator seed of the run seed numbered `seed` for a named stream.

    The emulator side of `seed_keys`, the same on both tracks: seed s of a run with base seed b
    passes b + s, so a seed's emulators do not depend on the other seeds of its run. Streams:
    'train' (the online actors), f'eval-{iteration}' (the evaluation after 0-based
    `iteration`).
    """
    entropy = [seed, *map(ord, stream)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def init_seeds(learner: Learner, keys: Array, obs: Array) -> TrainState:
    """Independent seeds (own init and own sampling stream), stacked on a leading axis.

    Args:
      learner: the learner.
      keys: [S, 2], one key per seed (see `seed_keys`).
      obs: example observation batch [B, 84, 84, K].
    """
    return jax.jit(jax.vmap(learner.init, in_axes=(0, None)))(keys, obs)


def _mean_metrics(metrics: Metrics) -> Metrics:
    return jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)


def resolve_unroll(unroll: int | bool | str) -> int | bool:
    """'auto' -> fully unrolled on CPU, a rolled loop elsewhere.

    XLA:CPU runs the body of a while loop (what a rolled lax.scan lowers to) about 6x slower
    than the same update jitted on its own (measured here: Nature CNN, batch 32: 2.3 vs 14.7
    updates/s), while an unrolled scan matches it. On GPU the rolled loop is fast and compiles
    in constant time, so it is kept there. On CPU the number of updates unrolled into one call
    is `cpu_unroll` (see `effective_scan_steps`).
    """
    if unroll == "auto":
        return True if jax.default_backend() == "cpu" else 1
    return unroll


def fused_scan(body: Callable, carry: Any, xs: Any, length: int, unroll: int | bool):
    """`lax.scan(body, carry, xs, length=length, unroll=unroll)`, a full unroll written out.

    A full unroll (`unroll` True or >= length) is a Python loop: lax.scan turns `unroll=True`
    of a length-1 scan into `unroll=1`, a rolled while loop, which XLA:CPU runs ~6x slower
    (see `resolve_unroll`). Same updates, same stacked outputs [length, ...].
    """
    if unroll is not True and (unroll is False or unroll < length):
        return jax.lax.scan(body, carry, xs, length=length, unroll=unroll)
    ys = []
    for i in range(length):
        carry, y = body(carry, None if xs is None else jax.tree.map(lambda x, i=i: x[i], xs))
        ys.append(y)
    return carry, jax.tree.map(lambda *y: jnp.stack(y), *ys)


# Updates per jitted call on CPU, chosen by `python -m offline_moe.bench learner --layouts`
# (docs/results): compile time grows with every unrolled update, while the speed per update
# does not (a plain jit of one update runs as fast). A config's `cpu_unroll` raises it.
CPU_UNROLL = 1
MAX_CPU_UNROLL = 20


def effective_scan_steps(scan_steps: int, cpu_unroll: int = CPU_UNROLL) -> int:
    """Updates per jitted call actually used: K on accelerators; on CPU (where the updates of
    a call are unrolled, see `resolve_unroll`) the largest divisor of K that is <= `cpu_unroll`
    (at most MAX_CPU_UNROLL), so the paper's K = 500 does not unroll 500 updates. The updates
    done are the same either way.
    """
    if not 1 <= cpu_unroll <= MAX_CPU_UNROLL:
        raise ValueError(f"cpu_unroll must be in 1..{MAX_CPU_UNROLL}, got {cpu_unroll}")
    if jax.default_backend() != "cpu" or scan_steps <= cpu_unroll:
        return scan_steps
    return max(d for d in range(1, cpu_unroll + 1) if scan_steps % d == 0)


def resolve_seed_axis(seed_axis: str, *, loop: bool = False) -> str:
    """'auto' -> 'vmap' on accelerators; on CPU 'loop' where the caller takes it (`loop`: a
    training step), else 'map'.

    vmap over seeds turns every convolution into a grouped convolution with per-seed kernels,
    which XLA:CPU runs slowly; on accelerators it is the fast path. 'map' runs the seeds one
    after another inside one jitted call (unrolled: S copies of the program to compile);
    'loop' calls one compiled one-seed program once per seed (see `jit_over_seeds`), so the
    compile time of a training step does not grow with S.
    """
    valid = ("vmap", "map", "loop") if loop else ("vmap", "map")
    if seed_axis == "auto":
        return "vmap" if jax.default_backend() != "cpu" else valid[-1]
    if seed_axis not in valid:
        raise ValueError(f"seed_axis must be 'auto' or one of {valid}, got {seed_axis!r}")
    return seed_axis


def over_seeds(fn: Callable, seed_axis: str = "auto") -> Callable:
    """Lifts fn(per_seed, shared) to a leading seed axis of `per_seed` and of the outputs."""
    mode = resolve_seed_axis(seed_axis)
    if mode == "vmap":
        return jax.vmap(fn, in_axes=(0, None))

    def unrolled_map(per_seed, shared):
        # A Python loop, not lax.map: lax.map is a while loop, slow on XLA:CPU (see above).
        num_seeds = jax.tree.leaves(per_seed)[0].shape[0]
        outs = [fn(jax.tree.map(lambda x, i=i: x[i], per_seed), shared) for i in range(num_seeds)]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

    return unrolled_map


def jit_over_seeds(fn: Callable, seed_axis: str = "auto") -> Callable:
    """Jitted (state[S], shared) -> (state[S], out[S]) from a one-seed fn(state, shared), the
    state donated; the seeds laid out as `resolve_seed_axis(seed_axis, loop=True)` says.

    'loop' compiles fn once, with the seed's index an argument: each call reads seed i from
    the stacked state and returns seed i's new state, and one more call stacks the S new
    states into the donated buffers of the old stack, so every seed runs the same one-seed
    program whatever S is (the seed rule holds by construction). Writing seed i back into
    the stack inside the one-seed call (`.at[i].set`) made XLA:CPU copy the whole S-seed
    state twice per update (copy insertion for the donated stack): 2S state copies per S
    updates against one here, which at 5 seeds of CQL+C51 + Soft MoE (400k parameters, 32 MB
    of state) cost as much as the update itself (`bench learner --game=MinAtarBreakout`).
    """
    mode = resolve_seed_axis(seed_axis, loop=True)
    if mode != "loop":
        return jax.jit(over_seeds(fn, mode), donate_argnums=0)

    @jax.jit
    def one(states, shared, i):
        return fn(jax.tree.map(lambda x: x[i], states), shared)

    @functools.partial(jax.jit, donate_argnums=0)
    def restack(states, new):
        # The old stack is donated: the new one is written into its buffers.
        del states
        return jax.tree.map(lambda *xs: jnp.stack(xs), *new)

    @functools.partial(jax.jit, donate_argnums=0)
    def only(states, shared):
        # One seed: a reshape, not a slice, so the state is neither copied out nor back (a
        # copy of params, target and optimizer state per call cost up to 25% at K = 1).
        state, out = fn(jax.tree.map(lambda x: x.reshape(x.shape[1:]), states), shared)
        return jax.tree.map(lambda x: x.reshape(1, *x.shape), (state, out))

    def looped(states, shared):
        num_seeds = jax.tree.leaves(states)[0].shape[0]
        if num_seeds == 1:
            return only(states, shared)
        new, outs = zip(*(one(states, shared, np.int32(i)) for i in range(num_seeds)))
        return restack(states, new), jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

    return looped


def make_train_fn(
    learner: Learner,
    batch_size: int,
    num_steps: int,
    *,
    unroll: int | bool | str = "auto",
    seed_axis: str = "auto",
) -> Callable[[TrainState, Any], tuple[TrainState, Metrics]]:
    """Jitted (state[S], replay) -> (state[S], metrics[S]): K updates per seed, sampled on device.

    `replay` (a DeviceReplay pytree) is an argument, never a closed-over constant; the state is
    donated. Metrics are averaged over the K updates and stay on device. `unroll` and
    `seed_axis` choose how the K steps and the S seeds are laid out (see `resolve_unroll`,
    `resolve_seed_axis`); every choice computes the same updates.
    """
    unroll = resolve_unroll(unroll)

    def one_seed(state: TrainState, replay) -> tuple[TrainState, Metrics]:
        def body(state, _):
            key = jax.random.fold_in(update_key(state), SAMPLE_STREAM)
            batch = replay.sample(key, batch_size)
            return learner.update(state, batch)

        state, metrics = fused_scan(body, state, None, num_steps, unroll)
        return state, _mean_metrics(metrics)

    return jit_over_seeds(one_seed, seed_axis)


def make_host_train_fn(
    learner, num_steps: int, *, unroll: int | bool | str = "auto", seed_axis: str = "auto"
) -> Callable[[Any, dict], tuple[Any, dict]]:
    """Jitted (state[S], block[S]) -> (state[S], metrics[S]): K updates on prefetched batches.

    The HostReplay twin of `make_train_fn`: same scan and seed layout, batch k of a seed
    taken from its block (see `Prefetcher`) instead of sampled on the device.
    """
    unroll = resolve_unroll(unroll)

    def one_seed(pair, _):
        state, block = pair

        def body(state, xs):
            frames = xs.pop("frames")
            return learner.update(state, assemble_batch(frames, xs))

        state, metrics = fused_scan(body, state, block, num_steps, unroll)
        return state, _mean_metrics(metrics)

    lifted = over_seeds(one_seed, seed_axis)
    return jax.jit(lambda state, block: lifted((state, block), None), donate_argnums=0)


def make_bare_train_fn(
    learner: Learner,
    num_steps: int,
    *,
    unroll: int | bool | str = "auto",
    seed_axis: str = "auto",
) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
    """Jitted (state[S], batch) -> (state[S], metrics[S]): K updates on one fixed batch.

    The compute ceiling for benchmarks: same scan and seed layout as `make_train_fn`, no
    sampling.
    """
    unroll = resolve_unroll(unroll)

    def one_seed(state, batch):
        def body(state, _):
            return learner.update(state, batch)

        state, metrics = fused_scan(body, state, None, num_steps, unroll)
        return state, _mean_metrics(metrics)

    return jit_over_seeds(one_seed, seed_axis)


def make_act_fn(
    learner: Learner, seed_axis: str = "auto"
) -> Callable[[Any, Array, Array, float], Array]:
    """Jitted (params[S], obs [S, E, 84, 84, K], keys [S, 2], epsilon) -> actions [S, E]."""
    lifted = over_seeds(lambda x, eps: learner.act(x[0], x[1], x[2], eps), seed_axis)
    return jax.jit(lambda params, obs, keys, eps: lifted((params, obs, keys), eps))


def make_features_fn(learner: Learner, seed_axis: str = "auto") -> Callable[[Any, Array], dict]:
    """Jitted (params[S], obs [B, ...]) -> network outputs per seed (eval mode, same batch)."""

    def one_seed(params, obs):
        out = learner.apply(params, obs, train=False)
        return {"features": out["features"], "q_values": out["q_values"], "aux": out["aux"]}

    return jax.jit(over_seeds(one_seed, seed_axis))


def num_params(params: Any) -> int:
    """Number of scalars in a (single-seed) parameter pytree."""
    return int(sum(x.size for x in jax.tree.leaves(params)))


class HostTrainStep:
    """`step(state) -> (state, metrics)`: one call of K updates fed by a `Prefetcher`.

    The HostReplay counterpart of `lambda state: train_fn(state, replay)`; `state` is the
    state the run continues from (its rng and step start the prefetcher). Calls must follow
    one another (each advances the step by K, as the trainer's loop does).
    """

    def __init__(self, learner, replay: HostReplay, state, *, batch_size, num_steps, threads=2):
        self.k = int(num_steps)
        self.next_step = int(np.asarray(state.step).reshape(-1)[0])
        self._fn = make_host_train_fn(learner, self.k)
        self._prefetch = Prefetcher(
            replay,
            jnp.asarray(np.asarray(state.rng)),  # a copy: the state's buffers are donated
            self.next_step,
            batch_size=batch_size,
            num_steps=self.k,
            threads=threads,
        )

    def __call__(self, state):
        block = self._prefetch.get(self.next_step)
        self.next_step += self.k
        return self._fn(state, block)

    def close(self) -> None:
        self._prefetch.close()
