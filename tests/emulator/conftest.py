"""Fixtures for the emulator's own tests: C modules compiled with zig, cached per source."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pwtool_zig import ZIG_FLAGS, compile_c  # noqa: F401 - shared helper, re-exported

C_DIR = Path(__file__).parent / "c_modules"


@pytest.fixture(scope="session")
def c_module(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """``c_module("filter", "ABI_VERSION=10")`` -> path of the compiled .wasm."""
    out_dir = Path(request.config.cache.mkdir("pwtool-c-modules"))

    def build(name: str, *defines: str) -> Path:
        return compile_c(C_DIR / f"{name}.c", out_dir, tuple(defines))

    return build


@pytest.fixture(scope="session")
def filter_wasm(c_module: Callable[..., Path]) -> Path:
    return c_module("filter")
