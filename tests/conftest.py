"""Fixtures shared by every test directory."""

from __future__ import annotations

import textwrap
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


@pytest.fixture
def plugin_source(tmp_path: Path) -> Callable[[str, str], Path]:
    """``plugin_source(name, source)`` -> a plugin directory in ``tmp_path``: ``plugin.py``
    with `source` (dedented) and a ``plugin.toml`` naming it `name`."""

    def write(name: str, source: str) -> Path:
        directory = tmp_path / name
        directory.mkdir()
        (directory / "plugin.py").write_text(textwrap.dedent(source))
        (directory / "plugin.toml").write_text(f'name = "{name}"\n')
        return directory

    return write
