"""Shared config for the offline learners (CQL, CQL+C51); agent files override the learner block.

    python -m offline_moe.train_offline --config=offline_moe/configs/cql.py:game=Pong \
        --config.torso.name=soft_moe --config.torso.num_experts=8 --workdir=runs/x

`get_config(arg)` in an agent file takes a comma-separated `arg`:
  smoke            tiny budgets for tests and the default benchmark (2 CPU cores, ~1 minute)
  game=NAME        Atari game (e.g. Pong, Breakout)
  torso=NAME       torso name or 'package.module:Name'
  percent=P        data percentage (5 or 10 in the paper)
e.g. "smoke,game=Pong,torso=top1_moe". Defaults are the paper's (Obando-Ceron et al. 2024,
Sec. 5.1, Table 3): Impala encoder, 8 experts, per_conv tokens, 5% of DQN-Replay, 200
iterations x 62,500 updates, evaluation after every iteration over >= 125,000 agent steps with
epsilon 0.001 and sticky actions.
"""

from __future__ import annotations

import ml_collections

_ARG_KEYS = ("game", "torso", "percent")


def parse_arg(arg: str | None) -> tuple[bool, dict[str, str]]:
    """Splits "smoke,game=Pong" into (smoke=True, {"game": "Pong"}); unknown keys are errors."""
    smoke, values = False, {}
    for part in (arg or "").split(","):
        part = part.strip()
        if not part:
            continue
        if part == "smoke":
            smoke = True
            continue
        key, sep, value = part.partition("=")
        if not sep or key not in _ARG_KEYS:
            raise ValueError(
                f"config argument {part!r} not understood; valid: 'smoke' or "
                f"{', '.join(k + '=...' for k in _ARG_KEYS)} (comma separated)"
            )
        values[key] = value
    return smoke, values


def torso_block() -> ml_collections.ConfigDict:
    """The flat torso block shared by every torso (each torso takes the fields it accepts)."""
    t = ml_collections.ConfigDict()
    t.name = "soft_moe"  # registered name (baseline | soft_moe | top1_moe) or 'pkg.module:Name'
    t.encoder = "impala"  # 'impala' (paper, 11x11x32 map) or 'nature' (11x11x64 map)
    t.width = 1.0  # baseline only: Dense(512 * width); the paper's scaled baseline uses width = n
    t.num_experts = 8  # MoE: number of experts n (paper: 8 in the offline runs)
    t.expert_width = 512  # MoE: hidden units H of each expert MLP d -> H -> d
    t.tokenization = "per_conv"  # MoE: per_conv (paper default) | per_feat | per_samp | per_patch
    t.patch_size = 3  # MoE per_patch tokens: patch edge in feature-map pixels
    t.capacity_factor = 1.0  # MoE: slots (Soft) / capacity (Top-1) per expert = ceil(m * cf / n)
    t.normalize_tokens = False  # Soft MoE: l2-normalise tokens and Phi with a learned scale
    t.importance_weight = 0.0  # Top-1: weight of the importance loss in aux_loss (0 = off)
    t.load_weight = 0.0  # Top-1: weight of the load-balancing loss in aux_loss (0 = off)
    return t


def base_config(agent: str, arg: str | None) -> ml_collections.ConfigDict:
    """The full offline config for `agent`, before the agent file sets its learner values."""
    smoke, values = parse_arg(arg)
    c = ml_collections.ConfigDict()
    c.agent = agent  # 'cql' or 'cql_c51' (selects head and loss)
    c.game = values.get("game", "Pong")  # Atari game (ALE name, e.g. Pong, MsPacman)
    c.seed = 0  # root seed; seed s of the run uses key fold_in(PRNGKey(seed), s)
    c.num_seeds = 1  # independent seeds trained together in one program (vmap); paper: 5

    c.torso = torso_block()
    if "torso" in values:
        c.torso.name = values["torso"]

    # Learner hyper-parameters (the agent file overwrites these with Table 3's values).
    c.learner = ml_collections.ConfigDict()
    c.learner.agent = agent  # copied from c.agent; must agree
    c.learner.learning_rate = 5e-5  # Adam step size
    c.learner.adam_eps = 3.125e-4  # Adam epsilon
    c.learner.gamma = 0.99  # discount per agent step
    c.learner.n_step = 1  # n of the n-step return (replay folds gamma^k and terminals in)
    c.learner.batch_size = 32  # transitions per gradient update
    c.learner.cql_coefficient = 0.1  # weight of the CQL term logsumexp Q - Q(s, a_data)
    c.learner.td_coefficient = 1.0  # weight of the TD (Huber / C51 cross-entropy) term
    # Updates between target-network syncs. The paper does not state it; 2000 is the DQN/DR3
    # offline setting in Dopamine (jax_dr3.gin). Dopamine's offline Rainbow config uses 100,
    # which its double counter increment turns into 50 updates.
    c.learner.target_update_period = 2000
    c.learner.huber_delta = 1.0  # CQL: Huber threshold
    c.learner.num_atoms = 51  # CQL+C51: atoms of the categorical distribution
    c.learner.v_min = -10.0  # CQL+C51: lowest atom
    c.learner.v_max = 10.0  # CQL+C51: highest atom

    # Offline data: a replay cache (offline_moe.replay.cache). If `cache_dir` is empty it is
    # derived as data/cache/{game}_run{run}_{percent}pct (`cache_dir_for`); ingest it first
    # with `python -m offline_moe.ingest` (see README). `source` and `percent` must agree with
    # what the cache's meta.json says it holds (the trainer checks).
    c.data = ml_collections.ConfigDict()
    c.data.cache_dir = ""  # directory of the replay cache ('' = derived, see above)
    c.data.source = "tfds"  # what the cache holds: tfds | dqn_replay (DQN-Replay) | record (local)
    c.data.run = 1  # DQN-Replay run (1..5)
    c.data.percent = float(values.get("percent", 5.0))  # % of the 50M transitions (paper: 5, 10)
    c.data.clip_rewards = True  # rewards clipped to [-1, 1] for learning (Table 3)
    c.data.stack = 4  # frames per observation
    # Where the frames live: 'device' (DeviceReplay), 'host' (HostReplay: host memory, batches
    # prefetched to the device) or 'auto' (device if replay + seeds' states fit, else host).
    c.data.replay = "auto"

    c.num_iterations = 200  # training iterations (paper: 200)
    c.updates_per_iteration = 62_500  # gradient updates per iteration (paper: 62,500)
    c.scan_steps = 500  # K: updates fused into one jitted call (lax.scan); divides the above
    c.log_interval = 12_500  # updates between metrics.jsonl lines (a multiple of scan_steps)

    c.eval = ml_collections.ConfigDict()
    c.eval.interval = 1  # evaluate every this many iterations (and always after the last)
    c.eval.steps = 125_000  # agent steps per seed: full episodes until at least this many
    c.eval.num_envs = 16  # parallel ALE environments per seed (one jitted act call per step)
    c.eval.epsilon = 0.001  # epsilon-greedy exploration during evaluation
    c.eval.max_episode_steps = 27_000  # cap per episode in agent steps (108k frames)
    c.eval.protocol = "dqn_replay"  # sticky actions 0.25, no life-loss terminal, minimal actions
    # Processes stepping the emulators (0 = in process; -1 = one per spare core, capped at
    # num_seeds). ALE holds the GIL, so this is how evaluation uses a many-core host.
    c.eval.workers = -1
    # Emulators: 'pool' (AtariEnv in `workers` processes) or 'vector' (ale-py's C++ vector
    # interface, threads; dqn_replay protocol only). Same observations and returns either way.
    c.eval.backend = "pool"

    c.repr = ml_collections.ConfigDict()
    c.repr.batch_size = 256  # size of the fixed replay batch for representation metrics
    c.repr.srank_threshold = 0.01  # srank = #{sigma_i / sigma_max > threshold}

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.max_to_keep = 2  # Orbax checkpoints kept (one is written every iteration)

    if smoke:
        apply_smoke(c)
    return c


def apply_smoke(c: ml_collections.ConfigDict) -> None:
    """Shrinks everything so a run takes about a minute on 2 CPU cores.

    Smoke-only deviations from the paper: Nature encoder, 2 experts with H = 64, baseline
    Dense(64), batch 16, 2 iterations x 100 updates, target period 50, and an evaluation of
    >= 400 agent steps with episodes capped at 200 agent steps (a real Pong episode is
    thousands of steps).
    """
    c.torso.encoder = "nature"
    c.torso.num_experts = 2
    c.torso.expert_width = 64
    c.torso.width = 0.125
    c.learner.batch_size = 16
    c.learner.target_update_period = 50
    c.data.percent = 100.0  # all of a locally recorded dataset, not a fraction of DQN-Replay
    c.data.source = "record"
    c.num_iterations = 2
    c.updates_per_iteration = 100
    c.scan_steps = 20
    c.log_interval = 20
    c.eval.steps = 400
    c.eval.num_envs = 4
    c.eval.max_episode_steps = 200
    c.eval.workers = 0
    c.repr.batch_size = 32
