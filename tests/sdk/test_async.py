"""Callouts, gRPC and timers, with callbacks and with await; resuming streams."""

from __future__ import annotations

import json

import proxywasm
import pytest
from proxywasm import Action
from pwtool.emulator import Action as HostAction

REQUEST = {":method": "GET", ":path": "/p", ":authority": "h"}


def test_http_call_with_callback(probe) -> None:
    responses = []

    def on_request_headers(ctx, headers, eos):
        def done(response):
            responses.append(response)
            ctx.resume_request()

        ctx.dispatch_http_call("cluster", {":path": "/x"}, "payload", {"tr": "1"}, timeout_ms=200, callback=done)
        return Action.PAUSE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    assert stream.send_request_headers(REQUEST, end_of_stream=True) == HostAction.PAUSE
    (call,) = probe.pending_http_calls
    assert (call.upstream, call.method, call.path, call.authority, call.body, call.timeout_ms) == (
        "cluster", "POST", "/x", "cluster", b"payload", 200
    )
    assert call.trailers["tr"] == "1"
    call.respond(201, {"h": "v"}, "body", {"t": "w"})
    (response,) = responses
    assert (response.status, response.headers["h"], response.body, response.trailers["t"]) == (201, "v", b"body", "w")
    assert not response.failed and not response.timed_out
    assert not stream.request_paused


def test_await_http_call_resumes_stream(probe) -> None:
    async def on_request_headers(ctx, headers, eos):
        response = await ctx.http_call("cluster", {":path": "/auth"})
        headers["x-status"] = str(response.status)
        headers["x-body"] = response.text()
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    assert stream.send_request_headers(REQUEST, end_of_stream=True) == HostAction.PAUSE
    assert stream.request_paused
    probe.pending_http_calls[0].respond(200, body="ok")
    assert not stream.request_paused
    assert stream.upstream_request.headers["x-status"] == "200"
    assert stream.upstream_request.headers["x-body"] == "ok"


def test_await_failures_raise_typed_exceptions(probe) -> None:
    caught = []

    async def on_request_headers(ctx, headers, eos):
        try:
            await ctx.http_call("cluster", timeout_ms=100)
        except proxywasm.HttpCallFailed as error:
            caught.append(type(error).__name__)
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    first = probe.http_stream()
    first.send_request_headers(REQUEST, end_of_stream=True)
    probe.pending_http_calls[0].fail()
    second = probe.http_stream()
    second.send_request_headers(REQUEST, end_of_stream=True)
    probe.advance(100)
    assert caught == ["HttpCallFailed", "HttpCallTimeout"]
    assert not first.request_paused and not second.request_paused


def test_envoys_own_503_for_an_unreachable_upstream_is_a_failure(probe) -> None:
    """Envoy 1.40 answers a callout to a refused connection with its own 503 (seen in tests/e2e)."""
    caught = []

    async def on_request_headers(ctx, headers, eos):
        try:
            response = await ctx.http_call("cluster", timeout_ms=100)
            caught.append(response.status)
        except proxywasm.HttpCallFailed as error:
            caught.append(str(error))
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    refused = (b"upstream connect error or disconnect/reset before headers. reset reason: remote connection "
               b"failure, transport failure reason: delayed connect error: Connection refused")
    for status, body in [(503, refused), (503, b"no healthy upstream"), (503, b"the service's own 503")]:
        probe.http_stream().send_request_headers(REQUEST, end_of_stream=True)
        probe.pending_http_calls[-1].respond(status, body=body)
    assert "Connection refused" in caught[0]
    assert "no healthy upstream" in caught[1]
    assert caught[2] == 503  # an answer from the service itself is not a failure


def test_uncaught_callout_failure_fails_closed(probe) -> None:
    async def on_request_headers(ctx, headers, eos):
        await ctx.http_call("cluster")
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    probe.pending_http_calls[0].fail()
    assert stream.local_response.status == 500
    assert stream.local_response.details == "python_plugin_exception"
    assert any("HttpCallFailed" in line and "Traceback" in line for line in probe.logs.error)


def test_async_callout_callback_that_raises_fails_its_stream_closed(probe) -> None:
    """An ``async`` callout callback that raises (at once or after an await) fails its
    stream like a plain callback that raises: logged, then a 500, not a stream left paused."""
    failing = {"at_once": None, "after_await": None}

    def on_request_headers(ctx, headers, eos):
        async def at_once(response):
            raise ValueError("bad answer, at once")

        async def after_await(response):
            await proxywasm.sleep(5)
            raise ValueError("bad answer, after a sleep")

        callback = at_once if headers[":path"] == "/at_once" else after_await
        ctx.dispatch_http_call("cluster", {":path": "/x"}, callback=callback)
        return Action.PAUSE

    probe.hooks["on_request_headers"] = on_request_headers
    for path in failing:
        stream = probe.http_stream()
        stream.send_request_headers({**REQUEST, ":path": f"/{path}"}, end_of_stream=True)
        probe.pending_http_calls[0].respond(200)
        probe.advance(5)
        failing[path] = stream
    for path, stream in failing.items():
        assert stream.local_response is not None and stream.local_response.status == 500, path
        assert stream.local_response.details == "python_plugin_exception"
    errors = "\n".join(probe.logs.error)
    assert "bad answer, at once" in errors and "bad answer, after a sleep" in errors and "Traceback" in errors


def test_async_that_does_not_suspend_is_synchronous(probe) -> None:
    async def on_request_headers(ctx, headers, eos):
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    assert stream.send_request_headers(REQUEST, end_of_stream=True) == HostAction.CONTINUE


def test_body_stays_buffered_while_headers_await(probe) -> None:
    async def on_request_headers(ctx, headers, eos):
        await ctx.http_call("cluster")
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST)
    stream.send_request_body("data", end_of_stream=True)
    assert stream.upstream_request.headers is None
    probe.pending_http_calls[0].respond(200)
    assert stream.upstream_request.body == b"data"


def test_async_returning_pause_keeps_stream_paused(probe) -> None:
    async def on_request_headers(ctx, headers, eos):
        await ctx.http_call("cluster")
        return Action.PAUSE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    probe.pending_http_calls[0].respond(200)
    assert stream.request_paused


def test_sleep_on_ticks(probe) -> None:
    order = []

    async def on_request_headers(ctx, headers, eos):
        order.append(("start", proxywasm.current_time_ns()))
        await proxywasm.sleep(50)
        order.append(("woke", proxywasm.current_time_ns()))
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    probe.advance(49)
    assert stream.request_paused
    probe.advance(1)
    assert not stream.request_paused
    assert order[1][1] - order[0][1] == 50_000_000


def test_sleep_keeps_user_ticks(probe) -> None:
    ticks = []
    probe.hooks["on_tick"] = lambda root: ticks.append(proxywasm.current_time_ns())
    probe.run(lambda root: root.set_tick_period(100))

    async def on_request_headers(ctx, headers, eos):
        await proxywasm.sleep(30)
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    probe.advance(30)
    assert not stream.request_paused
    assert ticks == []
    probe.advance(300)
    assert len(ticks) == 3


def test_frequent_sleepers_do_not_starve_user_ticks(probe) -> None:
    """Requests sleeping more often than the root's tick period still leave the root
    its ticks, on their period."""
    ticks = []
    probe.hooks["on_tick"] = lambda root: ticks.append(proxywasm.current_time_ns() // 1_000_000)
    probe.run(lambda root: root.set_tick_period(100))

    async def on_request_headers(ctx, headers, eos):
        await proxywasm.sleep(10)
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    start = probe.run(lambda root: proxywasm.current_time_ns()) // 1_000_000
    for _ in range(20):  # one sleeping request every 50 ms for a second
        probe.advance(25)
        stream = probe.http_stream()
        stream.send_request_headers(REQUEST, end_of_stream=True)
        probe.advance(25)
        assert not stream.request_paused
    assert [t - start for t in ticks] == list(range(100, 1001, 100))


def test_resume_from_tick_and_stream_gone(probe) -> None:
    held = []
    results = []
    probe.hooks["on_request_headers"] = lambda ctx, h, eos: held.append(ctx) or Action.PAUSE

    def on_tick(root):
        results.extend(ctx.resume_request() for ctx in held)
        held.clear()

    probe.hooks["on_tick"] = on_tick
    probe.run(lambda root: root.set_tick_period(10))
    alive = probe.http_stream()
    alive.send_request_headers(REQUEST, end_of_stream=True)
    gone = probe.http_stream()
    gone.send_request_headers(REQUEST, end_of_stream=True)
    gone.complete()
    probe.tick()
    assert results == [True, False]
    assert not alive.request_paused
    assert not held


def test_deleted_stream_cancels_its_coroutine(probe) -> None:
    cleaned = []

    async def on_request_headers(ctx, headers, eos):
        try:
            await ctx.http_call("cluster")
        finally:
            cleaned.append(ctx.id)
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    stream.complete()
    assert cleaned == [stream.id]
    probe.pending_http_calls[0].respond(200)  # arrives late: ignored
    assert not probe.logs.error


def test_finally_blocks_of_a_deleted_stream_cannot_break_the_host(probe) -> None:
    """When a stream ends while its tasks wait, every task is closed at once, even if a
    ``finally`` raises; touching the stream there raises StreamGone, and nothing escapes
    into the host's on_delete."""
    seen = []

    async def on_request_headers(ctx, headers, eos):
        try:
            await proxywasm.sleep(1000)
        finally:
            try:
                headers["x-late"] = "1"
            except proxywasm.StreamGone as gone:
                seen.append(("headers", type(gone).__name__))
            try:
                ctx.send_local_response(403)
            except proxywasm.StreamGone as gone:
                seen.append(("local response", type(gone).__name__))
            raise RuntimeError(f"cleanup of {ctx.id} failed")

    async def second_task(response):
        try:
            await proxywasm.sleep(1000)
        finally:
            seen.append(("second task closed", proxywasm.get_log_level() is not None))

    def start_both(ctx, headers, eos):
        ctx.dispatch_http_call("cluster", {":path": "/x"}, callback=second_task)
        return on_request_headers(ctx, headers, eos)

    probe.hooks["on_request_headers"] = start_both
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    probe.pending_http_calls[0].respond(200)  # the second task starts, and sleeps too
    stream.complete()
    assert seen == [("headers", "StreamGone"), ("local response", "StreamGone"), ("second task closed", True)]
    errors = "\n".join(probe.logs.error)
    assert f"cleanup of {stream.id} failed" in errors and "uncaught" not in errors
    probe.advance(2000)  # nothing of the closed tasks runs again
    assert len(seen) == 3


def test_awaiting_foreign_awaitable_is_a_clear_error(probe) -> None:
    class Foreign:
        def __await__(self):
            yield "not an SDK awaitable"

    async def on_request_headers(ctx, headers, eos):
        await Foreign()

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    assert stream.local_response.status == 500
    assert any("only the SDK's awaitables" in line for line in probe.logs.error)


def test_root_async_tick_with_callout(probe) -> None:
    got = []

    async def on_tick(root):
        root.set_tick_period(0)
        response = await root.http_call("control", {":path": "/"})
        got.append(response.body)

    probe.hooks["on_tick"] = on_tick
    probe.run(lambda root: root.set_tick_period(1000))
    probe.tick()
    probe.pending_http_calls[0].respond(200, body="[]")
    assert got == [b"[]"]


def test_grpc_unary_callback_and_await(probe) -> None:
    results = []

    async def on_request_headers(ctx, headers, eos):
        reply = await ctx.grpc_call("grpc", "pkg.Svc", "Check", b"req", metadata={"m": "1"}, timeout_ms=100)
        results.append(reply)
        try:
            await ctx.grpc_call("grpc", "pkg.Svc", "Check", b"again")
        except proxywasm.GrpcCallError as error:
            results.append((error.status, error.message))
        ctx.dispatch_grpc_call("grpc", "pkg.Svc", "Other", b"x", callback=results.append)
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    call = probe.pending_grpc_calls[0]
    assert (call.service, call.method, call.message, call.metadata["m"]) == ("pkg.Svc", "Check", b"req", "1")
    call.respond(b"reply")
    probe.pending_grpc_calls[0].fail(7, "denied")
    assert not stream.request_paused
    probe.pending_grpc_calls[0].respond(b"cb")
    assert results[:2] == [b"reply", (7, "denied")]
    assert results[2].ok and results[2].message == b"cb"


def test_grpc_stream_handler_and_receive(probe) -> None:
    events = []

    class Handler(proxywasm.GrpcStreamHandler):
        def on_initial_metadata(self, stream, metadata):
            events.append(("initial", metadata.get("a")))

        def on_message(self, stream, message):
            events.append(("message", message))

        def on_trailing_metadata(self, stream, metadata):
            events.append(("trailing", metadata.get("t")))

        def on_close(self, stream, status, message):
            events.append(("close", status))

    async def on_tick(root):
        root.set_tick_period(0)
        stream = root.open_grpc_stream("grpc", "pkg.Svc", "Watch", Handler(), metadata={"m": "1"})
        stream.send(b"hello")
        while (message := await stream.receive()) is not None:
            events.append(("received", message))
        events.append(("ended", stream.status))

    probe.hooks["on_tick"] = on_tick
    probe.run(lambda root: root.set_tick_period(10))
    probe.tick()
    (server,) = probe.grpc_streams
    assert server.sent == [b"hello"]
    server.send_initial_metadata({"a": "1"})
    server.send(b"m1")
    server.send(b"m2")
    server.send_trailing_metadata({"t": "2"})
    server.close(0)
    assert events == [
        ("initial", "1"),
        ("message", b"m1"),
        ("received", b"m1"),
        ("message", b"m2"),
        ("received", b"m2"),
        ("trailing", "2"),
        ("close", 0),
        ("ended", 0),
    ]


def test_grpc_stream_cancel(probe) -> None:
    def start(root):
        stream = root.open_grpc_stream("grpc", "pkg.Svc", "Watch")
        stream.cancel()
        return stream

    stream = probe.run(start)
    assert stream.closed
    assert not probe.grpc_streams  # the host dropped it
    assert not probe.logs.error


def test_grpc_stream_close_and_error_status(probe) -> None:
    outcome = []

    async def on_tick(root):
        root.set_tick_period(0)
        stream = root.open_grpc_stream("grpc", "pkg.Svc", "Watch")
        stream.send(b"last", end_stream=True)
        stream.close()
        try:
            await stream.receive()
        except proxywasm.GrpcCallError as error:
            outcome.append((error.status, error.message))

    probe.hooks["on_tick"] = on_tick
    probe.run(lambda root: root.set_tick_period(10))
    probe.tick()
    (server,) = probe.grpc_streams
    assert server.sent == [b"last"] and server.local_closed
    server.close(14, "unavailable")
    assert outcome == [(14, "unavailable")]


# -- what real Envoy 1.40 does (tests/e2e/test_async_in_envoy.py), in both modes ----------------

ENVOY_PARITY = '''
import json

import proxywasm
from proxywasm import Action, HttpContext, ProxyWasmError, RootContext

SEEN = []


class Stream(HttpContext):
    async def on_request_headers(self, headers, end_of_stream):
        case = headers.get("x-case")
        try:
            if case == "grpc":
                await self.grpc_call(headers.get("x-cluster"), "pkg.Svc", "Call", b"x", timeout_ms=200)
            elif case == "stream":
                stream = self.open_grpc_stream("h2", "pkg.Svc", "Watch")
                try:
                    await stream.receive()
                finally:
                    SEEN.append([stream.cancel(), stream.close()])
        except ProxyWasmError as error:
            self.send_local_response(299, json.dumps([type(error).__name__, getattr(error, "status", None)]))
            return Action.PAUSE
        return Action.CONTINUE


class Root(RootContext):
    http_context = Stream


proxywasm.register(Root)
'''


@pytest.fixture
def parity(plugin_source, load_in_mode, emulator):
    emulator.clusters = {"h2"}
    return load_in_mode(plugin_source("parity", ENVOY_PARITY))


def _answer(stream) -> list:
    assert stream.local_response is not None and stream.local_response.status == 299
    return json.loads(stream.local_response.body)


@pytest.mark.both_modes
def test_grpc_targets_timeouts_and_unknown_clusters_as_in_envoy(parity) -> None:
    # "h2" is sent as a GrpcService naming the cluster: as a bare name, Envoy parses it as
    # a GrpcService without a target and aborts.
    timed_out = parity.http_stream()
    timed_out.send_request_headers({**REQUEST, "x-case": "grpc", "x-cluster": "h2"}, end_of_stream=True)
    (call,) = parity.pending_grpc_calls
    assert call.upstream == "h2"
    parity.advance(300)  # Envoy closes a timed-out call with UNAVAILABLE
    assert _answer(timed_out) == ["GrpcCallTimeout", 14]
    failed = parity.http_stream()
    failed.send_request_headers({**REQUEST, "x-case": "grpc", "x-cluster": "h2"}, end_of_stream=True)
    parity.pending_grpc_calls[0].fail(14, "no healthy upstream")
    assert _answer(failed) == ["GrpcCallError", 14]
    unknown = parity.http_stream()
    unknown.send_request_headers({**REQUEST, "x-case": "grpc", "x-cluster": "h3"}, end_of_stream=True)
    assert _answer(unknown) == ["InternalFailure", 10]
    assert not parity.logs.error


@pytest.mark.both_modes
def test_ending_a_grpc_stream_twice_or_after_its_context_is_quiet(parity) -> None:
    closed = parity.http_stream()
    closed.send_request_headers({**REQUEST, "x-case": "stream"}, end_of_stream=True)
    parity.grpc_streams[0].close(12, "unimplemented")  # the server ends it: nothing left to end
    assert _answer(closed) == ["GrpcCallError", 12]
    gone = parity.http_stream()
    gone.send_request_headers({**REQUEST, "x-case": "stream"}, end_of_stream=True)
    (server,) = parity.grpc_streams
    gone.complete()  # the client leaves: the finally cannot end it any more
    server.send(b"late")  # ignored
    assert not parity.logs.error
    assert "late" not in "\n".join(parity.logs.info + parity.logs.debug)


def test_grpc_cluster_names_are_sent_as_a_grpc_service() -> None:
    from proxywasm._codec import grpc_service

    from pwtool.emulator._hostcalls import _parse_grpc_service

    assert _parse_grpc_service(b"h2") == ""  # what aborts Envoy
    assert _parse_grpc_service(b"backend") is None  # a name Envoy takes as a name
    for name in ("h2", "backend", "x" * 300, ""):
        assert _parse_grpc_service(grpc_service(name)) == name
    assert grpc_service(b"\x0a\x00") == b"\x0a\x00"  # bytes: a serialized GrpcService already
