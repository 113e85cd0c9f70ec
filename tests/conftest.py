"""Fixtures shared by every test directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pwtool.emulator import build_plugin_cached

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "plugins"


@pytest.fixture(scope="session")
def built_plugin(request: pytest.FixtureRequest) -> Callable[[str | Path], Path]:
    """``built_plugin("hello")`` (a directory of plugins/) or ``built_plugin(path)`` -> the
    built module, cached by everything the build reads (plugin, SDK, runtime recipe)."""
    cache = Path(request.config.cache.mkdir("pwtool-builds")) if getattr(request.config, "cache", None) is not None else None

    def build(plugin: str | Path) -> Path:
        return build_plugin_cached(PLUGINS / plugin if isinstance(plugin, str) else plugin, cache)

    return build
