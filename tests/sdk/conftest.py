"""Fixtures for the SDK's tests: plugins run natively under pwtool's emulator.

The emulator's router is installed as ``_proxywasm`` before anything imports the SDK,
so test modules can import ``proxywasm`` directly. ``load(source)`` writes a plugin
source to a temporary directory and loads it in native mode.
"""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pwtool.emulator import Emulator, Plugin
from pwtool.emulator._native import install_router

install_router()

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
_counter = itertools.count()


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


@pytest.fixture
def load(emulator: Emulator, tmp_path: Path) -> Callable[..., Plugin]:
    """``load(source, **emulator_load_kwargs)``: run plugin source natively."""

    def _load(source: str, **kwargs: object) -> Plugin:
        directory = tmp_path / f"plugin{next(_counter)}"
        directory.mkdir()
        (directory / "plugin.py").write_text(textwrap.dedent(source))
        kwargs.setdefault("mode", "native")
        return emulator.load(directory, **kwargs)  # type: ignore[arg-type]

    return _load


@pytest.fixture
def example(emulator: Emulator) -> Callable[..., Plugin]:
    """``example("hello", **kwargs)``: load ``plugins/<name>`` natively."""

    def _load(name: str, **kwargs: object) -> Plugin:
        kwargs.setdefault("mode", "native")
        return emulator.load(PLUGINS / name, **kwargs)  # type: ignore[arg-type]

    return _load
