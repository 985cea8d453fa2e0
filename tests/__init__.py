"""Tests for offline_moe; tests/ mirrors the package (tests/networks/ tests networks/)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent  # the checkout (README.md, datasets/)
