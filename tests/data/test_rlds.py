"""Tests for the TFDS/RLDS ingest path: rlds compat, both RLU schemas, row mapping, errors.

Synthetic episodes follow STYLE.md: frame t of episode e is filled with 10 * e + t, action t
is t % 6 and reward t is t (unclipped; the cache clips to [-1, 1] unless told not to), so
every row is checkable by hand.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from offline_moe.data import rlu_format
from offline_moe.data.common import parse_checkpoints, prefix_count
from offline_moe.data.ingest import ingest
from offline_moe.data.tfds_source import steps_to_episode
from offline_moe.errors import CacheError, IngestError
from offline_moe.replay.cache import load_cache
from tests import REPO_ROOT


def frames(values):
    values = np.asarray(values, np.uint8)
    return np.broadcast_to(values[:, None, None], (len(values), 84, 84)).copy()


def synthetic_episode(e, num_actions, *, terminated, checkpoint, with_clipped=False):
    """Episode e of `num_actions` actions: T + 1 frames 10e + t, actions t % 6, rewards t."""
    t = np.arange(num_actions)
    return rlu_format.make_episode(
        frames(10 * e + np.arange(num_actions + 1)),
        t % 6,
        t.astype(np.float32),
        terminated=terminated,
        checkpoint_id=checkpoint,
        episode_id=e,
        with_clipped=with_clipped,
    )


# Per checkpoint: (episode index e, number of actions, terminated).
LAYOUT = {
    0: [(0, 4, True), (1, 3, False), (2, 5, True), (3, 2, False)],
    1: [(4, 3, False), (5, 4, True)],
}


def write_dataset(data_dir, *, with_clipped=False, name=rlu_format.DEFAULT_NAME, layout=LAYOUT):
    with rlu_format.RLDSWriter(
        str(data_dir),
        game="Pong",
        run=2,
        splits=sorted(layout),
        name=name,
        with_clipped=with_clipped,
    ) as w:
        for ckpt, episodes in layout.items():
            for e, n, term in episodes:
                w.add_episode(
                    ckpt,
                    synthetic_episode(
                        e, n, terminated=term, checkpoint=ckpt, with_clipped=with_clipped
                    ),
                )
    return rlu_format.dataset_dir(str(data_dir), "Pong", 2, name)


def expected_rows(episodes, clip=True):
    """Cache rows for the given (e, n, terminated) episodes, per offline_moe.replay.cache rules."""
    rows = {k: [] for k in ("frame", "action", "reward", "terminal", "start", "obs_only")}
    for e, n, term in episodes:
        for t in range(n):
            rows["frame"].append(10 * e + t)
            rows["action"].append(t % 6)
            rows["reward"].append(min(t, 1) if clip else t)
            rows["terminal"].append(term and t == n - 1)
            rows["start"].append(t == 0)
            rows["obs_only"].append(False)
        if not term:  # the final frame becomes the observation-only row
            rows["frame"].append(10 * e + n)
            rows["action"].append(0)
            rows["reward"].append(0)
            rows["terminal"].append(False)
            rows["start"].append(False)
            rows["obs_only"].append(True)
    return rows


def check_cache(out, episodes, clip=True):
    arrays, meta = load_cache(out)
    want = expected_rows(episodes, clip)
    np.testing.assert_array_equal(arrays["observation"][:, 0, 0], want["frame"])
    np.testing.assert_array_equal(arrays["observation"][:, 83, 83], want["frame"])
    np.testing.assert_array_equal(arrays["action"], want["action"])
    np.testing.assert_array_equal(arrays["reward"], want["reward"])
    np.testing.assert_array_equal(arrays["terminal"], want["terminal"])
    np.testing.assert_array_equal(arrays["episode_start"], want["start"])
    np.testing.assert_array_equal(arrays["observation_only"], want["obs_only"])
    assert meta["num_episodes"] == len(episodes)
    assert meta["num_transitions"] == sum(n for _, n, _ in episodes)
    return arrays, meta


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("rlds")
    return str(root), write_dataset(root)


# -- rlds compatibility and the TF-free boundary ---------------------------------------------


def test_rlds_batch_on_tf_data_episode():
    from offline_moe.data.rlds_compat import ReverbUnavailableError, import_rlds

    rlds = import_rlds()
    import tensorflow as tf

    assert "reverb" not in sys.modules or not getattr(
        sys.modules["reverb"], "OFFLINE_MOE_PLACEHOLDER", False
    )
    steps = tf.data.Dataset.from_tensor_slices(
        {rlds.OBSERVATION: tf.range(6), rlds.REWARD: tf.range(6, dtype=tf.float32)}
    )
    episode = tf.data.Dataset.from_tensors({rlds.STEPS: steps})
    windows = episode.flat_map(
        lambda ep: rlds.transformations.batch(ep[rlds.STEPS], size=3, shift=2, drop_remainder=True)
    )
    got = [w[rlds.OBSERVATION].numpy().tolist() for w in windows]
    assert got == [[0, 1, 2], [2, 3, 4]]
    assert int(rlds.transformations.episode_length(steps)) == 6
    with pytest.raises(ReverbUnavailableError, match="pattern_map"):
        rlds.transformations.pattern_map(episode, configs=[])


def test_import_offline_moe_imports_no_tensorflow():
    code = (
        "import sys\n"
        "import offline_moe, offline_moe.replay.cache, offline_moe.ingest, offline_moe.record\n"
        "import offline_moe.data.ingest, offline_moe.data.record\n"
        "import offline_moe.data, offline_moe.data.games, offline_moe.data.common\n"
        "import offline_moe.data.dqn_replay, offline_moe.data.rlu_format\n"
        "import offline_moe.data.tfds_source, offline_moe.data.rlds_compat\n"
        "import offline_moe.bench.data\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tensorflow_datasets', 'rlds', 'reverb'))\n"
        "print(bad[:5]); sys.exit(1 if bad else 0)\n"
    )
    root = str(REPO_ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- pure pieces ----------------------------------------------------------------------------


def test_prefix_count_and_checkpoint_ranges():
    assert prefix_count(5, 1_000_000) == 50_000
    assert prefix_count(10, 1_000_000) == 100_000
    assert prefix_count(29, 100) == 29  # float 0.29 * 100 would give 28
    assert prefix_count(5, 19) == 0
    assert prefix_count(100, 7) == 7
    assert parse_checkpoints("0-3,7, 9-10") == [0, 1, 2, 3, 7, 9, 10]
    assert parse_checkpoints(None) is None and parse_checkpoints("all") is None
    with pytest.raises(IngestError, match="--checkpoints"):
        parse_checkpoints("3-1")
    with pytest.raises(IngestError, match="--checkpoints"):
        parse_checkpoints("a-b")


def test_steps_to_episode_terminal_and_truncated():
    for terminated in (True, False):
        ep = synthetic_episode(1, 3, terminated=terminated, checkpoint=0)
        steps = dict(ep["steps"])
        out = steps_to_episode(steps)
        assert out.terminated is terminated
        np.testing.assert_array_equal(out.observations[:, 0, 0], [10, 11, 12])
        np.testing.assert_array_equal(out.actions, [0, 1, 2])
        np.testing.assert_array_equal(out.rewards, [0, 1, 2])
        if terminated:  # the game-over frame 13 is dropped
            assert out.final_observation is None
            np.testing.assert_array_equal(steps["discount"], [1, 1, 0, 0])
        else:  # frame 13 becomes the observation-only row
            assert out.final_observation[0, 0] == 13
            np.testing.assert_array_equal(steps["discount"], [1, 1, 1, 1])
    one_step = {
        k: v[:1]
        for k, v in synthetic_episode(0, 2, terminated=False, checkpoint=0)["steps"].items()
    }
    assert steps_to_episode(one_step) is None
    bad = dict(synthetic_episode(0, 3, terminated=True, checkpoint=0)["steps"])
    bad["is_terminal"] = np.array([False, True, False, True])
    with pytest.raises(IngestError, match="is_terminal"):
        steps_to_episode(bad, where="ep 0")
    bad = dict(synthetic_episode(0, 3, terminated=True, checkpoint=0)["steps"])
    bad["reward"] = bad["reward"][:-1]
    with pytest.raises(IngestError, match="unequal lengths"):
        steps_to_episode(bad)


# -- ingest through TFDS ---------------------------------------------------------------------


@pytest.mark.parametrize("with_clipped", [False, True])
def test_both_schemas_full_ingest(tmp_path, with_clipped):
    root = tmp_path / "data"
    path = write_dataset(root, with_clipped=with_clipped)
    import tensorflow_datasets as tfds

    features = tfds.builder_from_directory(path).info.features
    assert ("clipped_episode_return" in features) is with_clipped
    out = str(tmp_path / "cache")
    meta = ingest(f"rlds_dir:{path}", out, percent=100)
    episodes = LAYOUT[0] + LAYOUT[1]
    check_cache(out, episodes)
    assert meta["game"] == "Pong" and meta["run"] == 2 and meta["checkpoints"] == [0, 1]
    assert meta["clip_rewards"] is True and meta["percent"] == 100.0
    assert meta["num_actions"] == 6


def test_tfds_name_percent_prefix_per_split(dataset, tmp_path):
    data_dir, _ = dataset
    out = str(tmp_path / "cache")
    # 50% of 4 episodes = first 2 of checkpoint_00; 50% of 2 = first 1 of checkpoint_01.
    meta = ingest(
        "tfds:rlu_atari_local/Pong_run_2",
        out,
        data_dir=data_dir,
        percent=50,
        clip_rewards=False,
    )
    check_cache(out, [LAYOUT[0][0], LAYOUT[0][1], LAYOUT[1][0]], clip=False)
    assert meta["source_detail"]["episodes_per_split"] == {
        "checkpoint_00": [2, 4],
        "checkpoint_01": [1, 2],
    }
    out2 = str(tmp_path / "cache2")
    ingest(f"rlds_dir:{data_dir}", out2, checkpoints="1", percent=100)
    check_cache(out2, LAYOUT[1])


def test_public_name_through_registered_builder(tmp_path):
    # Stand in for the public dataset: same name, config, version and features.
    root = tmp_path / "data"
    write_dataset(root, name="rlu_atari_checkpoints_ordered", layout={3: LAYOUT[0]})
    out = str(tmp_path / "cache")
    meta = ingest(
        "tfds:rlu_atari_checkpoints_ordered/Pong_run_2", out, data_dir=str(root), percent=75
    )
    check_cache(out, LAYOUT[0][:3])
    assert meta["checkpoints"] == [3]


def _assert_nothing_written(tmp_path, out):
    assert not os.path.exists(out)
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith(os.path.basename(out))]
    assert leftovers == []


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(percent=0), IngestError, r"--percent.*\(0, 100\]"),
        (dict(percent=100.5), IngestError, r"--percent"),
        (dict(checkpoints="0-2"), IngestError, r"checkpoint_02.*available splits"),
        (dict(game="Pongg"), IngestError, r"unknown game 'Pongg'.*Alien"),
        (dict(game="Breakout"), IngestError, r"--game=Breakout disagrees"),
        (dict(percent=10), IngestError, r"empty result"),
    ],
)
def test_bad_input_errors_write_nothing(dataset, tmp_path, kwargs, error, match):
    data_dir, _ = dataset
    out = str(tmp_path / "cache")
    with pytest.raises(error, match=match):
        ingest(f"rlds_dir:{data_dir}", out, **kwargs)
    _assert_nothing_written(tmp_path, out)


def test_bad_sources_and_existing_output(dataset, tmp_path):
    data_dir, _ = dataset
    out = str(tmp_path / "cache")
    with pytest.raises(IngestError, match=r"cannot open.*found there: rlu_atari_local/Pong_run_2"):
        ingest("tfds:rlu_atari_local/Pong_run_5", out, data_dir=data_dir)
    with pytest.raises(IngestError, match=r"no prepared data.*found there: none"):
        ingest("tfds:rlu_atari_checkpoints_ordered/Pong_run_1", out, data_dir=data_dir)
    with pytest.raises(IngestError, match="expected tfds:NAME"):
        ingest("s3://x", out)
    with pytest.raises(IngestError, match="dataset_info.json"):
        ingest(f"rlds_dir:{tmp_path}", out)
    _assert_nothing_written(tmp_path, out)
    ingest(f"rlds_dir:{data_dir}", out, percent=100)
    with pytest.raises(CacheError, match="already exists"):
        ingest(f"rlds_dir:{data_dir}", out, percent=100)
    meta = ingest(f"rlds_dir:{data_dir}", out, percent=50, overwrite=True)
    assert meta["percent"] == 50.0


def test_decode_pngs_roundtrip_and_corrupt_frame():
    import concurrent.futures

    import cv2

    from offline_moe.data.tfds_source import decode_pngs

    want = frames(np.arange(300) % 256)
    want[:, 3, 5] = 7
    pngs = [cv2.imencode(".png", f[..., None])[1].tobytes() for f in want]
    np.testing.assert_array_equal(decode_pngs(pngs), want)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        np.testing.assert_array_equal(decode_pngs(pngs, pool=pool), want)
    pngs[5] = b"\\x89PNG broken"
    with pytest.raises(IngestError, match="ep 9: steps/observation 5 is not a valid"):
        decode_pngs(pngs, where="ep 9")


def test_single_train_split_filters_by_checkpoint_id(tmp_path):
    # The rlu_atari layout: one 'train' split mixing checkpoints (episode field checkpoint_id).
    root = tmp_path / "data"
    with rlu_format.RLDSWriter(str(root), game="Pong", run=1, splits=["train"]) as w:
        for ckpt, (e, n, term) in [(0, LAYOUT[0][0]), (5, LAYOUT[0][1]), (0, LAYOUT[0][2])]:
            w.add_episode("train", synthetic_episode(e, n, terminated=term, checkpoint=ckpt))
    out = str(tmp_path / "cache")
    meta = ingest(f"rlds_dir:{root}", out, percent=100, checkpoints="0")
    check_cache(out, [LAYOUT[0][0], LAYOUT[0][2]])
    assert meta["checkpoints"] == [0]
    out2 = str(tmp_path / "cache2")
    ingest(f"rlds_dir:{root}", out2, percent=67)  # first int(0.67 * 3) = 2 episodes
    check_cache(out2, LAYOUT[0][:2])
