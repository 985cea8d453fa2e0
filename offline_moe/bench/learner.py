"""Learner throughput: end-to-end (sampling from DeviceReplay inside the scan) vs bare update.

    python -m offline_moe.bench learner --agents=cql --torsos=soft_moe --batch_size=32 --steps=200
    python -m offline_moe.bench learner --agents=cql_c51 --torsos=baseline,soft_moe,top1_moe
    python -m offline_moe.bench learner --game=MinAtarBreakout --num_seeds=5 --scan_steps=1

With --game (a MinAtar game) the learners train on that game's shipped 5% dataset
(datasets/minatar/, unpacked into a temp dir) with the torso of its `minatar` preset (MinAtar's
encoder, experts of width 128; `offline_moe/configs/cql.py`), as the MinAtar grid's cells do;
--encoder and --num_experts then change that torso.

One JSON line per (agent, torso): {"bench", "agent", "torso", "encoder", "batch_size", "num_seeds",
"updates_per_s" (end to end), "bare_updates_per_s" (jitted update on one fixed batch, same
scan/vmap: the compute ceiling), "e2e_over_bare", "compile_s", "params", "device", ...}.
Rates are total updates per second (all seeds); each is the best of --repeats alternating
timed runs of --steps updates (the machine may be shared).
Without --cache_dir or --game a synthetic cache (random Atari-sized frames, ~2k rows) is
written to a temp dir. Observations take the cache's frame shape and stack (meta.json).

This module also holds the small cache builders used by tests and the default benchmark:
`synthetic_cache` (random frames) and `ale_cache` (frames played in real ALE, no TensorFlow).
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np


def synthetic_cache(
    out_dir: str,
    *,
    num_episodes: int = 8,
    episode_len: int = 250,
    num_actions: int = 6,
    game: str = "Pong",
    seed: int = 0,
) -> str:
    """Writes a cache of random frames/actions/rewards (terminated episodes) and returns its dir."""
    from offline_moe.replay.cache_writer import CacheWriter

    rng = np.random.default_rng(seed)
    meta = {
        "source": "synthetic",
        "game": game,
        "num_actions": num_actions,
        "percent": None,
        "clip_rewards": True,
        "run": None,
        "checkpoints": None,
    }
    with CacheWriter(out_dir, meta=meta, overwrite=True) as w:
        for _ in range(num_episodes):
            w.add_episode(
                rng.integers(0, 256, (episode_len, 84, 84), dtype=np.uint8),
                rng.integers(0, num_actions, episode_len),
                rng.choice([-1.0, 0.0, 0.0, 1.0], episode_len).astype(np.float32),
                terminated=True,
            )
    return out_dir


def ale_cache(
    out_dir: str,
    *,
    game: str = "Pong",
    steps: int = 1000,
    max_episode_steps: int = 250,
    seed: int = 0,
    clip_rewards: bool = True,
) -> str:
    """Plays `steps` uniformly random agent steps of `game` (DQN-Replay protocol) into a cache.

    Episodes longer than `max_episode_steps` are truncated (final frame stored). No TF.
    """
    from offline_moe.envs.atari import AtariEnv
    from offline_moe.replay.cache_writer import CacheWriter

    env = AtariEnv(game, protocol="dqn_replay", seed=seed, max_episode_steps=max_episode_steps)
    rng = np.random.default_rng(seed)
    meta = {  # a local recording of all its steps (offline_moe.replay.cache identity)
        "source": "ale:offline_moe.bench.learner.ale_cache",
        "game": env.game,
        "num_actions": env.num_actions,
        "percent": 100.0,
        "clip_rewards": clip_rewards,
        "run": None,
        "checkpoints": None,
        "policy": "random",
        "steps": steps,
        "seed": seed,
    }
    done_steps = 0
    with CacheWriter(out_dir, meta=meta, overwrite=True) as w:
        while done_steps < steps:
            frames, actions, rewards = [env.reset()], [], []
            while True:
                a = int(rng.integers(env.num_actions))
                s = env.step(a)
                actions.append(a)
                rewards.append(np.clip(s.reward, -1, 1) if clip_rewards else s.reward)
                done_steps += 1
                if s.terminated or s.truncated or done_steps >= steps:
                    break
                frames.append(s.obs)
            w.add_episode(
                np.stack(frames),
                np.asarray(actions),
                np.asarray(rewards, np.float32),
                terminated=bool(s.terminated),
                final_observation=None if s.terminated else s.obs,
            )
    return out_dir


def example_obs(replay):
    """One all-zero observation [1, *obs_shape] of the replay's dtype (to initialise)."""
    import jax.numpy as jnp

    return jnp.zeros((1, *replay.obs_shape), replay.observation.dtype)


def game_setup(game: str, data_dir: str) -> tuple[str, dict]:
    """(cache dir, torso block) for `bench learner --game`: the game's shipped 5% cache,
    unpacked under `data_dir`, and the torso settings its offline config gives (the
    `minatar` preset's encoder and expert width)."""
    from offline_moe.configs import cql
    from offline_moe.data.shipped import ensure_shipped_cache, shipped_names
    from offline_moe.flags_common import fail

    name = f"{game}_run1_5pct"
    if name not in shipped_names():
        games = sorted({n.split("_run")[0] for n in shipped_names()})
        fail("bench learner", f"--game={game!r}: expected a game with shipped data: {games}")
    cache = ensure_shipped_cache(name, data_dir=data_dir)
    block = cql.get_config(f"game={game}").torso.builtin.to_dict()
    return cache, block


def bench_one(
    agent,
    torso,
    *,
    encoder,
    batch,
    steps,
    scan_steps,
    num_seeds,
    cache_dir,
    torso_overrides=None,
    repeats=3,
    bare=True,
    replay=None,
    compute_dtype="float32",
    cpu_unroll=None,
) -> dict:
    """Measures one (agent, torso); returns the JSON record.

    `bare=False` skips the bare-update ceiling (one compile less); `replay` is a ready
    DeviceReplay with the agent's n-step (then `cache_dir` is not read). On CPU the updates
    per call are those the trainer would use (`effective_scan_steps(scan_steps, cpu_unroll)`,
    None = the default), the record's `scan_steps`.
    """
    import jax

    from offline_moe.learners import (
        CPU_UNROLL,
        LearnerConfig,
        effective_scan_steps,
        init_seeds,
        make_bare_train_fn,
        make_learner,
        make_train_fn,
        num_params,
        seed_keys,
    )
    from offline_moe.networks import filter_torso_kwargs, make_torso
    from offline_moe.replay.device import DeviceReplay

    lc = LearnerConfig(
        agent=agent,
        batch_size=batch,
        n_step=1 if agent == "cql" else 3,
        compute_dtype=compute_dtype,
    )
    if replay is None:
        replay = DeviceReplay.load(cache_dir, n_step=lc.n_step, gamma=lc.gamma)
    if replay.n_step != lc.n_step:
        raise ValueError(f"bench_one: replay has n_step={replay.n_step}, {agent} needs {lc.n_step}")
    block = {"encoder": encoder, **(torso_overrides or {})}
    learner = make_learner(
        lc, make_torso(torso, **filter_torso_kwargs(torso, block)), replay.num_actions
    )
    obs0 = example_obs(replay)
    scan_steps = effective_scan_steps(scan_steps, cpu_unroll or CPU_UNROLL)
    calls = max(1, steps // scan_steps)

    def compile_fn(fn, arg):
        state = init_seeds(learner, seed_keys(0, num_seeds), obs0)
        t0 = time.perf_counter()
        state, m = fn(state, arg)
        jax.block_until_ready(m)
        return state, time.perf_counter() - t0

    def timed(fn, state, arg):
        t0 = time.perf_counter()
        for _ in range(calls):
            state, m = fn(state, arg)
        jax.block_until_ready(m)
        return state, calls * scan_steps * num_seeds / (time.perf_counter() - t0)

    e2e_fn = make_train_fn(learner, batch, scan_steps)
    e2e_state, compile_s = compile_fn(e2e_fn, replay)
    if bare:
        bare_fn = make_bare_train_fn(learner, scan_steps)
        fixed = replay.sample(jax.random.PRNGKey(1), batch)
        bare_state, bare_compile_s = compile_fn(bare_fn, fixed)
    # Alternate the two measurements and keep the best of each: the machine is shared, and
    # the best rate is the least disturbed one.
    e2e_rates, bare_rates = [], []
    for _ in range(repeats):
        e2e_state, r = timed(e2e_fn, e2e_state, replay)
        e2e_rates.append(r)
        if bare:
            bare_state, r = timed(bare_fn, bare_state, fixed)
            bare_rates.append(r)
    e2e, state = max(e2e_rates), e2e_state
    record = {
        "agent": agent,
        "torso": torso,
        "encoder": encoder,
        "batch_size": batch,
        "num_seeds": num_seeds,
        "compute_dtype": compute_dtype,
        "scan_steps": scan_steps,
        "steps": calls * scan_steps,
        "updates_per_s": round(e2e, 2),
        "repeats": repeats,
        "updates_per_s_all": [round(r, 2) for r in e2e_rates],
        "compile_s": round(compile_s, 2),
        "params": num_params(jax.tree.map(lambda x: x[0], state.params)),
        # Device bytes of the S seeds' TrainStates (params, target, optimizer state, ...).
        "state_bytes": int(sum(x.nbytes for x in jax.tree.leaves(state))),
        "device": str(jax.devices()[0].device_kind),
        "platform": jax.default_backend(),
    }
    if bare:
        bare_rate = max(bare_rates)
        record.update(
            bare_updates_per_s=round(bare_rate, 2),
            e2e_over_bare=round(e2e / bare_rate, 3),
            bare_updates_per_s_all=[round(r, 2) for r in bare_rates],
            bare_compile_s=round(bare_compile_s, 2),
        )
    return record


def bench_layouts(
    agent,
    torso,
    *,
    encoder,
    batch,
    num_seeds,
    layouts,
    steps,
    repeats,
    replay,
    torso_overrides=None,
) -> list[dict]:
    """Compile time and speed of the CPU layouts of the fused updates, against a plain jit.

    Layout 'plain' is `jax.jit(learner.update)` on one fixed batch (each seed its own call);
    an integer u is `make_train_fn` with u updates per call (unrolled on CPU), sampling on
    device, called steps / u times; 'rolledK' is K updates in a rolled lax.scan; a suffix
    ':loop', ':map' or ':vmap' sets the seed layout (`learners.core.resolve_seed_axis`). Every
    layout compiles once in this process (no persistent cache: cold) and the timed repeats
    alternate between layouts, best kept, so the ratios to 'plain' share the machine's load.
    Beside wall time, updates per CPU-second of this process (all its threads) are reported:
    on a shared machine they move less with the other processes' load.
    Returns one record per layout with compile_over_plain, rate_over_plain and
    cpu_rate_over_plain.
    """
    import jax

    from offline_moe.learners import (
        LearnerConfig,
        init_seeds,
        make_learner,
        make_train_fn,
        seed_keys,
    )
    from offline_moe.networks import filter_torso_kwargs, make_torso

    lc = LearnerConfig(agent=agent, batch_size=batch, n_step=replay.n_step)
    block = {"encoder": encoder, **(torso_overrides or {})}
    learner = make_learner(
        lc, make_torso(torso, **filter_torso_kwargs(torso, block)), replay.num_actions
    )
    obs0 = example_obs(replay)
    fixed = replay.sample(jax.random.PRNGKey(1), batch)
    plain = jax.jit(learner.update)

    def step_plain(states):
        out = [plain(s, fixed) for s in states]
        return [s for s, _ in out], out[-1][1]

    def make_step(layout):
        if layout == "plain":
            return 1, step_plain
        u, _, seed_axis = layout.partition(":")
        k, unroll = (int(u.removeprefix("rolled")), 1) if u.startswith("rolled") else (int(u), True)
        fn = make_train_fn(learner, batch, k, unroll=unroll, seed_axis=seed_axis or "auto")
        return k, lambda state: fn(state, replay)

    runs = {}
    for layout in layouts:
        k, step = make_step(layout)
        state = init_seeds(learner, seed_keys(0, num_seeds), obs0)
        if layout == "plain":
            state = [jax.tree.map(lambda x, i=i: x[i], state) for i in range(num_seeds)]
        t0, c0 = time.perf_counter(), time.process_time()
        state, m = step(state)
        jax.block_until_ready(m)
        runs[layout] = {
            "k": k,
            "step": step,
            "state": state,
            "compile_s": time.perf_counter() - t0,
            "compile_cpu_s": time.process_time() - c0,
            "rates": [],
            "cpu_rates": [],
        }
    for _ in range(repeats):
        for r in runs.values():
            calls = max(1, steps // r["k"])
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(calls):
                r["state"], m = r["step"](r["state"])
            jax.block_until_ready(m)
            updates = calls * r["k"] * num_seeds
            r["rates"].append(updates / (time.perf_counter() - t0))
            r["cpu_rates"].append(updates / (time.process_time() - c0))
    base = runs.get("plain")
    records = []
    for layout, r in runs.items():
        rec = {
            "bench": "learner_layout",
            "agent": agent,
            "torso": torso,
            "encoder": encoder,
            "batch_size": batch,
            "num_seeds": num_seeds,
            "layout": layout,
            "updates_per_call": r["k"],
            "compile_s": round(r["compile_s"], 2),
            "updates_per_s": round(max(r["rates"]), 2),
            "updates_per_s_all": [round(x, 2) for x in r["rates"]],
            "compile_cpu_s": round(r["compile_cpu_s"], 2),
            "updates_per_cpu_s": round(max(r["cpu_rates"]), 2),
            "platform": jax.default_backend(),
        }
        if base is not None:
            rec["compile_over_plain"] = round(r["compile_s"] / base["compile_s"], 2)
            rec["rate_over_plain"] = round(max(r["rates"]) / max(base["rates"]), 3)
            rec["cpu_rate_over_plain"] = round(max(r["cpu_rates"]) / max(base["cpu_rates"]), 3)
        records.append(rec)
    return records


def define_flags(fv) -> None:
    """The benchmark's flags, in `fv`."""
    from absl import flags

    from offline_moe.flags_common import check_items, define_data_dir, positive_int

    kw = dict(flag_values=fv)
    flags.DEFINE_list(
        "agents", ["cql"], "Agents, comma-separated (bench learner: cql, cql_c51).", **kw
    )
    flags.DEFINE_list(
        "torsos", ["baseline", "soft_moe", "top1_moe"], "Torsos, comma-separated.", **kw
    )
    flags.DEFINE_string(
        "encoder",
        "impala",
        "Torso encoder: impala | nature (bench learner --layouts: a list).",
        **kw,
    )
    flags.DEFINE_string(
        "game",
        "",
        "Game (bench learner: a MinAtar game, trained on its shipped data with its preset's "
        "torso; '' = synthetic Atari-sized frames).",
        **kw,
    )
    define_data_dir(fv)
    flags.DEFINE_integer("batch_size", 32, "Transitions per batch.", lower_bound=1, **kw)
    flags.DEFINE_integer(
        "steps", 200, "Timed updates per seed (after compile).", lower_bound=1, **kw
    )
    flags.DEFINE_integer(
        "scan_steps", 50, "Updates fused per jitted call (K).", lower_bound=1, **kw
    )
    flags.DEFINE_integer(
        "cpu_unroll", None, "CPU: at most this many updates per call.", lower_bound=1, **kw
    )
    flags.DEFINE_string(
        "num_seeds", "1", "Seeds trained in one program (bench learner --layouts: a list).", **kw
    )
    flags.DEFINE_integer(
        "repeats",
        3,
        "Timed repeats (bench learner: alternating, the best is kept).",
        lower_bound=1,
        **kw,
    )
    flags.DEFINE_string(
        "cache_dir", "", "Replay cache directory (bench learner: default a synthetic one).", **kw
    )
    flags.DEFINE_integer(
        "num_experts", None, "Number of experts n of the MoE torsos.", lower_bound=1, **kw
    )
    flags.DEFINE_enum(
        "compute_dtype", "float32", ["float32", "bfloat16"], "Dtype of matmuls and convs.", **kw
    )
    flags.DEFINE_list(
        "layouts",
        [],
        "Compare CPU layouts instead (e.g. plain,1,2,4,8,20,rolled20,1:vmap): compile s and "
        "updates/s of each against a plain jit; --encoder and --num_seeds take comma lists.",
        **kw,
    )
    check_items(fv, "num_seeds", positive_int, "positive integers, e.g. 1 or 1,5")
    check_items(
        fv,
        "layouts",
        _layout_ok,
        "plain, K or rolledK (K a positive integer), either with an optional seed layout "
        ":loop, :map or :vmap, e.g. plain,1,20,rolled20,1:vmap",
    )


def _layout_ok(item: str) -> bool:
    """'plain', 'K' or 'rolledK' (K >= 1), the last two with an optional ':SEED_AXIS'."""
    unroll, sep, seed_axis = item.partition(":")
    if unroll == "plain":
        return not sep
    if sep and seed_axis not in ("loop", "map", "vmap"):
        return False
    k = unroll.removeprefix("rolled")
    return k.isdigit() and int(k) >= 1


def main(argv) -> None:
    from offline_moe.flags_common import parse

    args = parse(argv, define_flags, prog="bench learner", doc=__doc__)
    overrides = {} if args.num_experts is None else {"num_experts": args.num_experts}
    encoder = args.encoder
    with tempfile.TemporaryDirectory() as tmp:
        if args.game:
            cache, block = game_setup(args.game, args.data_dir)
            if not _given(argv, "encoder"):
                encoder = block.pop("encoder")
            block.pop("encoder", None)
            overrides = {**block, **overrides}
        else:
            cache = args.cache_dir or synthetic_cache(os.path.join(tmp, "cache"), num_episodes=8)
        if args.layouts:
            _main_layouts(args, cache, overrides, encoder)
            return
        for agent in args.agents:
            for torso in args.torsos:
                rec = bench_one(
                    agent,
                    torso,
                    encoder=encoder,
                    batch=args.batch_size,
                    steps=args.steps,
                    scan_steps=args.scan_steps,
                    num_seeds=int(args.num_seeds),
                    cache_dir=cache,
                    torso_overrides=overrides,
                    repeats=args.repeats,
                    compute_dtype=args.compute_dtype,
                    cpu_unroll=args.cpu_unroll,
                )
                game = {"game": args.game} if args.game else {}
                print(json.dumps({"bench": "learner", **game, **rec}), flush=True)


def _given(argv, name: str) -> bool:
    """Whether --name (or --name=...) is on the command line."""
    return any(a == f"--{name}" or a.startswith(f"--{name}=") for a in argv[1:])


def _main_layouts(args, cache: str, overrides: dict, encoder_list: str) -> None:
    from offline_moe.learners import LearnerConfig
    from offline_moe.replay.device import DeviceReplay

    for agent in args.agents:
        lc = LearnerConfig(agent=agent, n_step=1 if agent == "cql" else 3)  # as `bench_one`
        replay = DeviceReplay.load(cache, n_step=lc.n_step, gamma=lc.gamma)
        for encoder in encoder_list.split(","):
            for num_seeds in [int(x) for x in str(args.num_seeds).split(",")]:
                for torso in args.torsos:
                    for rec in bench_layouts(
                        agent,
                        torso,
                        encoder=encoder,
                        batch=args.batch_size,
                        num_seeds=num_seeds,
                        layouts=list(args.layouts),
                        steps=args.steps,
                        repeats=args.repeats,
                        replay=replay,
                        torso_overrides=overrides,
                    ):
                        print(json.dumps(rec), flush=True)


if __name__ == "__main__":
    import sys

    main(["bench learner", *sys.argv[1:]])
