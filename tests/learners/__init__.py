"""Tests of offline_moe.learners (tests/ mirrors the package)."""
