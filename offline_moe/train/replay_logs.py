"""The online track's replay logged as DQN-Replay checkpoints (Dopamine's log files).

DQN-Replay (Agarwal et al. 2020, "An Optimistic Perspective on Offline Reinforcement
Learning", Sec. 3) is the replay of online DQN runs, saved by Dopamine's
`OutOfGraphReplayBuffer.save` as `$store$_{observation,action,reward,terminal}_ckpt.N.gz`
files: checkpoint N holds the N-th consecutive block of the run's transitions, in the order
they happened. An online run with `config.replay_logs` writes its data the same way, so
"5% of each checkpoint" means what it means in the paper, and the existing reader ingests it:
`python -m offline_moe.ingest --source=dqn_replay:DIR --percent=5`.

Layout: `workdir/dqn_replay/{game}/{seed index + 1}/replay_logs/` (Dopamine's
`{Game}/{run}/replay_logs`, so ingest reads the game and run from the path). Iteration k
(0-based) of the run is checkpoint k; with the `dqn` config's 10 iterations, 10 checkpoints of
one tenth of the run each.

Rows: row i of checkpoint k is agent step t = k * iteration_steps + i: the observation a_t was
taken on, a_t, the raw reward after it and `terminal` = the game ended after it (game over;
a life loss is not logged, as DQN-Replay's runs had no life-loss terminals). Frames are the
game's own (MinAtar bool [10, 10, C]). A stack-1 logger writes no padding rows.

Cutting rule: checkpoints cut episodes, as DQN-Replay's do. An episode running across a
checkpoint boundary has its first steps at the end of checkpoint k and the rest at the start
of checkpoint k + 1; the reader ends the first part truncated (not terminal) and starts the
second part without its earlier history (with a stack of 1 nothing is lost but the one
transition whose next frame lies in the other checkpoint). A 5% prefix of a checkpoint cuts
its last episode likewise (the next frame, row n, is read as the final observation).

Resume: a checkpoint is written (each file atomically) at the end of its iteration, before the
run's Orbax checkpoint of that iteration, so a run killed at any moment resumes at an
iteration boundary with nothing pending and rewrites the interrupted iteration's checkpoint
with the same rows.
"""

from __future__ import annotations

import os

import numpy as np

LOG_DIR = "dqn_replay"


def replay_dir(workdir: str, game: str, seed_index: int) -> str:
    """`workdir/dqn_replay/{game}/{seed_index + 1}/replay_logs`."""
    return os.path.join(workdir, LOG_DIR, game, str(seed_index + 1), "replay_logs")


class ReplayLog:
    """Collects one iteration's transitions per seed on the host; `flush` writes them.

    Attributes:
      rows: per seed, a list of (frame, action, reward, terminal) of the current iteration.
    """

    def __init__(self, num_seeds: int):
        self.rows: list[list[tuple]] = [[] for _ in range(num_seeds)]

    def add(self, seed: int, frame: np.ndarray, action: int, reward: float, terminal: bool):
        """Agent step t of seed `seed`: o_t (copied), a_t, r_t, game over after a_t."""
        self.rows[seed].append((np.array(frame), int(action), float(reward), bool(terminal)))

    @property
    def empty(self) -> bool:
        return not any(self.rows)

    def flush(self, workdir: str, game: str, checkpoint: int) -> None:
        """Writes every seed's rows as `checkpoint` and empties the log."""
        from offline_moe.data.dqn_replay import write_checkpoint  # numpy only, no TF

        for s, rows in enumerate(self.rows):
            if not rows:
                continue
            frames, actions, rewards, terminals = zip(*rows)
            write_checkpoint(
                replay_dir(workdir, game, s),
                checkpoint,
                observation=np.stack(frames),
                action=np.asarray(actions, np.int32),
                reward=np.asarray(rewards, np.float32),
                terminal=np.asarray(terminals, bool),
            )
        self.rows = [[] for _ in self.rows]
