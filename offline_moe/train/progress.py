"""The progress line both trainers print, and its ETA.

    [train_offline] it 1/2 update 40/200 loss 0.7326 | 95.1 updates/s x2 seeds | ETA 0m09s
    [train_online] it 3/10 step 3,000/10,000 loss 0.0412 | 310.2 agent steps/s 77.5 updates/s
        x2 seeds | ETA 1m10s

The ETA is the wall-clock time left: the steps left at the measured training rate plus the
evaluations left at the measured evaluation time. The first block of a process includes
compilation: until a later block is timed, the rate comes from it (the line then says
"incl. compile"), and until an evaluation is timed the ETA says "+ eval".
"""

from __future__ import annotations

import time


def fmt_time(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


class Progress:
    """Times training blocks and evaluations of one process; formats the progress line.

    Args:
      total: steps of the whole run (updates offline, agent steps online).
      evals_total: evaluations of the whole run.
      evals_done: evaluations already done (a resumed run).
      unit: 'update' or 'step' (the line's counter).
      num_seeds: seeds trained side by side.
    """

    def __init__(self, total: int, evals_total: int, evals_done: int, unit: str, num_seeds: int):
        self.total = total
        self.evals_left = evals_total - evals_done
        self.unit = unit
        self.num_seeds = num_seeds
        self.blocks = 0
        self.first = (0, 0.0)  # (steps, seconds) of the first block: includes compilation
        self.timed = (0, 0.0)  # the same over later blocks
        self.eval_seconds: list[float] = []

    def block(self, steps: int, seconds: float) -> None:
        """A training block of `steps` steps took `seconds` (the first includes compiling)."""
        if self.blocks == 0:
            self.first = (steps, seconds)
        else:
            self.timed = (self.timed[0] + steps, self.timed[1] + seconds)
        self.blocks += 1

    def evaluation(self, seconds: float) -> None:
        self.eval_seconds.append(seconds)
        self.evals_left -= 1

    def seconds_per_step(self) -> float | None:
        """Training seconds per step, compilation excluded once a later block is timed."""
        steps, seconds = self.timed if self.timed[0] else self.first
        return seconds / steps if steps else None

    def eta(self, done: int) -> float | None:
        per_step = self.seconds_per_step()
        if per_step is None:
            return None
        left = (self.total - done) * per_step
        if self.eval_seconds:  # the latest: the first evaluation also compiles the act step
            left += max(self.evals_left, 0) * self.eval_seconds[-1]
        return left

    def line(
        self,
        iteration: int,
        num_iterations: int,
        done: int,
        loss: float,
        rates: dict[str, float],
    ) -> str:
        """'it i/n update d/t loss l | r1 name1 r2 name2 xS seeds | ETA ...'.

        Args:
          iteration: 1-based iteration.
          num_iterations: iterations of the run.
          done: steps done so far.
          loss: mean training loss over seeds of the last block.
          rates: e.g. {'updates/s': 95.1} or {'agent steps/s': 310.2, 'updates/s': 77.5}.
        """
        eta = self.eta(done)
        compiling = not self.timed[0]
        if eta is None:
            eta_text = "?"
        else:
            eta_text = fmt_time(eta)
            if self.evals_left > 0 and not self.eval_seconds:
                eta_text += " + eval"
        rate_text = " ".join(f"{v:,.1f} {k}" for k, v in rates.items())
        return (
            f"it {iteration}/{num_iterations} {self.unit} {done:,}/{self.total:,} "
            f"loss {loss:.4f} | {rate_text} x{self.num_seeds} seeds"
            f"{' (incl. compile)' if compiling else ''} | ETA {eta_text}"
        )


class Stopwatch:
    """time.time() deltas: `lap()` returns the seconds since the previous lap (or creation)."""

    def __init__(self):
        self.t = time.time()

    def lap(self) -> float:
        now = time.time()
        out, self.t = now - self.t, now
        return out
