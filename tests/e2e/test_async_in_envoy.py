"""The SDK's async features in real Envoy 1.40 (V8): HTTP callouts, gRPC calls and
sleeps awaited in stream callbacks, and streams resumed from another context.

Envoy must never crash or hang because of the module: a failed or timed-out callout
raises a typed exception at the ``await``; an exception that escapes becomes a logged
traceback and a 500; a stream that went away while its callback waited is dropped
quietly, without a crash, log spam or memory that grows per request.

One plugin holds every case; the request header ``x-case`` picks it. One Envoy serves
them all, with one worker, so every request runs in the same VM.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2etools import Answer, Service, cluster, fetch, wait_for

from pwtool.envoy import Envoy, Request, free_port

pytestmark = pytest.mark.envoy

PLUGIN = '''
"""Awaits what the request header x-case names, and answers with what happened."""

import gc
import json

import proxywasm
from proxywasm import Action, HttpContext, ProxyWasmError, RootContext, sleep

COUNTS = {"finally": 0, "late": 0, "woke": 0}
PARKED = {}


class Stream(HttpContext):
    def __init__(self):
        self.case = ""

    def report(self, http_status, **fields):
        self.send_local_response(http_status, json.dumps(fields), {"content-type": "application/json"})
        return Action.PAUSE

    async def on_request_headers(self, headers, end_of_stream):
        self.case = case = headers.get("x-case") or ""
        if case == "raise":  # an exception the plugin does not catch: fails closed
            await self.http_call("svc", {":path": "/slow"}, timeout_ms=100)
        try:
            return await self.run(case, headers)
        except ProxyWasmError as error:
            return self.report(299, error=type(error).__name__, message=str(error),
                               code=getattr(error, "status", None))

    async def run(self, case, headers):
        if case == "stats":
            gc.collect()
            dispatcher = self._dispatcher
            return self.report(200, objects=len(gc.get_objects()), counts=COUNTS, parked=len(PARKED),
                               http_calls=len(dispatcher._http_calls), grpc_calls=len(dispatcher._grpc_calls),
                               grpc_streams=len(dispatcher._grpc_streams))
        if case == "call":
            response = await self.http_call(headers.get("x-cluster"), {":path": headers.get("x-path") or "/"},
                                            timeout_ms=int(headers.get("x-timeout") or 5000))
            return self.report(200, status=response.status, size=len(response.body), failed=response.failed,
                               body=response.body[:100].decode())
        if case == "hang":  # the client goes away while this waits
            try:
                await self.http_call("svc", {":path": "/hang"})
            finally:
                COUNTS["finally"] += 1
            COUNTS["late"] += 1
        if case == "sequential":
            first = await self.http_call("svc", {":path": "/ok/1"})
            second = await self.http_call("svc", {":path": "/ok/2"})
            headers["x-first"] = first.text()
            headers["x-second"] = second.text()
            return Action.CONTINUE
        if case == "grpc":
            reply = await self.grpc_call(headers.get("x-cluster"), headers.get("x-service") or "pkg.Absent", "Call",
                                         b"x", timeout_ms=int(headers.get("x-timeout") or 2000))
            return self.report(200, reply=reply.decode())
        if case == "grpc-hang":
            try:
                await self.grpc_call("h2", "pkg.Slow", "Call", b"x", timeout_ms=3000)
            finally:
                COUNTS["finally"] += 1
        if case == "grpc-stream-cancel":
            stream = self.open_grpc_stream("h2", "pkg.Svc", "Watch")
            stream.cancel()
            message = await stream.receive()
            return self.report(200, received=repr(message), closed=stream.closed)
        if case == "grpc-stream":  # the server closes it with an error status
            stream = self.open_grpc_stream("h2", headers.get("x-service") or "pkg.Absent", "Watch")
            try:
                stream.send(b"x", end_stream=True)
                await stream.receive()
            finally:
                COUNTS["finally"] += 1
                COUNTS["ended"] = [stream.cancel(), stream.close()]  # both too late: False
        if case == "grpc-stream-left":  # the client leaves; nothing ends the stream
            self.open_grpc_stream("h2", "pkg.Slow", "Watch").send(b"x")
            await sleep(10_000)
        if case == "sleep":
            wake_at = int(headers.get("x-wake-at"))
            await sleep(max(0, wake_at - proxywasm.current_time_ns() // 1_000_000))
            COUNTS["woke"] += 1
            return self.report(200, order=COUNTS["woke"], late_ms=proxywasm.current_time_ns() // 1_000_000 - wake_at)
        if case == "sleep-hang":
            try:
                await sleep(300)
            finally:
                COUNTS["finally"] += 1
        if case == "park":  # paused until another request resumes it
            PARKED[headers.get("x-key")] = self
            return Action.PAUSE
        if case == "park-going":  # not paused: goes upstream at once
            PARKED[headers.get("x-key")] = self
            return Action.CONTINUE
        if case == "resume":
            other = PARKED.pop(headers.get("x-key"))
            resumed = other.resume_request()
            again = other.resume_request()
            try:
                other.send_local_response(200, "late")
                sent = "sent"
            except ProxyWasmError as error:
                sent = type(error).__name__
            return self.report(200, resumed=resumed, again=again, alive=other.alive, local_response=sent)
        return Action.CONTINUE

    async def on_request_body(self, body, end_of_stream):
        if self.case != "body":
            return Action.CONTINUE
        if not end_of_stream:
            return Action.PAUSE  # Envoy buffers
        answer = await self.http_call("svc", {":path": "/ok/body"}, body=bytes(body))
        body.replace(answer.body[4:].upper())  # the same size: content-length holds
        return Action.CONTINUE

    async def on_response_headers(self, headers, end_of_stream):
        if self.case == "response":
            answer = await self.http_call("svc", {":path": "/ok/response"})
            headers["x-callout"] = answer.text()
        return Action.CONTINUE


class Root(RootContext):
    http_context = Stream


proxywasm.register(Root)
'''


def _upstream(request: Request) -> tuple[int, dict[str, str], bytes]:
    """The callout service: the path picks the answer."""
    if request.path.startswith("/slow"):
        time.sleep(1.5)
    elif request.path == "/hang":
        time.sleep(0.6)
    elif request.path == "/big":
        return 200, {}, b"b" * (5 << 20)
    elif request.path == "/503":
        return 503, {}, b"busy"
    elif request.path.startswith("/ok/"):
        return 200, {}, request.path[4:].encode() + request.body
    return 200, {}, b"ok"


class Served:
    """The one Envoy of these tests, with helpers to talk to it."""

    def __init__(self, envoy: Envoy, listen: int, service: Service) -> None:
        self.envoy = envoy
        self.listen = listen
        self.service = service

    def get(self, case: str, data: bytes | None = None, **headers: str) -> Answer:
        sent = {"x-case": case, **{name.replace("_", "-"): value for name, value in headers.items()}}
        return fetch(f"http://127.0.0.1:{self.listen}/", headers=sent, data=data)

    def report(self, case: str, **headers: str) -> dict[str, Any]:
        answer = self.get(case, **headers)
        assert answer.status in (200, 299), (answer.status, answer.body[:300])
        return json.loads(answer.body)  # type: ignore[no-any-return]

    def abandon(self, case: str, count: int, wait: float, **headers: str) -> None:
        """Send `count` requests with ``x-case: case``, then hang up after `wait` s."""
        extra = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
        connections = []
        for _ in range(count):
            connection = socket.create_connection(("127.0.0.1", self.listen), timeout=15)
            connection.sendall(f"GET / HTTP/1.1\r\nhost: x\r\nx-case: {case}\r\n{extra}\r\n".encode())
            connections.append(connection)
        time.sleep(wait)
        for connection in connections:
            connection.close()

    def errors_since(self, offset: int) -> list[str]:
        return [line for line in self.envoy.log_text()[offset:].splitlines()
                if "[error]" in line or "[critical]" in line or "Traceback" in line]

    def assert_still_serving(self) -> None:
        assert self.get("none").status == 200


@pytest.fixture(scope="module")
def served(built_plugin: Callable[[Path], Path], plugin_source: Callable[..., Path]) -> Iterator[Served]:
    wasm = built_plugin(plugin_source("asyncs", PLUGIN))
    listen, admin = free_port(), free_port()
    with Service(_upstream) as service, Envoy(_bootstrap(wasm, listen, admin, service.address),
                                              admin_port=admin) as envoy:
        yield Served(envoy, listen, service)


def _bootstrap(wasm: Path, listen: int, admin: int, service: str) -> dict[str, Any]:
    from pwtool.manifests import bootstrap, http_filter, plugin_config

    plugin = plugin_config(name="asyncs", root_id="", wasm_file=wasm)
    h2_port = free_port()
    h2 = cluster("h2", f"127.0.0.1:{h2_port}")  # Envoy's own second listener, speaking HTTP/2
    h2["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        "explicit_http_config": {"http2_protocol_options": {}}}}
    clusters = [cluster("svc", service), cluster("refused", f"127.0.0.1:{free_port()}"), h2]
    config = bootstrap(http_filters=[http_filter(plugin)], clusters=clusters, listen_port=listen,
                       admin_port=admin, upstream=service)
    # The gRPC server: no route but /pkg.Slow/ (answered late), so any other service is absent.
    grpc_listener = json.loads(json.dumps(config["static_resources"]["listeners"][0]))
    grpc_listener["name"] = "grpc"
    grpc_listener["address"]["socket_address"]["port_value"] = h2_port
    manager = grpc_listener["filter_chains"][0]["filters"][0]["typed_config"]
    manager["http_filters"] = [f for f in manager["http_filters"] if "router" in f["name"]]
    manager["route_config"] = {"virtual_hosts": [{"name": "grpc", "domains": ["*"], "routes": [
        {"match": {"prefix": "/pkg.Slow/"}, "route": {"cluster": "svc", "prefix_rewrite": "/slow"}}]}]}
    config["static_resources"]["listeners"].append(grpc_listener)
    return config


def _error(report: dict[str, Any]) -> tuple[str, Any]:
    return report.get("error", ""), report.get("code")


# -- 1. awaited HTTP callouts ------------------------------------------------------------


def test_a_callout_to_an_unknown_cluster_raises_bad_argument_at_the_call(served: Served) -> None:
    assert _error(served.report("call", x_cluster="nowhere")) == ("BadArgument", 2)
    served.assert_still_serving()


def test_a_refused_connection_raises_http_call_failed(served: Served) -> None:
    report = served.report("call", x_cluster="refused")
    assert report["error"] == "HttpCallFailed", report
    assert "upstream connect error" in report["message"]


def test_a_slow_upstream_raises_http_call_timeout_at_the_timeout(served: Served) -> None:
    started = time.monotonic()
    report = served.report("call", x_cluster="svc", x_path="/slow", x_timeout="300")
    assert report["error"] == "HttpCallTimeout", report
    assert 0.25 < time.monotonic() - started < 1.4  # not the upstream's 1.5 s


def test_an_uncaught_callout_failure_fails_closed_with_a_traceback(served: Served) -> None:
    offset = len(served.envoy.log_text())
    answer = served.get("raise")
    assert (answer.status, answer.body) == (500, b"plugin error\n")
    log = wait_for(lambda: (text := served.envoy.log_text()[offset:]) and "HttpCallTimeout" in text and text,
                   what="the traceback")
    assert "Traceback (most recent call last)" in log and "exception in Stream async callback" in log
    served.assert_still_serving()


def test_a_5_mb_answer_and_a_503_answer_are_answers(served: Served) -> None:
    big = served.report("call", x_cluster="svc", x_path="/big")
    assert (big["status"], big["size"], big["failed"]) == (200, 5 << 20, False)
    busy = served.report("call", x_cluster="svc", x_path="/503")
    assert (busy["status"], busy["body"], busy["failed"]) == (503, "busy", False)


def test_clients_that_hang_up_during_a_callout_leave_nothing_behind(served: Served) -> None:
    baseline = served.report("stats")
    offset = len(served.envoy.log_text())
    for _ in range(4):
        served.abandon("hang", 50, 0.15)
    # Every coroutine was closed when its stream ended (its finally ran, nothing after
    # the await did), and the late answers were dropped.
    after = wait_for(lambda: (r := served.report("stats"))["http_calls"] == 0 and r, what="late answers")
    assert after["counts"]["finally"] - baseline["counts"]["finally"] == 200
    assert after["counts"]["late"] == 0
    assert after["objects"] - baseline["objects"] < 50, (baseline, after)
    assert served.errors_since(offset) == []
    served.assert_still_serving()


# -- 2. awaits in other callbacks ------------------------------------------------------------


def test_sequential_awaits_and_awaits_in_body_and_response_callbacks(served: Served) -> None:
    answer = served.get("sequential")
    seen = [request for request in served.service.requests if request.path == "/"]
    assert answer.status == 200 and seen[-1].headers["x-first"] == "1" and seen[-1].headers["x-second"] == "2"
    answer = served.get("response")
    assert answer.status == 200 and answer.headers["x-callout"] == "response"
    body = b"z" * (256 << 10)  # several body callbacks, buffered while the callout runs
    answer = served.get("body", data=body)
    assert answer.status == 200 and answer.body == b"ok"
    assert served.service.requests[-1].body == body.upper()


# -- 3. gRPC ------------------------------------------------------------------------------------


@pytest.mark.parametrize("upstream, service, status", [
    ("h2", "pkg.Absent", 12),  # UNIMPLEMENTED: the server has no such service
    ("svc", "pkg.Absent", 13),  # INTERNAL: an HTTP/1 upstream cannot speak gRPC
])
def test_a_failed_grpc_call_raises_grpc_call_error_with_the_status(
        served: Served, upstream: str, service: str, status: int) -> None:
    assert _error(served.report("grpc", x_cluster=upstream, x_service=service)) == ("GrpcCallError", status)


def test_a_grpc_call_past_its_timeout_raises_grpc_call_timeout(served: Served) -> None:
    started = time.monotonic()
    report = served.report("grpc", x_cluster="h2", x_service="pkg.Slow", x_timeout="200")
    # Envoy closes it with UNAVAILABLE (not DEADLINE_EXCEEDED) and its 504's message.
    assert _error(report) == ("GrpcCallTimeout", 14)
    assert "upstream request timeout" in report["message"]
    assert time.monotonic() - started < 1.4
    report = served.report("grpc", x_cluster="refused", x_service="pkg.Slow")
    assert _error(report) == ("GrpcCallError", 14) and "upstream connect error" in report["message"]


def test_a_grpc_cluster_name_that_parses_as_a_grpc_service_does_not_crash_envoy(served: Served) -> None:
    # Envoy parses the target as a GrpcService first: "h2" and "h3" parse as one with
    # no target, which aborted Envoy ("panic: unset oneof") when sent as bare names.
    assert _error(served.report("grpc", x_cluster="h3")) == ("InternalFailure", 10)  # no such cluster
    assert _error(served.report("grpc", x_cluster="nowhere")) == ("InternalFailure", 10)
    served.assert_still_serving()


def test_grpc_streams_end_quietly(served: Served) -> None:
    # Closed by the server with an error: receive() raises; cancel()/close() then say False.
    assert _error(served.report("grpc-stream")) == ("GrpcCallError", 12)
    assert served.report("stats")["counts"]["ended"] == [False, False]
    cancelled = served.report("grpc-stream-cancel")
    assert cancelled == {"received": "None", "closed": True}
    # The client hangs up while a stream is open: the finally that cancels it is quiet.
    baseline = served.report("stats")
    offset = len(served.envoy.log_text())
    served.abandon("grpc-stream", 5, 0.3, x_service="pkg.Slow")
    after = wait_for(lambda: (r := served.report("stats"))["counts"]["finally"] - baseline["counts"]["finally"] == 5
                     and r, what="the finally blocks")
    assert after["grpc_streams"] == 0 and after["counts"]["ended"] == [False, False]
    # Streams left open by contexts that are gone: their late events are dropped.
    served.abandon("grpc-stream-left", 5, 0.3)
    wait_for(lambda: served.report("stats")["grpc_streams"] == 0, what="the streams to end")
    assert served.errors_since(offset) == []
    served.assert_still_serving()


def test_clients_that_hang_up_during_a_grpc_call_leave_nothing_behind(served: Served) -> None:
    baseline = served.report("stats")
    offset = len(served.envoy.log_text())
    served.abandon("grpc-hang", 10, 0.3)
    after = wait_for(lambda: (r := served.report("stats"))["grpc_calls"] == 0 and r, what="late gRPC answers")
    assert after["counts"]["finally"] - baseline["counts"]["finally"] == 10
    assert served.errors_since(offset) == []


# -- 4. sleep -----------------------------------------------------------------------------------


def test_fifty_concurrent_sleepers_all_wake_in_deadline_order(served: Served) -> None:
    base = int(time.time() * 1000) + 1200
    waits = list(range(50))
    answers: dict[int, Answer] = {}

    def sleeper(index: int) -> None:
        answers[index] = served.get("sleep", x_wake_at=str(base + 15 * index))

    threads = [threading.Thread(target=sleeper, args=(index,)) for index in reversed(waits)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(answers) == waits and all(answer.status == 200 for answer in answers.values())
    reports = {index: json.loads(answer.body) for index, answer in answers.items()}
    woken = sorted(waits, key=lambda index: reports[index]["order"])
    assert woken == waits
    assert all(0 <= report["late_ms"] < 1000 for report in reports.values()), reports


def test_a_client_that_hangs_up_during_a_sleep(served: Served) -> None:
    baseline = served.report("stats")
    offset = len(served.envoy.log_text())
    served.abandon("sleep-hang", 10, 0.1)
    after = wait_for(lambda: (r := served.report("stats"))["counts"]["finally"] - baseline["counts"]["finally"] == 10
                     and r, what="the finally blocks")
    assert after["counts"]["woke"] == baseline["counts"]["woke"]
    time.sleep(0.4)  # past the sleepers' deadline: nothing wakes up for them
    assert served.report("stats")["counts"]["woke"] == baseline["counts"]["woke"]
    assert served.errors_since(offset) == []
    served.assert_still_serving()


# -- 5. resuming a stream from another context ----------------------------------------------------


def test_resuming_a_parked_stream_from_another_request(served: Served) -> None:
    parked: dict[str, Answer] = {}
    thread = threading.Thread(target=lambda: parked.setdefault("answer", served.get("park", x_key="alive")))
    thread.start()
    wait_for(lambda: served.report("stats")["parked"], what="the parked request")
    report = served.report("resume", x_key="alive")
    thread.join(10)
    assert report == {"resumed": True, "again": True, "alive": True, "local_response": "sent"}
    assert (parked["answer"].status, parked["answer"].body) == (200, b"late")


def test_resuming_a_stream_that_is_gone_says_so(served: Served) -> None:
    offset = len(served.envoy.log_text())
    served.abandon("park", 1, 0.3, x_key="gone")
    time.sleep(0.2)
    report = served.report("resume", x_key="gone")
    assert report == {"resumed": False, "again": False, "alive": False, "local_response": "StreamGone"}
    assert served.errors_since(offset) == []
    served.assert_still_serving()
