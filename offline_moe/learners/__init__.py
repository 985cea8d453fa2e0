"""offline_moe.learners."""
