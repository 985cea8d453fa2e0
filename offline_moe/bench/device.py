"""The accelerator check: everything a researcher needs to plan the paper's grid, in one process.

    python -m offline_moe.bench device [--minutes=8] [--out=runs/bench_device]

Writes `device.json` and `device.md` (a markdown table) into `--out`, rewritten after every
finished measurement, so a run cut short still leaves its figures. Order (most important
first):

1. `env`: JAX / jaxlib / Flax / Optax / Orbax / numpy / ale-py versions, XLA flags, the
   device (kind, platform, count) and the host's CPU cores.
2. `replay`: a DeviceReplay of the paper's 5% size (2.5M rows of synthetic 84x84 frames, built
   on the device; `--replay_rows` scales it down on CPU), with the bytes it holds and the
   device memory it took.
3. `learner`: end-to-end updates/s (sampling from that replay inside the fused scan) for CQL
   and CQL+C51 x baseline / soft_moe / top1_moe (Impala, 8 experts, batch 32), at 5 and 1
   seeds trained in one program (vmap on accelerators), with compile time, the seeds' state
   bytes and the device's peak memory after each.
4. `replay_sampling`: DeviceReplay sampling rate (transitions/s inside jit), and the
   host-resident replay's rate (`offline_moe.replay.host`) on the same rows.
5. `online`: DER agent steps/s, emulator included, for one torso (`offline_moe.bench.online`).
6. `eval`: evaluation agent steps/s (emulators + batched acting) with the host's cores, for the
   emulator pool (worker processes) and ale-py's vector interface (threads), in total and
   per core, plus the paper-protocol projections.

Every section has a share of `--minutes`; what a section leaves unused passes to the next. A
section's first measurement always runs (so every section reports a figure; the run can
overrun its budget by that much); a further one that would not finish within the section's
share is listed under `skipped` instead. Sizes: `paper`
on an accelerator, `cpu` on a CPU (the same models, fewer updates, a replay of 1/100 size),
`tiny` for tests (Nature encoder, 2 small experts). No TensorFlow is imported (checked).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import sys
import time

# Section shares of the time budget (in order); unused time passes to the next section.
SHARES = {"replay": 0.07, "learner": 0.5, "replay_sampling": 0.1, "online": 0.13, "eval": 0.2}
AGENTS = ("cql", "cql_c51")
TORSOS = ("soft_moe", "baseline", "top1_moe")
PAPER_ROWS_5PCT = 2_500_000  # 5% of a game's 50M DQN-Replay transitions


@dataclasses.dataclass(frozen=True)
class Sizes:
    """What one run of the check measures (see `SIZES`)."""

    encoder: str
    torso_kwargs: dict
    batch: int
    scan_steps: int
    learner_steps: int  # timed updates per seed and repeat
    seeds: tuple[int, ...]
    replay_rows: int
    replay_iters: int
    online_steps: int
    online_min_replay: int
    eval_seeds: int
    eval_envs: int
    eval_steps: int  # agent steps per seed (full episodes)
    eval_cap: int  # agent steps per episode


SIZES = {
    "paper": Sizes("impala", {"num_experts": 8}, 32, 500, 2000, (5, 1), PAPER_ROWS_5PCT,
                   2000, 500, 1000, 5, 16, 4000, 2000),
    # CPU: K = 1 (learners.core.effective_scan_steps) and one compiled one-seed program
    # called once per seed (learners.core.jit_over_seeds); 1 seed first: the first figure.
    "cpu": Sizes("impala", {"num_experts": 8}, 32, 1, 4, (1, 5), PAPER_ROWS_5PCT // 100,
                 200, 30, 200, 2, 8, 400, 200),
    "tiny": Sizes("nature", {"num_experts": 2, "expert_width": 32, "width": 0.0625}, 8, 1, 2,
                  (1,), 4_000, 50, 8, 64, 2, 2, 60, 40),
}  # fmt: skip


def _now() -> float:
    return time.perf_counter()


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "ale-py"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    for plugin in ("jax-cuda12-plugin", "jax-cuda12-pjrt"):
        try:
            out[plugin] = md.version(plugin)
        except md.PackageNotFoundError:
            pass
    return out


def environment() -> dict:
    import jax

    dev = jax.devices()[0]
    return {
        "versions": versions(),
        "platform": jax.default_backend(),
        "device_kind": str(dev.device_kind),
        "device": str(dev),
        "device_count": jax.device_count(),
        "memory_stats_available": bool(_memory_stats()),
        "host_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
    }


def _memory_stats() -> dict | None:
    import jax

    try:
        return jax.devices()[0].memory_stats() or None
    except Exception:  # some backends raise instead of returning None
        return None


def device_memory() -> dict:
    """Peak / in-use / limit bytes of the device; on CPU (no stats) the process's peak RSS."""
    stats = _memory_stats()
    if stats:
        keys = ("peak_bytes_in_use", "bytes_in_use", "bytes_limit", "largest_alloc_size")
        return {"source": "device.memory_stats()", **{k: stats[k] for k in keys if k in stats}}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {"source": "host max RSS (no device memory stats)", "peak_bytes_in_use": rss}


# ----- the paper-size replay, built on the device -----


def synthetic_replay(rows: int, n_step: int, *, episode_len: int = 1000, seed: int = 0):
    """A DeviceReplay of `rows` synthetic frames (made on the device, in chunks, in place).

    Episodes of `episode_len` rows, each ending terminal; random actions (6) and rewards.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from offline_moe.replay.device import DeviceReplay, episode_start_rows, valid_indices

    rng = np.random.default_rng(seed)
    episode_start = np.arange(rows) % episode_len == 0
    terminal = (np.arange(rows) % episode_len == episode_len - 1) | (np.arange(rows) == rows - 1)
    host = {
        "action": rng.integers(0, 6, rows).astype(np.int32),
        "reward": rng.choice(np.array([-1.0, 0.0, 0.0, 1.0], np.float32), rows),
        "terminal": terminal,
        "observation_only": np.zeros(rows, bool),
        "start_row": episode_start_rows(episode_start),
        "valid": valid_indices(terminal, episode_start, np.zeros(rows, bool), n_step),
    }
    arrays = {k: jax.device_put(v) for k, v in host.items()}
    chunk = min(rows, 65_536)

    def fill(frames, start):
        # A cheap per-pixel hash of (row, y, x) for one chunk, written in place (the frames
        # buffer is donated): no host copy and no random-number cost, and every frame differs.
        r = jax.lax.broadcasted_iota(jnp.uint32, (chunk, 84, 84), 0) + start.astype(jnp.uint32)
        y = jax.lax.broadcasted_iota(jnp.uint32, (chunk, 84, 84), 1)
        x = jax.lax.broadcasted_iota(jnp.uint32, (chunk, 84, 84), 2)
        h = r * jnp.uint32(2654435761) + y * jnp.uint32(40503) + x * jnp.uint32(9973) + seed
        return jax.lax.dynamic_update_slice(frames, (h >> 24).astype(jnp.uint8), (start, 0, 0))

    fill = jax.jit(fill, donate_argnums=0)
    frames = jnp.zeros((rows, 84, 84), jnp.uint8)
    for start in range(0, rows, chunk):
        frames = fill(frames, jnp.int32(min(start, rows - chunk)))
    arrays["observation"] = frames
    meta = {"game": "Synthetic", "num_actions": 6, "source": "synthetic"}
    return DeviceReplay(
        arrays, stack=4, n_step=n_step, gamma=0.99, meta_json=json.dumps(meta, sort_keys=True)
    )


def with_n_step(replay, n_step: int):
    """The same device arrays, sampled with another n-step horizon (its own valid rows)."""
    import jax
    import numpy as np

    from offline_moe.replay.device import DeviceReplay, valid_indices

    if replay.n_step == n_step:
        return replay
    start_row = np.asarray(replay.start_row)
    episode_start = start_row == np.arange(start_row.size)
    valid = valid_indices(
        np.asarray(replay.terminal), episode_start, np.asarray(replay.observation_only), n_step
    )
    arrays = {name: getattr(replay, name) for name in ("observation", "action", "reward")}
    arrays.update(
        terminal=replay.terminal,
        observation_only=replay.observation_only,
        start_row=replay.start_row,
        valid=jax.device_put(valid),
    )
    return DeviceReplay(
        arrays, stack=replay.stack, n_step=n_step, gamma=replay.gamma, meta_json=replay._meta_json
    )


def replay_bytes(replay) -> int:
    from offline_moe.replay.device import _LEAVES

    return int(sum(getattr(replay, name).nbytes for name in _LEAVES))


# ----- the check -----


class Check:
    """Runs the sections in order within the budget, rewriting the outputs after each step."""

    def __init__(self, out_dir: str, minutes: float, size: str, log=None, sections=None):
        self.sections = tuple(SHARES) if sections is None else tuple(sections)
        unknown = set(self.sections) - set(SHARES)
        if unknown:
            raise ValueError(
                f"bench device: unknown section(s) {sorted(unknown)}; valid: {list(SHARES)}"
            )
        self.out_dir = out_dir
        self.budget_s = 60.0 * minutes
        self.t0 = _now()
        self.size_name = size
        self.sizes = SIZES[size]
        self.log = log or (lambda msg: print(f"[bench device] {msg}", file=sys.stderr, flush=True))
        self.result = {
            "bench": "device",
            "started_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "minutes": minutes,
            "size": size,
            "sizes": dataclasses.asdict(self.sizes),
            "skipped": [],
            "finished": False,
        }
        os.makedirs(out_dir, exist_ok=True)

    # -- time --

    def elapsed(self) -> float:
        return _now() - self.t0

    def section_deadline(self, name: str) -> float:
        """Elapsed-time deadline of a section: the end of its share, counting from now."""
        names = [n for n in SHARES if n in self.sections]
        rest = sum(SHARES[n] for n in names[names.index(name) :])
        left = self.budget_s - self.elapsed()
        return self.elapsed() + left * SHARES[name] / rest

    def skip(self, what: str, why: str) -> None:
        self.result["skipped"].append({"what": what, "why": why})
        self.log(f"skipped {what}: {why}")
        self.write()

    # -- output --

    def write(self) -> None:
        self.result["elapsed_s"] = round(self.elapsed(), 2)
        self.result["tensorflow_imported"] = "tensorflow" in sys.modules
        path = os.path.join(self.out_dir, "device.json")
        with open(path + ".tmp", "w") as f:
            json.dump(self.result, f, indent=1, sort_keys=False)
        os.replace(path + ".tmp", path)
        md = os.path.join(self.out_dir, "device.md")
        with open(md + ".tmp", "w") as f:
            f.write(markdown(self.result))
        os.replace(md + ".tmp", md)

    # -- sections --

    def run(self) -> dict:
        self.result["env"] = environment()
        self.log(f"{self.result['env']['device_kind']} ({self.result['env']['platform']}), "
                 f"size {self.size_name}, budget {self.budget_s:.0f}s")  # fmt: skip
        self.write()
        needs_replay = {"replay", "learner", "replay_sampling"} & set(self.sections)
        replays = self.guarded("replay", self.section_replay) if needs_replay else None
        if replays and "learner" in self.sections:
            self.guarded("learner", self.section_learner, replays)
        if replays and "replay_sampling" in self.sections:
            self.guarded("replay_sampling", self.section_replay_sampling, replays)
        if "online" in self.sections:
            self.guarded("online", self.section_online)
        if "eval" in self.sections:
            self.guarded("eval", self.section_eval)
        self.result["finished"] = True
        self.result["memory_end"] = device_memory()
        self.write()
        return self.result

    def guarded(self, name, fn, *args):
        """Runs a section; an error is recorded under `errors` and the next section runs."""
        try:
            return fn(*args)
        except Exception as e:  # one broken section must not cost the others' figures
            self.result.setdefault("errors", []).append(
                {"section": name, "error": f"{type(e).__name__}: {e}"}
            )
            self.log(f"section {name} failed: {type(e).__name__}: {e}")
            self.write()
            return None

    def section_replay(self):
        import jax

        sz = self.sizes
        before = device_memory()
        t = _now()
        replay = synthetic_replay(sz.replay_rows, 1)
        jax.block_until_ready(replay.observation)
        replay3 = with_n_step(replay, 3)
        after = device_memory()
        nbytes = replay_bytes(replay)
        self.result["replay"] = {
            "rows": sz.replay_rows,
            "paper_5pct_rows": PAPER_ROWS_5PCT,
            "scale": sz.replay_rows / PAPER_ROWS_5PCT,
            "bytes": nbytes,
            "bytes_per_row": round(nbytes / sz.replay_rows, 1),
            "paper_5pct_bytes_projected": round(nbytes / sz.replay_rows * PAPER_ROWS_5PCT),
            "device_bytes_in_use_delta": (
                after.get("bytes_in_use", 0) - before.get("bytes_in_use", 0)
                if "bytes_in_use" in after
                else None
            ),
            "build_s": round(_now() - t, 2),
            "memory": after,
        }
        self.log(f"replay: {sz.replay_rows:,} rows, {nbytes / 2**30:.2f} GiB")
        self.write()
        return {1: replay, 3: replay3}

    def section_learner(self, replays) -> None:
        from offline_moe.bench.learner import bench_one

        sz = self.sizes
        deadline = self.section_deadline("learner")
        self.result["learner"] = []
        last_cost = 0.0
        # The float32 grid at the first seed count, bfloat16 for one torso, then the others.
        plan = [(agent, torso, sz.seeds[0], "float32") for agent in AGENTS for torso in TORSOS]
        plan += [("cql", "soft_moe", sz.seeds[0], "bfloat16")]
        plan += [(a, t, s, "float32") for s in sz.seeds[1:] for a in AGENTS for t in TORSOS]
        for agent, torso, seeds, dtype in plan:
            what = f"learner {agent}/{torso} x{seeds}" + ("" if dtype == "float32" else f" {dtype}")
            first = not self.result["learner"]
            if not first and self.elapsed() + last_cost > deadline:
                self.skip(what, "the learner section's share of --minutes is used up")
                continue
            t = _now()
            rec = bench_one(
                agent,
                torso,
                encoder=sz.encoder,
                batch=sz.batch,
                steps=sz.learner_steps,
                scan_steps=sz.scan_steps,
                num_seeds=seeds,
                cache_dir=None,
                torso_overrides=sz.torso_kwargs,
                repeats=2,
                bare=False,
                replay=replays[1 if agent == "cql" else 3],
                compute_dtype=dtype,
            )
            last_cost = _now() - t
            rec["per_seed_updates_per_s"] = round(rec["updates_per_s"] / seeds, 2)
            rec["memory"] = device_memory()
            rec["wall_s"] = round(last_cost, 2)
            self.result["learner"].append(rec)
            self.log(
                f"{what}: {rec['updates_per_s']:,.1f} seed-updates/s, compile "
                f"{rec['compile_s']:.1f}s"
            )
            self.write()

    def section_replay_sampling(self, replays) -> None:
        from offline_moe.replay.device import benchmark_sampling

        sz = self.sizes
        deadline = self.section_deadline("replay_sampling")
        self.result["replay_sampling"] = []
        for n_step in (1, 3):
            if n_step > 1 and self.elapsed() > deadline:
                self.skip(f"DeviceReplay sampling n={n_step}", "share of --minutes used up")
                continue
            rate = benchmark_sampling(replays[n_step], batch_size=32, iters=sz.replay_iters)
            self.result["replay_sampling"].append(
                {"replay": "device", "n_step": n_step, "batch": 32,
                 "transitions_per_s": round(rate, 1)}
            )  # fmt: skip
            self.write()
        try:
            from offline_moe.replay.host import benchmark_host_sampling
        except ImportError as e:
            self.skip("host-resident replay sampling", f"not available: {e}")
            return
        rec = benchmark_host_sampling(replays[1], batch_size=32, iters=sz.replay_iters)
        self.result["replay_sampling"].append({"replay": "host", "n_step": 1, **rec})
        self.write()

    def section_online(self) -> None:
        sz = self.sizes
        from offline_moe.bench import online

        argv = [
            "online",
            "--agent=der",
            "--torso=soft_moe",
            f"--steps={sz.online_steps}",
            f"--min_replay={sz.online_min_replay}",
            f"--capacity={max(1000, sz.online_min_replay + sz.online_steps + 64)}",
        ]
        if self.size_name == "tiny":
            argv.append("--num_experts=2")
        rec = online.run(online.parse(argv))
        self.result["online"] = rec
        self.log(f"online DER: {rec['agent_steps_per_sec']:.1f} agent steps/s")
        self.write()

    def section_eval(self) -> None:
        """Evaluation (emulators + batched acting) with the pool and with ale-py's vector env."""
        import dataclasses as dc

        import jax

        from offline_moe.envs import vector
        from offline_moe.envs.evaluate import EvalConfig, evaluate
        from offline_moe.learners import (
            LearnerConfig,
            init_seeds,
            make_act_fn,
            make_learner,
            seed_keys,
        )
        from offline_moe.networks import filter_torso_kwargs, make_torso

        sz = self.sizes
        deadline = self.section_deadline("eval")
        cores = os.cpu_count() or 1
        block = {"encoder": sz.encoder, **sz.torso_kwargs}
        torso = make_torso("soft_moe", **filter_torso_kwargs("soft_moe", block))
        learner = make_learner(LearnerConfig(agent="cql"), torso, 6)  # Pong: 6 actions
        obs0 = jax.numpy.zeros((1, 84, 84, 4), jax.numpy.uint8)
        params = init_seeds(learner, seed_keys(0, sz.eval_seeds), obs0).params
        act_fn = make_act_fn(learner)
        keys = seed_keys(0, sz.eval_seeds, 1)
        base = EvalConfig(
            steps=sz.eval_steps,
            num_envs=sz.eval_envs,
            max_episode_steps=sz.eval_cap,
            workers=-1,
        )
        seeds = list(range(sz.eval_seeds))
        # Compile the act call first (not part of the rate).
        act_fn(params, jax.numpy.zeros((sz.eval_seeds, sz.eval_envs, 84, 84, 4), "uint8"),
               keys, 0.001).block_until_ready()  # fmt: skip
        self.result["eval"] = []
        has_backend = "backend" in {f.name for f in dc.fields(EvalConfig)}
        backends = ["pool"] + (["vector"] if vector.available() and has_backend else [])
        results = {}
        del deadline  # both backends always run: comparing them is what this section is for
        for backend in backends:
            cfg = dc.replace(base, backend=backend) if has_backend else base
            out = evaluate(act_fn, params, game="Pong", cfg=cfg, keys=keys, env_seeds=seeds)
            results[backend] = out
            used = _eval_cores(backend, cores, sz.eval_seeds * sz.eval_envs, sz.eval_seeds)
            rec = {
                "backend": backend,
                "seeds": sz.eval_seeds,
                "envs_per_seed": sz.eval_envs,
                "agent_steps": int(sum(out["agent_steps"])),
                "agent_steps_per_s": round(out["env_steps_per_s"], 1),
                "cores_used": used,
                "agent_steps_per_s_per_core": round(out["env_steps_per_s"] / used, 1),
                "eval_s": round(out["eval_s"], 2),
                # The paper's protocol: 200 iterations x >= 125,000 agent steps x 5 seeds.
                "paper_5seed_run_eval_hours": round(
                    200 * 125_000 * 5 / out["env_steps_per_s"] / 3600, 2
                ),
            }
            self.result["eval"].append(rec)
            self.log(f"eval {backend}: {rec['agent_steps_per_s']:,.0f} agent steps/s")
            self.write()
        if len(results) == 2:
            same = results["pool"]["episode_returns"] == results["vector"]["episode_returns"]
            self.result["eval_backends_identical"] = bool(same)
            self.write()


def _eval_cores(backend: str, cores: int, envs: int, units: int) -> int:
    from offline_moe.envs.pool import worker_count

    if backend == "vector":
        return max(1, min(cores, envs))
    return max(1, worker_count(-1, units))


# ----- markdown -----


def _fmt(x, digits=1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return str(x)


def _gib(b) -> str:
    return "-" if b is None else f"{b / 2**30:.2f}"


def markdown(r: dict) -> str:
    env = r.get("env", {})
    lines = [
        f"# offline_moe accelerator check ({r['started_utc']})",
        "",
        f"Device: {env.get('device_kind', '?')} ({env.get('platform', '?')}, "
        f"{env.get('device_count', '?')} device(s)), host CPUs {env.get('host_cpus', '?')}; "
        f"size `{r['size']}`, budget {r['minutes']} min, elapsed {r.get('elapsed_s', 0):.0f} s"
        f"{'' if r.get('finished') else ' (not finished)'}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
        "",
    ]
    if r.get("learner"):
        lines += [
            "## Learner (end to end: sampling inside the fused scan)",
            "",
            "| agent | torso | dtype | seeds | seed-updates/s | per seed | compile s | params | "
            "state GiB | peak mem GiB |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for x in r["learner"]:
            lines.append(
                f"| {x['agent']} | {x['torso']} | {x.get('compute_dtype', 'float32')} | "
                f"{x['num_seeds']} | {_fmt(x['updates_per_s'])} "
                f"| {_fmt(x['per_seed_updates_per_s'])} | {_fmt(x['compile_s'])} | "
                f"{_fmt(x['params'])} | {_gib(x['state_bytes'])} | "
                f"{_gib(x['memory'].get('peak_bytes_in_use'))} |"
            )
        lines += [
            "",
            "Target: >= 6,000 seed-updates/s at 5 seeds (a 5-seed run of 12.5M updates per seed "
            "in under 3 hours).",
            "",
        ]
    if r.get("replay"):
        x = r["replay"]
        lines += [
            "## Replay",
            "",
            f"DeviceReplay of {x['rows']:,} rows ({x['scale']:.3g} x the paper's 5%): "
            f"{_gib(x['bytes'])} GiB ({x['bytes_per_row']:,.0f} B/row; 5% projected "
            f"{_gib(x['paper_5pct_bytes_projected'])} GiB), built in {x['build_s']} s.",
            "",
        ]
    if r.get("replay_sampling"):
        lines += ["| replay | n-step | transitions/s |", "|---|---:|---:|"]
        for x in r["replay_sampling"]:
            lines.append(f"| {x['replay']} | {x['n_step']} | {_fmt(x['transitions_per_s'])} |")
        lines.append("")
    if r.get("online"):
        x = r["online"]
        lines += [
            "## Online (DER, emulator included)",
            "",
            f"{x['torso']}: {x['agent_steps_per_sec']:,.1f} agent steps/s (jitted call "
            f"{x['jitted_call_ms']:.1f} ms, emulator {x['emulator_ms']:.1f} ms per step); "
            f"100k steps in {x['projected_100k_minutes']:.1f} min.",
            "",
        ]
    if r.get("eval"):
        lines += [
            "## Evaluation (emulators + batched acting)",
            "",
            "| backend | seeds x envs | agent steps/s | cores | per core | 5-seed paper run h |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for x in r["eval"]:
            lines.append(
                f"| {x['backend']} | {x['seeds']} x {x['envs_per_seed']} | "
                f"{_fmt(x['agent_steps_per_s'])} | {x['cores_used']} | "
                f"{_fmt(x['agent_steps_per_s_per_core'])} | {x['paper_5seed_run_eval_hours']} |"
            )
        if "eval_backends_identical" in r:
            lines.append("")
            same = r["eval_backends_identical"]
            lines.append(f"Same episode returns from both backends: {same}.")
        lines.append("")
    if r.get("errors"):
        lines += ["## Errors", ""] + [f"- {e['section']}: {e['error']}" for e in r["errors"]] + [""]
    if r.get("skipped"):
        lines += ["## Skipped", ""] + [f"- {s['what']}: {s['why']}" for s in r["skipped"]] + [""]
    return "\n".join(lines)


def main(argv) -> None:
    p = argparse.ArgumentParser(prog=argv[0], description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=8.0, help="time budget of the whole check")
    p.add_argument("--out", default="runs/bench_device", help="directory for device.json/.md")
    p.add_argument(
        "--size",
        default="auto",
        choices=["auto", *SIZES],
        help="auto: paper on an accelerator, cpu on a CPU; tiny: for tests",
    )
    p.add_argument(
        "--sections",
        default=",".join(SHARES),
        help=f"comma list of sections to run, in this order: {','.join(SHARES)}",
    )
    args = p.parse_args(argv[1:])
    import jax

    size = args.size
    if size == "auto":
        size = "cpu" if jax.default_backend() == "cpu" else "paper"
    sections = [x for x in args.sections.split(",") if x]
    result = Check(args.out, args.minutes, size, sections=sections).run()
    print(json.dumps({"bench": "device", "out": args.out, "elapsed_s": result["elapsed_s"]}))


if __name__ == "__main__":
    main(["offline_moe.bench device", *sys.argv[1:]])
