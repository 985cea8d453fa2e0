"""Tests of offline_moe.train (tests/ mirrors the package)."""
