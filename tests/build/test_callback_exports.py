"""A built module leaves out ``proxy_on_log``, ``proxy_on_done`` and the HTTP stream
callbacks when no context class overrides them, so Envoy makes fewer calls into the VM
per request; a class that overrides one of them keeps its export, and one made after the
build is reported. A body callback also stays for its buffering flag, and a trailers
callback with its body callback; a stream held by its headers needs neither."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from pwtool.build.wasm_binary import Module
from pwtool.emulator import Emulator, EmulatorError
from pwtool.envoy import EchoServer, Envoy, free_port
from pwtool.manifests import bootstrap, http_filter, plugin_config

pytestmark = pytest.mark.slow

WritePlugin = Callable[[str, str], Path]  # the plugin_source fixture
Build = Callable[[Path], Path]  # the built_plugin fixture

REQUEST = [(":method", "GET"), (":path", "/"), (":authority", "example.com")]

PLAIN = """
import proxywasm
from proxywasm import Action, HttpContext


class Plain(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        headers["x-seen"] = "1"
        return Action.CONTINUE


proxywasm.register(Plain)
"""

LOGS_REQUESTS = """
import proxywasm
from proxywasm import HttpContext


class Logging(HttpContext):
    def on_log(self):
        proxywasm.log_warn(f"on_log {self.id} {self.request_headers.get(':path')}")


proxywasm.register(Logging)
"""

ROOT_ON_DONE = """
import proxywasm


class Plugin(proxywasm.RootContext):
    def on_done(self):
        proxywasm.log_warn("root on_done")
        return True


proxywasm.register(Plugin)
"""

UNREGISTERED_OVERRIDE = """
import proxywasm
from proxywasm import HttpContext


class NotRegistered(HttpContext):  # may still be returned by a factory at run time
    def on_log(self):
        proxywasm.log_warn("on_log")


proxywasm.register(HttpContext)
"""

RESPONSE_ONLY = """
import proxywasm
from proxywasm import HttpContext


class PoweredBy(HttpContext):
    def on_response_headers(self, headers, end_of_stream):
        headers["x-powered-by"] = f"pwtool {headers.get(':status')}"


proxywasm.register(PoweredBy)
"""

RESPONSE_ONLY_WITH_INIT = """
import time

import proxywasm
from proxywasm import HttpContext


class Timed(HttpContext):
    def __init__(self):
        self.started = time.monotonic_ns()  # when the request starts: needs its callback

    def on_response_headers(self, headers, end_of_stream):
        headers["x-took"] = str(time.monotonic_ns() - self.started)


proxywasm.register(Timed)
"""

RESPONSE_ONLY_WITH_FACTORY = """
import proxywasm
from proxywasm import HttpContext


class Stamped(HttpContext):
    def on_response_headers(self, headers, end_of_stream):
        headers["x-stream"] = str(self.number)


class Plugin(proxywasm.RootContext):
    made = 0

    def new_http_context(self, context_id):  # runs when the request starts: needs its callback
        Plugin.made += 1
        context = Stamped()
        context.number = Plugin.made
        return context


proxywasm.register(Plugin)
"""

ASYNC_REQUEST = """
import proxywasm
from proxywasm import HttpContext


class Waits(HttpContext):
    async def on_request_headers(self, headers, end_of_stream):
        await proxywasm.sleep(1)


proxywasm.register(Waits)
"""

BUFFERS_REQUEST = """
import proxywasm
from proxywasm import HttpContext


class Sized(HttpContext):
    buffer_request_body = True

    def on_request_body(self, body, end_of_stream):
        proxywasm.log_warn(f"request body {len(body.read())}")


proxywasm.register(Sized)
"""

RESPONSE_TRAILERS = """
import proxywasm
from proxywasm import HttpContext


class Trailers(HttpContext):
    def on_response_trailers(self, trailers):
        trailers["x-checked"] = "1"


proxywasm.register(Trailers)
"""

TEST_PLUGINS = Path(__file__).parent / "plugins"
TCP_COUNTS_CONNECTIONS = TEST_PLUGINS / "tcp_counts"
TCP_WAITS_TO_CONNECT = TEST_PLUGINS / "tcp_waits"

TCP_WAITS_AND_READS = """
import proxywasm
from proxywasm import TcpContext


class Reads(TcpContext):
    def on_new_connection(self):
        return self.check()  # a coroutine from a plain callback holds the connection too

    async def check(self):
        await proxywasm.sleep(50)
        proxywasm.log_warn("connection let through")

    def on_downstream_data(self, data, end_of_stream):
        proxywasm.log_warn(f"data {bytes(data.read())!r} {end_of_stream}")


proxywasm.register(type("Plugin", (proxywasm.RootContext,), {"tcp_context": Reads}))
"""

TCP_WATCHES_ANSWERS = """
import proxywasm
from proxywasm import TcpContext


class Answers(TcpContext):
    def on_upstream_data(self, data, end_of_stream):
        proxywasm.log_warn(f"upstream sent {len(data)} bytes")


proxywasm.register(type("Plugin", (proxywasm.RootContext,), {"tcp_context": Answers}))
"""

LATE_CLASS = """
import proxywasm
from proxywasm import HttpContext


class Plugin(proxywasm.RootContext):
    def on_configure(self, configuration):
        class Late(HttpContext):
            def on_log(self):
                proxywasm.log_warn("late on_log")

            def on_request_headers(self, headers, end_of_stream):
                proxywasm.log_warn("late on_request_headers")

        class LateInit(HttpContext):
            def __init__(self):
                proxywasm.log_warn("late __init__")

        class LateBuffered(HttpContext):
            buffer_response_body = True


        self.http_context = Late
        return True


proxywasm.register(Plugin)
"""


AFTER_HEADERS = {"proxy_on_request_body", "proxy_on_request_trailers", "proxy_on_response_body",
                 "proxy_on_response_trailers"}
TCP_DATA = {"proxy_on_downstream_data", "proxy_on_upstream_data"}
OPTIONAL = ("proxy_on_log", "proxy_on_done", "proxy_on_request_headers", "proxy_on_response_headers", *AFTER_HEADERS,
            *TCP_DATA)


def callback_exports(module: Path) -> set[str]:
    """Which of the callbacks a build may leave out the module exports."""
    return {e.name for e in Module.parse(module.read_bytes()).exports() if e.name in OPTIONAL}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (PLAIN, {"proxy_on_request_headers"}),
        (RESPONSE_ONLY, {"proxy_on_response_headers"}),
        (RESPONSE_ONLY_WITH_INIT, {"proxy_on_request_headers", "proxy_on_response_headers", *AFTER_HEADERS}),
        (RESPONSE_ONLY_WITH_FACTORY, {"proxy_on_request_headers", "proxy_on_response_headers", *AFTER_HEADERS}),
        (LOGS_REQUESTS, {"proxy_on_log"}),
        (ROOT_ON_DONE, {"proxy_on_done"}),
        (UNREGISTERED_OVERRIDE, {"proxy_on_log"}),
        (ASYNC_REQUEST, {"proxy_on_request_headers"}),  # Envoy holds back a held request's body
        (BUFFERS_REQUEST, {"proxy_on_request_body", "proxy_on_request_trailers"}),
        (RESPONSE_TRAILERS, {"proxy_on_response_trailers"}),
        (TCP_COUNTS_CONNECTIONS, set()),
        (TCP_WAITS_TO_CONNECT, set()),  # Envoy reads nothing from a connection held at its start
        (TCP_WAITS_AND_READS, {"proxy_on_downstream_data"}),
        (TCP_WATCHES_ANSWERS, {"proxy_on_upstream_data"}),
    ],
    ids=["plain", "response-only", "response-only-with-init", "response-only-with-factory",
         "stream-on_log", "root-on_done", "unregistered-class", "async", "buffers-request", "response-trailers",
         "tcp-connect-only", "tcp-async-connect", "tcp-reads-data", "tcp-upstream-only"],
)
def test_exports_only_the_callbacks_some_class_overrides(
    plugin_source: WritePlugin, built_plugin: Build, source: str | Path, expected: set[str]
) -> None:
    module = built_plugin(source if isinstance(source, Path) else plugin_source("exports", source))
    assert callback_exports(module) == expected
    assert {"proxy_on_context_create", "proxy_on_delete"} <= {e.name for e in Module.parse(module.read_bytes()).exports()}


def test_module_without_on_log_serves_streams(plugin_source: WritePlugin, built_plugin: Build) -> None:
    module = built_plugin(plugin_source("plain", PLAIN))
    with Emulator() as emulator:
        plugin = emulator.load(module, root_id="plain")
        for _ in range(3):
            stream = plugin.http_stream()
            stream.send_request_headers(REQUEST, end_of_stream=True)
            assert stream.request_headers.get("x-seen") == "1"
            stream.send_response_headers([(":status", "200")], end_of_stream=True)
        assert not plugin.logs.error


def test_module_without_request_headers_callback_serves_streams(
    plugin_source: WritePlugin, built_plugin: Build
) -> None:
    """Envoy skips the request's headers; the stream is made on the response's."""
    module = built_plugin(plugin_source("response_only", RESPONSE_ONLY))
    with Emulator(record_calls=True) as emulator:
        plugin = emulator.load(module, root_id="response_only")
        for index in range(3):
            stream = plugin.http_stream()
            assert stream.send_request_headers(REQUEST, end_of_stream=True) == 0
            stream.send_response_headers([(":status", f"20{index}")], end_of_stream=True)
            assert stream.response_headers.get("x-powered-by") == f"pwtool 20{index}"
        assert not plugin.logs.error
        callbacks = {call.name for call in emulator.calls if call.kind == "callback"}
        assert "proxy_on_response_headers" in callbacks and "proxy_on_request_headers" not in callbacks


def test_module_without_body_callbacks_holds_and_resumes_a_request_with_a_body(
    plugin_source: WritePlugin, built_plugin: Build
) -> None:
    """A header PAUSE holds the whole request (StopAllIterationAndWatermark in Envoy): the
    body waits for the coroutine, then goes upstream with the headers, untouched."""
    module = built_plugin(plugin_source("waits", ASYNC_REQUEST))
    assert callback_exports(module) == {"proxy_on_request_headers"}
    with Emulator(record_calls=True) as emulator:
        plugin = emulator.load(module, root_id="waits")
        stream = plugin.http_stream()
        assert stream.send_request_headers([(":method", "POST"), *REQUEST[1:]], end_of_stream=False) == 1  # PAUSE
        assert stream.send_request_body(b"part one, ", end_of_stream=False) is None  # held back by the host
        assert stream.send_request_body(b"part two", end_of_stream=True) is None
        assert stream.upstream_request.headers is None
        plugin.advance(1)
        assert stream.upstream_request.headers is not None
        assert bytes(stream.upstream_request.body) == b"part one, part two"
        assert not plugin.logs.error
        callbacks = {call.name for call in emulator.calls if call.kind == "callback"}
        assert "proxy_on_request_headers" in callbacks and not callbacks & AFTER_HEADERS


def test_tcp_module_without_data_callbacks_passes_data_and_an_async_connect_holds_it(
    plugin_source: WritePlugin, built_plugin: Build
) -> None:
    counts = built_plugin(TCP_COUNTS_CONNECTIONS)
    waits = built_plugin(TCP_WAITS_TO_CONNECT)
    with Emulator() as emulator:
        plugin = emulator.load(counts, root_id="tcp_counts")
        stream = plugin.tcp_stream()
        stream.send_downstream_data(b"ping")
        stream.send_upstream_data(b"pong")
        assert bytes(stream.sent_upstream) == b"ping" and bytes(stream.sent_downstream) == b"pong"
        assert emulator.metrics.get("tcp_counts.connections") == 1 and not plugin.logs.error
    with Emulator() as emulator:
        plugin = emulator.load(waits, root_id="tcp_waits")
        stream = plugin.tcp_stream()
        assert stream.new_connection_action == 1 and stream.connection_held  # PAUSE
        assert stream.send_downstream_data(b"early") is None  # Envoy reads nothing meanwhile
        assert bytes(stream.sent_upstream) == b""
        with pytest.raises(EmulatorError, match="connects the upstream only after the plugin resumes"):
            stream.send_upstream_data(b"too early")  # no upstream is connected yet
        plugin.advance(299)
        assert stream.connection_held
        plugin.advance(1)
        assert not stream.connection_held and bytes(stream.sent_upstream) == b"early"
        assert "connection let through" in plugin.logs.warn and not plugin.logs.error


@pytest.mark.parametrize("mode", ["wasm", "native"])
def test_a_held_connection_gets_its_data_when_it_resumes(
    plugin_source: WritePlugin, built_plugin: Build, mode: str
) -> None:
    """As in Envoy (checked in tests/conformance/test_tcp_conformance.py): nothing of what
    the client sends while on_new_connection holds reaches the plugin or the upstream;
    when it resumes, on_downstream_data gets all of it, then the upstream."""
    directory = plugin_source("tcp_reads", TCP_WAITS_AND_READS)
    with Emulator() as emulator:
        plugin = emulator.load(built_plugin(directory) if mode == "wasm" else directory, mode=mode, root_id="tcp_reads")
        stream = plugin.tcp_stream()
        assert stream.send_downstream_data(b"one ") is None
        assert stream.send_downstream_data(b"two") is None
        assert plugin.logs.warn == [] and bytes(stream.sent_upstream) == b""
        plugin.advance(50)
        assert plugin.logs.warn == ["connection let through", "data b'one two' False"]
        assert bytes(stream.sent_upstream) == b"one two"
        assert stream.send_downstream_data(b"!") == 0 and bytes(stream.sent_upstream) == b"one two!"
        assert not plugin.logs.error


def test_kept_on_log_still_runs(plugin_source: WritePlugin, built_plugin: Build) -> None:
    module = built_plugin(plugin_source("logging", LOGS_REQUESTS))
    with Emulator() as emulator:
        plugin = emulator.load(module, root_id="logging")
        stream = plugin.http_stream()
        stream.send_request_headers(REQUEST, end_of_stream=True)
        stream.send_response_headers([(":status", "200")], end_of_stream=True)
        assert any(line.startswith("on_log ") for line in plugin.logs.warn)


def test_class_made_after_the_build_is_reported(plugin_source: WritePlugin, built_plugin: Build) -> None:
    directory = plugin_source("late", LATE_CLASS)
    module = built_plugin(directory)
    assert callback_exports(module) == set()
    with Emulator() as emulator:
        plugin = emulator.load(module, root_id="late")
        errors = "\n".join(plugin.logs.error)
        assert "Late.on_log will never be called" in errors
        assert "without proxy_on_log" in errors and "module level" in errors
        assert "Late.on_request_headers will never be called" in errors
        assert "LateInit.__init__ / __new__ will run on the first callback the module gets for a stream" in errors
        assert "Late.__init__" not in errors  # made by the SDK: nothing runs late
        assert "LateBuffered.buffer_response_body has no effect: the module was built without proxy_on_response_body" in errors
        assert errors.count("has no effect") == 1  # Late and LateInit buffer nothing
    with Emulator() as emulator:  # native mode exports everything: nothing to report
        plugin = emulator.load(directory, mode="native", root_id="late")
        stream = plugin.http_stream()
        stream.send_request_headers(REQUEST, end_of_stream=True)
        stream.send_response_headers([(":status", "200")], end_of_stream=True)
        assert not plugin.logs.error
        assert "late on_log" in plugin.logs.warn
        assert "late on_request_headers" in plugin.logs.warn


@pytest.mark.envoy
def test_envoy_runs_modules_with_and_without_optional_callbacks(plugin_source: WritePlugin, built_plugin: Build) -> None:
    plain = built_plugin(plugin_source("plain", PLAIN))
    logging = built_plugin(plugin_source("logging", LOGS_REQUESTS))
    response_only = built_plugin(plugin_source("response_only", RESPONSE_ONLY))
    assert callback_exports(plain) == {"proxy_on_request_headers"}
    assert callback_exports(logging) == {"proxy_on_log"}
    assert callback_exports(response_only) == {"proxy_on_response_headers"}
    listen, admin = free_port(), free_port()
    filters = [http_filter(plugin_config(name=name, root_id=name, wasm_file=wasm))
               for name, wasm in (("plain", plain), ("logging", logging), ("response_only", response_only))]
    with EchoServer() as echo:
        config = bootstrap(http_filters=filters, listen_port=listen, admin_port=admin, upstream=echo.address)
        with Envoy(config, admin_port=admin) as envoy:
            for index in range(3):
                with urllib.request.urlopen(f"http://127.0.0.1:{listen}/logged/{index}", timeout=10) as response:
                    assert response.status == 200
                    assert response.headers["x-powered-by"] == "pwtool 200"  # with no request callback
                    assert json.loads(response.read())["headers"]["x-seen"] == "1"  # plain's header went upstream
            posted = urllib.request.Request(f"http://127.0.0.1:{listen}/posted", data=b"x" * 100_000, method="POST")
            with urllib.request.urlopen(posted, timeout=10) as response:  # no module has body callbacks
                echoed = json.loads(response.read())
                assert len(echoed["body"]) == 100_000 and echoed["headers"]["x-seen"] == "1"
                assert response.headers["x-powered-by"] == "pwtool 200"
            log = envoy.log_text()
            for index in range(3):
                assert f"/logged/{index}" in log, log[-2000:]  # Envoy called the kept on_log
            assert envoy.process is not None and envoy.process.poll() is None
