"""Shared pieces of the ingest path (no TensorFlow): errors, episodes, option parsing."""

from __future__ import annotations

import dataclasses
import fractions
import re

import numpy as np

from offline_moe.errors import IngestError, MissingExtraError

# The pip extra that brings TensorFlow, tensorflow-datasets and rlds (pyproject.toml).
TF_EXTRA = "rlds"


def import_tfds(what: str):
    """`tensorflow_datasets` (TensorFlow with it), or MissingExtraError naming the extra.

    Args:
      what: the work that needs them, for the message ('ingest --source=tfds:...').
    """
    try:
        import tensorflow  # noqa: F401
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise MissingExtraError(
            f"{what} needs TensorFlow and tensorflow-datasets ({e.name} is not installed): "
            f"pip install 'offline_moe[{TF_EXTRA}]' (./run.sh installs it); a replay cache "
            "can be recorded without them: python -m offline_moe.record --cache_dir=DIR"
        ) from e
    return tfds


@dataclasses.dataclass
class Episode:
    """One episode in replay-cache row form (see `offline_moe.replay.cache` for the row rules).

    Attributes:
      observations: uint8 [T, 84, 84]; observations[t] is the frame action t was taken on.
      actions: int32 [T].
      rewards: float32 [T], the reward after action t (unclipped; ingest clips).
      terminated: the game ended right after the last action.
      final_observation: uint8 [84, 84] or None: for a truncated episode, the frame after
        the last action (stored as an observation-only row). None for a terminated episode,
        or when the source does not have it (then the last row becomes observation-only).
      checkpoint: index of the source checkpoint (TFDS split / DQN-Replay suffix).
      context: how many leading frames only fill the frame stacks of the rows after them
        (the episode's earlier steps are not in the data); they carry no transition.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool
    final_observation: np.ndarray | None = None
    checkpoint: int = -1
    context: int = 0

    @property
    def num_transitions(self) -> int:
        """Transitions this episode adds to a cache (rows that are not observation-only)."""
        t = len(self.actions) - self.context
        if self.terminated or self.final_observation is not None:
            return t
        return t - 1


def check_percent(percent: float) -> float:
    """Returns `percent` as a float if it lies in (0, 100], else raises IngestError."""
    try:
        value = float(percent)
    except (TypeError, ValueError) as e:
        raise IngestError(f"--percent: expected a number in (0, 100], got {percent!r}") from e
    if not 0.0 < value <= 100.0:
        raise IngestError(f"--percent: expected a number in (0, 100], got {percent!r}")
    return value


def prefix_count(percent: float, total: int) -> int:
    """int(percent / 100 * total), computed exactly (5% of 1,000,000 is 50,000, never 49,999).

    This is the subsampling rule of Dopamine / the RLDS RLU notebook: the first
    `percent`% of the episodes of each TFDS checkpoint split, or of the transitions of each
    DQN-Replay checkpoint.
    """
    exact = fractions.Fraction(str(float(percent))) * int(total) / 100
    return int(exact)  # floor for non-negative values


SAMPLES = ("prefix", "random")


def check_sample(sample: str) -> str:
    """`sample` if it is one of SAMPLES, else an IngestError listing them."""
    if sample not in SAMPLES:
        raise IngestError(f"--sample={sample!r}: expected one of {', '.join(SAMPLES)}")
    return sample


def random_episodes(lengths, budget: int, seed: int, checkpoint: int) -> np.ndarray:
    """Whole episodes of one checkpoint drawn at random until `budget` is reached.

    The episodes are taken in a random order (a permutation seeded by (seed, checkpoint), so
    each checkpoint's draw is reproducible on its own) and kept until their sizes sum to at
    least `budget`. Every transition thus has the same chance to be kept, and it keeps the
    frames before it (its stack) and after it (its n-step window) from its own episode.

    Args:
      lengths: size of each episode of the checkpoint, in checkpoint order (transitions for
        DQN-Replay; 1 per episode to draw a number of episodes, as TFDS splits do).
      budget: how much to keep (the prefix rule's count, `prefix_count`).
      seed: the recorded sampling seed.
      checkpoint: the checkpoint index.

    Returns:
      Sorted indices of the kept episodes (checkpoint order is kept in the cache).
    """
    lengths = np.asarray(lengths, np.int64)
    if budget <= 0 or lengths.size == 0:
        return np.zeros(0, np.int64)
    order = np.random.default_rng([int(seed), int(checkpoint)]).permutation(lengths.size)
    reached = np.cumsum(lengths[order]) >= budget
    count = int(np.argmax(reached)) + 1 if reached.any() else lengths.size
    return np.sort(order[:count])


_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


def parse_checkpoints(spec: str | None, *, option: str = "--checkpoints") -> list[int] | None:
    """Parses '0-49', '3', '0-4,10,20-24' into a sorted list of ints; None/''/'all' -> None.

    Raises:
      IngestError: on syntax errors or a reversed range.
    """
    if spec is None:
        return None
    if isinstance(spec, int):
        return [spec]
    if isinstance(spec, list | tuple):
        return sorted({int(s) for s in spec})
    spec = str(spec).strip()
    if spec in ("", "all"):
        return None
    out: set[int] = set()
    for part in spec.split(","):
        m = _RANGE.match(part)
        if not m:
            raise IngestError(
                f"{option}: cannot parse {part!r} in {spec!r}; expected comma-separated "
                "indices or ranges like '0-49' or '0-4,10'"
            )
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise IngestError(f"{option}: range {part!r} runs backwards")
        out.update(range(lo, hi + 1))
    return sorted(out)


def format_checkpoints(checkpoints: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5' (for logs and meta.json)."""
    parts: list[str] = []
    i = 0
    while i < len(checkpoints):
        j = i
        while j + 1 < len(checkpoints) and checkpoints[j + 1] == checkpoints[j] + 1:
            j += 1
        lo, hi = checkpoints[i], checkpoints[j]
        parts.append(str(lo) if lo == hi else f"{lo}-{hi}")
        i = j + 1
    return ",".join(parts)
