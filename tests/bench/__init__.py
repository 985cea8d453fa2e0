"""Tests of offline_moe.bench (tests/ mirrors the package)."""
