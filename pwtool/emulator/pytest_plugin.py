"""pytest plugin (entry point ``pytest11: pwtool``): fixtures for testing proxy-wasm plugins.

Fixtures:

* ``emulator`` — a fresh :class:`~pwtool.emulator.Emulator`, closed after the test.
* ``load_plugin`` — ``load_plugin(path, config=..., **options)`` starts a plugin in the
  test's mode: a ``.wasm`` file, or a plugin directory (built with ``pwtool build``, cached
  in pytest's cache, or imported natively).
* ``pwtool_mode`` — ``"wasm"`` or ``"native"``. Mark a test ``@pytest.mark.both_modes``
  to run it twice, natively (pdb, coverage) and as wasm, like the Go SDK's dual runs;
  ``@pytest.mark.pwtool_mode("native")`` pins one mode. ``--pwtool-mode=native|wasm``
  restricts every test to one mode.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Union

import pytest

from ._host import Emulator, Plugin

__all__ = ["emulator", "load_plugin", "pwtool_mode"]

_MODES = ("native", "wasm")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pwtool")
    group.addoption(
        "--pwtool-mode",
        choices=("both", "native", "wasm"),
        default="both",
        help="run emulator tests marked both_modes in this mode only (default: both)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_modes: run the test natively and as wasm (pwtool emulator)")
    config.addinivalue_line("markers", "pwtool_mode(mode): run the test in one emulator mode: 'native' or 'wasm'")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "pwtool_mode" not in metafunc.fixturenames:
        return
    pinned = metafunc.definition.get_closest_marker("pwtool_mode")
    if pinned is not None:
        modes = [str(pinned.args[0])]
    elif metafunc.definition.get_closest_marker("both_modes") is not None:
        modes = list(_MODES)
    else:
        modes = ["wasm"]
    only = metafunc.config.getoption("--pwtool-mode")
    if only != "both" and pinned is None:
        modes = [m for m in modes if m == only] or [only]
    for m in modes:
        if m not in _MODES:
            raise pytest.UsageError(f"pwtool_mode must be one of {_MODES}, not {m!r}")
    metafunc.parametrize("pwtool_mode", modes, ids=modes)


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    """A fresh emulated Envoy; builds are cached in pytest's cache directory."""
    cache = Path(request.config.cache.mkdir("pwtool-builds")) if getattr(request.config, "cache", None) is not None else None
    emu = Emulator(build_cache=cache)
    yield emu
    emu.close()


@pytest.fixture
def load_plugin(emulator: Emulator, pwtool_mode: str) -> Callable[..., Plugin]:
    """``load_plugin(path, **options)`` -> a started :class:`Plugin` in the test's mode."""

    def load(module: Union[str, "os.PathLike[str]", bytes], **options: Any) -> Plugin:
        options.setdefault("mode", pwtool_mode)
        return emulator.load(module, **options)

    return load
