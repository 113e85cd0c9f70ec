"""Bodies in the emulator, natively and built, checked against what real Envoy 1.40 does
(tests/e2e/test_bodies_in_envoy.py): chunk-by-chunk edits, buffering with trailers and
past the limit, bodiless streams, reads out of range and replace() argument types."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pwtool.emulator import Action as HostAction
from pwtool.emulator import HttpStream, Plugin

PLUGIN = '''
import json

import proxywasm
from proxywasm import Action, HttpContext


def attempt(function):
    try:
        return repr(function())
    except Exception as error:
        return type(error).__name__


PROBES = {
    "2,3": lambda b: b.read(2, 3), "8,100": lambda b: b.read(8, 100), "50,5": lambda b: b.read(50, 5),
    "-3,2": lambda b: b.read(-3, 2), "2,-1": lambda b: b.read(2, -1), "[-3:]": lambda b: b[-3:],
    "[50:60]": lambda b: b[50:60], "[4]": lambda b: b[4],
}


class Stream(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        self.case = headers.get("x-case", "")
        self.events = [f"h{int(end_of_stream)}"]
        self.buffer_request_body = self.case in ("buffer", "slices", "replace-int", "json")
        return Action.CONTINUE

    def on_request_body(self, body, end_of_stream):
        self.events.append(f"b{len(body)}{'E' if end_of_stream else ''}")
        if self.case == "mark":
            data = body.read()
            if b"drop" in data:
                body.clear()
            elif b"swap" in data:
                body.replace(data.decode().replace("swap", "SW\\u00c9P"))
            body.prepend(f"<{len(data)}{'E' if end_of_stream else ''}|")
            body.append(b">")
        elif self.case == "buffer":
            body.replace(b"[" + body.read() + b"]")
        elif self.case == "slices":
            host = {name: attempt(lambda: probe(body)) for name, probe in PROBES.items()}
            body.read()
            cached = {name: attempt(lambda: probe(body)) for name, probe in PROBES.items()}
            self.send_local_response(200, json.dumps([host, cached]))
            return Action.PAUSE
        elif self.case == "replace-int":
            body.replace(7)
        elif self.case == "json":
            body.json()
        return Action.CONTINUE

    def on_request_trailers(self, trailers):
        self.events.append(f"t{len(trailers)}")

    def on_response_headers(self, headers, end_of_stream):
        headers["x-events"] = ",".join(self.events)
        self.buffer_response_body = self.case == "buffer"

    def on_response_body(self, body, end_of_stream):
        return Action.CONTINUE


proxywasm.register(Stream)
'''

REQUEST = {":method": "POST", ":path": "/", ":authority": "h"}


@pytest.fixture
def bodies(load_in_mode: Callable[..., Plugin], plugin_source: Callable[..., Path]) -> Plugin:
    return load_in_mode(plugin_source("bodies", PLUGIN))


def _request(plugin: Plugin, case: str, chunks: list[bytes], trailers: dict[str, str] | None = None) -> HttpStream:
    stream = plugin.http_stream()
    stream.send_request_headers({**REQUEST, "x-case": case})
    for chunk in chunks:
        if not stream.done:
            stream.send_request_body(chunk, end_of_stream=False)
    if not stream.done:
        if trailers is None:
            stream.send_request_body(b"", end_of_stream=True)
        else:
            stream.send_request_trailers(trailers)
    return stream


def _events(stream: HttpStream) -> str | None:
    if not stream.done:
        stream.send_response_headers({":status": "200"}, end_of_stream=True)
    return stream.downstream_response.headers.get("x-events")


@pytest.mark.both_modes
def test_every_chunk_is_edited_on_its_own_as_in_envoy(bodies: Plugin) -> None:
    stream = _request(bodies, "mark", [b"one", b"swap-two", b"drop-three", b"four"])
    assert stream.upstream_request.body == b"<3|one><8|SW\xc3\x89P-two><10|><4|four><0E|>"
    assert _events(stream) == "h0,b3,b8,b10,b4,b0E"


@pytest.mark.both_modes
def test_a_buffered_body_arrives_whole_before_its_trailers(bodies: Plugin) -> None:
    stream = _request(bodies, "buffer", [b"one", b"two"], {"x-t": "1"})
    assert stream.upstream_request.body == b"[onetwo]"
    assert _events(stream) == "h0,b6E,t1"
    assert _events(_request(bodies, "", [b"one", b"two"], {"x-t": "1"})) == "h0,b3,b3,t1"


@pytest.mark.both_modes
def test_a_stream_without_a_body_gets_no_body_callback(bodies: Plugin) -> None:
    stream = bodies.http_stream()
    stream.send_request_headers({**REQUEST, ":method": "GET", "x-case": "buffer"}, end_of_stream=True)
    assert _events(stream) == "h1"


@pytest.mark.both_modes
def test_buffering_past_the_limit_is_413_for_a_request_and_a_reset_for_a_started_response(bodies: Plugin) -> None:
    stream = _request(bodies, "buffer", [b"x" * (600 << 10)] * 2)
    assert stream.status == 413 and stream.local_response.from_host
    assert stream.downstream_response.headers.get("x-events") == "h0"
    stream = _request(bodies, "buffer", [b"abc"])
    stream.send_response_headers({":status": "200"})
    for _ in range(2):
        if not stream.done:
            stream.send_response_body(b"x" * (600 << 10), end_of_stream=False)
    # The headers already went downstream: Envoy can only reset the stream.
    assert stream.reset_by == "local_reply_after_response_started" and stream.status == 200


@pytest.mark.both_modes
def test_reads_out_of_range_agree_before_and_after_caching_as_in_envoy(bodies: Plugin) -> None:
    stream = _request(bodies, "slices", [b"0123456789"])
    host, cached = json.loads(stream.downstream_response.body)
    assert host == cached == {
        "2,3": "b'234'", "8,100": "b'89'", "50,5": "b''", "-3,2": "ValueError", "2,-1": "ValueError",
        "[-3:]": "b'789'", "[50:60]": "b''", "[4]": "TypeError",
    }


@pytest.mark.both_modes
def test_replace_with_an_int_is_a_type_error_that_fails_closed(bodies: Plugin) -> None:
    stream = _request(bodies, "replace-int", [b"0123456789"])
    assert stream.status == 500 and stream.upstream_request.body == b""
    assert bodies.logs.error[-1].endswith("TypeError: expected bytes or str, not int")


@pytest.mark.both_modes
def test_json_of_a_body_that_is_not_json_fails_closed_with_the_reason(bodies: Plugin) -> None:
    stream = _request(bodies, "json", [b'{"a": 1,}'])
    assert stream.status == 500
    assert bodies.logs.error[-1].endswith(
        "ValueError: Expecting property name enclosed in double quotes: line 1 column 9 (char 8)")


def test_the_http_body_example_buffers_only_the_bodies_it_rewrites(example: Callable[..., Plugin]) -> None:
    plugin = example("http_body")
    stream = plugin.http_stream()
    stream.send_request({":method": "GET", ":path": "/", ":authority": "h"})
    stream.send_response_headers({":status": "200", "content-type": "image/png", "content-length": "4"})
    # Streamed on at once, not held (a binary body past Envoy's limit would reset the stream).
    assert stream.send_response_body(b"\x89PN", end_of_stream=False) == HostAction.CONTINUE
    assert stream.downstream_response.body == b"\x89PN"
    assert stream.downstream_response.headers["content-length"] == "4"
