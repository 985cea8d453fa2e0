"""Recorder -> TFDS -> ingest on real ALE Pong: counts, boundaries, frames, RLU layout."""

import os
import sys

import numpy as np
import pytest

from offline_moe.data import rlu_format
from offline_moe.data.ingest import ingest
from offline_moe.data.record import (
    EpsGreedyBanditPolicy,
    record,
    record_cache,
    split_budget,
    split_seed,
)
from offline_moe.replay.cache import load_cache
from offline_moe.replay.identity import cache_identity, source_kind
from tests import REPO_ROOT

STEPS, CAP, SEED = 300, 100, 7


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("rec"))
    summary = record(
        "Pong",
        STEPS,
        root,
        policy="eps_greedy",
        checkpoints=2,
        run=3,
        seed=SEED,
        max_episode_steps=CAP,
    )
    return root, summary


def test_split_budget_and_policy():
    assert split_budget(301, 2) == [151, 150]
    assert split_budget(4, 4) == [1, 1, 1, 1]
    assert len({split_seed(0, 0), split_seed(0, 1), split_seed(1, 0)}) == 3
    policy = EpsGreedyBanditPolicy(3, np.random.default_rng(0), eps=0.0)
    policy.observe(2, 1.0)
    policy.observe(0, -1.0)
    assert {policy.act() for _ in range(20)} == {2}  # greedy on the best mean reward
    with pytest.raises(ValueError, match="unknown game 'Pongg'"):
        record("Pongg", 10, "/nonexistent")


def test_recorded_dataset_has_rlu_layout(recorded):
    import tensorflow_datasets as tfds
    from tensorflow_datasets.rl_unplugged import atari_utils

    root, summary = recorded
    path = rlu_format.dataset_dir(root, "Pong", 3)
    assert summary["dataset_dir"] == os.path.abspath(path)
    builder = tfds.builder_from_directory(path)
    public = atari_utils.features_dict()
    assert builder.info.features.get_tensor_info() == public.get_tensor_info()
    assert sorted(builder.info.splits) == ["checkpoint_00", "checkpoint_01"]
    # 150 steps per split, episodes capped at 100 steps: 100 + 50 per split (no game ends
    # in 100 Pong steps), so every episode is truncated.
    assert summary["episodes"] == {"checkpoint_00": 2, "checkpoint_01": 2}
    lengths = []
    for split in ("checkpoint_00", "checkpoint_01"):
        for i, ep in enumerate(tfds.as_numpy(builder.as_dataset(split=split))):
            rows = list(ep["steps"])
            steps = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
            n = len(steps["is_first"])
            lengths.append(n - 1)
            assert steps["is_first"].tolist() == [True] + [False] * (n - 1)
            assert steps["is_last"].tolist() == [False] * (n - 1) + [True]
            assert not steps["is_terminal"].any() and (steps["discount"] == 1).all()
            assert steps["observation"].shape == (n, 84, 84, 1)
            assert steps["action"][-1] == 0 and steps["reward"][-1] == 0  # final step: frame only
            assert ep["episode_id"] == i and ep["checkpoint_id"] == int(split[-2:])
    assert lengths == [CAP, 150 - CAP, CAP, 150 - CAP]


def test_ingest_recording_frames_match_replay(recorded, tmp_path):
    from offline_moe.envs.atari import AtariEnv

    root, summary = recorded
    out = str(tmp_path / "cache")
    meta = ingest("tfds:rlu_atari_local/Pong_run_3", out, data_dir=root, percent=100)
    arrays, _ = load_cache(out)
    assert meta["num_transitions"] == STEPS
    assert meta["num_episodes"] == 4 and meta["num_rows"] == STEPS + 4
    assert meta["game"] == "Pong" and meta["run"] == 3 and meta["num_actions"] == 6
    # The cache states what made it: the recorder's policy, steps and seed (its identity).
    assert cache_identity(meta) == {
        "source": "tfds:rlu_atari_local/Pong_run_3", "game": "Pong", "run": 3,
        "checkpoints": [0, 1], "percent": 100.0, "policy": "eps_greedy_0.1", "steps": STEPS,
        "seed": SEED, "sample": "prefix", "sample_seed": None,
    }  # fmt: skip
    assert source_kind(meta) == "record"
    starts = np.flatnonzero(arrays["episode_start"]).tolist()
    assert starts == [0, CAP + 1, 152, 152 + CAP + 1]
    assert np.flatnonzero(arrays["observation_only"]).tolist() == [CAP, 151, 152 + CAP, 303]
    assert not arrays["terminal"].any()
    # Replaying the recorded actions in a fresh env with the split's seed reproduces every
    # frame (episodes 0-1 are split checkpoint_00, episodes 2-3 checkpoint_01).
    frames = np.asarray(arrays["observation"])
    ends = starts[1:] + [len(frames)]
    returns = []
    for k, (start, end) in enumerate(zip(starts, ends)):
        if k % 2 == 0:
            env = AtariEnv(
                "Pong", protocol="dqn_replay", seed=split_seed(SEED, k // 2), max_episode_steps=CAP
            )
        np.testing.assert_array_equal(env.reset(), frames[start])
        total = 0.0
        for row in range(start, end - 1):
            step = env.step(int(arrays["action"][row]))
            total += step.reward
            np.testing.assert_array_equal(step.obs, frames[row + 1])
            assert arrays["reward"][row] == np.clip(step.reward, -1, 1)
        returns.append(total)
    assert returns == summary["returns"]
    assert frames.std() > 0  # real screens, not blanks


def _same_cache(direct: str, ingested: str) -> None:
    """Two caches hold the same rows and the same meta.json, but for what made them."""
    a, meta_a = load_cache(direct)
    b, meta_b = load_cache(ingested)
    assert sorted(a) == sorted(b)
    for name in a:
        np.testing.assert_array_equal(np.asarray(a[name]), np.asarray(b[name]), err_msg=name)
    assert meta_a["source_detail"]["written_by"].startswith("offline_moe.record --cache")
    for meta in (meta_a, meta_b):
        for key in ("created", "source_detail"):
            meta.pop(key)
    assert meta_a == meta_b


@pytest.mark.parametrize("percent", [100.0, 50.0])
def test_record_cache_equals_record_then_ingest(recorded, tmp_path, percent):
    """`record --cache` (no TensorFlow, splits played in 2 processes) makes the cache ingest
    makes of `record`'s dataset: the same rows and identity, at 100% and at 50% of each split
    (the first of each split's 2 episodes)."""
    root, _ = recorded
    ingested = str(tmp_path / "ingested")
    ingest("tfds:rlu_atari_local/Pong_run_3", ingested, data_dir=root, percent=percent)
    direct = str(tmp_path / "direct")
    meta = record_cache(
        "Pong",
        STEPS,
        direct,
        policy="eps_greedy",
        checkpoints=2,
        run=3,
        seed=SEED,
        max_episode_steps=CAP,
        percent=percent,
        workers=2 if percent == 100.0 else 1,
    )
    assert meta["num_episodes"] == (4 if percent == 100.0 else 2)
    _same_cache(direct, ingested)
    with pytest.raises(ValueError, match="already exists"):
        record_cache("Pong", STEPS, direct, checkpoints=2)


def test_record_cache_of_catch_with_terminals(tmp_path):
    """Terminated episodes too: Catch ends every 9 steps, so 100 steps hold 11 terminated
    episodes and one of 1 step truncated by the budget (its final frame kept); the direct
    cache equals the ingested one."""
    root = str(tmp_path / "rlds")
    record("Catch", 100, root, seed=3)
    ingested = str(tmp_path / "ingested")
    ingest("tfds:rlu_atari_local/Catch_run_1", ingested, data_dir=root, percent=100)
    direct = str(tmp_path / "direct")
    meta = record_cache("catch", 100, direct, seed=3)
    assert meta["num_episodes"] == 12 and meta["num_transitions"] == 11 * 9 + 1
    _same_cache(direct, ingested)
    arrays, _ = load_cache(direct)
    assert int(np.asarray(arrays["terminal"]).sum()) == 11


def test_record_refuses_existing_dataset(recorded):
    root, _ = recorded
    with pytest.raises(FileExistsError, match="already exists"):
        record("Pong", 2, root, run=3)


def test_tfds_dataset_folder_builds_and_ingests(tmp_path, monkeypatch):
    import importlib.util

    import tensorflow_datasets as tfds

    root = str(REPO_ROOT)
    path = os.path.join(root, "datasets", "rlu_atari_local", "rlu_atari_local_dataset_builder.py")
    spec = importlib.util.spec_from_file_location("rlu_atari_local_dataset_builder", path)
    module = importlib.util.module_from_spec(spec)
    # Importable by name while the test runs (dataclasses and TFDS look the module up).
    monkeypatch.setitem(sys.modules, spec.name, module)
    with tfds.core.registered.skip_registration():  # keep the name free for other tests
        spec.loader.exec_module(module)
    # The RLU games, Catch and CatchBoard, and the 5 MinAtar games, 5 runs each.
    assert len(module.Builder.BUILDER_CONFIGS) == (46 + 2 + 5) * 5
    small = module.LocalAtariConfig(
        name="Pong_run_4", game="Pong", run=4, steps=40, checkpoints=2, max_episode_steps=15
    )

    class SmallBuilder(module.Builder, skip_registration=True):
        __module__ = spec.name  # a top-level module, as `tfds build` loads the folder
        name = "rlu_atari_local"
        BUILDER_CONFIGS = [small]

    data_dir = str(tmp_path / "data")
    builder = SmallBuilder(config="Pong_run_4", data_dir=data_dir)
    builder.download_and_prepare()
    assert {s: builder.info.splits[s].num_examples for s in builder.info.splits} == {
        "checkpoint_00": 2,  # 20 steps per split, cap 15: episodes of 15 and 5 steps
        "checkpoint_01": 2,
    }
    out = str(tmp_path / "cache")
    meta = ingest("tfds:rlu_atari_local/Pong_run_4", out, data_dir=data_dir, percent=100)
    assert meta["num_transitions"] == 40 and meta["num_episodes"] == 4
    # Same seeds as the recorder: the builder's split 1 equals record_split's.
    from offline_moe.data.record import record_split

    arrays, _ = load_cache(out)
    first = next(record_split("Pong", 1, 20, seed=4, max_episode_steps=15))
    # Rows: split 0 holds 15 + 1 and 5 + 1 rows (transitions + observation-only), so split
    # 1's first episode takes rows 22..37 (16 frames: 15 transitions and the final frame).
    np.testing.assert_array_equal(
        arrays["observation"][22:38], first["steps"]["observation"][..., 0]
    )


def test_real_game_over_maps_to_terminal_row(tmp_path):
    # Random Breakout loses its 5 lives in about 200 steps (192 with seed 1 on ale-py 0.12):
    # episodes that end with a game over, then one cut by the step budget.
    from offline_moe.envs.atari import AtariEnv

    root = str(tmp_path / "rec")
    summary = record("Breakout", 250, root, seed=1)
    num_terminal = summary["terminated_episodes"]
    num_episodes = summary["episodes"]["checkpoint_00"]
    assert num_terminal >= 1 and num_episodes == num_terminal + 1
    out = str(tmp_path / "cache")
    meta = ingest(f"rlds_dir:{root}", out, percent=100, clip_rewards=False)
    arrays, _ = load_cache(out)
    assert meta["num_transitions"] == 250 and meta["num_rows"] == 251  # + 1 final frame
    starts = np.flatnonzero(arrays["episode_start"]).tolist()
    ends = starts[1:] + [251]
    assert len(starts) == num_episodes
    # Terminated episodes end on a terminal row (the game-over frame is dropped); the cut
    # one ends on its observation-only final frame.
    assert np.flatnonzero(arrays["terminal"]).tolist() == [e - 1 for e in ends[:-1]]
    assert np.flatnonzero(arrays["observation_only"]).tolist() == [250]
    env = AtariEnv("Breakout", protocol="dqn_replay", seed=split_seed(1, 0))
    frames = np.asarray(arrays["observation"])
    for start, end in zip(starts, ends):
        np.testing.assert_array_equal(env.reset(), frames[start])
        for row in range(start, end):
            if arrays["observation_only"][row]:
                break
            step = env.step(int(arrays["action"][row]))
            assert step.reward == arrays["reward"][row]
            assert step.terminated == arrays["terminal"][row]
            if not step.terminated:
                np.testing.assert_array_equal(step.obs, frames[row + 1])


def test_record_cache_of_minatar_equals_record_then_ingest(tmp_path):
    """A MinAtar game (bool [10, 10, 4] states, raw tensors in the RLDS dataset): the direct
    cache equals the ingested one, frames, terminals and the frame layout in meta.json."""
    root = str(tmp_path / "rlds")
    summary = record("MinAtar/Breakout", 300, root, checkpoints=2, seed=5)
    ingested = str(tmp_path / "ingested")
    ingest("tfds:rlu_atari_local/MinAtarBreakout_run_1", ingested, data_dir=root, percent=100)
    direct = str(tmp_path / "direct")
    meta = record_cache("minatar:breakout", 300, direct, checkpoints=2, seed=5, workers=2)
    _same_cache(direct, ingested)
    arrays, _ = load_cache(direct)
    assert int(np.asarray(arrays["terminal"]).sum()) == summary["terminated_episodes"] > 0
    assert np.asarray(arrays["observation"]).shape[1:] == (10, 10, 4)
    assert meta["frame_shape"] == [10, 10, 4] and meta["frame_stack"] == 1
