"""Every benchmark prints JSON lines on stdout, each with "bench": <its name>, and names the
same figure the same way (compile_s, updates_per_s, agent_steps_per_s, batch_size, platform)."""

import json

from offline_moe.bench import torso, validate


def _lines(out: str) -> list[dict]:
    lines = [line for line in out.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # stdout holds JSON lines only


def test_validate_prints_json_lines_with_its_name(tmp_path, capsys):
    validate.main(["bench validate", "--rows=2000", f"--cache_dir={tmp_path}", "--repeats=1"])
    captured = capsys.readouterr()
    lines = _lines(captured.out)
    assert lines and all(r["bench"] == "validate" and r["seconds"] >= 0 for r in lines)
    assert "[bench validate]" in captured.err  # the human summary goes to stderr


def test_torso_prints_json_lines_with_the_shared_keys(capsys):
    torso.main(["bench torso", "--torsos=baseline", "--encoders=minatar", "--batch_size=2",
                "--warmup=0", "--repeats=1", "--noscaled_baseline"])  # fmt: skip
    (line,) = _lines(capsys.readouterr().out)
    assert line["bench"] == "torso" and line["batch_size"] == 2
    assert {"compile_s", "platform", "device", "params"} <= set(line)


def test_progress_into_a_file_is_plain_lines(capsys):
    """Not a terminal (pytest's capture, a log file): no carriage return, whole lines."""
    from offline_moe.data.ingest import Progress

    bar = Progress(30, name="ingest", file_interval=0.0)
    for i in range(3):
        bar.update(10, label=f"checkpoint {i}")
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err and len(err.splitlines()) == 4
    assert all(line.startswith("[ingest] ") for line in err.splitlines())
