"""Learning evidence: does each agent x torso learn, through the real pipeline?

    python -m offline_moe.bench learning --game=catch --agents=cql,cql_c51 \
        --torsos=baseline,soft_moe,top1_moe --num_seeds=3
    python -m offline_moe.bench learning --game=catch --agents=der,drq_eps --torsos=baseline \
        --num_seeds=2 --budget=3000
    python -m offline_moe.bench learning --game=catch --agents=cql --torsos=top1_moe@num_experts=4
    python -m offline_moe.bench learning --game=Pong --agents=cql --torsos=baseline --num_seeds=3 \
        --policy=scripted --epsilon=0.25     # a real game, from a medium-quality dataset

Every run takes the path a paper-scale run takes. Offline agents (cql, cql_c51): random-policy
episodes recorded by `offline_moe.record` into an RLDS dataset (RL Unplugged layout), read by
`offline_moe.ingest` into a replay cache (both in subprocesses, via `offline_moe.local_data`),
trained by `train_offline.train_and_evaluate` (DeviceReplay, the learner, the batched
evaluation in the environment). Online agents (der, drq_eps): `train_online.train_and_evaluate`.
Each (agent, torso) is one run directory (`--runs_dir/<game>/<agent>/<variant>/seeds_0-<N-1>`,
seeds vmapped in one program, made afresh) that `offline_moe.report` reads.

Prints one JSON line per (agent, torso): the evaluation return per iteration and per seed,
the random policy's score (measured), the budget, the updates (offline) or agent steps
(online) after which the mean over seeds first reached the environment's threshold (Catch:
0.9), per seed as well, and the wall time.

The settings of each environment (`EnvHook`: Catch's, the real games', a plain one for other
ALE games) and the run itself (`run_one`) are `offline_moe.launch.experiments`'s; this module
is the command and its table.

Real games with a scripted controller (`offline_moe.envs.scripted`: Pong, Freeway) have a hook
of their own (`real_game_hook`): the offline data are recorded by `--policy` (default
scripted) with `--epsilon` random actions (default 0.25, a medium-quality dataset), and the
JSON line adds the 95% CI of the final return over seeds and whether it excludes the random
policy's score (measured under the evaluation's protocol and episode cap).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

from absl import flags

from offline_moe.data.record import POLICIES
from offline_moe.flags_common import check_items, define_data_dir, fail, parse
from offline_moe.launch.experiments import AGENTS, hook_for, run_one


def format_table(rows: Sequence[dict]) -> str:
    """agent x torso table: steps to the threshold, final return (mean over seeds), seeds."""
    head = (
        f"{'agent':<8} {'torso':<22} {'to threshold':>14} {'final return':>13} "
        f"{'seeds':>6} {'wall s':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        reach = r.get(f"{r['unit']}_to_threshold")
        unit = "upd" if r["unit"] == "updates" else "steps"
        reach_s = f"{reach:,} {unit}" if reach is not None else f"> {r['budget']:,} {unit}"
        lines.append(
            f"{r['agent']:<8} {r['torso']:<22} {reach_s:>14} {r['final_return_mean']:>13.2f} "
            f"{len(r['seeds']):>6} {r['wall_s']:>7.0f}"
        )
    return "\n".join(lines)


def define_flags(fv: flags.FlagValues) -> None:
    """The benchmark's flags, in `fv`."""
    kw = dict(flag_values=fv)
    flags.DEFINE_string("game", "catch", "Game: 'catch' or an ALE game (e.g. Pong).", **kw)
    flags.DEFINE_list("agents", ["cql"], f"Agents, comma-separated ({', '.join(AGENTS)}).", **kw)
    flags.DEFINE_list(
        "torsos",
        ["baseline", "soft_moe", "top1_moe"],
        "Torso variants, comma-separated: name[@key=value...].",
        **kw,
    )
    flags.DEFINE_integer("num_seeds", 2, "Seeds per (agent, torso), vmapped.", lower_bound=1, **kw)
    flags.DEFINE_integer("first_seed", 0, "Seed of the first run.", lower_bound=0, **kw)
    flags.DEFINE_integer(
        "budget",
        None,
        "Gradient updates (offline agents) or agent steps (online agents); default: the "
        "game's (Catch: 2,000 updates, 3,000 agent steps).",
        lower_bound=1,
        **kw,
    )
    flags.DEFINE_string(
        "policy",
        None,
        "Behaviour policy of the recorded data (random, eps_greedy, scripted); bench "
        "learning's default: the game's (Catch: random; Pong, Freeway: scripted).",
        **kw,
    )
    check_items(fv, "policy", lambda x: x in POLICIES, f"one of {', '.join(POLICIES)}")
    flags.DEFINE_float(
        "epsilon",
        None,
        "Random-action probability of --policy (bench learning's default: the game's; Pong, "
        "Freeway: 0.25).",
        lower_bound=0.0,
        upper_bound=1.0,
        **kw,
    )
    flags.DEFINE_string(
        "runs_dir", os.path.join("runs", "bench_learning"), "Root of the run directories.", **kw
    )
    define_data_dir(fv)
    flags.DEFINE_boolean("table", False, "Also print a table on stderr.", **kw)


def main(argv):
    args = parse(argv, define_flags, prog="bench learning", doc=__doc__)
    agents = args.agents
    for agent in agents:
        if agent not in AGENTS:
            fail("bench learning", f"--agents: unknown agent {agent!r}; valid: {', '.join(AGENTS)}")
    hook = hook_for(args.game, args.policy, args.epsilon)
    random_score = hook.random_score(args.first_seed)
    rows = []
    for agent in agents:
        for torso in args.torsos:
            row = run_one(
                args.game,
                agent,
                torso,
                seeds=args.num_seeds,
                budget=args.budget,
                root=args.runs_dir,
                data_dir=args.data_dir,
                seed=args.first_seed,
                random_score=random_score,
                log=lambda m: print(m, file=sys.stderr, flush=True),
                policy=args.policy,
                eps=args.epsilon,
            )
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.table:
        print(format_table(rows), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv)
