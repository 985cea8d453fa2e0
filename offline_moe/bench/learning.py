"""Learning evidence: does each agent x torso learn, through the real pipeline?

    python -m offline_moe.bench learning --env=catch --agent=cql,cql_c51 \
        --torso=baseline,soft_moe,top1_moe --seeds=3
    python -m offline_moe.bench learning --env=catch --agent=der,drq_eps --torso=baseline \
        --seeds=2 --budget=3000
    python -m offline_moe.bench learning --env=catch --agent=cql --torso=top1_moe@num_experts=4
    python -m offline_moe.bench learning --env=Pong --agent=cql --torso=baseline --seeds=3 \
        --policy=scripted --epsilon=0.25     # a real game, from a medium-quality dataset

Every run takes the path a paper-scale run takes. Offline agents (cql, cql_c51): random-policy
episodes recorded by `offline_moe.record` into an RLDS dataset (RL Unplugged layout), read by
`offline_moe.ingest` into a replay cache (both in subprocesses, via `offline_moe.local_data`),
trained by `train_offline.train_and_evaluate` (DeviceReplay, the learner, the batched
evaluation in the environment). Online agents (der, drq_eps): `train_online.train_and_evaluate`.
Each (agent, torso) is one run directory (`--root/<env>/<agent>/<variant>/seeds_0-<N-1>`,
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

import argparse
import json
import os
import sys
from collections.abc import Sequence

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


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def parse(argv):
    p = argparse.ArgumentParser(prog=argv[0], description=__doc__.splitlines()[0])
    p.add_argument("--env", default="catch", help="'catch' or an ALE game (e.g. Pong)")
    p.add_argument("--agent", default="cql", help=f"comma-separated agents ({', '.join(AGENTS)})")
    p.add_argument(
        "--torso",
        default="baseline,soft_moe,top1_moe",
        help="comma-separated torso variants, name[@key=value...] as in offline_moe.sweep",
    )
    p.add_argument("--seeds", type=int, default=2, help="seeds per (agent, torso), vmapped")
    p.add_argument("--seed", type=int, default=0, help="first seed")
    p.add_argument(
        "--budget",
        type=int,
        default=None,
        help="gradient updates (offline agents) or agent steps (online agents); default: the "
        "env's (Catch: 2,000 updates, 3,000 agent steps)",
    )
    p.add_argument(
        "--policy",
        default=None,
        help="behaviour policy of the offline data (offline_moe.record --policy: random, "
        "eps_greedy, scripted); default: the env's (Catch: random; Pong, Freeway: scripted)",
    )
    p.add_argument(
        "--epsilon",
        type=float,
        default=None,
        help="random-action probability of --policy (default: the env's; Pong, Freeway: 0.25)",
    )
    p.add_argument("--root", default=os.path.join("runs", "bench_learning"), help="run dirs")
    p.add_argument("--data_dir", default="data", help="recorded datasets and caches")
    p.add_argument("--table", action="store_true", help="also print a table on stderr")
    return p.parse_args(argv[1:])


def main(argv):
    args = parse(argv)
    agents = _csv(args.agent)
    for agent in agents:
        if agent not in AGENTS:
            raise SystemExit(f"--agent: unknown agent {agent!r}; valid: {', '.join(AGENTS)}")
    hook = hook_for(args.env, args.policy, args.epsilon)
    random_score = hook.random_score(args.seed)
    rows = []
    for agent in agents:
        for torso in _csv(args.torso):
            row = run_one(
                args.env,
                agent,
                torso,
                seeds=args.seeds,
                budget=args.budget,
                root=args.root,
                data_dir=args.data_dir,
                seed=args.seed,
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
