"""HTTP contexts: headers (one read per callback), bodies, trailers, local responses."""

from __future__ import annotations

import pytest

import proxywasm
from proxywasm import Action
from pwtool.emulator import Action as HostAction
from pwtool.emulator._native import router

REQUEST = {":method": "GET", ":path": "/p", ":authority": "h", "a": "1", "Multi": "x"}


@pytest.fixture
def count_pairs(monkeypatch):
    """Count header-map reads (get_header_map_pairs / get_header_map_list) through the emulator's seam."""
    calls = []
    original = router.get_header_map_pairs

    def counting(map_type):
        calls.append(map_type)
        return original(map_type)

    original_list = router.get_header_map_list

    def counting_list(map_type):
        calls.append(map_type)
        return original_list(map_type)

    monkeypatch.setattr(router, "get_header_map_pairs", counting)
    monkeypatch.setattr(router, "get_header_map_list", counting_list)
    return calls


def test_one_header_read_per_callback(probe, count_pairs) -> None:
    seen = {}

    def on_request_headers(ctx, headers, eos):
        seen["path"] = headers[":path"]
        seen["a"] = headers.get("A")
        seen["missing"] = headers.get("nope", "default")
        seen["contains"] = "multi" in headers
        seen["len"] = len(headers)
        headers.add("multi", "y")
        seen["all"] = headers.get_all("MULTI")
        headers["a"] = "2"
        seen["after_set"] = headers["a"]
        headers.remove("multi")
        seen["after_remove"] = "multi" in headers
        seen["items"] = list(headers)
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    assert stream.send_request_headers(REQUEST, end_of_stream=True) == HostAction.CONTINUE
    assert count_pairs == [proxywasm.MapType.HTTP_REQUEST_HEADERS]
    assert seen["path"] == "/p" and seen["a"] == "1" and seen["missing"] == "default"
    assert seen["contains"] and seen["len"] == 5
    assert seen["all"] == ["x", "y"]
    assert seen["after_set"] == "2" and seen["after_remove"] is False
    assert seen["items"] == [(":method", "GET"), (":path", "/p"), (":authority", "h"), ("a", "2")]
    assert stream.upstream_request.headers.items() == seen["items"]


def test_writes_without_reads_cost_no_pairs_read(probe, count_pairs) -> None:
    probe.hooks["on_response_headers"] = lambda ctx, headers, eos: headers.set("x-added", "1")
    stream = probe.http_stream()
    stream.send_request(REQUEST)
    stream.send_response(200)
    assert count_pairs == []
    assert stream.downstream_response.headers["x-added"] == "1"


def test_cache_is_per_callback(probe, count_pairs) -> None:
    sizes = []
    probe.hooks["on_request_headers"] = lambda ctx, h, eos: sizes.extend([len(h), len(h)]) or Action.CONTINUE
    probe.hooks["on_request_body"] = lambda ctx, body, eos: sizes.append(len(ctx.request_headers))
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST)
    stream.send_request_body("x", end_of_stream=True)
    assert sizes[:2] == [5, 5]
    assert len(count_pairs) == 2  # one per callback, not one per use


@pytest.fixture
def count_finds(monkeypatch):
    """Count single-header reads (find_header_map_value) through the emulator's seam."""
    calls = []
    original = router.find_header_map_value

    def counting(map_type, key):
        calls.append(key)
        return original(map_type, key)

    monkeypatch.setattr(router, "find_header_map_value", counting)
    return calls


def test_lone_reads_ask_the_host_for_one_header(probe, count_pairs, count_finds) -> None:
    seen = []

    def on_request_headers(ctx, headers, eos):
        seen.extend([headers.get("A"), headers.get("absent"), headers.get("absent", "d"), "MULTI" in headers,
                     "nope" in headers, 7 in headers])
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    probe.http_stream().send_request(REQUEST)
    assert seen == ["1", None, "d", True, False, False]
    assert count_pairs == []  # no whole-map read
    assert count_finds == ["A", "absent", "absent", "MULTI", "nope"]


NON_UTF8 = """
import proxywasm
from proxywasm import Action, HttpContext


class Copy(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        value = headers.get("X-Raw")
        headers["x-copy"] = value
        headers.add("x-len", str(len(value)))
        headers["x-upper-absent"] = str(headers.get("X-ABSENT"))
        return Action.CONTINUE


proxywasm.register(Copy)
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["native", "wasm"])
def test_header_bytes_survive_a_read_and_write_round_trip(emulator, tmp_path, mode) -> None:
    (tmp_path / "plugin.py").write_text(NON_UTF8)
    (tmp_path / "plugin.toml").write_text('name = "copy_raw"\n')
    plugin = emulator.load(tmp_path, mode=mode)
    stream = plugin.http_stream()
    stream.send_request([(":method", "GET"), (":path", "/"), (":authority", "h"), ("x-raw", b"caf\xe9 \xff")])
    headers = stream.upstream_request.headers
    assert dict(headers.pairs)[b"x-copy"] == b"caf\xe9 \xff"
    assert headers["x-len"] == "6"
    assert headers["x-upper-absent"] == "None"


def test_update_and_replace_all_use_one_hostcall(probe) -> None:
    def on_request_headers(ctx, headers, eos):
        headers.update({"a": "9", "b": "8"})
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    stream.send_request(REQUEST)
    headers = stream.upstream_request.headers
    assert headers["a"] == "9" and headers["b"] == "8" and headers[":path"] == "/p"


def test_headers_standalone() -> None:
    h = proxywasm.Headers({"Content-Type": "text/plain"})
    h.add("set-cookie", "a=1")
    h.add("Set-Cookie", "b=2")
    assert h["content-type"] == "text/plain"
    assert h.get_all("set-cookie") == ["a=1", "b=2"]
    assert h.to_dict() == {"content-type": "text/plain", "set-cookie": "a=1,b=2"}
    assert h.names() == ["content-type", "set-cookie"]
    del h["set-cookie"]
    assert "set-cookie" not in h
    with pytest.raises(KeyError):
        del h["set-cookie"]
    with pytest.raises(KeyError):
        h["nope"]
    assert h == proxywasm.Headers([("content-type", "text/plain")])
    h.add("x-a", "1")
    h.add("x-a", "2")
    h.update({"X-A": "3", "x-b": "4"})  # each name replaces all its values; others stay
    assert list(h) == [("content-type", "text/plain"), ("x-a", "3"), ("x-b", "4")]


def test_body_read_and_modify(probe) -> None:
    seen = {}

    def on_request_body(ctx, body, eos):
        seen["len"] = len(body)
        seen["all"] = body.read()
        seen["slice"] = body[1:3]
        seen["bytes"] = bytes(body)
        body.replace(b"BODY")
        body.prepend(b"<")
        body.append(">")
        seen["after"] = body.read()
        return Action.CONTINUE

    probe.hooks["on_request_body"] = on_request_body
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST)
    stream.send_request_body("hello", end_of_stream=True)
    assert seen == {"len": 5, "all": b"hello", "slice": b"el", "bytes": b"hello", "after": b"<BODY>"}
    assert stream.upstream_request.body == b"<BODY>"


def test_pause_buffers_body_until_end(probe) -> None:
    probe.hooks["on_request_body"] = lambda ctx, body, eos: Action.CONTINUE if eos else Action.PAUSE
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST)
    assert stream.send_request_body("ab", end_of_stream=False) == HostAction.PAUSE
    assert stream.send_request_body("cd", end_of_stream=True) == HostAction.CONTINUE
    assert stream.upstream_request.body == b"abcd"


def test_buffer_request_body_attribute(probe) -> None:
    bodies = []

    def on_request_headers(ctx, headers, eos):
        ctx.buffer_request_body = True

    def on_request_body(ctx, body, eos):
        bodies.append((body.read(), eos))

    probe.hooks["on_request_headers"] = on_request_headers
    probe.hooks["on_request_body"] = on_request_body
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST)
    assert stream.send_request_body("ab", end_of_stream=False) == HostAction.PAUSE
    stream.send_request_body("cd", end_of_stream=True)
    assert bodies == [(b"abcd", True)]
    assert stream.upstream_request.body == b"abcd"


def test_buffered_body_delivered_before_trailers(probe) -> None:
    events = []
    probe.hooks["on_request_headers"] = lambda ctx, h, eos: setattr(ctx, "buffer_request_body", True)
    probe.hooks["on_request_body"] = lambda ctx, body, eos: events.append(("body", body.read()))
    probe.hooks["on_request_trailers"] = lambda ctx, t: events.append(("trailers", t.get("t")))
    stream = probe.http_stream()
    stream.send_request(REQUEST, body="xyz", trailers={"t": "1"})
    assert events == [("body", b"xyz"), ("trailers", "1")]


def test_async_buffered_body_callback_then_trailers(probe) -> None:
    """An ``async`` body callback of a buffered body ends before the trailers callback
    runs, in both directions, and the stream goes on with both."""
    events = []

    async def body(direction, ctx, b, eos):
        events.append((direction, "body", b.read(), eos))
        await proxywasm.sleep(5)
        b.append(b"+")
        events.append((direction, "body done"))
        return Action.CONTINUE

    def trailers(direction, ctx, t):
        events.append((direction, "trailers", t.get("t")))
        t["x-seen"] = direction

    def buffer_both(ctx, headers, eos):
        ctx.buffer_request_body = ctx.buffer_response_body = True

    probe.hooks["on_request_headers"] = buffer_both
    probe.hooks["on_request_body"] = lambda ctx, b, eos: body("request", ctx, b, eos)
    probe.hooks["on_request_trailers"] = lambda ctx, t: trailers("request", ctx, t)
    probe.hooks["on_response_body"] = lambda ctx, b, eos: body("response", ctx, b, eos)
    probe.hooks["on_response_trailers"] = lambda ctx, t: trailers("response", ctx, t)
    stream = probe.http_stream()
    stream.send_request(REQUEST, body="xyz", trailers={"t": "1"})
    assert events == [("request", "body", b"xyz", True)] and stream.request_paused
    probe.advance(5)
    assert events[1:] == [("request", "body done"), ("request", "trailers", "1")]
    assert not stream.request_paused
    assert stream.upstream_request.body == b"xyz+" and stream.upstream_request.trailers["x-seen"] == "request"
    stream.send_response(200, body="abc", trailers={"t": "2"})
    probe.advance(5)
    assert events[3:] == [("response", "body", b"abc", True), ("response", "body done"), ("response", "trailers", "2")]
    assert stream.downstream_response.body == b"abc+"
    assert stream.downstream_response.trailers["x-seen"] == "response"


def test_trailers(probe) -> None:
    def on_response_trailers(ctx, trailers):
        trailers["grpc-status"] = "0"
        trailers.add("x-t", "1")

    probe.hooks["on_response_trailers"] = on_response_trailers
    stream = probe.http_stream()
    stream.send_request(REQUEST)
    stream.send_response(200, body="b", trailers={"x-up": "u"})
    trailers = stream.downstream_response.trailers
    assert trailers["grpc-status"] == "0" and trailers["x-t"] == "1" and trailers["x-up"] == "u"


def test_local_response(probe) -> None:
    def on_request_headers(ctx, headers, eos):
        ctx.send_local_response(
            418, "teapot", {"x-why": "because"}, grpc_status=proxywasm.GrpcStatus.UNAVAILABLE, details="no_coffee"
        )
        return Action.PAUSE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    local = stream.local_response
    assert (local.status, local.body, local.headers["x-why"], local.details, local.grpc_status) == (
        418, b"teapot", "because", "no_coffee", 14
    )
    assert stream.upstream_request.headers is None


def test_none_means_continue_and_on_log_on_done(probe) -> None:
    probe.hooks["on_request_headers"] = lambda ctx, h, eos: None
    stream = probe.http_stream()
    assert stream.send_request_headers(REQUEST, end_of_stream=True) == HostAction.CONTINUE
    stream.send_response(200)
    stream.complete()
    assert "on_log" in probe.calls and "http_on_done" in probe.calls


def test_clear_route_cache(probe) -> None:
    def on_request_headers(ctx, headers, eos):
        headers[":path"] = "/new"
        ctx.clear_route_cache()

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    stream.send_request(REQUEST)
    assert stream.route_cache_clears == 1
    assert stream.upstream_request.headers[":path"] == "/new"


def test_close_request_resets_stream(probe) -> None:
    probe.hooks["on_request_headers"] = lambda ctx, h, eos: ctx.close_request() and Action.PAUSE
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    assert stream.reset_by is not None


def test_stream_ending_before_headers_still_logs(probe) -> None:
    stream = probe.http_stream()
    stream.complete()
    assert "on_log" in probe.calls and "http_on_done" in probe.calls
    assert not probe.logs.error


def test_body_helpers_and_body_outside_body_callback(probe) -> None:
    seen = {}

    def on_request_body(ctx, body, eos):
        seen["json"] = body.json()
        seen["text"] = body.text()

    def on_request_trailers(ctx, trailers):
        body = ctx.request_body()
        seen["len"] = len(body)

    probe.hooks["on_request_body"] = on_request_body
    probe.hooks["on_request_trailers"] = on_request_trailers
    stream = probe.http_stream()
    stream.send_request(REQUEST, body='{"a": [1]}', trailers={"t": "1"})
    assert seen["json"] == {"a": [1]} and seen["text"] == '{"a": [1]}'
    assert seen["len"] == 0  # passed on already: an empty body, not an error
    assert not probe.logs.error


def test_replace_all_headers(probe) -> None:
    def on_response_headers(ctx, headers, eos):
        headers.replace_all([(":status", "404"), ("x-only", "1")])
        return Action.CONTINUE

    probe.hooks["on_response_headers"] = on_response_headers
    stream = probe.http_stream()
    stream.send_request(REQUEST)
    stream.send_response(200, {"server": "s"})
    assert stream.downstream_response.headers.items() == [(":status", "404"), ("x-only", "1")]


def test_async_buffered_body_callback_that_raises_is_named_in_the_log(probe) -> None:
    async def on_request_body(ctx, body, eos):
        raise ValueError("bad body")

    probe.hooks["on_request_headers"] = lambda ctx, h, eos: setattr(ctx, "buffer_request_body", True)
    probe.hooks["on_request_body"] = on_request_body
    stream = probe.http_stream()
    stream.send_request(REQUEST, body="xyz", trailers={"t": "1"})
    assert stream.local_response is not None and stream.local_response.status == 500
    first_line = probe.logs.error[0].splitlines()[0]
    assert first_line.startswith("exception in ") and "on_request_body" in first_line and "_await_then" not in first_line
