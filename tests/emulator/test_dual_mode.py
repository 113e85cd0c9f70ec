"""One SDK plugin, the same assertions, natively and as a built wasm module."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pwtool.emulator import Action, Emulator, Plugin

PLUGIN = Path(__file__).parent / "plugins" / "pyfilter"


@pytest.fixture
def plugin(load_plugin: Callable[..., Plugin]) -> Plugin:
    return load_plugin(PLUGIN, config='{"greeting": "hi"}')


@pytest.mark.both_modes
def test_headers_and_logs(plugin: Plugin, emulator: Emulator, pwtool_mode: str) -> None:
    assert plugin.mode == pwtool_mode
    assert plugin.logs.info[0] == "py: configured ['greeting']"
    stream = plugin.http_stream()
    assert stream.send_request_headers({":path": "/hello"}, end_of_stream=True) == Action.CONTINUE
    assert stream.upstream_request.headers == {":path": "/hello", "x-py": "hello"}
    stream.send_response(200, body="ok")
    assert stream.downstream_response.headers["x-py-response"] == "1"
    assert "py: request /hello" in plugin.logs.info
    assert emulator.metrics["py_requests"] == 1


@pytest.mark.both_modes
def test_local_response(plugin: Plugin) -> None:
    stream = plugin.http_stream()
    assert stream.send_request_headers({":path": "/local"}, end_of_stream=True) == Action.PAUSE
    assert stream.local_response is not None
    assert (stream.local_response.status, stream.local_response.body) == (403, b"forbidden by python")
    assert stream.downstream_response.headers["x-py-local"] == "yes"


@pytest.mark.both_modes
def test_await_http_call(plugin: Plugin) -> None:
    stream = plugin.http_stream()
    assert stream.send_request_headers({":path": "/callout"}, end_of_stream=True) == Action.PAUSE
    [call] = plugin.pending_http_calls
    assert (call.upstream, call.path, call.authority, call.timeout_ms) == ("auth", "/check", "auth.local", 500)
    call.respond(204)
    assert stream.upstream_request.headers["x-auth-status"] == "204"


@pytest.mark.both_modes
def test_plugin_exception_fails_closed_with_traceback(plugin: Plugin) -> None:
    stream = plugin.http_stream()
    stream.send_request_headers({":path": "/boom"}, end_of_stream=True)
    assert stream.local_response is not None and stream.local_response.status == 500
    [error] = plugin.logs.error
    assert "RuntimeError: plugin bug" in error and "plugin.py" in error


def test_native_workers_have_separate_dispatchers(emulator: Emulator) -> None:
    plugin = emulator.load(PLUGIN, mode="native", workers=2)
    for worker in (0, 1, 1):
        s = plugin.http_stream(worker=worker)
        s.send_request_headers({":path": "/w"}, end_of_stream=True)
        assert s.upstream_request.headers["x-py"] == "hello"
    d0, d1 = (vm.backend.dispatcher for vm in plugin.vms)  # type: ignore[union-attr]
    assert d0 is not d1
    assert emulator.metrics["py_requests"] == 3
