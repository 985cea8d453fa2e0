"""The one config dialect of the four agents: CQL, CQL+C51 (offline) and DER, DrQ(eps) (online).

    python -m offline_moe.train_offline --config=offline_moe/configs/cql.py:game=Pong \
        --config.torso.name=soft_moe --config.torso.num_experts=8 --workdir=runs/x
    python -m offline_moe.train_online --config=offline_moe/configs/der.py:preset=fig12 \
        --config.torso.name=soft_moe --workdir=runs/y

Every agent file has `get_config(arg)`; `arg` is comma-separated and parsed by `parse_arg`:
  smoke            tiny budgets for tests and the default benchmark (2 CPU cores, ~1 minute);
                   recorded as `config.smoke`
  game=NAME        game (default Pong; Breakout with `smoke`): an ALE game, Catch, or a
                   MinAtar game (MinAtarBreakout, ...; `minatar_torso` sets its encoder)
  torso=NAME       torso name or 'package.module:Name' (default baseline on both tracks)
  seed=S           root seed
  num_seeds=N      seeds trained side by side
  preset=NAME      one of the agent file's named presets (its docstring lists them)
  percent=P        offline only: data percentage (5 or 10 in the paper)
  run=R            offline only: DQN-Replay run 1..5
  agent_steps=N    online only: the agent-step budget (Atari 100k: 100,000)
  frames=F         online only: the budget in frames (4 per agent step; Fig. 12 runs to 50M)
e.g. "smoke,game=Pong,torso=top1_moe". Both tracks have the same sections: `torso`, `learner`,
`eval` and the data source (`data` offline, `replay` online).

The torso block (`torso_block`). `config.torso.name` picks the torso. Every other key of
`config.torso` is None unless you set it (in a config file, from Python, or with
`--config.torso.KEY=VALUE`); a key you set is passed to the torso, and a torso that does not
accept it is an error naming the torso and the key. `config.torso.builtin` holds the config's
own values (the paper's or the preset's, shrunk by `smoke`) for the built-in torsos (baseline,
soft_moe, top1_moe, ...): each built-in torso takes the ones it accepts. A torso of your own
never sees `builtin` and so keeps its own defaults. One exception to strictness: `noisy=False`
is not passed to a torso without a `noisy` field (such a torso has no noisy layers).
"""

from __future__ import annotations

from collections.abc import Mapping

import ml_collections
from ml_collections import config_dict

# Typed keys of the config-file argument. Each agent file accepts COMMON_ARGS plus its track's.
COMMON_ARGS = {"game": str, "torso": str, "seed": int, "num_seeds": int, "preset": str}
OFFLINE_ARGS = {**COMMON_ARGS, "percent": float, "run": int}
ONLINE_ARGS = {**COMMON_ARGS, "agent_steps": int, "frames": int}

FRAMES_PER_AGENT_STEP = 4  # ALE frame skip of both protocols (Machado et al. 2018; DQN)

# Keys of a torso block besides `name`, with their types (the built-in torsos' fields).
TORSO_FIELDS = {
    "encoder": str,  # 'impala' (paper, 11x11x32 map), 'nature' (11x11x64), 'minatar' (8x8x16)
    "width": float,  # baseline: Dense(512 * width); the paper's scaled baseline uses width = n
    "num_experts": int,  # MoE: number of experts n
    "expert_width": int,  # MoE: hidden units H of each expert MLP d -> H -> d
    "tokenization": str,  # MoE: per_conv (paper default) | per_feat | per_samp | per_patch
    "patch_size": int,  # MoE per_patch tokens: patch edge in feature-map pixels
    "capacity_factor": float,  # MoE: slots (Soft) / capacity (Top-1) per expert
    "normalize_tokens": bool,  # Soft MoE: l2-normalise tokens and Phi with a learned scale
    "phi_init_scale": float,  # Soft MoE: multiplies Phi's initial values (1: the paper's)
    "importance_weight": float,  # Top-1: weight of the importance loss in aux_loss
    "load_weight": float,  # Top-1: weight of the load-balancing loss in aux_loss
    "noisy": bool,  # factorised noisy hidden layers (DER; Dopamine's FullRainbowNetwork)
}

# The paper's torso settings (Obando-Ceron et al. 2024, Sec. 5.1 and Table 3); also the
# built-in torsos' own defaults.
PAPER_TORSO = {
    "encoder": "impala",
    "width": 1.0,
    "num_experts": 8,
    "expert_width": 512,
    "tokenization": "per_conv",
    "patch_size": 3,
    "capacity_factor": 1.0,
    "normalize_tokens": False,
    "phi_init_scale": 1.0,
    "importance_weight": 0.0,
    "load_weight": 0.0,
}


def parse_arg(
    arg: str | None, fields: Mapping[str, type], *, where: str
) -> tuple[bool, dict[str, object]]:
    """Splits "smoke,game=Pong,seed=2" into (True, {"game": "Pong", "seed": 2}), typed.

    Args:
      arg: the text after ':' in --config=FILE:ARG (None or '' for none).
      fields: valid keys and their types (COMMON_ARGS, OFFLINE_ARGS or ONLINE_ARGS).
      where: the config file, for error messages.

    Raises:
      ValueError: an unknown key, a token without '=', a repeated key or a value of the wrong
        type; the message names the file, the token and the valid keys.
    """
    smoke, values = False, {}
    valid = "'smoke' or " + ", ".join(f"{k}=..." for k in fields) + " (comma separated)"
    for part in (arg or "").split(","):
        part = part.strip()
        if not part:
            continue
        if part == "smoke":
            smoke = True
            continue
        key, sep, text = part.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"{where}: config argument {part!r} not understood; valid: {valid}")
        if key in values:
            raise ValueError(f"{where}: config argument {key!r} given twice")
        kind = fields[key]
        try:
            values[key] = kind(text.replace("_", "")) if kind in (int, float) else kind(text)
        except ValueError:
            raise ValueError(
                f"{where}: config argument {part!r}: expected {kind.__name__} for {key!r}"
            ) from None
    return smoke, values


def check_preset(preset: str, presets: Mapping[str, str], *, where: str) -> str:
    """`preset` if it is one of `presets` (name -> one-line description), else a ValueError."""
    if preset not in presets:
        listing = "; ".join(f"{k}: {v}" for k, v in presets.items())
        raise ValueError(f"{where}: unknown preset {preset!r}; valid presets: {listing}")
    return preset


def torso_block(name: str, **builtin) -> ml_collections.ConfigDict:
    """The torso block of every agent: `name`, the keys you set, and `builtin`.

    Args:
      name: registered torso name or 'package.module:Name'.
      **builtin: the config's values for the built-in torsos (default: the paper's, see
        PAPER_TORSO); keys must be in TORSO_FIELDS.

    Returns:
      ConfigDict with `name`, every TORSO_FIELDS key as a typed None (unset) and `builtin`.
    """
    bad = sorted(set(builtin) - set(TORSO_FIELDS))
    if bad:
        raise ValueError(f"torso_block: unknown keys {bad}; valid: {', '.join(TORSO_FIELDS)}")
    t = ml_collections.ConfigDict()
    t.name = name
    for key, kind in TORSO_FIELDS.items():
        t[key] = config_dict.placeholder(kind)  # None: not set by you
    t.builtin = ml_collections.ConfigDict({**PAPER_TORSO, **builtin})
    return t


# The defaults of both tracks, set here only. The torso is the published agents' (encoder +
# Dense(512)); a torso under study is chosen explicitly (`torso=soft_moe`), as Dopamine's MoE
# agents are opt-in (labs/moes).
DEFAULT_TORSO = "baseline"
DEFAULT_GAME = "Pong"
SMOKE_GAME = "Breakout"  # it gives rewards within 240 agent steps (the online smoke budget)


def base_config(agent: str, smoke: bool, values: Mapping[str, object]) -> ml_collections.ConfigDict:
    """The top of every agent's config: agent, game, seeds, smoke, preset and the torso block.

    Both tracks take their defaults from here: torso DEFAULT_TORSO, game DEFAULT_GAME, or
    SMOKE_GAME with `smoke`.

    Args:
      agent: 'cql', 'cql_c51', 'der' or 'drq_eps'.
      smoke: the `smoke` token was given.
      values: the parsed `key=value` tokens.
    """
    c = ml_collections.ConfigDict()
    c.agent = agent  # selects head, loss and trainer
    # Atari game (ALE name, e.g. Pong, MsPacman)
    c.game = values.get("game", SMOKE_GAME if smoke else DEFAULT_GAME)
    # Root seed; seed s of the run has its own keys and emulators derived from (seed, s).
    c.seed = values.get("seed", 0)
    c.num_seeds = values.get("num_seeds", 1)  # independent seeds trained together; paper: 5
    c.smoke = smoke  # the tiny smoke budget (tests, default benchmark); scores are meaningless
    c.preset = ""  # the agent file's named preset (set by get_config)
    c.torso = torso_block(values.get("torso", DEFAULT_TORSO))
    return c


def is_minatar_game(game: str) -> bool:
    from offline_moe.envs.minatar import minatar_game

    return minatar_game(game) is not None


def is_board_game(game: str) -> bool:
    """Whether `game`'s frames are small boards read by MinAtar's encoder: the MinAtar games
    and CatchBoard (Catch seen as its 10x5 board, `offline_moe.envs.catch`)."""
    from offline_moe.envs.catch import BOARD_GAME
    from offline_moe.envs.registry import known_answer_game

    return is_minatar_game(game) or known_answer_game(game) == BOARD_GAME


def minatar_torso(c: ml_collections.ConfigDict) -> None:
    """A board game's built-in torso settings (MinAtar's games, CatchBoard): MinAtar's DQN
    encoder (Young & Tian 2019, examples/dqn.py: Conv 16 3x3 VALID -> 8x8x16 on 10x10) and
    experts as wide as its 128-unit dense layer, as the paper's Atari experts take the Atari
    network's 512 (the baseline's Dense(128 * width) follows from the encoder). Nothing
    happens for other games."""
    if is_board_game(c.game):
        c.torso.builtin.encoder = "minatar"
        c.torso.builtin.expert_width = 128


def shrink_torso_for_smoke(c: ml_collections.ConfigDict) -> None:
    """Smoke torsos: Nature encoder, 2 experts with H = 64, baseline Dense(64); a board game
    (MinAtar, CatchBoard) keeps its (already small) MinAtar torso with 2 experts."""
    c.torso.builtin.encoder = "nature"
    c.torso.builtin.num_experts = 2
    c.torso.builtin.expert_width = 64
    c.torso.builtin.width = 0.125
    if is_board_game(c.game):
        minatar_torso(c)
        c.torso.builtin.width = 1.0


def offline_config(agent: str, arg: str | None, *, where: str) -> ml_collections.ConfigDict:
    """The full offline config for `agent`, before the agent file sets its learner values.

    Defaults are the paper's (Obando-Ceron et al. 2024, Sec. 5.1, Table 3): Impala encoder,
    8 experts, per_conv tokens, 5% of DQN-Replay, 200 iterations x 62,500 updates,
    evaluation after every iteration over >= 125,000 agent steps with epsilon 0.001 and
    sticky actions.
    """
    smoke, values = parse_arg(arg, OFFLINE_ARGS, where=where)
    c = base_config(agent, smoke, values)
    c.preset = values.get("preset", "")
    minatar_torso(c)

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
    # Updates between target-network syncs. The paper does not state it; 2000 is Dopamine's
    # offline DQN/DR3 value (jax_dr3.gin, one counter increment per update). cql_c51.py keeps
    # it and offers Dopamine's offline Rainbow reading as preset=dopamine_counter.
    c.learner.target_update_period = 2000
    c.learner.huber_delta = 1.0  # CQL: Huber threshold
    c.learner.num_atoms = 51  # CQL+C51: atoms of the categorical distribution
    c.learner.v_min = -10.0  # CQL+C51: lowest atom
    c.learner.v_max = 10.0  # CQL+C51: highest atom
    # 'float32' (paper) or 'bfloat16': torso and head matmuls/convs in bfloat16, parameters,
    # optimizer state and losses in float32 (faster on GPUs/TPUs with bfloat16 units).
    c.learner.compute_dtype = "float32"

    # Offline data: a replay cache (offline_moe.replay.cache). If `cache_dir` is empty it is
    # derived as data/cache/{game}_run{run}_{percent}pct (`cache_dir_for`); ingest it first
    # with `python -m offline_moe.ingest` (see docs/data.md). `source` and `percent` must agree with
    # what the cache's meta.json says it holds (the trainer checks).
    c.data = ml_collections.ConfigDict()
    c.data.cache_dir = ""  # directory of the replay cache ('' = derived, see above)
    c.data.source = "tfds"  # what the cache holds: tfds | dqn_replay (DQN-Replay) | record (local)
    c.data.run = values.get("run", 1)  # DQN-Replay run (1..5)
    c.data.percent = float(values.get("percent", 5.0))  # % of the 50M transitions (paper: 5, 10)
    # How the cache drew `percent` from each checkpoint (`ingest --sample`): prefix (the first
    # p%, as Dopamine's and batch_rl's readers) or random (whole episodes drawn at random).
    c.data.sample = "prefix"
    c.data.sample_seed = 0  # the seed of a random sample (names the default cache_dir)
    c.data.clip_rewards = True  # rewards clipped to [-1, 1] for learning (Table 3)
    # Frames per observation; None: the cache's meta.json frame_stack, i.e. the game's (4 for
    # Atari and Catch, 1 for MinAtar: `offline_moe.envs.registry.observation_spec`).
    c.data.stack = config_dict.placeholder(int)
    # Where the frames live: 'device' (DeviceReplay), 'host' (HostReplay: host memory, batches
    # prefetched to the device) or 'auto' (device if replay + seeds' states fit, else host).
    c.data.replay = "auto"

    c.num_iterations = 200  # training iterations (paper: 200)
    c.updates_per_iteration = 62_500  # gradient updates per iteration (paper: 62,500)
    c.scan_steps = 500  # K: updates fused into one jitted call (lax.scan); divides the above
    c.log_interval = 12_500  # updates between metrics.jsonl lines (a multiple of scan_steps)
    # On CPU only: updates unrolled into one jitted call (the largest divisor of scan_steps up
    # to this; 1..20). Compile time grows with it; long CPU runs may gain a few % with 20
    # (`python -m offline_moe.bench learner --layouts=plain,1,2,4,8,20` measures both).
    c.cpu_unroll = 1

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
    # Emulators: 'pool' (AtariEnv in `workers` processes), 'vector' (ale-py's C++ vector
    # interface, threads; ALE games under dqn_replay only) or 'auto' (vector where it applies,
    # else pool). Same observations and returns either way; vector was measured faster.
    c.eval.backend = "auto"

    c.repr = ml_collections.ConfigDict()
    c.repr.batch_size = 256  # size of the fixed replay batch for representation metrics
    c.repr.srank_threshold = 0.01  # srank = #{sigma_i / sigma_max > threshold}

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.max_to_keep = 2  # Orbax checkpoints kept (one is written every iteration)
    return c


# The offline protocol at MinAtar scale (`preset=minatar`, the default for a MinAtar game).
MINATAR_OFFLINE = "Table 3 scaled to MinAtar: 50k updates, lr 2.5e-4, target 1000 (docstring)"
# Presets every offline agent file takes besides its own PRESETS (`offline_preset`).
OFFLINE_EXTRA_PRESETS = {"minatar": MINATAR_OFFLINE}


def apply_minatar_offline(c: ml_collections.ConfigDict) -> None:
    """Table 3 of Obando-Ceron et al. 2024 scaled to MinAtar; each change and its reason.

    Data (`configs/dqn.py` makes it): 5% of each of the 10 replay checkpoints of a 1M-step
    MinAtar DQN (50,000 transitions; the paper: 5% of 50 checkpoints of 1M, 2.5M
    transitions), read from data/cache/{Game}_run{R}_5pct (`ingest --source=dqn_replay:...`).
    Rewards clipped as in Table 3 (MinAtar's rewards are 0 or 1 per step, so this rarely
    binds).
    Network: MinAtar's DQN encoder (Conv 16 3x3 -> 8x8x16) and 8 experts of width 128, the
    width of its dense layer, as the paper's experts take the Atari network's 512.
    Budget: 10 iterations x 5,000 updates = 50,000 updates per seed (the paper: 200 x 62,500),
    32 passes over the data at batch 32 (the paper: 160). Chosen for time: a (game, agent,
    torso) cell of 5 seeds trains and evaluates in about 15 minutes of a 2-core CPU; the
    results page shows where the baseline's curve flattens within it.
    Learning rate: 2.5e-4, MinAtar's DQN step size (examples/dqn.py STEP_SIZE), 5x Table 3's
    5e-5 because there are 250x fewer updates; Adam's eps stays Table 3's.
    Target period: 1,000 updates (MinAtar's TARGET_NETWORK_UPDATE_FREQ; Dopamine's offline
    2,000 would sync only 25 times in the run).
    Evaluation: after every iteration, >= 10,000 agent steps per seed (the paper: 125,000) in
    8 parallel games, epsilon 0.001, MinAtar's own dynamics (sticky actions 0.1), episodes
    capped at 27,000 steps as for Atari.
    Unchanged from Table 3: batch 32, gamma 0.99, n-step (1 CQL, 3 CQL+C51), CQL weight 0.1,
    Adam, C51's 51 atoms on [-10, 10].
    """
    c.data.source = "dqn_replay"
    c.num_iterations = 10
    c.updates_per_iteration = 5_000
    c.scan_steps = 500
    c.log_interval = 1_000
    c.learner.learning_rate = 2.5e-4
    c.learner.target_update_period = 1_000
    c.eval.steps = 10_000
    c.eval.num_envs = 8
    c.repr.batch_size = 256


def offline_preset(c: ml_collections.ConfigDict, presets: Mapping[str, str], default: str,
                   *, where: str) -> str:  # fmt: skip
    """The run's preset: the one asked for, else `minatar` for a MinAtar game and `default`
    for the others; `minatar` is refused for a game that is not MinAtar's."""
    minatar = is_minatar_game(c.game)
    presets = {**presets, **OFFLINE_EXTRA_PRESETS}
    preset = check_preset(c.preset or ("minatar" if minatar else default), presets, where=where)
    if preset == "minatar" and not minatar:
        raise ValueError(
            f"{where}: preset 'minatar' is for MinAtar games (MinAtarBreakout, ...), not {c.game!r}"
        )
    return preset


def apply_offline_smoke(c: ml_collections.ConfigDict) -> None:
    """Shrinks an offline run to about a minute on 2 CPU cores.

    Smoke-only deviations from the paper: Nature encoder, 2 experts with H = 64, baseline
    Dense(64), batch 16, 2 iterations x 100 updates, target period 50, and an evaluation of
    >= 400 agent steps with episodes capped at 200 agent steps (a real Pong episode is
    thousands of steps).
    """
    shrink_torso_for_smoke(c)
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


# Online presets: the torso settings of the low-data figures (Obando-Ceron et al. 2024).
ONLINE_PRESETS = {
    "dopamine_moes": "Nature CNN encoder, 4 experts: Dopamine's labs/moes DER.gin (the default)",
    "fig12": "Impala (ResNet) encoder, 8 experts: the paper's Fig. 12",
    "fig16": "Impala (ResNet) encoder, 4 experts: the paper's Fig. 16",
}
_ONLINE_PRESET_TORSO = {
    "dopamine_moes": {"encoder": "nature", "num_experts": 4},
    "fig12": {"encoder": "impala", "num_experts": 8},
    "fig16": {"encoder": "impala", "num_experts": 4},
}
ATARI_100K_STEPS = 100_000  # agent steps (400k frames), Kaiser et al. 2020
LONG_ITERATION_STEPS = 250_000  # agent steps per iteration past 100k (1M frames, Dopamine)
DOPAMINE_REPLAY_CAPACITY = 1_000_000  # transitions (Dopamine's replay capacity)


def online_budget(values: Mapping[str, object], *, where: str) -> int:
    """Agent steps of the run from `agent_steps=` or `frames=` (default: Atari 100k)."""
    if "agent_steps" in values and "frames" in values:
        raise ValueError(f"{where}: give agent_steps= or frames=, not both")
    if "frames" in values:
        frames = int(values["frames"])
        if frames % FRAMES_PER_AGENT_STEP or frames <= 0:
            raise ValueError(
                f"{where}: frames={frames} must be a positive multiple of "
                f"{FRAMES_PER_AGENT_STEP} (one agent step is {FRAMES_PER_AGENT_STEP} frames)"
            )
        return frames // FRAMES_PER_AGENT_STEP
    steps = int(values.get("agent_steps", ATARI_100K_STEPS))
    if steps <= 0:
        raise ValueError(f"{where}: agent_steps={steps} must be positive")
    return steps


def online_config(
    agent: str,
    arg: str | None,
    *,
    where: str,
    presets: Mapping[str, str] = ONLINE_PRESETS,
    preset_torso: Mapping[str, dict] = _ONLINE_PRESET_TORSO,
    default_game: str | None = None,
) -> ml_collections.ConfigDict:
    """Fields shared by the online agents: the Atari 100k protocol and the run loop.

    The agent file sets its learner values, then calls `apply_online_smoke` when `c.smoke`.
    `presets` (name -> description; the first is the default) and `preset_torso` (name ->
    built-in torso settings) are the agent file's; `default_game` replaces the suite's
    default game (`base_config`) when no `game=` is given.
    """
    smoke, values = parse_arg(arg, ONLINE_ARGS, where=where)
    if default_game is not None:
        values = {"game": default_game, **values}
    c = base_config(agent, smoke, values)
    c.preset = check_preset(values.get("preset", next(iter(presets))), presets, where=where)
    for key, value in preset_torso[c.preset].items():
        c.torso.builtin[key] = value
    minatar_torso(c)  # a MinAtar game: its encoder whatever the preset

    c.env = ml_collections.ConfigDict()
    # No sticky actions, a life loss is terminal for learning, 0..29 no-op starts.
    c.env.protocol = "atari100k"
    c.env.max_episode_steps = 27_000  # training episode cap (truncation, not a terminal)

    # Atari 100k: 100,000 agent steps (400k frames) as 10 iterations of 10,000 steps. Longer
    # budgets (Fig. 12 runs to 50M frames = 12.5M agent steps) use Dopamine's standard
    # 1M-frame iteration so evaluation stays a small share of the run.
    c.total_steps = online_budget(values, where=where)
    c.iteration_steps = 10_000 if c.total_steps <= ATARI_100K_STEPS else LONG_ITERATION_STEPS
    c.log_interval = 1000  # agent steps between metrics.jsonl lines
    c.export_replay = ""  # directory: write the agent's replay as an RLDS dataset at the end
    # Log each iteration's transitions as one DQN-Replay checkpoint (Dopamine's log files)
    # under workdir/dqn_replay/{game}/{seed + 1}/replay_logs (`offline_moe.configs.dqn`).
    c.replay_logs = False

    c.learner = ml_collections.ConfigDict()
    c.learner.agent = agent  # copied from c.agent; must agree
    c.learner.gamma = 0.99
    c.learner.n_step = 10
    c.learner.updates_per_step = 1  # replay ratio 1 (Dopamine: update period 1)
    c.learner.batch_size = 32
    c.learner.learning_rate = 1e-4
    c.learner.adam_eps = 1.5e-4
    c.learner.optimizer = "adam"  # or 'rmsprop_centered' (MinAtar's DQN)
    c.learner.rmsprop_decay = 0.95  # rmsprop_centered only
    c.learner.rmsprop_eps = 0.01  # rmsprop_centered only (outside the square root)
    c.learner.update_period = 1  # agent steps per training round (Dopamine's update_period)
    c.learner.dueling = True
    c.learner.double_q = True
    c.learner.epsilon_train = 0.01
    c.learner.num_atoms = 51  # the agent file sets these
    c.learner.v_max = 10.0
    c.learner.noisy = False  # the head's noisy layers (the torso's are config.torso.noisy)
    # One noise draw per batch (Dopamine's DER); True = a draw per sample (its MoE DER agent).
    c.learner.per_sample_noise = False
    c.learner.target_update_period = 2000
    c.learner.epsilon_decay_steps = 2000
    c.learner.augmentation = False
    # DrQ's shift per side: 4 pixels of an 84x84 frame (Kostrikov et al. 2021, Sec. 3.1), one
    # cell of a board (MinAtar, CatchBoard), about a sprite's width in both.
    c.learner.augmentation_pad = 1 if is_board_game(c.game) else 4

    c.replay = ml_collections.ConfigDict()
    c.replay.min_replay = 1600  # agent steps before the first update
    c.replay.prioritized = False
    c.replay.clip_rewards = True  # rewards clipped to [-1, 1] for learning only
    # Every transition of a 100k run fits: no row is ever overwritten (Dopamine's capacity is
    # 1M, which a 100k run never reaches either); longer runs keep Dopamine's 1M.
    c.replay.capacity = min(c.total_steps, DOPAMINE_REPLAY_CAPACITY) + 16

    c.eval = ml_collections.ConfigDict()
    c.eval.interval = 1  # evaluate after every this many iterations (Dopamine's runner: 1)
    c.eval.episodes = 100  # one episode per parallel environment
    c.eval.max_episode_steps = 27_000  # agent steps per evaluation episode (the protocol's cap)
    c.eval.epsilon = 0.001
    c.eval.workers = -1  # processes stepping the eval emulators; -1: one per spare CPU core
    return c


def apply_online_smoke(c: ml_collections.ConfigDict) -> None:
    """Shrinks an online run to a few hundred agent steps for tests on 2 CPU cores."""
    shrink_torso_for_smoke(c)
    c.total_steps = 240
    c.iteration_steps = 120
    c.log_interval = 60
    c.learner.batch_size = 4
    c.replay.min_replay = 100
    c.replay.capacity = 512
    c.eval.episodes = 2
    c.eval.max_episode_steps = 60
    c.eval.workers = 0  # two short games: worker start-up would cost more than it saves
