"""Tests of offline_moe.replay (tests/ mirrors the package)."""
