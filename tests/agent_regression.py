"""Fixed-seed smoke training of each agent, reduced to a few numbers per parameter leaf.

`tests/learners/test_agent_regression.py` compares these numbers with
`tests/data/agent_params.json`, which holds what the code produced when the reference was
written. Regenerate it (only when a change of results is intended, and say why in the commit)
with

    PYTHONPATH=. python -m tests.agent_regression --write [--agents=drq_eps]

Each agent trains the toy plug-in torso of tests/toy_torso.py on synthetic data: CQL and CQL+C51
run 6 fused updates sampled from a DeviceReplay; DER and DrQ(eps) run 14 agent steps of the
jitted online step (store, update from step 8, act) on synthetic frames. Seeds come straight
from `jax.random.PRNGKey(0)` so the seed rule of the trainers does not enter.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from offline_moe.configs.agents import COMPARED_AGENTS
from offline_moe.flags_common import check_items, parse

REFERENCE = os.path.join(os.path.dirname(__file__), "data", "agent_params.json")
AGENTS = COMPARED_AGENTS
TORSO_NAME = "tests.toy_torso:ToyTorso"  # the learners, not the torsos, are under test
TORSO = {"features": 16}


def _offline_params(agent: str):
    from offline_moe.learners import LearnerConfig, make_learner, make_train_fn
    from offline_moe.networks import make_torso
    from offline_moe.replay.device import DeviceReplay

    rng = np.random.default_rng(0)
    n = 48
    episode_start = np.zeros(n, bool)
    episode_start[::12] = True
    terminal = np.zeros(n, bool)
    terminal[11::24] = True
    arrays = {
        "observation": rng.integers(0, 255, (n, 84, 84), dtype=np.uint8),
        "action": rng.integers(0, 3, n).astype(np.int32),
        "reward": rng.integers(-1, 2, n).astype(np.float32),
        "terminal": terminal,
        "episode_start": episode_start,
        "observation_only": np.zeros(n, bool),
    }
    replay = DeviceReplay.from_arrays(arrays, {"num_actions": 3}, stack=4, n_step=3, gamma=0.99)
    cfg = LearnerConfig(agent=agent, batch_size=4, target_update_period=4, learning_rate=1e-3)
    learner = make_learner(cfg, make_torso(TORSO_NAME, **TORSO), 3)
    obs = jnp.zeros((1, 84, 84, 4), jnp.uint8)
    state = jax.jit(jax.vmap(learner.init, in_axes=(0, None)))(jax.random.PRNGKey(0)[None], obs)
    train_fn = make_train_fn(learner, 4, 3)
    for _ in range(2):
        state, _ = train_fn(state, replay)
    return state.params, state.target_params, state.step


def _online_params(agent: str):
    from offline_moe.learners import online

    common = dict(
        num_actions=3,
        torso_name=TORSO_NAME,
        torso_kwargs=tuple(TORSO.items()),
        n_step=3,
        min_replay=8,
        replay_capacity=16,
        batch_size=4,
        learning_rate=1e-3,
    )
    if agent == "der":
        cfg = online.OnlineAgentConfig(agent="der", target_update_period=4, **common)
    else:
        cfg = online.OnlineAgentConfig(
            agent="drq_eps",
            num_atoms=1,
            noisy=False,
            prioritized=False,
            augmentation=True,
            target_update_period=1,
            epsilon_decay_steps=4,
            **common,
        )
    agent_ = online.OnlineAgent(cfg)
    state = jax.jit(jax.vmap(agent_.init))(jax.random.PRNGKey(0)[None])
    step = online.make_step_fn(agent_)
    rng = np.random.default_rng(1)
    for t in range(14):
        frame = rng.integers(0, 255, (1, 84, 84), dtype=np.uint8)
        state, _ = step(
            state,
            frame,
            np.array([t in (0, 7)]),
            np.array([float(t % 3) - 1.0], np.float32),
            np.array([t == 6]),
            t >= 8,
        )
    return state.train.params, state.train.target_params, state.train.step


def final_params(agent: str):
    """(params, target_params, step) of seed 0 after the agent's smoke training."""
    fn = _offline_params if agent in ("cql", "cql_c51") else _online_params
    params, target, step = fn(agent)
    first = lambda tree: jax.tree.map(lambda x: np.asarray(x[0], np.float64), tree)  # noqa: E731
    return first(params), first(target), int(np.asarray(step)[0])


def fingerprint(tree) -> dict[str, list[float]]:
    """Per leaf: [sum, L2 norm, dot with a fixed pseudo-random vector] (float64)."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        x = np.ravel(leaf)
        probe = np.random.default_rng(x.size).standard_normal(x.size)
        out[jax.tree_util.keystr(path)] = [
            float(x.sum()),
            float(np.linalg.norm(x)),
            float(x @ probe),
        ]
    return out


def agent_record(agent: str) -> dict:
    params, target, step = final_params(agent)
    return {"step": step, "params": fingerprint(params), "target_params": fingerprint(target)}


def define_flags(fv) -> None:
    """The script's flags, in `fv` (absl, as every command of the suite)."""
    from absl import flags

    flags.DEFINE_boolean(
        "write", False, f"Write {REFERENCE} (else print the record).", flag_values=fv
    )
    flags.DEFINE_list(
        "agents", list(AGENTS), "Agents, comma-separated: recompute only these.", flag_values=fv
    )
    check_items(fv, "agents", lambda a: a in AGENTS, f"agents among {', '.join(AGENTS)}")


def main(argv=None) -> None:
    args = parse(argv, define_flags, prog="tests.agent_regression", doc=__doc__)
    jax.config.update("jax_disable_most_optimizations", True)  # as in tests/conftest.py
    record = {}
    if os.path.exists(REFERENCE):
        with open(REFERENCE) as f:
            record = json.load(f)
    for agent in args.agents:
        record[agent] = agent_record(agent)
    text = json.dumps(record, indent=1, sort_keys=True)
    if args.write:
        with open(REFERENCE, "w") as f:
            f.write(text + "\n")
        print(f"wrote {REFERENCE}")
    else:
        print(text)


if __name__ == "__main__":
    main()
