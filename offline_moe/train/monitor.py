"""Live monitoring of a run directory: TensorBoard event files and, if asked, Weights & Biases.

`RunDir` hands every metrics.jsonl / eval.jsonl record to a `Monitor`, which writes its numeric
fields as TensorBoard scalars (tensorboardX: no TensorFlow) into event files beside the JSONL
logs, flushed at once, so `tensorboard --logdir ROOT` shows a sweep while it runs:

  record field                      TensorBoard tags
  loss: [S] (one value per seed)    train/loss (mean over seeds), train/loss/seed_<i> (S > 1)
  torso/expert_usage: [S, n]        torso/expert_usage/<j> (mean over seeds)
  returns (an eval record)          eval/returns, eval/returns/seed_<i>
  repr/srank                        repr/srank, ...

A field without '/' gets the record's prefix (train/ or eval/); 'iteration' and 'step' are not
scalars (the step is the x axis: updates offline, agent steps online). Ragged fields (the
online track's per-seed lists of episode returns) are skipped.

Crash safety: `truncate_event_files` drops the events past the last checkpoint when a run
resumes, like `RunDir.truncate_logs` drops JSONL lines, so a resumed run shows each step once.
An event file is a sequence of records (TFRecord framing: u64 length, u32 crc, data, u32 crc),
each holding one `Event` proto; a record cut by a kill is dropped with everything after it.

Weights & Biases (`configure(wandb_project=...)`, the trainers' --wandb_project flag) is off by
default, imported only when asked, and resumes the same W&B run (id from the run directory).
"""

from __future__ import annotations

import glob
import hashlib
import math
import os
import struct
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

EVENTS_GLOB = "events.out.tfevents.*"
NOT_SCALARS = ("iteration", "step")

_settings = {"tensorboard": True, "wandb_project": None}


def configure(*, tensorboard: bool = True, wandb_project: str | None = None) -> None:
    """Process-wide monitoring settings for run directories opened afterwards (trainer flags)."""
    _settings["tensorboard"] = bool(tensorboard)
    _settings["wandb_project"] = wandb_project or None


def scalars_of(record: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """{tag: value} of a JSONL record's numeric fields (see the module docstring)."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key in NOT_SCALARS or isinstance(value, str | bool) or value is None:
            continue
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            continue  # ragged (lists of episode returns) or not numeric
        tag = key if "/" in key else f"{prefix}/{key}"
        if arr.ndim == 0:
            out[tag] = float(arr)
        elif arr.ndim == 1 and arr.size:
            out[tag] = float(np.mean(arr))
            if arr.size > 1:
                out.update({f"{tag}/seed_{i}": float(v) for i, v in enumerate(arr)})
        elif arr.ndim == 2 and arr.size:
            out.update({f"{tag}/{j}": float(v) for j, v in enumerate(arr.mean(axis=0))})
    return {k: v for k, v in out.items() if math.isfinite(v)}


class Monitor:
    """Scalar sinks of one run directory (TensorBoard; W&B if configured). Opened lazily.

    Args:
      workdir: the run directory (event files go there).
      config: the run's config (W&B run config), or None.
    """

    def __init__(self, workdir: str, config: Mapping | None = None):
        self.workdir = workdir
        self.config = config
        self._tb = None
        self._wandb = None

    def log(self, record: Mapping[str, Any], prefix: str) -> None:
        """Writes the record's scalars at step record['step'] and flushes them to disk."""
        step = record.get("step")
        if step is None:
            return
        scalars = scalars_of(record, prefix)
        if _settings["tensorboard"] and scalars:
            self._write_event(int(step), scalars)
        if _settings["wandb_project"]:
            if self._wandb is None:
                self._wandb = _wandb_run(self.workdir, _settings["wandb_project"], self.config)
            self._wandb.log(scalars, step=int(step))

    def _write_event(self, step: int, scalars: dict[str, float]) -> None:
        """One Event with all scalars, written and flushed before returning.

        tensorboardX's SummaryWriter queues events for a background thread, so its flush()
        is no barrier: a kill right after it could lose events that the JSONL line (fsynced)
        kept. The synchronous record writer underneath it is used instead.
        """
        from tensorboardX.event_file_writer import EventsWriter
        from tensorboardX.proto import event_pb2, summary_pb2

        if self._tb is None:
            # A unique suffix: a writer opened within the same second (a quick resume) must
            # not reuse, and so overwrite, the previous file of that name.
            self._tb = EventsWriter(os.path.join(self.workdir, "events"), f".{time.time_ns()}")
        values = [summary_pb2.Summary.Value(tag=k, simple_value=v) for k, v in scalars.items()]
        event = event_pb2.Event(
            wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values)
        )
        self._tb.write_event(event)
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def _wandb_run(workdir: str, project: str, config: Mapping | None):
    try:
        import wandb
    except ImportError:
        raise SystemExit(
            f"--wandb_project={project!r} needs the wandb package: pip install wandb "
            "(or drop the flag; TensorBoard event files are always written)"
        ) from None
    run_id = hashlib.sha1(os.path.abspath(workdir).encode()).hexdigest()[:16]
    return wandb.init(
        project=project,
        id=run_id,
        name=os.path.basename(os.path.dirname(workdir)) + "/" + os.path.basename(workdir),
        dir=workdir,
        config=dict(config or {}),
        resume="allow",
    )


# ----- event files on resume -----


def _records(path: str):
    """(raw bytes, Event) of every complete record of an event file, in order."""
    from tensorboardX.proto import event_pb2

    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        end = pos + 12 + length + 4
        if end > len(data):
            break  # cut by a kill
        event = event_pb2.Event()
        try:
            event.ParseFromString(data[pos + 12 : pos + 12 + length])
        except Exception:  # noqa: BLE001 - a damaged record ends the readable part
            break
        yield data[pos:end], event
        pos = end


def event_files(workdir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(workdir, EVENTS_GLOB)))


def truncate_event_files(workdir: str, max_step: int | None) -> None:
    """Keeps only events with step <= max_step in the run's event files (none if None)."""
    for path in event_files(workdir):
        if max_step is None:
            os.remove(path)
            continue
        kept, dropped = [], False
        for raw, event in _records(path):
            if event.step <= max_step or not event.HasField("summary"):
                kept.append(raw)
            else:
                dropped = True
        size = sum(len(r) for r in kept)
        if not dropped and size == os.path.getsize(path):
            continue
        tmp = os.path.join(workdir, f".{os.path.basename(path)}.tmp{os.getpid()}")  # not globbed
        with open(tmp, "wb") as f:
            f.write(b"".join(kept))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
