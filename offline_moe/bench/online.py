"""Agent steps per second of the online agents, updates included.

  python -m offline_moe.bench online --agent=der --torso=soft_moe --steps=500

Runs the real training loop (one jitted store+update+act call per agent step plus the ALE
step) on a real game. Untimed warm-up: `--min_replay` steps without updates, then a few steps
with updates (compilation). Then times `--steps` agent steps that all include one update.
Prints one JSON line: steps/s end to end, and the split between the jitted call (device) and
the emulator (host).
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from offline_moe.configs import der, drq_eps
from offline_moe.train import online as train_online

CONFIGS = {"der": der, "drq_eps": drq_eps}


def parse(argv):
    p = argparse.ArgumentParser(prog=argv[0], description=__doc__.splitlines()[0])
    p.add_argument("--agent", choices=sorted(CONFIGS), default="der")
    p.add_argument("--torso", default="baseline", help="registered name or 'module:Name'")
    p.add_argument("--encoder", default="nature", help="torso encoder (paper low-data: nature)")
    p.add_argument("--num_experts", type=int, default=4)
    p.add_argument("--steps", type=int, default=300, help="timed agent steps (with updates)")
    p.add_argument("--game", default="Pong")
    p.add_argument("--num_seeds", type=int, default=1)
    p.add_argument("--min_replay", type=int, default=200, help="untimed warm-up steps")
    p.add_argument("--capacity", type=int, default=100_016, help="replay rows (100k run: 100,016)")
    return p.parse_args(argv[1:])


def run(args) -> dict:
    config = CONFIGS[args.agent].get_config(f"game={args.game}")
    config.torso.name = args.torso
    config.torso.builtin.encoder = args.encoder  # built-in torsos; a torso of yours keeps its own
    config.torso.builtin.num_experts = args.num_experts
    config.num_seeds = args.num_seeds
    config.replay.min_replay = args.min_replay
    config.replay.capacity = max(args.capacity, args.min_replay + args.steps + 64)
    rc, game, agent = train_online.build(config)
    init_fn, step_fn, _ = train_online.compiled_fns(agent, rc.num_seeds)
    state = init_fn(train_online.init_keys(rc))
    actors = train_online.Actors.create(rc, game)

    def one(state, t):
        state, actions = step_fn(
            state, actors.frame, actors.first, actors.reward, actors.terminal, t >= args.min_replay
        )
        actions = np.asarray(actions)  # waits for the device
        t_env = time.perf_counter()
        actors.step(actions)
        return state, time.perf_counter() - t_env

    warmup = args.min_replay + 3
    t0 = time.perf_counter()
    for t in range(warmup):
        state, _ = one(state, t)
    warm_s = time.perf_counter() - t0
    env_s = 0.0
    t0 = time.perf_counter()
    for t in range(warmup, warmup + args.steps):
        state, dt = one(state, t)
        env_s += dt
    total = time.perf_counter() - t0
    return {
        "bench": "online",
        "agent": args.agent,
        "torso": args.torso,
        "torso_kwargs": dict(agent.config.torso_kwargs),  # what the torso accepted
        "game": game,
        "num_seeds": args.num_seeds,
        "timed_steps": args.steps,
        "agent_steps_per_sec": args.steps / total,
        "seed_steps_per_sec": args.steps * args.num_seeds / total,
        "jitted_call_ms": 1e3 * (total - env_s) / args.steps,
        "emulator_ms": 1e3 * env_s / args.steps,
        "projected_100k_minutes": 100_000 / (args.steps / total) / 60,
        "warmup_s": warm_s,
        "updates": int(np.asarray(state.train.step)[0]),
        "device": str(jax.devices()[0].device_kind),
    }


def main(argv):
    print(json.dumps(run(parse(argv))), flush=True)


if __name__ == "__main__":
    import sys

    main(sys.argv)
