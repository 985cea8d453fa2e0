"""Tests of offline_moe.analysis (tests/ mirrors the package)."""
