"""What runs experiments: the sweep and its backends, and the settings of each environment.

- `sweep`: expands a (game x agent x torso x seed group) grid into run directories and runs
  them in a local process pool (the command is `python -m offline_moe.sweep`).
- `ray_backend`: the same grid as Ray tasks, on a cluster or on this machine.
- `experiments`: per-environment settings (`EnvHook`: Catch, real games with a scripted
  controller, other ALE games) and `run_one`, one (agent, torso) run through the real
  pipeline, which the learning bench and the default benchmark call.

The agents (`offline_moe.configs.agents`), torso variants and config overrides
(`offline_moe.configs.overrides`) belong to the configs; `offline_moe.analysis` reads what the
runs wrote; `offline_moe.bench` measures.
"""
