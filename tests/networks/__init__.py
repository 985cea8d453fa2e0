"""Tests of offline_moe.networks (tests/ mirrors the package)."""
