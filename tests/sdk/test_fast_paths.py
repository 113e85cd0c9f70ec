"""The shim's C fast paths give the same results as the SDK's Python code.

In a built module, the shim runs the HTTP header callbacks without the dispatcher's
Python frame, and C versions replace HostHeaders get/in/set/add/remove and Counter
inc/with_tags (docs/abi-seam.md, "Header callbacks without the dispatcher's frame" and
"C versions of per-request methods"). Native mode runs the Python code. Each plugin
here records what it saw; the test runs it both ways and expects the same record, and
checks that the wasm module really took the C paths.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pwtool.emulator import Emulator, Status

pytestmark = pytest.mark.slow

EDGES = '''
import sys

import proxywasm
from proxywasm import Action, Counter, HttpContext

REQUESTS = Counter("fast.requests")


def caller():
    """The Python function that called the plugin's callback (None: called from C)."""
    try:
        return sys._getframe(2).f_code.co_name
    except ValueError:
        return None


class Edges(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        seen = [caller(), type(type(headers).get).__name__, type(Counter.inc).__name__]
        seen += [headers.get("x-a"), headers.get("absent"), headers.get("absent", "d"),
                 headers.get("absent", default="kw"), headers.get(b"X-A")]
        seen += ["x-a" in headers, b"X-A" in headers, "absent" in headers, 7 in headers]
        headers.set("x-set", "1")
        headers["x-item"] = b"2"
        headers.add("x-add", "3")
        headers.add(name="x-add", value="4")
        headers.remove("x-remove")
        headers.remove("never-there")
        try:
            headers.set("x-bad", 5)
        except TypeError as exc:
            seen.append("TypeError")
        seen.append(len(headers))  # reads the whole map: later calls use the cache
        headers["x-after-read"] = "5"
        seen += [headers.get("x-after-read"), "x-after-read" in headers]
        headers.remove("x-after-read")
        seen.append("x-after-read" in headers)
        REQUESTS.inc()
        REQUESTS.inc(2)
        REQUESTS.inc(amount=3)
        REQUESTS.with_tags(method=headers.get(":method")).inc()
        REQUESTS.with_tags(method="GET").inc()
        REQUESTS.with_tags(method="GET", route="r").inc(4)
        seen.append(REQUESTS.with_tags(method="GET") is REQUESTS.with_tags(method="GET"))
        headers["x-seen"] = repr(seen)
        path = headers.get(":path")
        if path == "/raise":
            raise ValueError("boom")
        if path == "/async":
            return self.finish_later()
        if path == "/pause":
            return Action.PAUSE
        return None

    async def finish_later(self):
        return Action.CONTINUE

    def on_response_headers(self, headers, end_of_stream):
        headers["x-response-caller"] = str(caller())
        headers["x-request-still-known"] = str(self.request_headers is not None)
        headers.remove("server")
        return Action.CONTINUE


proxywasm.register(Edges)
'''

WITH_INIT = '''
import proxywasm
from proxywasm import Action, HttpContext

CREATED = []


class Counted(HttpContext):
    def __init__(self):
        CREATED.append(self.id)
        self.number = len(CREATED)

    def on_request_headers(self, headers, end_of_stream):
        headers["x-number"] = str(self.number)
        headers["x-id-known"] = str(self.id in CREATED)
        return Action.CONTINUE


proxywasm.register(Counted)
'''

REQUEST = [(":method", "GET"), (":path", "/"), (":authority", "h"), ("x-a", "1"), ("x-remove", "r")]


def load(emulator: Emulator, directory: Path, mode: str, built_plugin):  # type: ignore[no-untyped-def]
    source = built_plugin(directory) if mode == "wasm" else directory
    return emulator.load(source, mode=mode)


def run_edges(emulator: Emulator, directory: Path, mode: str, built_plugin):  # type: ignore[no-untyped-def]
    plugin = load(emulator, directory, mode, built_plugin)
    results = {}
    for path in ("/", "/raise", "/async", "/pause"):
        stream = plugin.http_stream()
        action = stream.send_request_headers([*REQUEST[:1], (":path", path), *REQUEST[2:]], end_of_stream=True)
        results[path] = (action, stream)
    return plugin, results


def test_header_callbacks_and_methods_match_native_mode(plugin_source, built_plugin) -> None:
    directory = plugin_source("fast_edges", EDGES)
    seen = {}
    for mode in ("native", "wasm"):
        with Emulator() as emulator:  # one each: metrics are the emulator's
            plugin, results = run_edges(emulator, directory, mode, built_plugin)
            seen[mode] = check_edges(plugin, results, mode)

    native, wasm = seen["native"], seen["wasm"]
    # Where the callback came from and which methods ran differ by design ...
    assert native[:3] == ["on_request_headers", "function", "function"]
    assert wasm[:3] == [None, "method_descriptor", "method_descriptor"]
    # ... and everything the plugin saw is the same.
    assert native[3:] == wasm[3:]
    assert wasm[3:] == ["1", None, "d", "kw", "1", True, True, False, False, "TypeError", 8, "5", True, False, True]


def check_edges(plugin, results, mode: str) -> list[object]:  # type: ignore[no-untyped-def]
    action, stream = results["/"]
    assert action.name == "CONTINUE"
    headers = stream.upstream_request.headers
    seen = ast.literal_eval(headers["x-seen"])
    assert headers["x-set"] == "1" and headers["x-item"] == "2"
    assert headers.get_all("x-add") == ["3", "4"]
    assert "x-remove" not in headers and "x-after-read" not in headers
    stream.send_response_headers([(":status", "200"), ("server", "envoy")], end_of_stream=True)
    response = stream.downstream_response.headers
    assert "server" not in response and response["x-request-still-known"] == "True"
    assert plugin.metrics["fast.requests"] == 4 * 6  # 1 + 2 + 3 per request, four requests
    assert plugin.metrics["fast.requests.method=GET"] == 2 * 4
    assert plugin.metrics["fast.requests.method=GET.route=r"] == 4 * 4
    # An exception fails closed with a 500; an async callback continues; PAUSE pauses.
    raised = results["/raise"][1]
    assert raised.local_response is not None and raised.local_response.status == 500
    assert "ValueError: boom" in "\n".join(plugin.logs.error)
    assert results["/async"][0].name == "CONTINUE"
    assert results["/pause"][0].name == "PAUSE"
    response_caller = response["x-response-caller"]
    if mode == "wasm":
        assert response_caller == "None"  # called by the shim, not by the dispatcher
    else:
        assert response_caller == "on_response_headers"
    return seen




def test_context_class_with_init_is_created_once_per_stream(emulator: Emulator, plugin_source, built_plugin) -> None:
    directory = plugin_source("fast_init", WITH_INIT)
    for mode in ("native", "wasm"):
        plugin = load(emulator, directory, mode, built_plugin)
        numbers = []
        for _ in range(3):
            stream = plugin.http_stream()
            stream.send_request(REQUEST)
            stream.send_response(200)
            numbers.append(stream.upstream_request.headers["x-number"])
            assert stream.upstream_request.headers["x-id-known"] == "True"
        assert numbers == ["1", "2", "3"], mode


def test_counter_calls_the_host_only_with_defined_metrics(plugin_source, built_plugin) -> None:
    directory = plugin_source("fast_edges", EDGES)
    with Emulator(record_calls=True) as emulator:
        plugin = load(emulator, directory, "wasm", built_plugin)
        stream = plugin.http_stream()
        stream.send_request_headers(REQUEST, end_of_stream=True)
    calls = [(c.args[0], "ok" if c.status == 0 else Status(c.status).name) for c in emulator.calls
             if c.name == "proxy_increment_metric"]
    # The first inc() of each counter defines it (in Python) before any increment.
    assert calls and all(status == "ok" for _, status in calls), calls
    assert len(calls) == 6


LOOKUPS = '''
import proxywasm
from proxywasm import Action, HttpContext


class Lookups(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        seen = [headers.get(":method"), "X-A" in headers, headers.get("absent", "-")]
        headers["x-a"] = "changed"
        seen += [headers.get("x-a"), "x-a" in headers]
        headers["x-seen"] = ",".join(map(str, seen))
        return Action.CONTINUE

    def on_response_headers(self, headers, end_of_stream):
        status, has_status = headers.get(":status"), ":status" in headers
        headers["x-status"] = f"{status},{has_status}"
        return Action.CONTINUE


proxywasm.register(Lookups)
'''


def header_reads(emulator: Emulator) -> list[str]:
    """The header-map reads the plugin made, by hostcall name without ``proxy_``."""
    names = ("proxy_get_header_map_pairs", "proxy_get_header_map_value")
    return [c.name[len("proxy_"):] for c in emulator.calls if c.name in names]


@pytest.mark.parametrize("mode", ["native", "wasm"])
def test_lookups_read_the_map_once_per_callback(plugin_source, built_plugin, mode: str) -> None:
    directory = plugin_source("lookups", LOOKUPS)
    with Emulator(record_calls=True) as emulator:
        plugin = load(emulator, directory, mode, built_plugin)
        stream = plugin.http_stream()
        stream.send_request_headers(REQUEST, end_of_stream=True)
        request_reads, emulator.calls[:] = header_reads(emulator), []
        stream.send_response_headers([(":status", "200")], end_of_stream=True)
        reads = header_reads(emulator)
    assert stream.upstream_request.headers["x-seen"] == "GET,True,-,changed,True"
    response = stream.downstream_response.headers
    assert response["x-status"] == "200,True"
    if mode == "wasm":
        # One read of the whole map before the write and one after it; the response
        # callback starts afresh and reads its map once.
        assert request_reads == ["get_header_map_pairs", "get_header_map_pairs"]
        assert reads == ["get_header_map_pairs"]
    else:  # the SDK's Python methods ask for each header
        assert set(request_reads + reads) == {"get_header_map_value"}


REUSE = '''
import weakref

import proxywasm
from proxywasm import Action, HttpContext

KEPT_CONTEXTS = []
KEPT_MAPS = []
WEAK = []


class Reuse(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        path = headers.get(":path")
        headers["x-attribute"] = str(getattr(self, "note", None))
        headers["x-kept"] = ",".join(f"{context.id}:{context.alive}" for context in KEPT_CONTEXTS)
        headers["x-kept-map-is-mine"] = str(any(kept is headers for kept in KEPT_MAPS))
        headers["x-weak-is-me"] = str(any(ref() is self for ref in WEAK))
        headers["x-id"] = str(self.id)
        if path == "/note":
            self.note = "set by an earlier stream"
        elif path == "/keep":
            KEPT_CONTEXTS.append(self)
        elif path == "/keep-map":
            KEPT_MAPS.append(headers)
        elif path == "/weak":
            WEAK.append(weakref.ref(self))
        return Action.CONTINUE

    def on_response_headers(self, headers, end_of_stream):
        headers["x-id"] = str(self.id)
        return Action.CONTINUE


proxywasm.register(Reuse)
'''


def request_to(path: str) -> list[tuple[str, str]]:
    return [(":method", "GET"), (":path", path), (":authority", "h")]


def test_a_finished_streams_objects_never_leak_into_the_next(plugin_source, built_plugin) -> None:
    """The shim keeps a deleted stream's context and header maps for the next stream
    (callbacks.c, "Stream objects kept for the next stream") only when nothing of the
    plugin refers to them and no attribute was set: a context or map the plugin kept, a
    weak reference, or an attribute never shows up in a later stream, and a new stream's
    maps act on that stream, also while another stream is still open."""
    directory = plugin_source("fast_reuse", REUSE)
    for mode in ("native", "wasm"):
        with Emulator() as emulator:
            plugin = load(emulator, directory, mode, built_plugin)
            seen = {}
            for path in ("/note", "/after-note", "/keep", "/after-keep", "/keep-map", "/after-keep-map", "/weak",
                         "/after-weak"):
                stream = plugin.http_stream()
                stream.send_request_headers(request_to(path), end_of_stream=True)
                stream.send_response_headers([(":status", "200")], end_of_stream=True)
                seen[path] = (stream.upstream_request.headers, stream.downstream_response.headers)
                assert_acted_on(stream, mode)
            assert seen["/after-note"][0]["x-attribute"] == "None", mode
            kept_id = seen["/keep"][1]["x-id"]
            assert seen["/after-keep"][0]["x-kept"] == f"{kept_id}:False", mode
            assert seen["/after-keep"][1]["x-id"] != kept_id, mode
            assert seen["/after-keep-map"][0]["x-kept-map-is-mine"] == "False", mode
            assert seen["/after-weak"][0]["x-weak-is-me"] == "False", mode

            # Interleaved: B is open while A ends and C starts (taking A's objects).
            a, b, c = plugin.http_stream(), plugin.http_stream(), plugin.http_stream()
            a.send_request_headers(request_to("/a"), end_of_stream=True)
            b.send_request_headers(request_to("/b"), end_of_stream=True)
            a.send_response_headers([(":status", "200")], end_of_stream=True)
            c.send_request_headers(request_to("/c"), end_of_stream=True)
            c.send_response_headers([(":status", "200")], end_of_stream=True)
            b.send_response_headers([(":status", "200")], end_of_stream=True)
            for stream in (a, b, c):
                assert_acted_on(stream, mode)
            assert not plugin.logs.error, (mode, plugin.logs.error)


def assert_acted_on(stream, mode: str) -> None:  # type: ignore[no-untyped-def]
    """The plugin's context and both header maps were this stream's own."""
    mine = str(stream.id)
    assert stream.upstream_request.headers["x-id"] == mine, mode
    assert stream.downstream_response.headers["x-id"] == mine, mode


CLEANUP = '''
import proxywasm
from proxywasm import Action, HttpContext


class Cleanup(HttpContext):
    async def on_request_headers(self, headers, end_of_stream):
        if headers[":path"] != "/wait":
            return Action.CONTINUE
        try:
            await proxywasm.sleep(1000)
        finally:
            try:
                headers["x-late"] = "1"
            except proxywasm.StreamGone:
                proxywasm.log_info(f"stream {self.id} gone in finally")
            raise RuntimeError(f"cleanup of {self.id} failed")

    def on_response_headers(self, headers, end_of_stream):
        headers["x-served"] = "yes"
        return Action.CONTINUE


proxywasm.register(Cleanup)
'''


@pytest.mark.parametrize("mode", ["native", "wasm"])
def test_a_finally_that_raises_in_a_deleted_stream_is_logged_not_uncaught(plugin_source, built_plugin, mode: str) -> None:
    directory = plugin_source("cleanup", CLEANUP)
    with Emulator() as emulator:
        plugin = load(emulator, directory, mode, built_plugin)
        ended = plugin.http_stream()
        ended.send_request_headers([*REQUEST[:1], (":path", "/wait"), *REQUEST[2:]], end_of_stream=True)
        ended.complete()
        assert f"stream {ended.id} gone in finally" in plugin.logs.info
        errors = "\n".join(plugin.logs.error)
        assert f"cleanup of {ended.id} failed" in errors and "uncaught" not in errors, errors
        plugin.advance(1000)  # the closed task never wakes
        later = plugin.http_stream()
        later.send_request_headers(REQUEST, end_of_stream=True)
        later.send_response_headers([(":status", "200")], end_of_stream=True)
        assert later.downstream_response.headers["x-served"] == "yes"
        assert "\n".join(plugin.logs.error).count("cleanup of") == 1
