"""Run directories, read: config.json, protocol.json, eval.jsonl and summary.json.

What a run is compared on comes from its protocol block (``protocol.json``, written by both
trainers; `offline_moe.train.protocol.protocol_block`): data source and percent, torso and its
kwargs, encoder, budget, evaluation settings and caps, sticky actions. The report never
searches the config for these. A run without a protocol block (written before trainers wrote
one) is grouped as "protocol unknown" and never compared with the paper.

Lines are read as the trainers write them now (`offline_moe.train.loop`): iterations numbered
from 0 and the current rate names, also for runs written before (online runs then numbered
iterations from 1 and called `agent_steps_per_s` `steps_per_sec`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from offline_moe.train import loop as train_loop
from offline_moe.train import rundir as rundir_lib
from offline_moe.train.protocol import PROTOCOL

UNKNOWN = "unknown"
SOURCE_NAMES = {
    "tfds": "DQN-Replay (TFDS)",
    "dqn_replay": "DQN-Replay",
    "record": "locally recorded data",
}


@dataclasses.dataclass(frozen=True)
class Protocol:
    """The settings runs must share to sit in one table (from protocol.json).

    Attributes:
      track: 'offline' or 'online' ('unknown' without a protocol block).
      data_source: kind of data the run learned from: 'tfds' / 'dqn_replay' (DQN-Replay),
        'record' (recorded locally), 'online' (its own interaction), ... ; None if unknown.
      data_percent: percent of the source dataset in the cache (None: not a fraction).
      data_sample: how the cache drew that percent ('random'; None: the first percent, the
        prefix of `ingest --sample=prefix`, also for caches older than that flag).
      iterations: training iterations.
      steps_per_iteration: gradient updates (offline) or agent steps (online) per iteration.
      unit: 'updates' or 'agent_steps'.
      eval_protocol: environment protocol of the evaluation ('dqn_replay', 'atari100k').
      sticky_actions: sticky-action probability of the evaluation emulators.
      eval_cap: agent-step cap per evaluation episode.
      standard_cap: the cap of the protocol (27,000 agent steps = 108,000 frames).
      eval_budget: ('min_steps', N) (offline: full episodes until N steps) or ('episodes', N).
    """

    track: str = UNKNOWN
    data_source: str | None = None
    data_percent: float | None = None
    data_sample: str | None = None
    iterations: int | None = None
    steps_per_iteration: int | None = None
    unit: str | None = None
    eval_protocol: str | None = None
    sticky_actions: float | None = None
    eval_cap: int | None = None
    standard_cap: int | None = None
    eval_budget: tuple = ()

    @property
    def known(self) -> bool:
        return self.track != UNKNOWN

    @property
    def capped(self) -> bool:
        """Evaluation episodes stop before the protocol's cap (scores are not comparable)."""
        return (
            self.eval_cap is not None
            and self.standard_cap is not None
            and self.eval_cap < self.standard_cap
        )

    @classmethod
    def from_block(cls, block: dict) -> Protocol:
        data, budget, ev = block["data"], block["budget"], block["eval"]
        percent = data.get("percent")
        sample = (data.get("cache") or {}).get("sample")
        if ev.get("min_steps") is not None:
            eval_budget = ("min_steps", int(ev["min_steps"]))
        else:
            eval_budget = ("episodes", int(ev["episodes"]))
        return cls(
            track=str(block["track"]),
            data_source=data.get("source"),
            data_percent=None if percent is None else float(percent),
            data_sample=None if sample in (None, "prefix") else str(sample),
            iterations=int(budget["iterations"]),
            steps_per_iteration=int(budget["steps_per_iteration"]),
            unit=str(budget["unit"]),
            eval_protocol=str(ev["protocol"]),
            sticky_actions=float(block["sticky_actions"]),
            eval_cap=int(ev["max_episode_steps"]),
            standard_cap=int(ev["standard_max_episode_steps"]),
            eval_budget=eval_budget,
        )

    def sort_key(self) -> tuple:
        return tuple(str(v) for v in dataclasses.astuple(self))

    def data_text(self) -> str:
        """'5% of DQN-Replay (TFDS)', '100% of locally recorded data', 'online interaction'."""
        if self.data_source is None:
            return "unknown data"
        if self.data_source == "online":
            return "online interaction"
        name = SOURCE_NAMES.get(self.data_source, f"{self.data_source} data")
        if self.data_percent is None:
            return name
        drawn = f" ({self.data_sample} sample)" if self.data_sample else ""
        return f"{_num(self.data_percent)}% of {name}{drawn}"

    def budget_text(self) -> str:
        if self.iterations is None:
            return "unknown budget"
        unit = (self.unit or "steps").replace("_", " ")
        return f"{self.iterations} x {self.steps_per_iteration:,} {unit}"

    def eval_text(self) -> str:
        if self.eval_protocol is None:
            return "unknown evaluation"
        kind, n = self.eval_budget
        amount = f">= {n:,} steps" if kind == "min_steps" else f"{n} episodes"
        cap = f"cap {self.eval_cap:,} steps" + (" (CAPPED)" if self.capped else "")
        return f"eval {self.eval_protocol} (sticky {self.sticky_actions:g}, {cap}, {amount})"

    def describe(self) -> str:
        """One line for headings: data, budget, evaluation."""
        if not self.known:
            return "protocol unknown (no protocol.json)"
        return ", ".join((self.data_text(), self.budget_text(), self.eval_text()))

    def label(self) -> str:
        """A file-name part: 'tfds5pct_200x62500', 'record100pct_2x100_cap200'."""
        if not self.known:
            return "unknown"
        pct = "" if self.data_percent is None else f"{_num(self.data_percent)}pct"
        pct += self.data_sample or ""
        label = f"{self.data_source}{pct}_{self.iterations}x{self.steps_per_iteration}"
        if self.capped:
            label += f"_cap{self.eval_cap}"
        return "".join(c if c.isalnum() or c in "-_." else "-" for c in label)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


@dataclasses.dataclass
class Run:
    """One run directory, read.

    Attributes:
      path: the run directory.
      agent: config 'agent'.
      game: config 'game'.
      torso: {'name': ..., **kwargs} (the kwargs the torso received, from protocol.json).
      seeds: the seed of each vmapped member (config seed .. seed + num_seeds - 1).
      evals: eval.jsonl records in order (iterations from 0, `file_iteration_base`).
      summary: summary.json, or None when absent.
      protocol: the run's protocol block, read.
      learner: config 'learner' (the learner's settings: learning rate, Adam eps, ...), or {}
        for a config without one.
      variant: display label, set by `groups.assign_variants`.
    """

    path: Path
    agent: str
    game: str
    torso: dict
    seeds: list[int]
    evals: list[dict]
    summary: dict | None
    protocol: Protocol
    learner: dict = dataclasses.field(default_factory=dict)
    variant: str = ""
    iteration_base: int = 0  # of the run's files (the records here are renumbered from 0)

    @property
    def done(self) -> bool:
        return bool(self.summary and self.summary.get("done"))

    @property
    def torso_name(self) -> str:
        return str(self.torso.get("name", "?"))

    @property
    def encoder(self) -> str | None:
        return self.torso.get("encoder")

    @property
    def num_experts(self) -> int | None:
        n = self.torso.get("num_experts")
        return None if n is None else int(n)

    def final_scores(self) -> np.ndarray | None:
        """[num_seeds] final returns (the last evaluation), or None without evals."""
        if self.summary and self.summary.get("final_return") is not None:
            return floats(self.summary["final_return"])
        return floats(self.evals[-1]["returns"]) if self.evals else None

    def best_scores(self) -> np.ndarray | None:
        """[num_seeds] best returns over evaluations, or None without evals."""
        if self.summary and self.summary.get("best_return") is not None:
            return floats(self.summary["best_return"])
        if not self.evals:
            return None
        return np.max(np.stack([floats(e["returns"]) for e in self.evals]), axis=0)

    def iteration_of(self, record: dict) -> int:
        """Training iterations completed at an evaluation (its step / steps per iteration)."""
        per = self.protocol.steps_per_iteration
        if per and record.get("step") is not None:
            return int(round(float(record["step"]) / per))
        return int(record.get("iteration", -1)) + 1  # 0-based index of the last one done

    def metrics(self) -> list[dict]:
        """metrics.jsonl records in order, iterations from 0 and the current field names."""
        lines = rundir_lib.read_jsonl(str(self.path / rundir_lib.METRICS))
        return [train_loop.upgrade_record(r, self.iteration_base) for r in lines]

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(iterations [E], returns [E, num_seeds]) from eval.jsonl."""
        its = np.array([self.iteration_of(e) for e in self.evals], dtype=np.int64)
        if not self.evals:
            return its, np.zeros((0, len(self.seeds)))
        return its, np.stack([floats(e["returns"]) for e in self.evals])


def floats(values) -> np.ndarray:
    return np.array([float(v) for v in np.atleast_1d(values)], dtype=np.float64)


def check_root(root: str | os.PathLike) -> Path:
    """`root` as a Path.

    Raises:
      FileNotFoundError: `root` does not exist or is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"--runs_dir: {root} is not a directory (expected the root of run directories, e.g. "
            "the --runs_dir of a sweep)"
        )
    return root


def find_run_dirs(root: str | os.PathLike) -> list[Path]:
    """Every directory under `root` (itself included) that holds a config.json.

    Raises:
      FileNotFoundError: `root` does not exist or is not a directory.
    """
    root = check_root(root)
    found = root.rglob(rundir_lib.CONFIG)
    return sorted(p.parent for p in found if rundir_lib.CHECKPOINTS not in p.parts)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: unreadable ({e})") from e


def load_run(path: str | os.PathLike) -> Run:
    """Reads one run directory (raises ValueError naming the file on malformed content)."""
    path = Path(path)
    config = _read_json(path / rundir_lib.CONFIG)
    missing = [k for k in ("agent", "game") if k not in config]
    if missing:
        raise ValueError(f"{path / rundir_lib.CONFIG}: missing fields {missing}")
    protocol, torso, block = Protocol(), None, None
    if (path / PROTOCOL).is_file():
        block = _read_json(path / PROTOCOL)
        try:
            protocol = Protocol.from_block(block)
            torso = {"name": block["torso"]["name"], **dict(block["torso"]["kwargs"])}
            if block.get("encoder") is not None:
                torso.setdefault("encoder", block["encoder"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path / PROTOCOL}: malformed ({e!r})") from e
    if torso is None:  # no protocol block: the config's torso, for the label only
        torso = config.get("torso") or {}
        torso = {"name": torso} if isinstance(torso, str) else dict(torso)
        # A configs.common block: the config's builtin values under the keys that were set.
        set_keys = {k: v for k, v in torso.items() if k != "builtin" and v is not None}
        torso = {**(torso.get("builtin") or {}), **set_keys}
    seed = int(config.get("seed", 0))
    num_seeds = int(config.get("num_seeds", 1))
    summary = None
    if (path / rundir_lib.SUMMARY).is_file():
        try:
            summary = json.loads((path / rundir_lib.SUMMARY).read_text())
        except ValueError:
            summary = None
    base = file_iteration_base(config, block)
    evals = rundir_lib.read_jsonl(str(path / rundir_lib.EVAL))
    return Run(
        path=path,
        agent=str(config["agent"]),
        game=str(config["game"]),
        torso=torso,
        seeds=list(range(seed, seed + num_seeds)),
        evals=[train_loop.upgrade_record(e, base) for e in evals],
        summary=summary,
        protocol=protocol,
        learner=dict(config["learner"]) if isinstance(config.get("learner"), dict) else {},
        iteration_base=base,
    )


def file_iteration_base(config: dict, block: dict | None) -> int:
    """The number of the first iteration in a run's files: protocol.json's "iteration_base";
    without it 0, or 1 for an online run (one with `iteration_steps` in its config when it has
    no protocol.json), as the online trainer numbered them before both tracks shared one loop.
    """
    if block is not None:
        return train_loop.iteration_base(block.get("track"), block.get("iteration_base"))
    return train_loop.iteration_base("online" if "iteration_steps" in config else "offline")


def load_runs(root: str | os.PathLike, warnings: list[str] | None = None) -> list[Run]:
    """All readable runs under `root`; unreadable ones become warnings.

    Raises:
      FileNotFoundError: `root` is not a directory.
    """
    runs = []
    for path in find_run_dirs(root):
        try:
            runs.append(load_run(path))
        except ValueError as e:
            if warnings is not None:
                warnings.append(f"skipped unreadable run: {e}")
    if warnings is not None:
        old = [str(r.path) for r in runs if not r.protocol.known]
        if old:
            warnings.append(
                f"{len(old)} run(s) without {PROTOCOL} (written by older trainers): "
                f"{', '.join(old[:5])}{' ...' if len(old) > 5 else ''} -- grouped as 'protocol "
                "unknown' and never compared with the paper"
            )
    return runs


def load_runs_from(roots: Sequence[str | os.PathLike], warnings: list[str] | None = None):
    """`load_runs` over several roots, read as one tree; a run directory reached from two
    roots (one inside the other) is read once.

    Raises:
      FileNotFoundError: a root is not a directory (checked for all before any is read).
    """
    roots = [check_root(r) for r in roots]
    runs, seen = [], set()
    for root in roots:
        for run in load_runs(root, warnings):
            key = run.path.resolve()
            if key not in seen:
                seen.add(key)
                runs.append(run)
    return runs


def missing_from_grid(grid_file: Path) -> list[str]:
    """Warnings for runs listed in a sweep's grid file whose directory has no config.json."""
    try:
        entries = json.loads(Path(grid_file).read_text())["runs"]
    except (OSError, ValueError, KeyError, TypeError):
        return [f"unreadable sweep grid file {grid_file}"]
    missing = [
        e["workdir"]
        for e in entries
        if not (grid_file.parent / e["workdir"] / rundir_lib.CONFIG).is_file()
    ]
    if not missing:
        return []
    shown = ", ".join(missing[:10]) + (
        f", ... ({len(missing)} in all)" if len(missing) > 10 else ""
    )
    return [
        f"missing runs: {len(missing)} of the {len(entries)} runs in {grid_file} "
        f"never started: {shown}"
    ]
