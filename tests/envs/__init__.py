"""Tests of offline_moe.envs (tests/ mirrors the package)."""
