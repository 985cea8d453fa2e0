"""Agent steps per second of the online agents, updates included.

  python -m offline_moe.bench online --agent=der --torso=soft_moe --steps=500

Runs the real training loop (one jitted store+update+act call per agent step plus the ALE
step) on a real game. Untimed warm-up: `--min_replay` steps without updates, then a few steps
with updates (compilation). Then times `--steps` agent steps that all include one update.
Prints one JSON line: agent steps/s end to end, and the split between the jitted call (device) and
the emulator (host).
"""

from __future__ import annotations

import json
import time

import jax
import numpy as np
from absl import flags

from offline_moe.configs import der, drq_eps
from offline_moe.flags_common import parse as parse_flags
from offline_moe.train import online as train_online

CONFIGS = {"der": der, "drq_eps": drq_eps}


def define_flags(fv: flags.FlagValues) -> None:
    """The benchmark's flags, in `fv`."""
    kw = dict(flag_values=fv)
    flags.DEFINE_enum("agent", "der", sorted(CONFIGS), "Agent.", **kw)
    flags.DEFINE_string("torso", "baseline", "Torso: a registered name or 'module:Name'.", **kw)
    flags.DEFINE_string("encoder", "nature", "Torso encoder (paper low-data: nature).", **kw)
    flags.DEFINE_integer(
        "num_experts", 4, "Number of experts n of the MoE torsos.", lower_bound=1, **kw
    )
    flags.DEFINE_integer(
        "steps", 300, "Timed agent steps (each with an update).", lower_bound=1, **kw
    )
    flags.DEFINE_string("game", "Pong", "Game.", **kw)
    flags.DEFINE_integer("num_seeds", 1, "Seeds trained side by side.", lower_bound=1, **kw)
    flags.DEFINE_integer("min_replay", 200, "Untimed warm-up agent steps.", lower_bound=1, **kw)
    flags.DEFINE_integer(
        "capacity", 100_016, "Replay rows (a 100k run: 100,016).", lower_bound=1, **kw
    )


def parse(argv) -> flags.FlagValues:
    """The parsed flags of `argv` (argv[0]: the program)."""
    return parse_flags(argv, define_flags, prog="bench online", doc=__doc__)


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
        "agent_steps_per_s": args.steps / total,
        "seed_agent_steps_per_s": args.steps * args.num_seeds / total,
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
