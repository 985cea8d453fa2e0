"""The accelerator check: everything a researcher needs to plan the paper's grid, in one process.

    python -m offline_moe.bench device [--minutes=6] [--report_dir=runs/bench_device]
    ./run.sh device --minutes=6          # the same on a fresh GPU machine (installs first)

Writes `device.json` and `device.md` (markdown tables) into `--report_dir`, rewritten after every
finished measurement, so a run cut short still leaves its figures. A second call with the same
`--report_dir` continues where the first stopped: measurements already in device.json are kept and
not repeated, skipped ones are tried again, and the learning runs resume from their
checkpoints (so a GPU lent in calls of a few minutes each still gets through the list).
Order (most important first):

1. `env`: JAX / jaxlib / Flax / Optax / Orbax / numpy / ale-py versions, XLA flags, the
   device (kind, platform, count) and the host's CPU cores.
2. `replay`: a DeviceReplay of the paper's 5% size (2.5M rows of synthetic 84x84 frames, built
   on the device; `--replay_rows` scales it down on CPU), with the bytes it holds and the
   device memory it took.
3. `learner`: end-to-end updates/s (sampling from that replay inside the fused scan) for CQL
   and CQL+C51 x baseline / soft_moe / top1_moe (Impala, 8 experts, batch 32), at 5 and 1
   seeds trained in one program (vmap on accelerators), with compile time, the seeds' state
   bytes and the device's peak memory after each.
3b. `learning`: real learning on a real game. Pong is recorded with the scripted controller
   (eps 0.25: a medium-quality dataset) on the host's cores, one process per checkpoint
   split, straight into a replay cache (`data.record.record_cache`, no TensorFlow); then CQL x
   baseline / soft_moe (Impala, 8 experts) x 5 seeds train on it for as many updates as the
   section's time allows (resumable), with the evaluation curve (`learning_curve.png`).
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

The sections and the budget are here; the machine's description is `bench.machine`, the
paper-size replay made on the device `bench.synthetic_replay`, and device.md `bench.device_report`.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import sys
import time

from absl import flags

from offline_moe.bench.device_report import learning_record, markdown, plot_learning
from offline_moe.bench.machine import device_memory, environment
from offline_moe.bench.synthetic_replay import replay_bytes, synthetic_replay, with_n_step
from offline_moe.configs.agents import OFFLINE_AGENTS
from offline_moe.flags_common import check_items, parse

# Section shares of the time budget (in order); unused time passes to the next section.
SHARES = {
    "replay": 0.04,
    "learner": 0.36,
    "learning": 0.4,
    "replay_sampling": 0.04,
    "online": 0.06,
    "eval": 0.1,
}
AGENTS = OFFLINE_AGENTS  # the offline track (its learner, updates/s)
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
    # The learning section (launch.experiments' Pong hook, with these changes):
    learn_data_steps: int  # scripted-policy agent steps recorded
    learn_checkpoints: int  # checkpoint splits (one recording process each)
    learn_budget: int  # updates per seed the run is configured for (a multiple of learn_per)
    learn_per: int  # updates per iteration (an evaluation every learn_eval_interval of them)
    learn_eval_interval: int
    learn_seeds: int
    learn_torso: dict  # torso keys of both variants (the paper's: Impala, 8 experts)
    learn_eval_cap: int  # agent steps per evaluation episode and per seed (and random score)


_PAPER_TORSO = {"encoder": "impala", "num_experts": 8, "expert_width": 512, "width": 1.0}
_TINY_TORSO = {"encoder": "nature", "num_experts": 2, "expert_width": 32, "width": 0.0625}
SIZES = {
    "paper": Sizes("impala", {"num_experts": 8}, 32, 500, 2000, (5, 1), PAPER_ROWS_5PCT,
                   2000, 500, 1000, 5, 16, 4000, 2000,
                   50_000, 10, 100_000, 500, 4, 5, _PAPER_TORSO, 1000),
    # CPU: K = 1 (learners.core.effective_scan_steps) and one compiled one-seed program
    # called once per seed (learners.core.jit_over_seeds); 1 seed first: the first figure.
    "cpu": Sizes("impala", {"num_experts": 8}, 32, 1, 4, (1, 5), PAPER_ROWS_5PCT // 100,
                 200, 30, 200, 2, 8, 400, 200,
                 20_000, 2, 4_000, 500, 2, 2, _PAPER_TORSO, 1000),
    "tiny": Sizes("nature", {"num_experts": 2, "expert_width": 32, "width": 0.0625}, 8, 1, 2,
                  (1,), 4_000, 50, 8, 64, 2, 2, 60, 40,
                  400, 2, 40, 20, 1, 1, _TINY_TORSO, 100),
}  # fmt: skip
LEARN_GAME, LEARN_POLICY, LEARN_EPS = "Pong", "scripted", 0.25
LEARN_TORSOS = ("baseline", "soft_moe")


def _now() -> float:
    return time.perf_counter()


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
        started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        self.result = {
            "bench": "device",
            "started_utc": started,
            "minutes": minutes,
            "size": size,
            "sizes": dataclasses.asdict(self.sizes),
            "skipped": [],
            "finished": False,
            "calls": [],
        }
        previous = self._previous()
        if previous is not None:  # continue: keep its figures, retry what it skipped
            errors = previous.pop("errors", None)
            if errors:  # they stay with the call that met them; their sections run again
                previous["calls"][-1]["errors"] = errors
            self.result.update(previous, skipped=[], finished=False)
            self.log(f"continuing {out_dir} (call {len(self.result['calls']) + 1})")
        self.result["calls"].append({"started_utc": started, "minutes": minutes})
        os.makedirs(out_dir, exist_ok=True)

    def _previous(self) -> dict | None:
        """device.json of an earlier call into the same directory, at the same size."""
        path = os.path.join(self.out_dir, "device.json")
        try:
            with open(path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            return None
        if old.get("size") != self.size_name:
            raise ValueError(
                f"bench device: {path} holds a run at size {old.get('size')!r}, not "
                f"{self.size_name!r}; use another --report_dir or remove it"
            )
        old.setdefault("calls", [{"started_utc": old.get("started_utc")}])
        return old

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
        if self._learner_plan() == [] and self.result.get("replay_sampling"):
            needs_replay = set()  # an earlier call measured everything that needs it
        replays = self.guarded("replay", self.section_replay) if needs_replay else None
        if replays and "learner" in self.sections:
            self.guarded("learner", self.section_learner, replays)
        if "learning" in self.sections:
            self.guarded("learning", self.section_learning)
        if (
            replays
            and "replay_sampling" in self.sections
            and not self.result.get("replay_sampling")
        ):
            self.guarded("replay_sampling", self.section_replay_sampling, replays)
        if "online" in self.sections and not self.result.get("online"):
            self.guarded("online", self.section_online)
        if "eval" in self.sections and not self.result.get("eval"):
            self.guarded("eval", self.section_eval)
        self.result["finished"] = not self.result["skipped"]
        self.result["memory_end"] = device_memory()
        self.result["calls"][-1]["elapsed_s"] = round(self.elapsed(), 2)
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

    def _learner_plan(self) -> list[tuple[str, str, int, str]]:
        """(agent, torso, seeds, dtype) still to measure: CQL + soft_moe at every seed count
        (how seeds scale), the float32 grid at the first seed count, bfloat16 for one torso,
        then the other seed counts; what earlier calls measured is left out."""
        sz = self.sizes
        plan = [("cql", "soft_moe", s, "float32") for s in sz.seeds]
        plan += [(agent, torso, sz.seeds[0], "float32") for agent in AGENTS for torso in TORSOS]
        plan += [("cql", "soft_moe", sz.seeds[0], "bfloat16")]
        plan += [(a, t, s, "float32") for s in sz.seeds[1:] for a in AGENTS for t in TORSOS]
        plan = list(dict.fromkeys(plan))  # each once, in the first place it comes
        done = {
            (x["agent"], x["torso"], x["num_seeds"], x.get("compute_dtype", "float32"))
            for x in self.result.get("learner", [])
        }
        return [p for p in plan if p not in done]

    def section_learner(self, replays) -> None:
        from offline_moe.bench.learner import bench_one

        sz = self.sizes
        deadline = self.section_deadline("learner")
        self.result.setdefault("learner", [])
        last_cost = 0.0
        first = True
        for agent, torso, seeds, dtype in self._learner_plan():
            what = f"learner {agent}/{torso} x{seeds}" + ("" if dtype == "float32" else f" {dtype}")
            if not first and self.elapsed() + last_cost > deadline:
                self.skip(what, "the learner section's share of --minutes is used up")
                continue
            first = False
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

    def section_learning(self) -> None:
        """Record Pong (scripted, eps 0.25) into a cache on the host's cores, then train CQL x
        LEARN_TORSOS on it until the section's time is up (resumable; see module docstring)."""
        from offline_moe.data.record import record_cache
        from offline_moe.launch import experiments as bl
        from offline_moe.networks import filter_torso_kwargs

        sz = self.sizes
        deadline = self.section_deadline("learning")
        res = self.result.setdefault("learning", {"game": LEARN_GAME, "runs": {}})
        cache = os.path.join(self.out_dir, "cache", f"{LEARN_GAME}_{LEARN_POLICY}_{LEARN_EPS:g}")
        if "data" not in res or not os.path.exists(os.path.join(cache, "meta.json")):
            workers = min(sz.learn_checkpoints, os.cpu_count() or 1)
            t = _now()
            meta = record_cache(
                LEARN_GAME,
                sz.learn_data_steps,
                cache,
                policy=LEARN_POLICY,
                eps=LEARN_EPS,
                checkpoints=sz.learn_checkpoints,
                workers=workers,
                overwrite=True,
            )
            took = _now() - t
            res["data"] = {
                "policy": f"{LEARN_POLICY} eps {LEARN_EPS}",
                "agent_steps": sz.learn_data_steps,
                "checkpoints": sz.learn_checkpoints,
                "transitions": meta["num_transitions"],
                "episodes": meta["num_episodes"],
                "record_s": round(took, 2),
                "processes": workers,
                "agent_steps_per_s": round(sz.learn_data_steps / took, 1),
            }
            self.log(
                f"recorded {sz.learn_data_steps:,} {LEARN_GAME} steps in {took:.1f}s "
                f"({workers} processes) -> {cache}"
            )
            self.write()
        hook = bl.real_game_hook(LEARN_GAME, per=sz.learn_per)
        cap = sz.learn_eval_cap  # the hook's 1,000 at paper size
        if "random_score" not in res:
            res["random_score"] = bl.play_random(LEARN_GAME, 10, 0, max_episode_steps=cap)
        overrides = [
            f"config.scan_steps={sz.learn_per}",
            f"config.eval.interval={sz.learn_eval_interval}",
            "config.eval.workers=-1",
            f"config.eval.steps={cap}",
            f"config.eval.max_episode_steps={cap}",
        ]
        todo = [t for t in LEARN_TORSOS if not res["runs"].get(t, {}).get("finished")]
        for k, torso in enumerate(todo):
            # Each unfinished run gets an equal part of what is left of the section's time.
            left = deadline - self.elapsed()
            if left <= 0 and res["runs"].get(torso):
                self.skip(f"learning cql/{torso}", "the learning section's share is used up")
                continue
            stop_at = time.time() + max(left, 0.0) / (len(todo) - k)
            kwargs = filter_torso_kwargs(torso, sz.learn_torso)  # the keys this torso takes
            variant = "@".join([torso, *(f"{key}={v}" for key, v in kwargs.items())])
            line = bl.run_one(
                LEARN_GAME,
                "cql",
                variant,
                seeds=sz.learn_seeds,
                budget=sz.learn_budget,
                root=os.path.join(self.out_dir, "learning"),
                fresh=False,
                random_score=res["random_score"],
                stop_at=stop_at,
                cache_dir=cache,
                overrides=overrides,
                hook=hook,
                log=lambda msg, t=torso: self.log(f"learning {t}: {msg}"),
            )
            res["runs"][torso] = learning_record(line, self.out_dir)
            self.log(
                f"learning cql/{torso}: {line['steps'][-1] if line['steps'] else 0:,} updates, "
                f"mean return {line['mean_return'][-1] if line['mean_return'] else None}"
            )
            self.write()
            plot_learning(res, os.path.join(self.out_dir, "learning_curve.png"))
        if any(not r.get("finished") for r in res["runs"].values()):
            self.skip("learning: runs not finished", "they resume on the next call")

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
                {"replay": "device", "n_step": n_step, "batch_size": 32,
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
        self.log(f"online DER: {rec['agent_steps_per_s']:.1f} agent steps/s")
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


def define_flags(fv: flags.FlagValues) -> None:
    """The benchmark's flags, in `fv`."""
    kw = dict(flag_values=fv)
    flags.DEFINE_float(
        "minutes",
        6.0,
        "Time budget of this call; a second call with the same --report_dir continues.",
        lower_bound=0.1,
        **kw,
    )
    flags.DEFINE_string(
        "report_dir",
        "runs/bench_device",
        "Directory the report is written to (device.json/.md).",
        **kw,
    )
    flags.DEFINE_enum(
        "size",
        "auto",
        ["auto", *SIZES],
        "auto: paper on an accelerator, cpu on a CPU; tiny: for tests.",
        **kw,
    )
    flags.DEFINE_list(
        "sections",
        list(SHARES),
        f"Sections to run, comma-separated, in this order: {','.join(SHARES)}.",
        **kw,
    )
    check_items(fv, "sections", lambda x: x in SHARES, f"sections among {','.join(SHARES)}")


def main(argv) -> None:
    args = parse(argv, define_flags, prog="bench device", doc=__doc__)
    import jax

    size = args.size
    if size == "auto":
        size = "cpu" if jax.default_backend() == "cpu" else "paper"
    sections = list(args.sections)
    result = Check(args.report_dir, args.minutes, size, sections=sections).run()
    record = {"bench": "device", "report_dir": args.report_dir, "elapsed_s": result["elapsed_s"]}
    print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main(["bench device", *sys.argv[1:]])
