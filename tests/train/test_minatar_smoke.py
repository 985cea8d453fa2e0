"""MinAtar end to end: record (RLDS, MinAtar's env) -> ingest -> train_offline smoke -> evaluate."""

import json
import os

import numpy as np
import pytest

from offline_moe.configs import cql
from offline_moe.data.ingest import ingest
from offline_moe.data.record import record
from offline_moe.replay.cache import read_meta
from offline_moe.train.offline import train_and_evaluate
from tests.train.test_offline import tiny


@pytest.mark.slow
def test_minatar_record_ingest_train_evaluate(tmp_path):
    rlds = str(tmp_path / "rlds")
    summary = record("MinAtar/Breakout", 300, rlds, checkpoints=2, seed=1, max_episode_steps=80)
    assert summary["game"] == "MinAtarBreakout" and summary["num_actions"] == 6
    assert summary["steps"] == 300
    cache = str(tmp_path / "cache")
    meta = ingest("tfds:rlu_atari_local/MinAtarBreakout_run_1", cache, data_dir=rlds, percent=100)
    assert (meta["frame_shape"], meta["frame_dtype"], meta["frame_stack"]) == (
        [10, 10, 4],
        "bool",
        1,
    )
    assert meta["num_actions"] == 6 and read_meta(cache)["game"] == "MinAtarBreakout"

    config = cql.get_config("smoke,game=MinAtarBreakout,torso=soft_moe")
    assert config.torso.builtin.encoder == "minatar" and config.data.stack is None
    config = tiny(config, cache, **{"eval.steps": 40, "eval.max_episode_steps": 30})
    workdir = str(tmp_path / "run")
    result = train_and_evaluate(config, workdir)
    assert result is not None
    evals = [json.loads(line) for line in open(os.path.join(workdir, "eval.jsonl"))]
    assert len(evals) == config.num_iterations
    for rec in evals:
        assert all(np.isfinite(rec["returns"])) and min(rec["agent_steps"]) >= 40
    protocol = json.load(open(os.path.join(workdir, "protocol.json")))
    assert protocol["sticky_actions"] == 0.1 and protocol["encoder"] == "minatar"
