"""Tests for offline_moe."""
