"""offline_moe.networks."""
