"""Tests for offline_moe.sweep with a fake trainer (no dependence on the real trainers)."""

import json
import os
import shlex
import shutil
import textwrap
from pathlib import Path

import pytest

import offline_moe.sweep as sweep_cli
from offline_moe.analysis import report, suites
from offline_moe.configs.agents import AGENTS
from offline_moe.configs.overrides import TorsoVariant
from offline_moe.launch import sweep

# A stand-in trainer: writes a run directory in the documented layout, one evaluation per
# iteration (3 iterations), resuming from the evaluations already on disk. With
# FAKE_CRASH_GAME=<game> it dies after its first new iteration, once per workdir (the marker
# file makes a second invocation behave), like a run killed mid-training.
FAKE_TRAINER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path

    flags = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
    workdir = Path(flags["workdir"])
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "invocations.txt", "a") as f:
        f.write(" ".join(sys.argv[1:]) + "\\n")
    (workdir / "cwd.txt").write_text(os.getcwd())
    cfg_path, _, cfg_arg = flags["config"].partition(":")
    opts = dict(kv.split("=", 1) for kv in cfg_arg.split(",") if "=" in kv)
    seed, num_seeds = int(flags["config.seed"]), int(flags["config.num_seeds"])
    torso = {k[len("config.torso."):]: v for k, v in flags.items() if k.startswith("config.torso.")}
    config = {"agent": Path(cfg_path).stem, "game": opts["game"], "seed": seed,
              "num_seeds": num_seeds, "torso": torso, "data": {"percent": 5},
              "smoke": "smoke" in cfg_arg.split(",")}
    (workdir / "config.json").write_text(json.dumps(config))
    protocol = {"version": 1, "track": "offline", "agent": config["agent"], "games": [opts["game"]],
                "data": {"source": "tfds", "percent": 5, "cache": None}, "encoder": "impala",
                "torso": {"name": torso["name"],
                          "kwargs": {k: v for k, v in torso.items() if k != "name"}},
                "budget": {"iterations": 3, "steps_per_iteration": 100, "unit": "updates"},
                "eval": {"protocol": "dqn_replay", "epsilon": 0.001, "max_episode_steps": 27000,
                         "standard_max_episode_steps": 27000, "min_steps": 125000,
                         "episodes": None, "interval": 1},
                "sticky_actions": 0.25}
    (workdir / "protocol.json").write_text(json.dumps(protocol))
    evals = workdir / "eval.jsonl"
    done = len(evals.read_text().splitlines()) if evals.exists() else 0
    base = {"Pong": -20.0, "Breakout": 2.0}[opts["game"]]
    base += 3.0 if torso["name"] != "baseline" else 0.0
    crash = os.environ.get("FAKE_CRASH_GAME") == opts["game"] and not (workdir / "crashed").exists()
    for it in range(done, 3):
        rets = [base + it + s for s in range(seed, seed + num_seeds)]
        with open(evals, "a") as f:
            f.write(json.dumps({"iteration": it, "step": 100 * (it + 1), "returns": rets,
                                "episodes": [2] * num_seeds}) + "\\n")
        if crash:
            (workdir / "crashed").write_text("")
            sys.exit(3)
    last = [json.loads(l)["returns"] for l in evals.read_text().splitlines()]
    (workdir / "summary.json").write_text(json.dumps(
        {"done": True, "final_return": last[-1], "best_return": [max(c) for c in zip(*last)]}))
    """
)


@pytest.fixture()
def fake_env(tmp_path):
    (tmp_path / "fake_trainer.py").write_text(FAKE_TRAINER)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tmp_path) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _flags(cmd):
    return dict(a[2:].split("=", 1) for a in cmd if a.startswith("--"))


def test_print_lists_exactly_the_grid(tmp_path, capsys):
    root = tmp_path / "runs"
    argv = ["sweep", "--suite=smoke", "--agents=cql,cql_c51", "--torsos=baseline,soft_moe,top1_moe",
            "--num_seeds=5", f"--runs_dir={root}", "--print", "--smoke"]  # fmt: skip
    assert sweep_cli.main(argv) == 0
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    # --print records nothing; it names the command that makes the smoke caches.
    assert "offline_moe.local_data --games=Breakout,Pong --steps=3000" in err
    got = set()
    for line in lines:
        cmd = shlex.split(line)
        assert cmd[:2] == ["python", "-m"]
        f = _flags(cmd)
        agent = Path(f["config"].split(":")[0]).stem
        game = f["config"].split("game=")[1]
        assert cmd[2] == AGENTS[agent].trainer_module
        # The installed package's config file, absolute: the commands run from any directory.
        assert f["config"] == f"{AGENTS[agent].config_file}:smoke,game={game}"
        assert os.path.isabs(f["config"])
        assert (f["config.num_seeds"], f["config.seed"]) == ("5", "0")
        torso = f["config.torso.name"]
        assert f["workdir"] == str(root / agent / game / torso / "seeds_0-4")
        got.add((agent, game, torso))
    expected = {
        (a, g, t)
        for a in ("cql", "cql_c51")
        for g in suites.SMOKE
        for t in ("baseline", "soft_moe", "top1_moe")
    }
    assert len(lines) == len(expected) == 12 and got == expected


def test_print_writes_nothing(tmp_path, capsys):
    root, data = tmp_path / "runs", tmp_path / "data"
    argv = ["sweep", "--suite=smoke", "--agents=cql", "--torsos=baseline", "--num_seeds=2",
            f"--runs_dir={root}", f"--data_dir={data}", "--print", "--smoke"]  # fmt: skip
    assert sweep_cli.main(argv) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert not root.exists() and not data.exists()  # no grid file, no data, no directories


def test_sweep_started_from_another_directory(tmp_path, fake_env, monkeypatch):
    """Relative paths are made absolute before runs start: runs land where the user is."""
    monkeypatch.setenv("PYTHONPATH", fake_env["PYTHONPATH"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    name = f"runs_rel_{os.getpid()}"
    argv = ["sweep", "--suite=Pong", "--agents=drq_eps", "--torsos=baseline", "--num_seeds=1",
            f"--runs_dir={name}", "--trainer_module=fake_trainer",
            "--override=config.export_replay=exported"]  # fmt: skip
    try:
        assert sweep_cli.main(argv) == 0
        workdir = elsewhere / name / "drq_eps" / "Pong" / "baseline" / "seeds_0-0"
        assert sweep.run_status(workdir) == "done"
        call = (workdir / "invocations.txt").read_text()
        assert f"--workdir={workdir}" in call
        assert f"--config.export_replay={elsewhere / 'exported'}" in call
        assert not (Path(sweep.PACKAGE_PARENT) / name).exists()
        # The trainer ran in the sweep's working directory, not in the package's checkout.
        assert (workdir / "cwd.txt").read_text() == str(elsewhere)
    finally:  # the old behaviour put the runs into the package's checkout
        shutil.rmtree(Path(sweep.PACKAGE_PARENT) / name, ignore_errors=True)


def test_seed_groups_and_torso_variants(tmp_path):
    assert sweep.seed_groups(5, 2) == [(0, 2), (2, 2), (4, 1)]
    assert sweep.seed_groups(5, None, first_seed=10) == [(10, 5)]
    specs = sweep.expand_grid(
        ["Pong"], ["der"], ["baseline", "soft_moe@num_experts=4@expert_width=64"],
        root=tmp_path, seeds=3, seeds_per_run=2, overrides=["config.num_iterations=2"],
    )  # fmt: skip
    assert len(specs) == 4
    cmd = sweep.trainer_command(specs[2], python="py")
    assert (
        specs[2].workdir
        == tmp_path / "der" / "Pong" / "soft_moe__num_experts-4__expert_width-64" / "seeds_0-1"
    )
    assert cmd[:3] == ["py", "-m", "offline_moe.train_online"]
    assert "--config.torso.num_experts=4" in cmd and "--config.torso.expert_width=64" in cmd
    assert cmd[-1] == "--config.num_iterations=2"
    with pytest.raises(ValueError, match="unknown agent"):
        sweep.expand_grid(["Pong"], ["dqn"], ["baseline"], root=tmp_path)
    with pytest.raises(ValueError, match="name@key=value"):
        TorsoVariant.parse("soft_moe@num_experts")
    with pytest.raises(ValueError, match="config"):
        sweep.expand_grid(["Pong"], ["cql"], ["baseline"], root=tmp_path, overrides=["x=1"])


def test_sweep_skips_finished_and_resumes_interrupted(tmp_path, fake_env):
    root = tmp_path / "runs"
    specs = sweep.expand_grid(
        ["Pong", "Breakout"], ["cql"], ["baseline", "soft_moe"], root=root, seeds=2, smoke=True
    )
    kwargs = dict(workers=2, trainer_module="fake_trainer", log=lambda m: None)
    # First pass: every Breakout run is killed after one evaluation.
    res = sweep.run_sweep(specs, env={**fake_env, "FAKE_CRASH_GAME": "Breakout"}, **kwargs)
    assert len(res["ok"]) == 2 and len(res["failed"]) == 2 and not res["skipped"]
    status = {(s.game, s.torso.name): sweep.run_status(s.workdir) for s in specs}
    assert status == {
        ("Pong", "baseline"): "done",
        ("Pong", "soft_moe"): "done",
        ("Breakout", "baseline"): "partial",
        ("Breakout", "soft_moe"): "partial",
    }
    # Second pass: finished runs are skipped, interrupted ones are resumed in place.
    res = sweep.run_sweep(specs, env=fake_env, **kwargs)
    assert {s.game for s in res["skipped"]} == {"Pong"} and len(res["skipped"]) == 2
    assert {s.game for s in res["ok"]} == {"Breakout"} and not res["failed"]
    for spec in specs:
        calls = (spec.workdir / "invocations.txt").read_text().splitlines()
        assert len(calls) == (2 if spec.game == "Breakout" else 1)
        assert len(set(calls)) == 1  # the same command line again, so the trainer resumes
        iters = [json.loads(x)["iteration"] for x in (spec.workdir / "eval.jsonl").open()]
        assert iters == [0, 1, 2]  # resumed after iteration 0, nothing repeated
    logs = sorted(p.name for p in (root / "_logs").iterdir())
    assert "cql__Breakout__baseline__seeds_0-1.log" in logs
    # Third pass: nothing left to do.
    res = sweep.run_sweep(specs, env=fake_env, **kwargs)
    assert len(res["skipped"]) == 4 and not res["ok"] and not res["failed"]
    # The report reads what the sweep produced: 2 games x 2 torsos x 2 seeds.
    text = report.write_report(root, tmp_path / "report", reps=200, plots=False)
    assert "Aggregated over 2 games: Breakout, Pong." in text
    assert "| `soft_moe` | final | 2 x 2 |" in text
    assert "Warnings" not in text


def test_sweep_main_runs_the_fake_trainer(tmp_path, fake_env, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", fake_env["PYTHONPATH"])
    root = tmp_path / "runs"
    argv = ["sweep", "--suite=Pong", "--agents=drq_eps", "--torsos=baseline", "--num_seeds=1",
            f"--runs_dir={root}", "--trainer_module=fake_trainer"]  # fmt: skip
    assert sweep_cli.main(argv) == 0
    workdir = root / "drq_eps" / "Pong" / "baseline" / "seeds_0-0"
    assert sweep.run_status(workdir) == "done"
    # A sweep that runs records its grid, so the report names runs that never started.
    grid = json.loads((root / sweep.GRID_FILE).read_text())["runs"]
    assert [e["workdir"] for e in grid] == ["drq_eps/Pong/baseline/seeds_0-0"]
    shutil.rmtree(workdir)
    text = report.write_report(root, tmp_path / "report", reps=10, plots=False)
    assert "missing runs: 1 of the 1 runs" in text


@pytest.mark.slow
def test_smoke_suite_end_to_end_through_sweep_and_report(tmp_path, monkeypatch, capsys):
    """The smoke suite on CPU, as a user runs it: CQL x {baseline, soft_moe} x 2 seeds.

    `sweep --smoke` records 1,000 real ALE steps of each smoke game (Pong, Breakout), ingests
    them, trains the 4 runs with the real trainer's smoke config, and the report aggregates them.
    The runs are shorter than the smoke config's 2 x 100 updates (2 x 40, evaluations of 200
    agent steps: `--override`, which every run receives): the path is the point here, the
    trainer's budget is tested in tests/train.
    """
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
    root, data = tmp_path / "runs", tmp_path / "data"
    argv = [
        "sweep",
        "--suite=smoke",
        "--agents=cql",
        "--torsos=baseline,soft_moe",
        "--num_seeds=2",
        "--smoke",
        "--local_data_steps=1000",
        f"--data_dir={data}",
        f"--runs_dir={root}",
        "--workers=2",
        "--override=config.updates_per_iteration=40",
        "--override=config.eval.steps=200",
    ]
    code = sweep_cli.main(argv)
    logs = {p.name: p.read_text()[-2000:] for p in (root / "_logs").glob("*.log")}
    assert code == 0, logs
    # One cache per game, one run directory per (game, torso), each finished with 2 seeds.
    assert sorted(p.name for p in (data / "cache").iterdir()) == [
        "Breakout_random_1000steps_seed0",
        "Pong_random_1000steps_seed0",
    ]
    summaries = sorted(root.glob("cql/*/*/seeds_0-1/summary.json"))
    assert len(summaries) == 4, logs
    for path in summaries:
        summary = json.loads(path.read_text())
        assert summary["done"] is True and len(summary["final_return"]) == 2
    # The smoke config cuts evaluation episodes at 200 steps: raw scores only by default.
    text = report.write_report(root, tmp_path / "report", reps=200)
    assert "capped at 200 agent steps" in text and "No normalised aggregate" in text
    text = report.write_report(root, tmp_path / "report", reps=200, include_capped=True)
    assert "Aggregated over 2 games: Breakout, Pong." in text
    assert "| `soft_moe` | final | 2 x 2 |" in text
    assert list((tmp_path / "report").glob("iqm_curve_cql*.png"))
    assert list((tmp_path / "report").glob("curves_cql*.png"))
    # Re-running the sweep finds every run finished and reuses the recorded data.
    capsys.readouterr()
    assert sweep_cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert "4 runs: 4 done, 0 to run" in err, err
    assert err.count("[local_data] cache exists") == 2, err


def test_runs_per_seed_gives_seed_s_dqn_replay_run_s_plus_1(tmp_path):
    """--runs_per_seed: 5 seeds of an offline agent read the 5 DQN-Replay runs (seed s: run
    s + 1), one run directory each; online agents have no data run; more seeds than runs, or
    seeds grouped in one program, are refused."""
    specs = sweep.expand_grid(["Pong"], ["cql", "der"], ["baseline"], root=tmp_path, seeds=5,
                              runs_per_seed=True)  # fmt: skip
    offline = [s for s in specs if s.agent == "cql"]
    assert [(s.seed, s.num_seeds) for s in offline] == [(s, 1) for s in range(5)]
    for s in offline:
        cmd = sweep.trainer_command(s)
        assert cmd.count(f"--config.data.run={s.seed + 1}") == 1
        assert cmd.index(f"--config.seed={s.seed}") < cmd.index(f"--config.data.run={s.seed + 1}")
    assert not any("config.data.run" in o for s in specs if s.agent == "der" for o in s.overrides)
    plain = sweep.expand_grid(["Pong"], ["cql"], ["baseline"], root=tmp_path, seeds=5)
    assert len(plain) == 1 and not any("data.run" in a for a in sweep.trainer_command(plain[0]))
    with pytest.raises(ValueError, match="DQN-Replay has runs 1..5"):
        sweep.expand_grid(["Pong"], ["cql"], ["baseline"], root=tmp_path, seeds=6,
                          runs_per_seed=True)  # fmt: skip
    with pytest.raises(ValueError, match="seeds_per_run=5"):
        sweep.expand_grid(["Pong"], ["cql"], ["baseline"], root=tmp_path, seeds=5,
                          seeds_per_run=5, runs_per_seed=True)  # fmt: skip


def test_config_arg_reaches_every_run(tmp_path):
    specs = sweep.expand_grid(["Pong"], ["der"], ["soft_moe"], root=tmp_path, seeds=1,
                              config_arg="preset=fig12,frames=50000000")  # fmt: skip
    cmd = sweep.trainer_command(specs[0])
    assert f"--config={AGENTS['der'].config_file}:game=Pong,preset=fig12,frames=50000000" in cmd
    with pytest.raises(ValueError, match="come from the grid"):
        sweep.expand_grid(["Pong"], ["der"], ["soft_moe"], root=tmp_path, config_arg="seed=3")
