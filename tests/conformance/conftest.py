"""Fixtures for the conformance suite (Python plugins come from the shared `built_plugin`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pwtool_zig import compile_c

HERE = Path(__file__).parent
REPO = HERE.parents[1]


@pytest.fixture(scope="session")
def c_filter_wasm(request: pytest.FixtureRequest) -> Path:
    """The raw-ABI C module of the emulator tests, compiled with zig."""
    out_dir = Path(request.config.cache.mkdir("pwtool-c-modules"))
    return compile_c(REPO / "tests" / "emulator" / "c_modules" / "filter.c", out_dir)
