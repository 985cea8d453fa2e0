"""Tests of offline_moe.configs (tests/ mirrors the package)."""
