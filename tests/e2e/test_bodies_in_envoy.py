"""HTTP bodies in real Envoy 1.40 (V8): streamed chunks, buffering past Envoy's limit,
length-changing rewrites with content-length, bodiless streams and trailers, JSON/text
decoding errors and reads out of range.

One plugin holds every case; the request header ``x-case`` picks what it does. One
Envoy (1 MB buffer limit, HTTP/1 trailers on) serves them, in front of a small upstream
that echoes the raw request body, streams a slow chunked response or sends 2 MB.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from e2etools import hcm, wait_for

from pwtool.envoy import Envoy, free_port
from pwtool.manifests import bootstrap, http_filter, plugin_config

pytestmark = pytest.mark.envoy

PLUGIN = '''
"""Body handling chosen by the request header x-case."""

import json

import proxywasm
from proxywasm import Action, HttpContext

BUFFERED = {"buffer", "json", "json-caught", "text", "text-caught", "slices", "replace-str", "replace-bytes",
            "replace-int"}


def mark(body, end_of_stream):
    """Frame a chunk as <size[E]|...>; a chunk with "drop" is cleared, one with "swap" replaced by a str."""
    data = body.read()
    if b"drop" in data:
        body.clear()
    elif b"swap" in data:
        body.replace(data.decode().replace("swap", "SW\\u00c9P"))
    body.prepend(f"<{len(data)}{'E' if end_of_stream else ''}|")
    body.append(b">")


def attempt(function):
    try:
        return repr(function())
    except Exception as error:
        return type(error).__name__


def slices(body):
    """Reads in and out of range, before (from the host) and after the body is cached."""
    probes = {
        "2,3": lambda: body.read(2, 3), "8,100": lambda: body.read(8, 100), "10": lambda: body.read(10),
        "50,5": lambda: body.read(50, 5), "-3,2": lambda: body.read(-3, 2), "-3": lambda: body.read(-3),
        "2,-1": lambda: body.read(2, -1), "[2:5]": lambda: body[2:5], "[-3:]": lambda: body[-3:],
        "[50:60]": lambda: body[50:60], "[::3]": lambda: body[::3], "[4]": lambda: body[4],
    }
    host = {name: attempt(probe) for name, probe in probes.items()}
    whole = body.read()
    cached = {name: attempt(probe) for name, probe in probes.items()}
    return {"whole": whole.decode(), "host": host, "cached": cached}


class Stream(HttpContext):
    case = ""

    def on_request_headers(self, headers, end_of_stream):
        self.case = headers.get("x-case", "")
        self.events = [f"h{int(end_of_stream)}"]
        self.buffer_request_body = self.case in BUFFERED
        if self.case in ("mark", "grow-req-drop") or self.case.startswith("replace-"):
            headers.remove("content-length")
        return Action.CONTINUE

    def on_request_body(self, body, end_of_stream):
        self.events.append(f"b{len(body)}{'E' if end_of_stream else ''}")
        case = self.case
        if case == "mark":
            mark(body, end_of_stream)
        elif case in ("grow-req-keep", "grow-req-drop") and body:
            body.append(b"+grown")
        elif case == "buffer":
            body.replace(b"[" + body.read() + b"]")
        elif case in ("json", "text"):
            value = body.json() if case == "json" else body.text()
            self.send_local_response(200, json.dumps(value))
            return Action.PAUSE
        elif case in ("json-caught", "text-caught"):
            try:
                body.json() if case == "json-caught" else body.text()
            except ValueError as error:
                self.send_local_response(400, f"{type(error).__name__}: {error}")
                return Action.PAUSE
        elif case == "slices":
            self.send_local_response(200, json.dumps(slices(body)))
            return Action.PAUSE
        elif case == "replace-str":
            body.replace("h\\u00e9llo \\u2603")
        elif case == "replace-bytes":
            body.replace(b"\\xff\\xfe")
        elif case == "replace-int":
            body.replace(7)
        return Action.CONTINUE

    def on_request_trailers(self, trailers):
        self.events.append(f"t{len(trailers)}")
        return Action.CONTINUE

    def on_response_headers(self, headers, end_of_stream):
        headers["x-events"] = ",".join(self.events)
        self.events = [f"h{int(end_of_stream)}"]
        if self.case == "buffer-resp":
            self.buffer_response_body = True
        if self.case in ("mark", "buffer-resp") or self.case.endswith("-drop"):
            headers.remove("content-length")
        return Action.CONTINUE

    def on_response_body(self, body, end_of_stream):
        self.events.append(f"b{len(body)}{'E' if end_of_stream else ''}")
        case = self.case
        if case == "mark":
            mark(body, end_of_stream)
        elif case == "buffer-resp":
            body.replace(b"[" + body.read() + b"]")
        elif case in ("grow-keep", "grow-drop") and body:
            body.append(b"+grown")
        elif case in ("shrink-keep", "shrink-drop") and body:
            body.replace(body[:5])
        return Action.CONTINUE

    def on_response_trailers(self, trailers):
        self.events.append(f"t{len(trailers)}")
        return Action.CONTINUE

    def on_log(self):
        proxywasm.log_warn(f"case={self.case} response-events={','.join(self.events)}")


proxywasm.register(Stream)
'''

SLOW_CHUNKS = [b"alpha", b"swap-beta", b"drop-gamma", b"delta"]


class _Upstream(BaseHTTPRequestHandler):
    """``/echo`` answers the raw request body (with content-length), ``/slow`` streams
    SLOW_CHUNKS 0.2 s apart, chunked, with a trailer; ``/big`` sends 2 MB; ``/empty`` 204.
    Every answer closes the connection, so that bytes a case leaves behind on it (a
    body longer than its content-length) cannot spill into the next case. ``received``
    lists (body, trailers) of each request."""

    protocol_version = "HTTP/1.1"
    received: list[tuple[bytes, dict[str, str]]] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body, trailers = self._read_body()
        self.received.append((body, trailers))
        self.close_connection = True
        if self.path == "/slow":
            self.send_response(200)
            self.send_header("transfer-encoding", "chunked")
            self.send_header("trailer", "x-checksum")
            self.send_header("connection", "close")
            self.end_headers()
            for chunk in SLOW_CHUNKS:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
                time.sleep(0.2)
            self.wfile.write(b"0\r\nx-checksum: 42\r\n\r\n")
            return
        if self.path == "/empty":
            self.send_response(204)
            self.end_headers()
            return
        payload = b"x" * (2 << 20) if self.path == "/big" else (body if self.command == "POST" else b"hello world")
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(payload)))
        self.send_header("connection", "close")
        self.end_headers()
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # Envoy reset the stream (the 2 MB response past its buffer limit)

    do_POST = do_GET

    def _read_body(self) -> tuple[bytes, dict[str, str]]:
        if self.headers.get("transfer-encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("content-length") or 0)), {}
        body, trailers = b"", {}
        while size := int(self.rfile.readline().split(b";")[0], 16):
            body += self.rfile.read(size)
            self.rfile.readline()
        while (line := self.rfile.readline().strip()):
            name, _, value = line.decode().partition(":")
            trailers[name.strip().lower()] = value.strip()
        return body, trailers

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class Served:
    def __init__(self, envoy: Envoy, listen: int) -> None:
        self.envoy = envoy
        self.listen = listen

    def request(self, case: str, path: str = "/echo", body: bytes | None = None,
                chunks: list[bytes] | None = None, trailers: bytes = b"") -> http.client.HTTPResponse:
        """Send ``body`` (content-length) or ``chunks`` (chunked, 0.15 s apart); the
        response, with its body read into ``.data``."""
        connection = http.client.HTTPConnection("127.0.0.1", self.listen, timeout=15)
        method = "GET" if body is None and chunks is None else "POST"
        connection.putrequest(method, path)
        connection.putheader("x-case", case)
        connection.putheader("x-envoy-upstream-rq-timeout-ms", "3000")
        if chunks is not None:
            connection.putheader("transfer-encoding", "chunked")
        elif body is not None:
            connection.putheader("content-length", str(len(body)))
        connection.endheaders()
        if body:
            connection.send(body)
        for chunk in chunks or []:
            connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            time.sleep(0.15)
        if chunks is not None:
            connection.send(b"0\r\n" + trailers + b"\r\n")
        response = connection.getresponse()
        response.data = response.read()  # type: ignore[attr-defined]
        connection.close()
        return response

    def raw(self, case: str, path: str = "/echo", wait: float = 3.0) -> tuple[bytes, bool]:
        """The raw response to a GET, and whether Envoy closed the connection within ``wait`` s."""
        with socket.create_connection(("127.0.0.1", self.listen), timeout=wait) as connection:
            connection.sendall(f"GET {path} HTTP/1.1\r\nhost: x\r\nx-case: {case}\r\n\r\n".encode())
            data = b""
            try:
                while chunk := connection.recv(1 << 16):
                    data += chunk
            except TimeoutError:
                return data, False
        return data, True

    def logged(self, offset: int, *texts: str) -> str:
        def found() -> str | None:
            log = self.envoy.log_text()[offset:]
            return log if all(text in log for text in texts) else None
        return str(wait_for(found, timeout=5, what=f"{texts!r} in Envoy's log"))


@pytest.fixture(scope="module")
def served(built_plugin: Callable[[Path], Path], plugin_source: Callable[..., Path]) -> Iterator[Served]:
    wasm = built_plugin(plugin_source("bodies", PLUGIN))
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    upstream.daemon_threads = True
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    listen, admin = free_port(), free_port()
    config = bootstrap(http_filters=[http_filter(plugin_config(name="bodies", root_id="", wasm_file=wasm))],
                       listen_port=listen, admin_port=admin, upstream=f"127.0.0.1:{upstream.server_port}")
    hcm(config)["http_protocol_options"] = {"enable_trailers": True}
    listener = config["static_resources"]["listeners"][0]
    listener["per_connection_buffer_limit_bytes"] = 1 << 20
    for cluster in config["static_resources"]["clusters"]:
        cluster["per_connection_buffer_limit_bytes"] = 1 << 20
        cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {"http_protocol_options": {"enable_trailers": True}}}}
    try:
        with Envoy(config, admin_port=admin) as envoy:
            yield Served(envoy, listen)
    finally:
        upstream.shutdown()



def _log_events(served: Served, offset: int, case: str) -> str:
    """The response events the plugin logged in on_log for `case`."""
    line = f"case={case} response-events="
    log = served.logged(offset, line)
    return log.split(line, 1)[1].split("\n", 1)[0]


# -- 1. streamed bodies: every chunk reaches the callback, edits apply to that chunk ----------

def test_a_chunked_upload_reaches_the_body_callback_chunk_by_chunk(served: Served) -> None:
    answer = served.request("mark", chunks=[b"one", b"swap-two", b"drop-three", b"four"])
    assert answer.status == 200
    # Each chunk, then an empty end-of-stream chunk (the 0-length chunk of the upload).
    assert answer.headers["x-events"] == "h0,b3,b8,b10,b4,b0E"
    # replace (with a str), clear, prepend and append act on their chunk only; an
    # append to the empty final chunk is sent too.
    assert _Upstream.received[-1] == (b"<3|one><8|SW\xc3\x89P-two><10|><4|four><0E|>", {})


def test_a_slow_chunked_response_reaches_the_body_callback_chunk_by_chunk(served: Served) -> None:
    offset = len(served.envoy.log_text())
    answer = served.request("mark", path="/slow")
    assert answer.status == 200 and "content-length" not in answer.headers
    assert answer.data == b"<5|alpha><9|SW\xc3\x89P-beta><10|><5|delta>"  # type: ignore[attr-defined]
    # The upstream's trailers end the response: no empty end-of-stream body chunk.
    assert _log_events(served, offset, "mark") == "h0,b5,b9,b10,b5,t1"


# -- 2. buffering: the whole body once; past the buffer limit Envoy answers 413 / resets ----

def test_a_buffered_request_body_arrives_whole_also_when_trailers_end_it(served: Served) -> None:
    answer = served.request("buffer", chunks=[b"one", b"two", b"three"])
    assert answer.headers["x-events"] == "h0,b11E"
    assert _Upstream.received[-1] == (b"[onetwothree]", {})
    answer = served.request("buffer", chunks=[b"one", b"two"], trailers=b"x-t: 1\r\n")
    assert answer.headers["x-events"] == "h0,b6E,t1"  # the body first, then the trailers
    assert _Upstream.received[-1] == (b"[onetwo]", {"x-t": "1"})


def test_buffering_a_request_body_past_the_limit_is_413(served: Served) -> None:
    before = served.envoy.stats("http.ingress.downstream_rq_too_large").get("http.ingress.downstream_rq_too_large", 0)
    answer = served.request("buffer", body=b"x" * (2 << 20))
    assert (answer.status, answer.data) == (413, b"Payload Too Large")  # type: ignore[attr-defined]
    assert answer.headers["x-events"] == "h0"  # no body callback saw a partial body
    assert served.envoy.stats("http.ingress.downstream_rq_too_large")["http.ingress.downstream_rq_too_large"] == before + 1
    assert served.request("").status == 200


def test_buffering_a_response_body_past_the_limit_resets_the_stream(served: Served) -> None:
    # The response headers already went to the client (the header callback continued),
    # so Envoy cannot answer 500 any more: it resets the stream, the client sees a
    # 200 whose body breaks off, and the response is counted as too large.
    offset = len(served.envoy.log_text())
    with pytest.raises(http.client.IncompleteRead):
        served.request("buffer-resp", path="/big")
    assert _log_events(served, offset, "buffer-resp") == "h0"
    assert served.envoy.stats("http.ingress.rs_too_large")["http.ingress.rs_too_large"] >= 1
    answer = served.request("buffer-resp", path="/slow")  # under the limit: whole, with its trailers
    assert answer.data == b"[alphaswap-betadrop-gammadelta]"  # type: ignore[attr-defined]
    assert served.envoy.process is not None and served.envoy.process.poll() is None


# -- 3. a body whose length changes, with and without content-length ---------------------------

def test_a_longer_or_shorter_body_needs_content_length_removed(served: Served) -> None:
    # Kept, content-length lies: the client reads 11 bytes and the rest is left on the
    # connection (it would be read as the next response) ...
    head, _, body = served.raw("grow-keep", wait=1)[0].partition(b"\r\n\r\n")
    assert b"content-length: 11\r\n" in head and body == b"hello world+grown"
    # ... or the client waits for bytes that never come, until a timeout.
    (data, closed) = served.raw("shrink-keep", wait=1)
    assert b"content-length: 11\r\n" in data and data.endswith(b"\r\n\r\nhello") and not closed
    # Removed in the header callback, Envoy sends the body chunked, whatever its size.
    for case, expected in [("grow-drop", b"hello world+grown"), ("shrink-drop", b"hello")]:
        answer = served.request(case)
        assert "content-length" not in answer.headers and answer.headers["transfer-encoding"] == "chunked"
        assert answer.data == expected  # type: ignore[attr-defined]
    # The same upstream: a kept content-length truncates the request body it gets.
    served.request("grow-req-keep", body=b"abcdef")
    assert _Upstream.received[-1][0] == b"abcdef"
    served.request("grow-req-drop", body=b"abcdef")
    assert _Upstream.received[-1][0] == b"abcdef+grown"


# -- 4. no body, an empty final chunk, trailers ---------------------------------------------

def test_streams_without_a_body_get_no_body_callback(served: Served) -> None:
    offset = len(served.envoy.log_text())
    for case, answer in [("", served.request("")), ("buffer", served.request("buffer", body=b"")),
                         ("mark", served.request("mark", path="/empty"))]:
        assert answer.headers["x-events"] == "h1", case
    assert _log_events(served, offset, "mark") == "h1"  # the 204 had no body either


def test_trailers_come_after_every_body_chunk(served: Served) -> None:
    answer = served.request("", chunks=[b"one", b"two"], trailers=b"x-t: 1\r\n")
    assert answer.headers["x-events"] == "h0,b3,b3,t1"  # no empty end-of-stream chunk
    assert _Upstream.received[-1] == (b"onetwo", {"x-t": "1"})


# -- 5. json() and text() on what is not JSON or not UTF-8 ---------------------------------

@pytest.mark.parametrize("case, body, error", [
    ("json", b'{"a": 1,}', "ValueError: Expecting property name enclosed in double quotes: line 1 column 9 (char 8)"),
    ("json", b'{"a": "\xff"}', "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 7"),
    ("text", b"ab\xffcd", "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xff in position 2"),
])
def test_json_and_text_raise_a_clear_value_error_and_fail_closed_uncaught(
        served: Served, case: str, body: bytes, error: str) -> None:
    caught = served.request(f"{case}-caught", body=body)
    assert caught.status == 400 and caught.data.decode().startswith(error)  # type: ignore[attr-defined]
    offset = len(served.envoy.log_text())
    uncaught = served.request(case, body=body)
    assert (uncaught.status, uncaught.data) == (500, b"plugin error\n")  # type: ignore[attr-defined]
    served.logged(offset, "exception in Stream.on_request_body", error)


# -- 6. reads out of range, replace with str, bytes or neither ------------------------------

def test_reads_out_of_range_agree_before_and_after_the_body_is_cached(served: Served) -> None:
    result = json.loads(served.request("slices", body=b"0123456789").data)  # type: ignore[attr-defined]
    assert result["whole"] == "0123456789"
    assert result["host"] == result["cached"] == {
        "2,3": "b'234'", "8,100": "b'89'", "10": "b''", "50,5": "b''", "-3,2": "ValueError", "-3": "ValueError",
        "2,-1": "ValueError", "[2:5]": "b'234'", "[-3:]": "b'789'", "[50:60]": "b''", "[::3]": "b'0369'",
        "[4]": "TypeError",
    }


def test_replace_takes_str_as_utf8_bytes_as_they_are_and_nothing_else(served: Served) -> None:
    served.request("replace-str", body=b"0123456789")
    assert _Upstream.received[-1][0] == "h\u00e9llo \u2603".encode()
    served.request("replace-bytes", body=b"0123456789")
    assert _Upstream.received[-1][0] == b"\xff\xfe"
    offset = len(served.envoy.log_text())
    answer = served.request("replace-int", body=b"0123456789")  # not seven NUL bytes
    assert answer.status == 500
    served.logged(offset, "TypeError: expected bytes or str, not int")
