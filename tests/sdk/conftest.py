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
def load_in_mode(
    load_plugin: Callable[..., Plugin], pwtool_mode: str, built_plugin: Callable[[Path], Path]
) -> Callable[..., Plugin]:
    """``load_in_mode(directory, **load_kwargs)``: the plugin in the test's mode
    (``both_modes``): natively from its directory, or built."""
    return lambda directory, **kwargs: load_plugin(
        built_plugin(directory) if pwtool_mode == "wasm" else directory, **kwargs
    )


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


@pytest.fixture(params=["native", pytest.param("wasm", marks=pytest.mark.slow)])
def example(request: pytest.FixtureRequest, emulator: Emulator,
            built_plugin: Callable[[str], Path]) -> Callable[..., Plugin]:
    """``example("hello", **kwargs)``: load ``plugins/<name>``, natively and built to
    wasm (each example test runs both ways, like the Go SDK's dual-run tests)."""
    mode = request.param

    def _load(name: str, **kwargs: object) -> Plugin:
        kwargs.setdefault("mode", mode)
        source: Path = built_plugin(name) if mode == "wasm" else PLUGINS / name
        return emulator.load(source, **kwargs)  # type: ignore[arg-type]

    return _load


PROBE = '''
"""A plugin whose callbacks run hooks that the test installs (see conftest.probe)."""
import proxywasm
from proxywasm import Action, HttpContext, RootContext, TcpContext

HOOKS = {}
CALLS = []


def hook(name, *args):
    CALLS.append(name)
    fn = HOOKS.get(name)
    return fn(*args) if fn is not None else None


class ProbeHttp(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        return hook("on_request_headers", self, headers, end_of_stream)

    def on_request_body(self, body, end_of_stream):
        return hook("on_request_body", self, body, end_of_stream)

    def on_request_trailers(self, trailers):
        return hook("on_request_trailers", self, trailers)

    def on_response_headers(self, headers, end_of_stream):
        return hook("on_response_headers", self, headers, end_of_stream)

    def on_response_body(self, body, end_of_stream):
        return hook("on_response_body", self, body, end_of_stream)

    def on_response_trailers(self, trailers):
        return hook("on_response_trailers", self, trailers)

    def on_log(self):
        hook("on_log", self)

    def on_done(self):
        result = hook("http_on_done", self)
        return True if result is None else result


class ProbeTcp(TcpContext):
    def on_new_connection(self):
        return hook("on_new_connection", self)

    def on_downstream_data(self, data, end_of_stream):
        return hook("on_downstream_data", self, data, end_of_stream)

    def on_upstream_data(self, data, end_of_stream):
        return hook("on_upstream_data", self, data, end_of_stream)

    def on_downstream_close(self, peer):
        hook("on_downstream_close", self, peer)

    def on_upstream_close(self, peer):
        hook("on_upstream_close", self, peer)

    def on_log(self):
        hook("tcp_on_log", self)


class Probe(RootContext):
    http_context = ProbeHttp
    tcp_context = None

    def on_vm_start(self, vm_configuration):
        result = hook("on_vm_start", self, vm_configuration)
        return True if result is None else result

    def on_configure(self, configuration):
        result = hook("on_configure", self, configuration)
        if result is None:
            return super().on_configure(configuration)
        return result

    def on_tick(self):
        return hook("on_tick", self)

    def on_queue_ready(self, queue_id):
        return hook("on_queue_ready", self, queue_id)

    def on_foreign_function(self, function_id, arguments):
        return hook("on_foreign_function", self, function_id, arguments)

    def on_done(self):
        result = hook("on_done", self)
        return True if result is None else result


class TcpProbe(Probe):
    http_context = None
    tcp_context = ProbeTcp


proxywasm.register(Probe, root_id="")
proxywasm.register(TcpProbe, root_id="tcp")
'''


class Probe:
    """A loaded probe plugin: set ``hooks[name] = fn`` to run code in a callback."""

    def __init__(self, plugin: Plugin) -> None:
        self.plugin = plugin
        self.module = plugin.vms[0].backend.module  # type: ignore[union-attr]
        self.hooks: dict[str, Callable[..., object]] = self.module.HOOKS
        self.calls: list[str] = self.module.CALLS

    def run(self, fn: Callable[..., object]) -> object:
        """Run ``fn(root)`` inside a root callback (on_foreign_function); return its result."""
        box: list[object] = []
        self.hooks["on_foreign_function"] = lambda root, fid, data: box.append(fn(root))
        self.plugin.call_foreign(0, b"")
        return box[0] if box else None

    def __getattr__(self, name: str) -> object:
        return getattr(self.plugin, name)


@pytest.fixture
def probe_factory(emulator: Emulator, tmp_path: Path) -> Callable[..., Probe]:
    """``probe_factory(hooks={...}, **load_kwargs)``: a probe plugin with hooks preset
    (hooks for on_vm_start / on_configure must be there before the load)."""

    def make(hooks: dict[str, Callable[..., object]] | None = None, **kwargs: object) -> Probe:
        directory = tmp_path / f"probe{next(_counter)}"
        directory.mkdir()
        source = PROBE
        (directory / "plugin.py").write_text(source)
        kwargs.setdefault("mode", "native")
        preset = dict(hooks or {})
        if preset:
            # Hooks needed during start-up go in through a module the probe imports first.
            import sys
            import types

            holder = types.ModuleType("probe_preset")
            holder.HOOKS = preset  # type: ignore[attr-defined]
            sys.modules["probe_preset"] = holder
            (directory / "plugin.py").write_text(
                source.replace("HOOKS = {}", "import probe_preset\nHOOKS = probe_preset.HOOKS")
            )
        return Probe(emulator.load(directory, **kwargs))  # type: ignore[arg-type]

    return make


@pytest.fixture
def probe(probe_factory: Callable[..., Probe]) -> Probe:
    return probe_factory()
