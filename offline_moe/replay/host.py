"""HostReplay: frames in host memory, indices sampled on the device, batches prefetched.

For caches larger than the accelerator's memory (the paper's 10% of a game is ~35 GB of
frames). Everything except the frames (actions, rewards, flags, episode starts, valid rows:
~20 bytes a row) lives on the device in a frame-less `DeviceReplay`, so the indices of every
update are drawn there exactly as `DeviceReplay.sample` draws them inside the fused scan:
update k of a call that starts at step s uses key fold_in(fold_in(rng, s + k), SAMPLE_STREAM)
(`offline_moe.learners.core.make_train_fn`). Per call of K fused updates the pipeline is:

1. device: the row indices of all K x B frame stacks (and the masks, n-step rewards,
   discounts, actions of those transitions) for every seed, from (rng, step) alone;
2. host: those frames gathered from the (memory-mapped) frame array by `threads` threads;
3. host -> device: one transfer of uint8 [S, K, B, 2 * stack, 84, 84] (any cache: its frames,
   [S, K, B, 2 * stack, *frame_shape]);
4. device: the K updates, on batches built from that block
   (`offline_moe.learners.core.make_host_train_fn`, `HostTrainStep`).

Steps 1-3 for call c + 1 run in a background thread while the device runs call c (double
buffering: one block is being trained on, the next one is being built). Since the indices
depend only on (rng, step), the batches are exactly those `DeviceReplay` gives for the same
state: training from a HostReplay gives the same updates (tests/replay/test_host.py), and a
run resumed from a checkpoint continues as it would have.

The cost is host memory bandwidth and the transfer: per update and seed B x 2 x stack frames
of 7,056 bytes (1.8 MB at B = 32); `benchmark_host_sampling` measures the rate.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np

from offline_moe.replay.cache import load_cache
from offline_moe.replay.device import SAMPLE_STREAM, DeviceReplay, assemble_batch


class HostReplay:
    """A replay cache whose frames stay in host memory (see the module docstring).

    Attributes:
      index: a `DeviceReplay` without frames (observation has 0 rows) holding everything
        else on the device; its `transition_rows` gives the frame rows of a transition.
      frames: [N, *frame_shape] host array of the cache's frame dtype (memory-mapped from the
        cache by default; Atari uint8 [N, 84, 84]).
      stack, n_step, gamma, meta, num_actions, num_valid, num_rows: as `DeviceReplay`.
    """

    def __init__(self, index: DeviceReplay, frames: np.ndarray):
        if frames.ndim not in (3, 4) or frames.shape[0] != index.num_rows:
            raise ValueError(
                f"HostReplay: frames must be [{index.num_rows}, H, W(, C)], got {frames.shape}"
            )
        self.index = index
        self.frames = frames
        self.stack, self.n_step, self.gamma = index.stack, index.n_step, index.gamma

    @classmethod
    def load(
        cls,
        cache_dir: str,
        *,
        stack: int | None = None,
        n_step: int = 1,
        gamma: float = 0.99,
        in_memory: bool = False,
        num_actions: int | None = None,
    ) -> HostReplay:
        """Loads a cache: frames memory-mapped (or read into RAM), the rest onto the device.

        `num_actions` as in `DeviceReplay.load` (checked, and standing in for a missing one).
        """
        arrays, meta = load_cache(cache_dir, mmap=True, num_actions=num_actions)
        if meta.get("num_actions") is None and num_actions is not None:
            meta = {**meta, "num_actions": int(num_actions)}
        frames = arrays["observation"]
        if in_memory:
            frames = np.array(frames)
        return cls.from_arrays(
            arrays, meta, frames=frames, stack=stack, n_step=n_step, gamma=gamma, name=cache_dir
        )

    @classmethod
    def from_arrays(
        cls, arrays, meta=None, *, frames=None, stack=None, n_step=1, gamma=0.99, name="<arrays>"
    ) -> HostReplay:
        """Builds one from cache-format arrays (`frames` defaults to arrays['observation'])."""
        frames = np.asarray(arrays["observation"] if frames is None else frames)
        no_frames = dict(arrays)
        no_frames["observation"] = np.zeros((0, *frames.shape[1:]), frames.dtype)
        index = DeviceReplay.from_arrays(
            no_frames, meta, stack=stack, n_step=n_step, gamma=gamma, name=name
        )
        return cls(index, frames)

    @property
    def meta(self) -> dict:
        return self.index.meta

    @property
    def num_actions(self) -> int:
        return self.index.num_actions

    @property
    def num_valid(self) -> int:
        return self.index.num_valid

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return self.index.obs_shape

    @property
    def num_rows(self) -> int:
        return self.index.num_rows

    def device_bytes(self) -> int:
        """Bytes this replay keeps on the device (all but the frames)."""
        return int(sum(x.nbytes for x in jax.tree.leaves(self.index)))

    def __repr__(self) -> str:
        return (
            f"HostReplay(rows={self.num_rows}, valid={self.num_valid}, stack={self.stack}, "
            f"n_step={self.n_step}, frames on the host)"
        )

    # -- sampling --------------------------------------------------------------------------

    def sample(self, key: jax.Array, batch_size: int) -> dict[str, jax.Array]:
        """One batch, as `DeviceReplay.sample(key, batch_size)` (not jittable: host gather)."""
        rows = jax.jit(_sample_rows, static_argnums=2)(self.index, key, batch_size)
        return assemble_batch(jnp.asarray(self.gather(rows)), rows)

    def gather(self, rows: dict, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
        """Host frames for `rows['frame_rows']` (int [..., 2 * stack]) -> [..., *frame_shape]."""
        idx = np.asarray(rows["frame_rows"])
        flat = idx.reshape(-1)
        out = np.empty((flat.size, *self.frames.shape[1:]), self.frames.dtype)
        if pool is None or flat.size < 4096:
            np.take(self.frames, flat, axis=0, out=out)
        else:
            parts = np.array_split(np.arange(flat.size), pool._max_workers)
            list(
                pool.map(
                    lambda p: np.take(self.frames, flat[p[0] : p[-1] + 1], axis=0,
                                      out=out[p[0] : p[-1] + 1]),
                    [p for p in parts if p.size],
                )
            )  # fmt: skip
        return out.reshape(*idx.shape, *self.frames.shape[1:])


def _sample_rows(index: DeviceReplay, key: jax.Array, batch_size: int) -> dict:
    """Frame rows, masks and scalar fields of one batch, drawn as `DeviceReplay.sample`."""
    i = jax.random.randint(key, (batch_size,), 0, index.valid.shape[0])
    return index.transition_rows(index.valid[i])


def call_rows(index: DeviceReplay, rng: jax.Array, step: jax.Array, batch_size: int, k: int):
    """Rows of the K batches of one seed's call starting at `step` (keys as `make_train_fn`)."""

    def one(j):
        key = jax.random.fold_in(jax.random.fold_in(rng, step + j), SAMPLE_STREAM)
        return _sample_rows(index, key, batch_size)

    return jax.vmap(one)(jnp.arange(k, dtype=jnp.int32))


class Prefetcher:
    """Builds the blocks of consecutive calls in a background thread (double buffering).

    Args:
      replay: the HostReplay.
      rng: [S, 2] the seeds' base keys (TrainState.rng); step: first update's step (host int;
        every seed of a run is at the same step).
      batch_size, num_steps: B and K of each call.
      threads: host threads gathering frames.
      depth: blocks built ahead of the one in use (1 = double buffering).

    `get(step)` returns the (device) block of the call that starts at `step`.
    """

    def __init__(self, replay, rng, step, *, batch_size, num_steps, threads=2, depth=1):
        self.replay, self.k, self.b = replay, int(num_steps), int(batch_size)
        self.next_step = int(step)
        self._rows_fn = jax.jit(
            jax.vmap(call_rows, in_axes=(None, 0, None, None, None)), static_argnums=(3, 4)
        )
        self._rng = rng
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max(1, threads))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _build(self, step: int):
        rows = self._rows_fn(self.replay.index, self._rng, jnp.int32(step), self.b, self.k)
        frames = jax.device_put(self.replay.gather(rows, self._pool))
        return step, {"frames": frames, **{k: v for k, v in rows.items() if k != "frame_rows"}}

    def _run(self):
        step = self.next_step
        try:
            while not self._stop.is_set():
                item = self._build(step)
                while not self._stop.is_set():
                    try:
                        self._queue.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                step += self.k
        except BaseException as e:  # handed to the consumer
            self._queue.put((None, e))

    def get(self, step: int) -> dict:
        got, block = self._queue.get()
        if got is None:
            raise RuntimeError("HostReplay prefetch thread failed") from block
        if got != int(step):
            raise RuntimeError(f"HostReplay prefetch: expected the block of step {step}, got {got}")
        return block

    def close(self) -> None:
        self._stop.set()
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass
        self._thread.join(timeout=10)
        self._pool.shutdown(wait=False)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def benchmark_host_sampling(
    replay, batch_size: int = 32, iters: int = 200, *, threads: int = 2, calls: int = 4
) -> dict:
    """Transitions/s the HostReplay pipeline delivers to the device (one seed, K = `iters`).

    `replay` is a DeviceReplay or a HostReplay (a DeviceReplay's frames are copied to the
    host first). Each block is reduced on the device as `benchmark_sampling` does, so every
    frame must arrive; the first block (compile) is not timed.
    """
    if isinstance(replay, DeviceReplay):
        arrays = {
            "observation": np.asarray(replay.observation),
            "action": np.asarray(replay.action),
            "reward": np.asarray(replay.reward),
            "terminal": np.asarray(replay.terminal),
            "observation_only": np.asarray(replay.observation_only),
            "episode_start": np.asarray(replay.start_row) == np.arange(replay.num_rows),
        }
        replay = HostReplay.from_arrays(
            arrays, replay.meta, stack=replay.stack, n_step=replay.n_step, gamma=replay.gamma
        )

    @jax.jit
    def consume(block):
        frames = block.pop("frames")
        b = assemble_batch(frames, block)
        return jnp.sum(b["obs"], dtype=jnp.int32) + jnp.sum(b["next_obs"], dtype=jnp.int32)

    rng = jnp.stack([jax.random.PRNGKey(0)])
    with Prefetcher(replay, rng, 0, batch_size=batch_size, num_steps=iters, threads=threads) as pre:
        consume(dict(pre.get(0))).block_until_ready()
        t0 = time.perf_counter()
        for c in range(1, calls + 1):
            consume(dict(pre.get(c * iters))).block_until_ready()
        wall = time.perf_counter() - t0
    return {
        "transitions_per_s": round(calls * iters * batch_size / wall, 1),
        "batch": batch_size,
        "updates_per_block": iters,
        "gather_threads": threads,
        "host_bytes_per_transition": 2 * replay.stack * replay.frames[0].nbytes,
        "device_bytes": replay.device_bytes(),
    }
