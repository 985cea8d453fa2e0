"""The table of commands: every `offline-moe COMMAND` is one row here.

Each row names the module that `python -m` runs (its `__main__` block is the command, absl or
argparse alike) and the one line `offline-moe --help` shows. A command is added by adding a
row.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Command:
    """One row of the table.

    Attributes:
      name: the subcommand ('train_offline').
      module: the module `python -m` runs ('offline_moe.train_offline').
      summary: one line for `offline-moe --help`.
    """

    name: str
    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("train_offline", "offline_moe.train_offline", "train CQL / CQL+C51 from a replay cache"),  # noqa: E501
        Command("train_online", "offline_moe.train_online", "train DER / DrQ(eps) / DQN by playing the game"),  # noqa: E501
        Command("record", "offline_moe.record", "record ALE episodes as an RLDS dataset or a replay cache"),  # noqa: E501
        Command("ingest", "offline_moe.ingest", "turn TFDS / RLDS / DQN-Replay data into a replay cache"),  # noqa: E501
        Command("local_data", "offline_moe.local_data", "record and ingest small local datasets for games"),  # noqa: E501
        Command("sweep", "offline_moe.sweep", "run a grid of games x agents x torsos x seeds"),
        Command("report", "offline_moe.report", "tables, statistics and plots over run directories"),  # noqa: E501
        Command("bench", "offline_moe.bench", "speed and learning benchmarks, the accelerator check"),  # noqa: E501
        Command("default_benchmark", "offline_moe.default_benchmark", "the MinAtar mini-grid behind ./run.sh"),  # noqa: E501
        Command("networks", "offline_moe.networks", "registered torsos and their parameter counts"),  # noqa: E501
        Command("list", "offline_moe.cli.listing", "list games, suites, agents, torsos or presets"),  # noqa: E501
    )
}  # fmt: skip
