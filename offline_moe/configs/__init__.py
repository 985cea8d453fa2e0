"""offline_moe.configs."""
