"""Every hostcall and every callback of a built module, with the bytes that cross.

One plugin (`TOUR`) is built to wasm and driven through the emulator with
``record_calls=True``, which keeps each callback and hostcall with the arguments the
emulator decoded from module memory. The test asserts what the module sent (names,
values, serialized maps), how it reacted to the host's answers (OK, NOT_FOUND, EMPTY,
CAS_MISMATCH, a gone stream), and that the run reached every ``proxy_*`` import and
every callback export the module has: a hostcall or callback added to the shim
without a test here fails `test_the_tour_reaches_every_import_and_export`.

The SDK's other tests check the same API natively (tests/sdk/conftest.py); this one
proves the built module's C shim and snapshot do the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from pwtool.emulator import CallRecord, Emulator, Plugin, Status, decode_pairs, encode_pairs

pytestmark = pytest.mark.slow

TOUR = r'''
import proxywasm
from proxywasm import Action, Counter, Gauge, Histogram, HttpContext, MapType, RootContext, SharedQueue
from proxywasm import GrpcStreamHandler, TcpContext, BufferType
from proxywasm import _hostcalls

REQUESTS = Counter("tour.requests")
LEVEL = Gauge("tour.level")
SIZES = Histogram("tour.sizes")
LONG_NAME = "x-" + "n" * 300  # longer than the shim's cached lookup takes: asks the host
FINISHED = []  # streams that have ended


class Events(GrpcStreamHandler):
    def on_initial_metadata(self, stream, metadata):
        proxywasm.log_info(f"grpc stream metadata {metadata.get('x-meta')}")

    def on_message(self, stream, message):
        proxywasm.log_info(f"grpc stream message {message!r}")
        stream.send(b"pong")

    def on_trailing_metadata(self, stream, metadata):
        proxywasm.log_info(f"grpc stream trailers {metadata.get('x-end')}")

    def on_close(self, stream, status, message):
        proxywasm.log_info(f"grpc stream closed {status} {message}")


class Stream(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        path = headers.get(":path")
        REQUESTS.with_tags(method=headers.get(":method")).inc()
        if path == "/local":
            self.send_local_response(403, "denied\n", {"x-why": "tour"}, grpc_status=7, details="tour_denied")
            return Action.PAUSE
        if path == "/close":
            self.close_request()
            return Action.PAUSE
        proxywasm.log_info(f"long header {headers.get(LONG_NAME)}")
        proxywasm.log_info(f"header map size {_hostcalls.get_header_map_size(MapType.HTTP_REQUEST_HEADERS)}")
        headers.add("x-tour", "1")
        proxywasm.set_property(["tour", "mark"], b"marked")
        proxywasm.log_info(f"property {proxywasm.get_property_str(['tour', 'mark'])}")
        self.clear_route_cache()
        if path == "/callout":
            self.dispatch_http_call("auth", {":path": "/check"}, b"question", {"x-trailer": "t"},
                                    timeout_ms=250, callback=self.answered)
            return Action.PAUSE
        return Action.CONTINUE

    def answered(self, response):
        proxywasm.log_info(f"callout {response.status} {response.body!r} {response.headers.get('x-answer')}")
        self.request_headers["x-answer"] = response.headers.get("x-answer")
        self.resume_request()

    def on_request_body(self, body, end_of_stream):
        return Action.PAUSE  # buffered until the trailers

    def on_request_trailers(self, trailers):
        buffered = self.request_body()
        proxywasm.log_info(f"body {len(buffered)} {buffered.read()!r}")
        buffered.replace(b"rewritten")
        trailers.replace_all([("x-trailer", "replaced"), ("x-more", "yes")])
        return Action.CONTINUE

    def on_response_headers(self, headers, end_of_stream):
        headers.remove("server")
        return Action.CONTINUE

    def on_response_body(self, body, end_of_stream):
        body.append(b"!")
        return Action.CONTINUE

    def on_response_trailers(self, trailers):
        trailers["x-status"] = "ok"
        return Action.CONTINUE

    def on_log(self):
        proxywasm.log_info(f"log {self.id}")
        FINISHED.append(self)

    def on_done(self):
        proxywasm.log_info(f"done {self.id}")
        return True


class Connection(TcpContext):
    def on_new_connection(self):
        proxywasm.log_info("connection")
        return Action.CONTINUE

    def on_downstream_data(self, data, end_of_stream):
        data.prepend(b">")
        return Action.CONTINUE

    def on_upstream_data(self, data, end_of_stream):
        data.append(b"<")
        return Action.CONTINUE

    def on_downstream_close(self, peer):
        proxywasm.log_info(f"downstream closed {int(peer)}")

    def on_upstream_close(self, peer):
        proxywasm.log_info(f"upstream closed {int(peer)}")


class Tour(RootContext):
    http_context = Stream
    tcp_context = Connection

    def on_vm_start(self, vm_configuration):
        proxywasm.log_info(f"vm start {vm_configuration!r}")
        return True

    def on_configure(self, configuration):
        proxywasm.log_info(f"configure {configuration!r}")
        self.set_tick_period(100)
        self.queue = SharedQueue.register("tour-queue")
        return True

    def on_tick(self):
        proxywasm.log_info(f"tick at {proxywasm.current_time_ns()} level {int(proxywasm.get_log_level())}")

    def on_queue_ready(self, queue_id):
        items = list(self.queue.drain())
        proxywasm.log_info(f"queue {items!r}")

    def on_foreign_function(self, function_id, arguments):
        getattr(self, "do_" + arguments.decode())()

    def do_shared(self):
        proxywasm.set_shared_data("tour-key", b"one")
        value, cas = proxywasm.get_shared_data("tour-key")
        try:
            proxywasm.set_shared_data("tour-key", b"stale", cas=cas + 1000)
        except proxywasm.CasMismatch as error:
            proxywasm.log_info(f"cas mismatch: {error}")
        proxywasm.update_shared_data("tour-key", lambda old: old + b"+two")
        proxywasm.log_info(f"shared {proxywasm.get_shared_data('tour-key')[0]!r} missing {proxywasm.get_shared_data('absent')!r}")

    def do_metrics(self):
        LEVEL.set(7)
        LEVEL.add(-2)
        SIZES.record(42)
        REQUESTS.inc(5)
        proxywasm.log_info(f"metrics {REQUESTS.get()} {LEVEL.get()}")

    def do_queue(self):
        queue = SharedQueue.resolve("tour-queue")
        queue.enqueue(b"item-1")

    def do_foreign(self):
        proxywasm.log_info(f"foreign {proxywasm.call_foreign_function('reverse', b'abc')!r}")

    def do_grpc(self):
        self.dispatch_grpc_call("grpc-cluster", "tour.Service", "Ask", b"hello", metadata={"x-md": "1"},
                                timeout_ms=300, callback=self.grpc_answered)
        stream = self.open_grpc_stream("grpc-cluster", "tour.Service", "Chat", Events(), metadata={"x-s": "2"})
        stream.send(b"ping")
        self.chat = stream

    def grpc_answered(self, response):
        proxywasm.log_info(f"grpc reply {response.status} {response.message!r}")

    def do_grpc_end(self):
        self.chat.close()
        second = self.open_grpc_stream("grpc-cluster", "tour.Service", "Other", Events())
        second.cancel()

    def do_failures(self):
        try:
            self.dispatch_http_call("nowhere", {":path": "/"}, timeout_ms=100)
        except proxywasm.ProxyWasmError as error:
            proxywasm.log_info(f"{type(error).__name__}: {error}")
        proxywasm.log_info(f"resume a finished stream: {FINISHED[0].resume_request()}")

    def do_finish(self):
        self.done()

    def on_done(self):
        proxywasm.log_info("root on_done: finishing later")
        return False


proxywasm.register(Tour)
'''

REQUEST = [(":method", "POST"), (":path", "/"), (":authority", "tour.example"), ("x-" + "n" * 300, "long-value")]


@pytest.fixture(scope="module")
def tour_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pwtool.emulator import build_plugin_cached

    directory = tmp_path_factory.mktemp("tour")
    (directory / "plugin.py").write_text(TOUR)
    (directory / "plugin.toml").write_text('name = "tour"\n')
    return build_plugin_cached(directory, tmp_path_factory.mktemp("tour-build"))


@pytest.fixture(scope="module")
def tour(tour_module: Path) -> Iterator[tuple[Emulator, Plugin]]:
    """The whole tour, run once; tests read what it recorded."""
    emulator = Emulator(record_calls=True, clusters=["auth", "grpc-cluster"])
    emulator.register_foreign_function("reverse", lambda data: data[::-1])
    with emulator:
        plugin = emulator.load(tour_module, config=b'{"a": 1}', vm_config=b"vm-cfg", root_id="")
        _drive(emulator, plugin)
        yield emulator, plugin


def _drive(emulator: Emulator, plugin: Plugin) -> None:
    full = plugin.http_stream()
    full.send_request_headers(REQUEST)
    full.send_request_body(b"part-", end_of_stream=False)
    full.send_request_body(b"two", end_of_stream=False)
    full.send_request_trailers([("x-trailer", "original")])
    full.send_response_headers([(":status", "200"), ("server", "upstream")])
    full.send_response_body(b"reply", end_of_stream=False)
    full.send_response_trailers([("x-upstream", "t")])

    callout = plugin.http_stream()
    callout.send_request_headers([(":method", "GET"), (":path", "/callout"), (":authority", "a")], end_of_stream=True)
    call = plugin.pending_http_calls[-1]
    call.respond(200, {"x-answer": "yes"}, b"answer-body")
    callout.send_response(200)

    plugin.http_stream().send_request_headers([(":method", "GET"), (":path", "/local")], end_of_stream=True)
    closed = plugin.http_stream()
    closed.send_request_headers([(":method", "GET"), (":path", "/close")], end_of_stream=True)

    connection = plugin.tcp_stream()
    connection.send_downstream_data(b"up")
    connection.send_upstream_data(b"down")
    connection.close_upstream()
    connection.close_downstream()

    emulator.tick(100)
    for command in (b"shared", b"metrics", b"queue", b"foreign", b"grpc"):
        plugin.call_foreign(0, command)
    emulator.pending_grpc_calls[-1].respond(b"answer")
    chat = emulator.grpc_streams[-1]
    chat.send_initial_metadata({"x-meta": "m"})
    chat.send(b"first")
    chat.send_trailing_metadata({"x-end": "e"})
    plugin.call_foreign(0, b"grpc_end")
    chat.close(0, "bye")
    plugin.call_foreign(0, b"failures")
    plugin.shutdown()
    plugin.call_foreign(0, b"finish")


def hostcalls(emulator: Emulator, name: str) -> list[CallRecord]:
    return [c for c in emulator.calls if c.kind == "hostcall" and c.name == "proxy_" + name]


def only(emulator: Emulator, name: str) -> CallRecord:
    found = hostcalls(emulator, name)
    assert len(found) == 1, (name, found)
    return found[0]


def callback_names(emulator: Emulator) -> set[str]:
    return {c.name for c in emulator.calls if c.kind == "callback"}


def test_the_tour_reaches_every_import_and_export(tour: tuple[Emulator, Plugin], tour_module: Path) -> None:
    emulator, _ = tour
    module = wasmtime.Module(wasmtime.Engine(), tour_module.read_bytes())
    imports = {i.name for i in module.imports if i.module == "env" and (i.name or "").startswith("proxy_")}
    exports = {e.name for e in module.exports if e.name.startswith("proxy_on_")} - {"proxy_on_memory_allocate"}
    made = {c.name for c in emulator.calls if c.kind == "hostcall"}
    assert len(imports) >= 39 and imports <= made, f"imports never called: {sorted(imports - made)}"
    assert len(exports) >= 25 and exports <= callback_names(emulator), \
        f"callbacks never called: {sorted(exports - callback_names(emulator))}"
    errors = [c for c in emulator.calls if c.status != 0]
    assert [(c.name, Status(c.status)) for c in errors] == [
        ("proxy_get_header_map_value", Status.NOT_FOUND),  # the long header, absent from the callout stream
        ("proxy_set_shared_data", Status.CAS_MISMATCH),
        ("proxy_get_shared_data", Status.NOT_FOUND),
        ("proxy_dequeue_shared_queue", Status.EMPTY),
        ("proxy_http_call", Status.BAD_ARGUMENT),
    ]
    assert not emulator.logs.error and not emulator.logs.warn


def test_start_up_reads_both_configurations(tour: tuple[Emulator, Plugin]) -> None:
    emulator, plugin = tour
    start = [c for c in emulator.calls if c.name in ("proxy_on_vm_start", "proxy_on_configure")]
    assert [(c.name, c.args[1], c.result) for c in start] == [("proxy_on_vm_start", 6, 1), ("proxy_on_configure", 8, 1)]
    reads = hostcalls(emulator, "get_buffer_bytes")[:2]
    assert [(c.args, c.result) for c in reads] == [((6, 0, 6), b"vm-cfg"), ((7, 0, 8), b'{"a": 1}')]
    assert "vm start b'vm-cfg'" in plugin.logs.info and "configure b'{\"a\": 1}'" in plugin.logs.info
    assert only(emulator, "set_tick_period_milliseconds").args == (100,)
    assert only(emulator, "register_shared_queue").args == (b"tour-queue",)


def test_headers_bodies_and_trailers(tour: tuple[Emulator, Plugin]) -> None:
    emulator, plugin = tour
    pairs = hostcalls(emulator, "get_header_map_pairs")[0]
    assert pairs.args == (0,) and decode_pairs(pairs.result)[:3] == [(b":method", b"POST"), (b":path", b"/"),
                                                                       (b":authority", b"tour.example")]
    long_lookup = hostcalls(emulator, "get_header_map_value")[0]
    assert long_lookup.args == (0, ("x-" + "n" * 300).encode()) and long_lookup.result == b"long-value"
    size = hostcalls(emulator, "get_header_map_size")[0]  # Envoy's byteSize(): names and values
    assert size.args == (0,) and size.result == sum(len(k) + len(v) for k, v in decode_pairs(pairs.result))
    assert hostcalls(emulator, "add_header_map_value")[0].args == (0, b"x-tour", b"1")
    assert hostcalls(emulator, "define_metric")[0].args == (0, b"tour.requests.method=POST")
    assert only(emulator, "get_buffer_status").args == (0,)
    assert hostcalls(emulator, "get_buffer_bytes")[2].args == (0, 0, 8)
    assert "body 8 b'part-two'" in plugin.logs.info
    assert hostcalls(emulator, "set_buffer_bytes")[0].args == (0, 0, 8, b"rewritten")
    trailers = only(emulator, "set_header_map_pairs")
    assert trailers.args[0] == 1 and decode_pairs(trailers.args[1]) == [(b"x-trailer", b"replaced"), (b"x-more", b"yes")]
    assert hostcalls(emulator, "remove_header_map_value")[0].args == (2, b"server")
    assert hostcalls(emulator, "set_buffer_bytes")[1].args == (1, 5, 0, b"!")
    assert hostcalls(emulator, "replace_header_map_value")[0].args == (3, b"x-status", b"ok")
    assert hostcalls(emulator, "set_property")[0].args == (b"tour\0mark", b"marked")
    assert hostcalls(emulator, "get_property")[0].args == (b"tour\0mark",)
    assert hostcalls(emulator, "call_foreign_function")[0].args == (b"clear_route_cache", b"")
    # The stream's callbacks, in order, with the host's counts and sizes.
    stream = [(c.name[len("proxy_on_"):], c.args[1:]) for c in emulator.calls
              if c.kind == "callback" and c.args[0] == 2]
    assert stream == [("context_create", (1,)), ("request_headers", (4, 0)), ("request_body", (5, 0)),
                      ("request_body", (8, 0)), ("request_trailers", (1,)), ("response_headers", (2, 0)),
                      ("response_body", (5, 0)), ("response_trailers", (1,)), ("log", ()), ("done", ()),
                      ("delete", ())]


def test_callout_resumes_its_stream(tour: tuple[Emulator, Plugin]) -> None:
    emulator, plugin = tour
    call = hostcalls(emulator, "http_call")[0]
    upstream, headers, body, trailers, timeout = call.args
    assert (upstream, body, decode_pairs(trailers), timeout) == (b"auth", b"question", [(b"x-trailer", b"t")], 250)
    assert (b":path", b"/check") in decode_pairs(headers) and (b":method", b"POST") in decode_pairs(headers)
    answer = [c for c in emulator.calls if c.name == "proxy_on_http_call_response"]
    assert [c.args for c in answer] == [(1, call.result, 2, len(b"answer-body"), 0)]
    after = emulator.calls[emulator.calls.index(answer[0]) + 1:]
    names = [(c.name, c.args) for c in after[:6]]
    assert names == [("proxy_get_header_map_pairs", (6,)), ("proxy_get_buffer_bytes", (4, 0, 11)),
                     ("proxy_log", (2, b"callout 200 b'answer-body' yes")), ("proxy_set_effective_context", (3,)),
                     ("proxy_replace_header_map_value", (0, b"x-answer", b"yes")), ("proxy_continue_stream", (0,))]


def test_local_response_close_and_a_finished_stream(tour: tuple[Emulator, Plugin]) -> None:
    emulator, plugin = tour
    local = only(emulator, "send_local_response")
    status, details, body, headers, grpc_status = local.args
    assert (status, details, body, decode_pairs(headers), grpc_status) == \
        (403, b"tour_denied", b"denied\n", [(b"x-why", b"tour")], 7)
    assert only(emulator, "close_stream").args == (0,)
    assert "resume a finished stream: False" in plugin.logs.info
    bad = [m for m in plugin.logs.info if m.startswith("BadArgument: proxy_http_call(upstream=b'nowhere'")]
    assert bad and bad[0].endswith("timeout_ms=100) failed: BAD_ARGUMENT")


def test_tcp_data_and_closes(tour: tuple[Emulator, Plugin]) -> None:
    emulator, plugin = tour
    writes = hostcalls(emulator, "set_buffer_bytes")
    assert (2, 0, 0, b">") in [c.args for c in writes] and (3, 4, 0, b"<") in [c.args for c in writes]
    closes = [(c.name, c.args) for c in emulator.calls if c.name.endswith("connection_close")]
    assert closes == [("proxy_on_upstream_connection_close", (6, 2)), ("proxy_on_downstream_connection_close", (6, 2))]
    assert "upstream closed 2" in plugin.logs.info and "downstream closed 2" in plugin.logs.info


def test_root_services(tour: tuple[Emulator, Plugin]) -> None:
    emulator, plugin = tour
    # The plugin's own read (the SDK also reads the clock when the tick period is set).
    assert hostcalls(emulator, "get_current_time_nanoseconds")[-1].result == emulator.now_ns
    assert only(emulator, "get_log_level").result == 0
    shared = [(c.args, c.result, c.status) for c in emulator.calls if "shared_data" in c.name]
    assert shared == [((b"tour-key", b"one", 0), None, 0), ((b"tour-key",), (b"one", 1), 0),
                      ((b"tour-key", b"stale", 1001), None, Status.CAS_MISMATCH), ((b"tour-key",), (b"one", 1), 0),
                      ((b"tour-key", b"one+two", 1), None, 0), ((b"tour-key",), (b"one+two", 2), 0),
                      ((b"absent",), None, Status.NOT_FOUND)]
    assert any(m.startswith("cas mismatch: proxy_set_shared_data(key=b'tour-key'") for m in plugin.logs.info)
    defined = {c.args[1]: (c.args[0], c.result) for c in hostcalls(emulator, "define_metric")}
    level, sizes, total = defined[b"tour.level"][1], defined[b"tour.sizes"][1], defined[b"tour.requests"][1]
    assert [c.args for c in hostcalls(emulator, "record_metric")] == [(level, 7), (sizes, 42)]
    assert (level, -2) in [c.args for c in hostcalls(emulator, "increment_metric")]
    assert [(c.args, c.result) for c in hostcalls(emulator, "get_metric")] == [((total,), 5), ((level,), 5)]
    queue = only(emulator, "register_shared_queue").result
    assert only(emulator, "resolve_shared_queue").args == (b"", b"tour-queue")
    assert only(emulator, "enqueue_shared_queue").args == (queue, b"item-1")
    assert [(c.result, c.status) for c in hostcalls(emulator, "dequeue_shared_queue")] == \
        [(b"item-1", 0), (None, Status.EMPTY)]
    assert "queue [b'item-1']" in plugin.logs.info
    assert hostcalls(emulator, "call_foreign_function")[-1].args == (b"reverse", b"abc")
    assert "foreign b'cba'" in plugin.logs.info


def test_grpc_calls_and_streams(tour: tuple[Emulator, Plugin]) -> None:
    emulator, plugin = tour
    call = only(emulator, "grpc_call")
    upstream, service, method, metadata, message, timeout = call.args
    # The cluster goes as a serialized GrpcService {envoy_grpc {cluster_name}}: Envoy parses
    # a bare name as one first, and some names parse into a GrpcService it aborts on.
    target = b"\n\x0e\n\x0cgrpc-cluster"
    assert (upstream, service, method, decode_pairs(metadata), message, timeout) == \
        (target, b"tour.Service", b"Ask", [(b"x-md", b"1")], b"hello", 300)
    chat, other = hostcalls(emulator, "grpc_stream")
    assert chat.args == (target, b"tour.Service", b"Chat", encode_metadata({"x-s": "2"}))
    assert [c.args for c in hostcalls(emulator, "grpc_send")] == [(chat.result, b"ping", 0), (chat.result, b"pong", 0)]
    assert only(emulator, "grpc_close").args == (chat.result,)
    assert only(emulator, "grpc_cancel").args == (other.result,)
    assert "grpc reply 0 b'answer'" in plugin.logs.info
    assert ["grpc stream metadata m", "grpc stream message b'first'", "grpc stream trailers e",
            "grpc stream closed 0 bye"] == [m for m in plugin.logs.info if m.startswith("grpc stream")]
    assert only(emulator, "get_status").result == (0, b"bye")


def test_root_finishes_later_with_done(tour: tuple[Emulator, Plugin]) -> None:
    emulator, plugin = tour
    root_calls = [(c.name, c.result) for c in emulator.calls if c.kind == "callback" and c.args[0] == 1]
    assert root_calls[-3:] == [("proxy_on_done", 0), ("proxy_on_foreign_function", 0), ("proxy_on_delete", 0)]
    assert only(emulator, "done").status == 0
    assert plugin.done


def encode_metadata(pairs: dict[str, str]) -> bytes:
    return encode_pairs([(k.encode(), v.encode()) for k, v in pairs.items()])
