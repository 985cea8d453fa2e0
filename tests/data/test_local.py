"""Local data and the cache path convention: identity checks before reuse, one naming rule."""

import json
import os
import re
from pathlib import Path

import pytest

from offline_moe.data import local
from offline_moe.data.rlu_format import dataset_dir
from offline_moe.errors import CacheError
from offline_moe.replay import cache_writer, identity
from offline_moe.replay.identity import cache_dir_for
from tests import REPO_ROOT

# The README and the documentation pages: every cache path they show follows the convention.
DOC_FILES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").rglob("*.md"))]


def _fake_recording(data_dir, game, **description):
    """A dataset directory as offline_moe.record leaves it (only what identity reading needs)."""
    target = Path(dataset_dir(str(data_dir), game, 1, identity.LOCAL_DATASET))
    target.mkdir(parents=True)
    desc = {"recorder": "offline_moe.record", "name": identity.LOCAL_DATASET, "game": game,
            "run": 1, "checkpoints": 1, "policy": "random", "eps": None, "seed": 0,
            "steps": 1000, "protocol": "dqn_replay", **description}  # fmt: skip
    (target / "dataset_info.json").write_text(json.dumps({"description": json.dumps(desc)}))
    return target


def test_recorded_dataset_reused_only_when_its_identity_matches(tmp_path):
    data_dir = local.local_dataset_dir("Pong", 1000, str(tmp_path))
    # Someone recorded 600 eps-greedy steps where 1000 random-policy steps are expected.
    _fake_recording(data_dir, "Pong", steps=600, policy="eps_greedy", eps=0.1)
    with pytest.raises(CacheError) as e:
        local.ensure_local_cache("Pong", 1000, str(tmp_path), via="rlds")
    msg = str(e.value)
    assert "steps: wanted 1000, found 600" in msg
    assert "policy: wanted 'random', found 'eps_greedy_0.1'" in msg
    assert not os.path.exists(local.local_cache_dir("Pong", 1000, str(tmp_path)))


def test_existing_cache_reused_only_when_its_identity_matches(tmp_path):
    data_dir = local.local_dataset_dir("Breakout", 1000, str(tmp_path))
    _fake_recording(data_dir, "Breakout")  # the right recording ...
    out = local.local_cache_dir("Breakout", 1000, str(tmp_path))
    meta = {**identity.recording_identity("Breakout", 1000), "steps": 600}  # ... a wrong cache
    _write_cache(out, meta)
    with pytest.raises(CacheError, match="steps: wanted 1000, found 600"):
        local.ensure_local_cache("Breakout", 1000, str(tmp_path), via="rlds")
    _write_cache(out, identity.recording_identity("Breakout", 1000), overwrite=True)
    assert local.ensure_local_cache("Breakout", 1000, str(tmp_path), via="rlds") == out


def _write_cache(out, meta, overwrite=False):
    import numpy as np

    with cache_writer.CacheWriter(out, meta=meta, overwrite=overwrite) as w:
        w.add_episode(np.zeros((3, 84, 84), np.uint8), [0, 1, 0], np.zeros(3), terminated=True)


def test_one_cache_path_convention_in_readme_defaults_and_local_data():
    from offline_moe.configs import cql
    from offline_moe.train.offline import default_cache_dir

    public = {"source": "tfds:rlu_atari_checkpoints_ordered/Pong_run_1", "game": "Pong",
              "run": 1, "percent": 5.0}  # fmt: skip
    assert cache_dir_for(public) == "data/cache/Pong_run1_5pct"
    config = cql.get_config("game=Pong").to_dict()
    assert default_cache_dir(config) == cache_dir_for(public)
    # Local recordings: the same function names the sweep's and the benchmark's caches.
    assert local.local_cache_dir("Pong", 3000) == "data/cache/Pong_random_3000steps_seed0"
    assert identity.CACHE_NAME_RE.fullmatch("Pong_random_3000steps_seed0")
    # A recorded cache has no default path: the trainer says how to make one.
    smoke = cql.get_config("smoke,game=Pong").to_dict()
    with pytest.raises(ValueError, match="offline_moe.local_data --games=Pong"):
        default_cache_dir(smoke)
    # Every cache path the README and the docs show follows the convention.
    text = "\n".join(f.read_text() for f in DOC_FILES)
    found = re.findall(r"data/caches?/[A-Za-z0-9_.{}-]+", text)
    paths = [p for p in found if "{" not in p]  # templates like data/cache/{game}_... aside
    assert paths, "the README and docs show no cache path"
    for path in paths:
        assert path.startswith("data/cache/"), path
        assert identity.CACHE_NAME_RE.fullmatch(path.split("/")[2]), path


def test_identity_differences_and_source_kinds():
    wanted = {"game": "Pong", "percent": 5, "checkpoints": [0, 1], "policy": None}
    found = {"game": "Pong", "percent": 5.0, "checkpoints": [0, 1], "policy": "random"}
    assert identity.identity_differences(wanted, found) == []  # None is not compared
    assert identity.identity_differences({"percent": 10}, found) == [
        "percent: wanted 10, found 5.0"
    ]
    assert identity.source_kind({"source": "rlds_dir:/x/1.1.0"}) == "tfds"
    assert identity.source_kind({"source": "dqn_replay:/d/Pong/1/replay_logs"}) == "dqn_replay"
    assert identity.source_kind({"source": "tfds:rlu_atari_local/Pong_run_1",
                                  "policy": "random"}) == "record"  # fmt: skip
    assert identity.source_kind({}) is None
