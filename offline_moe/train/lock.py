"""One writer per run directory: `run.lock`, held with flock and a heartbeat.

A trainer takes the lock before it writes anything (`offline_moe.train.rundir.open_run`); a
second trainer on the same directory is refused at once, naming the holder's host and PID.
flock does not reach across hosts on every shared file system, so the holder also records
its host and touches the file every `HEARTBEAT_S` seconds: a holder on another host counts as
alive until its heartbeat is `STALE_AFTER_S` seconds old.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Mapping

from offline_moe.errors import RunLockedError

LOCK = "run.lock"

# The holder of run.lock touches it every HEARTBEAT_S seconds; a holder recorded by ANOTHER
# host counts as alive until its heartbeat is STALE_AFTER_S old (shared storage on which
# flock does not reach across hosts).
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0


def _proc_start(pid: int) -> int | None:
    """The start time of process `pid` in clock ticks since boot (Linux), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _pid_alive(pid: int, start: int | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    now_start = _proc_start(pid)
    return start is None or now_start is None or now_start == start  # a reused pid is not it


def describe_holder(holder: Mapping) -> str:
    return (
        f"PID {holder.get('pid')} on host {holder.get('host')} "
        f"(started {holder.get('started', '?')})"
    )


class RunLock:
    """One writer per run directory: an exclusive `flock` on `workdir/run.lock`.

    The kernel drops a flock when its process dies (SIGKILL included), so a killed run never
    leaves a stale lock. For shared file systems on which flock may not reach across hosts,
    the holder also records itself in the file (host, pid, process start, start time) and
    touches it every `HEARTBEAT_S` seconds. Even when the flock is granted, a start is refused
    while that recorded holder is alive: on this host, while its process exists; on another
    host, until its heartbeat (the file's mtime) is `STALE_AFTER_S` seconds old. The file is
    emptied on release and never deleted (deleting it would let two processes lock two files).

    Args:
      workdir: the run directory (must exist).
    """

    def __init__(self, workdir: str):
        self.path = os.path.join(workdir, LOCK)
        self._fd: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self, fd: int) -> dict:
        try:
            data = os.pread(fd, 4096, 0)
            return json.loads(data) if data.strip() else {}
        except (OSError, ValueError):
            return {}

    def _alive(self, holder: Mapping) -> bool:
        if not holder.get("pid"):
            return False
        if holder.get("host") == socket.gethostname():
            if int(holder["pid"]) == os.getpid():
                return False  # our own record from an earlier, released open
            return _pid_alive(int(holder["pid"]), holder.get("pid_start"))
        try:
            age = time.time() - os.stat(self.path).st_mtime
        except OSError:
            return False
        return age < STALE_AFTER_S

    def acquire(self) -> None:
        """Takes the lock or raises RunLockedError naming the holder."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._read(fd)
                who = describe_holder(holder) if holder else "a process that has not yet said who"
                raise RunLockedError(
                    f"{os.path.dirname(self.path)} is in use by another trainer: {who} holds "
                    f"{self.path}. Wait for it to finish or stop it; one run directory takes one "
                    "trainer at a time"
                ) from None
            holder = self._read(fd)
            if self._alive(holder):
                other_host = holder.get("host") != socket.gethostname()
                rule = (
                    f"its heartbeat is younger than {STALE_AFTER_S:.0f} s"
                    if other_host
                    else "that process is alive"
                )
                raise RunLockedError(
                    f"{os.path.dirname(self.path)} is in use by another trainer: "
                    f"{describe_holder(holder)} is recorded in {self.path} and {rule} (shared "
                    "storage: the file lock did not see it). Wait for it to finish or stop it"
                )
            me = {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "pid_start": _proc_start(os.getpid()),
                "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me, sort_keys=True) + "\n").encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._stop.clear()
        self._thread = threading.Thread(target=self._heartbeat, name="run.lock", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        if self._fd is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # drops the flock
        self._fd = None
