"""Helpers for manifest tests: the repository root and the real Envoy binary."""

from __future__ import annotations

from pathlib import Path

from pwtool.envoy import envoy_binary, next_base_id

REPO = Path(__file__).resolve().parents[2]
ENVOY = envoy_binary()

__all__ = ["ENVOY", "REPO", "next_base_id"]
