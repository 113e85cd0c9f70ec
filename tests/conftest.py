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


@pytest.fixture(scope="session")
def plugin_source(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``plugin_source(name, source, toml="")`` -> a new plugin directory as `pwtool build`
    wants it: ``plugin.py`` with `source` (dedented) and a ``plugin.toml`` naming it `name`
    (followed by `toml`)."""

    def write(name: str, source: str, toml: str = "") -> Path:
        directory = tmp_path_factory.mktemp(name) / name
        directory.mkdir()
        (directory / "plugin.py").write_text(textwrap.dedent(source))
        (directory / "plugin.toml").write_text(f'name = "{name}"\n{toml}')
        return directory

    return write
