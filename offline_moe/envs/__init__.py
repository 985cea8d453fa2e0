"""offline_moe.envs."""
