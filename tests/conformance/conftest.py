"""Fixtures for the conformance suite: modules built or compiled fresh for this session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pwtool_zig import compile_c

HERE = Path(__file__).parent
REPO = HERE.parents[1]


@pytest.fixture(scope="session")
def conformance_build(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """``conformance_build(plugin_dir)`` -> a module built now with ``pwtool.build.build_plugin``.

    Built fresh (a couple of seconds each) rather than from a cache keyed on the plugin
    source alone, so that the suite always tests the current SDK and runtime.
    """
    from pwtool.build import build_plugin

    out_dir = tmp_path_factory.mktemp("conformance-builds")
    built: dict[Path, Path] = {}

    def build(plugin_dir: Path) -> Path:
        if plugin_dir not in built:
            out = out_dir / f"{plugin_dir.name}.wasm"
            build_plugin(plugin_dir, out)
            built[plugin_dir] = out
        return built[plugin_dir]

    return build


@pytest.fixture(scope="session")
def c_filter_wasm(request: pytest.FixtureRequest) -> Path:
    """The raw-ABI C module of the emulator tests, compiled with zig."""
    out_dir = Path(request.config.cache.mkdir("pwtool-c-modules"))
    return compile_c(REPO / "tests" / "emulator" / "c_modules" / "filter.c", out_dir)
