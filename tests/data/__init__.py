"""Tests of offline_moe.data (tests/ mirrors the package).

agent_params.json here is not a test of this folder: it is the reference of
tests/learners/test_agent_regression.py (written by `python -m tests.agent_regression`).
"""
