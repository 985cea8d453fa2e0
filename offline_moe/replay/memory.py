"""Device memory plan of an offline run: the replay and the seeds' states against the device.

`train_offline` calls `plan_memory` before it loads a cache: it states how much device memory
the replay and the S seeds' `TrainState`s will take and, when they do not fit, refuses with
the sizes and the options instead of failing half-way through a multi-gigabyte copy.

Sizes (bytes per cache row, `DeviceReplay`): the frame (Atari 84 x 84 = 7,056; MinAtar
10 x 10 x C, 1 byte a cell), action, reward and start row 4 each, terminal and
observation-only flags 1 each, plus 4 per sampleable row (at most one per row): 7,074 in all
for Atari. A `HostReplay` keeps only the 18 non-frame bytes on the
device. A seed's state is its online and target parameters plus Adam's two moments, 16 bytes
per parameter (computed exactly, without allocating, by `jax.eval_shape`).

The device's capacity is `device.memory_stats()['bytes_limit']` where the backend reports it
(GPU, TPU; on GPUs JAX reserves 75% of the memory unless `XLA_PYTHON_CLIENT_MEM_FRACTION`
says otherwise), else the host's available memory (CPU). `HEADROOM` is kept free for the
training step's activations and XLA's workspace (the accelerator check,
`python -m offline_moe.bench device`, measures the real peak).
"""

from __future__ import annotations

import dataclasses
import os

FRAME_BYTES = 7_056  # an Atari frame, uint8 [84, 84] (the default; caches state their own)
ROW_BYTES = 4 + 4 + 4 + 1 + 1 + 4  # action, reward, start_row, terminal, observation_only, valid
GiB = 2**30
REPLAY_MODES = ("auto", "device", "host")


def headroom(limit: int) -> int:
    """Bytes left free for activations and workspace: 1 GiB or 5% of the device, the larger."""
    return max(GiB, limit // 20)


class MemoryPlanError(ValueError):
    """The replay and the seeds' states do not fit the device."""


def device_capacity() -> tuple[int | None, str]:
    """(bytes the default device can hold, where the figure comes from)."""
    import jax

    dev = jax.devices()[0]
    try:
        stats = dev.memory_stats() or {}
    except Exception:  # some backends raise instead of returning None
        stats = {}
    if stats.get("bytes_limit"):
        return int(stats["bytes_limit"]), f"{dev.device_kind} memory_stats()['bytes_limit']"
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "host MemAvailable (/proc/meminfo)"
    except OSError:
        pass
    try:
        pages = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return int(pages), "host available pages (sysconf)"
    except (ValueError, OSError):
        return None, "unknown"


def state_bytes(learner, num_seeds: int, obs_shape=(84, 84, 4), obs_dtype="uint8") -> int:
    """Exact bytes of `num_seeds` TrainStates of `learner` for observations of `obs_shape`
    (default Atari's 4 stacked 84x84 frames) (nothing is allocated).

    `learner` is anything with the learners' `init(key, obs) -> TrainState`; the seeds are
    stacked as `offline_moe.learners.init_seeds` stacks them (a vmap over one key per seed).
    """
    import jax
    import jax.numpy as jnp

    keys = jax.eval_shape(lambda: jax.random.split(jax.random.PRNGKey(0), num_seeds))
    obs = jax.ShapeDtypeStruct((1, *obs_shape), jnp.dtype(obs_dtype))
    shapes = jax.eval_shape(jax.vmap(learner.init, in_axes=(0, None)), keys, obs)
    return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes)))


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / GiB:.2f} GiB"


@dataclasses.dataclass(frozen=True)
class MemoryPlan:
    """What an offline run will hold on the device.

    Attributes:
      replay: 'device' (DeviceReplay) or 'host' (HostReplay), after resolving 'auto'.
      rows: cache rows.
      frame_bytes: bytes of the frames (on the device for 'device', in host memory for 'host').
      replay_device_bytes: the replay's bytes on the device.
      state_bytes: the S seeds' TrainStates.
      num_seeds: S.
      capacity: bytes the device can hold (None: unknown); capacity_source: where from.
      headroom: bytes kept free for activations and workspace.
    """

    replay: str
    rows: int
    frame_bytes: int
    replay_device_bytes: int
    state_bytes: int
    num_seeds: int
    capacity: int | None
    capacity_source: str
    headroom: int

    @property
    def device_bytes(self) -> int:
        return self.replay_device_bytes + self.state_bytes

    @property
    def fits(self) -> bool:
        return self.capacity is None or self.device_bytes + self.headroom <= self.capacity

    def describe(self) -> str:
        where = "on the device" if self.replay == "device" else "in host memory (HostReplay)"
        return (
            f"memory plan: replay {self.rows:,} rows, frames {_gib(self.frame_bytes)} {where}, "
            f"{_gib(self.replay_device_bytes)} of replay + {_gib(self.state_bytes)} for "
            f"{self.num_seeds} seed(s)' states on the device = {_gib(self.device_bytes)} "
            f"(+ {_gib(self.headroom)} headroom) of {_gib(self.capacity)} "
            f"({self.capacity_source})"
        )


def plan_memory(
    num_rows: int,
    *,
    replay: str,
    state_bytes: int,
    num_seeds: int,
    capacity: int | None = None,
    capacity_source: str = "given",
    cache_dir: str = "<cache>",
    frame_bytes: int = FRAME_BYTES,
) -> MemoryPlan:
    """Plans where the replay goes; raises `MemoryPlanError` if it cannot fit.

    Args:
      num_rows: rows of the cache (meta.json `num_rows`).
      replay: 'device', 'host', or 'auto' (device if it fits, else host).
      state_bytes: bytes of the seeds' states (`state_bytes`).
      num_seeds: S (for the message).
      capacity: device bytes (default: `device_capacity()`).
      capacity_source: where `capacity` comes from (for the message).
      cache_dir: for the message.
      frame_bytes: bytes of one stored frame (the cache's; default an Atari frame).
    """
    if replay not in REPLAY_MODES:
        raise ValueError(f"config.data.replay is {replay!r}; valid: {', '.join(REPLAY_MODES)}")
    if capacity is None:
        capacity, capacity_source = device_capacity()
    frames = int(num_rows) * int(frame_bytes)
    rows = int(num_rows) * ROW_BYTES

    def make(mode):
        return MemoryPlan(
            replay=mode,
            rows=int(num_rows),
            frame_bytes=frames,
            replay_device_bytes=rows + (frames if mode == "device" else 0),
            state_bytes=int(state_bytes),
            num_seeds=int(num_seeds),
            capacity=capacity,
            capacity_source=capacity_source,
            headroom=headroom(capacity) if capacity else 0,
        )

    on_device = make("device")
    if replay == "device" or (replay == "auto" and on_device.fits):
        chosen = on_device
    else:
        chosen = make("host")
    if chosen.fits:
        return chosen
    options = [
        "fewer seeds per program (--config.num_seeds)",
        "a smaller cache (e.g. --config.data.percent=5 and its cache)",
        "a device with more memory",
    ]
    if chosen.replay == "device":
        options.insert(0, "--config.data.replay=host (frames stay in host memory; see docs/gpu.md, "
                       "'HostReplay', for its rate)")  # fmt: skip
    if "bytes_limit" in capacity_source:
        options.insert(1, "XLA_PYTHON_CLIENT_MEM_FRACTION=0.95 (JAX reserves 75% of a GPU)")
    raise MemoryPlanError(
        f"replay cache {cache_dir} does not fit: {chosen.describe()}. Options: "
        + "; ".join(options)
    )
