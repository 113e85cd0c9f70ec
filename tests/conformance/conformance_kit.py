"""The conformance suite's machinery: scenarios as data, two drivers, one Observation.

A :class:`Suite` is one plugin with one configuration and an ordered list of
:class:`Scenario` s. :func:`run_in_envoy` runs them, in order, through one real Envoy;
:func:`run_in_emulator` runs the same list through one :class:`~pwtool.emulator.Emulator`
loaded with the same ``.wasm`` file. Both return ``{scenario name: Observation}``, and the
tests assert the two are equal.

What stands behind the plugin is described once too: :func:`upstream_reply` is the
upstream's answer to a request. The real upstream (:class:`Upstream`, a threaded HTTP
server on 127.0.0.1) calls it, and the emulator driver calls it to answer the stream
and the plugin's callouts. Clusters are ``"upstream"`` (that server), ``"slow"`` (the
same answer after :data:`SLOW_DELAY_S`) or ``"dead"`` (a port nothing listens on).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

from pwtool.emulator import Emulator, HttpStream, LogLevel, TcpStream
from pwtool.envoy import Envoy, free_port
from pwtool.manifests import bootstrap, http_filter, plugin_config

AUTHORITY = "conformance.local"
SLOW_DELAY_S = 1.5
BIG_BODY = b"hello " * 4000  # 24,000 bytes: past the suites' buffer limits
CONNECT_FAILURE = b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"

# --------------------------------------------------------------------------- scenarios


@dataclasses.dataclass(frozen=True)
class Request:
    path: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: Optional[bytes] = None


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One request, and what of its outcome to compare.

    ``response_headers`` / ``upstream_headers``: header names to observe on the response
    the client gets and on the request the upstream gets. ``metrics``: plugin metric
    names (as the plugin defines them) read after the request. ``logs``: compare the
    plugin's log lines that contain ``conf[<id>]``.
    """

    name: str
    area: str
    request: Request
    response_headers: tuple[str, ...] = ()
    upstream_headers: tuple[str, ...] = ()
    metrics: tuple[str, ...] = ()
    logs: bool = True
    body: bool = True
    log_marker: Optional[str] = None  # default: conf[<name>]

    @property
    def marker(self) -> str:
        return self.log_marker or f"conf[{self.name}]"


@dataclasses.dataclass(frozen=True)
class Observation:
    """What a client, the upstream, the stats and the log show for one scenario."""

    status: Optional[int]  # None: the stream was reset (no response)
    headers: dict[str, Optional[tuple[str, ...]]]
    body: Optional[bytes]
    # what reached the upstream: method, path, selected headers, body (None: not all of it)
    upstream: Optional[tuple[str, str, dict[str, Optional[tuple[str, ...]]], Optional[bytes]]]
    logs: tuple[tuple[str, str], ...]
    metrics: dict[str, Optional[int]]


@dataclasses.dataclass
class Suite:
    name: str
    wasm: Path
    root_id: str
    scenarios: list[Scenario]
    config: Optional[dict[str, Any]] = None
    vm_id: str = ""
    buffer_limit: int = 1024 * 1024
    clusters: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> upstream|slow|dead


# --------------------------------------------------------------------------- the upstream


def upstream_reply(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """The upstream's answer (status, headers, body) to a request, in Envoy and in the emulator."""
    if path.startswith("/check"):
        return 200, [("content-type", "text/plain"), ("x-upstream", "callout")], b"allowed\n"
    if path.startswith("/buffer-response-limit"):
        reply = BIG_BODY
    else:
        reply = f"hello from upstream: {method} {path} got {len(body)} bytes: {body[:40].decode('latin-1')}\n".encode()
    return 200, [("content-type", "text/plain"), ("x-upstream", "main"), ("x-upstream-secret", "s3cret")], reply


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def _serve(self) -> None:
        headers = [(k.lower(), v) for k, v in self.headers.items()]
        entry: list[Any] = [self.command, self.path, headers, None]  # body: None until read in full
        self.server.seen.append(entry)
        length = int(self.headers.get("content-length") or 0)
        try:
            if self.headers.get("transfer-encoding", "").lower() == "chunked":
                body = self._read_chunked()
            else:
                body = self.rfile.read(length) if length else b""
        except (ConnectionError, ValueError):
            return
        if len(body) < length:
            return  # the proxy gave up on the request (e.g. a 413): the upstream saw headers only
        entry[3] = body
        if self.server.delay:
            time.sleep(self.server.delay)
        status, reply_headers, reply = upstream_reply(self.command, self.path, dict(headers), body)
        try:
            self.send_response(status)
            for key, value in reply_headers:
                self.send_header(key, value)
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _read_chunked(self) -> bytes:
        out = b""
        while True:
            size = int(self.rfile.readline().strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    do_GET = do_POST = do_PUT = _serve

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[list[Any]]
    delay: float


class Upstream:
    """The real upstream: serves :func:`upstream_reply` on 127.0.0.1 and records every request."""

    def __init__(self, delay: float = 0.0) -> None:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.seen = []
        self._server.delay = delay
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def seen(self) -> list[list[Any]]:
        return self._server.seen

    def __enter__(self) -> "Upstream":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# --------------------------------------------------------------------------- helpers


def select(pairs: Iterable[tuple[str, str]], names: Iterable[str]) -> dict[str, Optional[tuple[str, ...]]]:
    items = [(k.lower(), v) for k, v in pairs]
    return {n: (tuple(v for k, v in items if k == n) or None) for n in names}


def request_pairs(scenario: Scenario) -> list[tuple[str, str]]:
    """The request headers a plugin sees, minus what Envoy adds on its own."""
    req = scenario.request
    pairs = [(":authority", AUTHORITY), (":path", req.path), (":method", req.method), (":scheme", "http"),
             ("x-conf-id", scenario.name)]
    pairs += list(req.headers)
    if req.body is not None:
        pairs.append(("content-length", str(len(req.body))))
    return pairs


_LEVELS = {"trace": "trace", "debug": "debug", "info": "info", "warning": "warn", "warn": "warn",
           "error": "error", "critical": "critical"}
_ENVOY_RECORD = re.compile(r"^\[\d{4}-\d\d-\d\d [^\]]+\]\[\d+\]\[(\w+)\]\[wasm\] \[[^\]]+\] wasm log[^:]*: ", re.M)


def envoy_wasm_logs(text: str) -> list[tuple[str, str]]:
    """(level, message) of every plugin log record in an Envoy log (multi-line messages kept whole)."""
    records = []
    starts = list(re.finditer(r"^\[\d{4}-\d\d-\d\d ", text, re.M))
    for i, start in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        chunk = text[start.start():end].rstrip("\n")
        m = _ENVOY_RECORD.match(chunk)
        if m:
            records.append((_LEVELS[m.group(1)], chunk[m.end():]))
    return records


def normalize_log(message: str) -> str:
    """Context ids are host-assigned; everything else must match."""
    return re.sub(r"\b(context|connection) \d+", r"\1 N", message)


def marked(records: Iterable[tuple[str, str]], marker: str) -> tuple[tuple[str, str], ...]:
    return tuple((lvl, normalize_log(msg)) for lvl, msg in records if marker in msg)


# --------------------------------------------------------------------------- Envoy driver


def _cluster(name: str, port: int) -> dict[str, Any]:
    return {"name": name, "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]}}


def _http_exchange(port: int, scenario: Scenario) -> tuple[Optional[int], list[tuple[str, str]], Optional[bytes]]:
    req = scenario.request
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.putrequest(req.method, req.path, skip_host=True, skip_accept_encoding=True)
        for key, value in request_pairs(scenario):
            if key == ":authority":
                conn.putheader("host", value)
            elif not key.startswith(":"):
                conn.putheader(key, value)
        try:
            conn.endheaders(req.body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            response = conn.getresponse()
            body = response.read()
        except (http.client.RemoteDisconnected, http.client.IncompleteRead, ConnectionResetError):
            return None, [], None
        return response.status, [(k.lower(), v) for k, v in response.getheaders()], body
    finally:
        conn.close()


def run_in_envoy(suite: Suite) -> dict[str, Observation]:
    listen, admin = free_port(), free_port()
    with Upstream() as main, Upstream(delay=SLOW_DELAY_S) as slow:
        ports = {"upstream": main.port, "slow": slow.port, "dead": free_port()}
        clusters = [_cluster(name, ports[kind]) for name, kind in suite.clusters.items()]
        plugin = plugin_config(name=suite.name, root_id=suite.root_id, wasm_file=suite.wasm, config=suite.config,
                               vm_id=suite.vm_id or suite.name)
        config = bootstrap(http_filters=[http_filter(plugin)], listen_port=listen, admin_port=admin,
                           upstream=f"127.0.0.1:{main.port}", clusters=clusters)
        config["static_resources"]["listeners"][0]["per_connection_buffer_limit_bytes"] = suite.buffer_limit
        results: dict[str, tuple[Optional[int], list[tuple[str, str]], Optional[bytes]]] = {}
        metrics: dict[str, dict[str, Optional[int]]] = {}
        with Envoy(config, admin_port=admin, component_log_level="wasm:debug") as envoy:
            for scenario in suite.scenarios:
                results[scenario.name] = _http_exchange(listen, scenario)
                if scenario.metrics:
                    stats = envoy.stats("wasmcustom.")
                    metrics[scenario.name] = {m: stats.get(f"wasmcustom.{m}") for m in scenario.metrics}
            time.sleep(0.3)  # let the last access-log callbacks reach the log
            log = envoy_wasm_logs(envoy.log_text())
        # the main upstream's requests, minus the plugin's callouts (to /check)
        seen = {dict(headers).get("x-conf-id"): (method, path, headers, body)
                for method, path, headers, body in main.seen if not path.startswith("/check")}
    out = {}
    for scenario in suite.scenarios:
        status, headers, body = results[scenario.name]
        up = seen.get(scenario.name)
        out[scenario.name] = Observation(
            status=status,
            headers=select(headers, scenario.response_headers),
            body=body if scenario.body else None,
            upstream=None if up is None else (up[0], up[1], select(up[2], scenario.upstream_headers), up[3]),
            logs=marked(log, scenario.marker) if scenario.logs else (),
            metrics=metrics.get(scenario.name, {}),
        )
    return out


# --------------------------------------------------------------------------- emulator driver


def send_like_envoy(stream: HttpStream, headers: list[tuple[str, str]], body: Optional[bytes], response: bool = False) -> None:
    """Deliver a message as Envoy's HTTP/1 codec does: headers, the body (if any) with
    end_of_stream false, then an empty chunk that ends the stream."""
    send_headers = stream.send_response_headers if response else stream.send_request_headers
    send_body = stream.send_response_body if response else stream.send_request_body
    send_headers(headers, end_of_stream=not body)
    if body and not stream.done:
        send_body(body, end_of_stream=False)
        if not stream.done:
            send_body(b"", end_of_stream=True)


def _answer_callouts(emu: Emulator, suite: Suite) -> bool:
    """Answer (or let time out) the oldest pending callout the way its cluster would."""
    if not emu.pending_http_calls:
        return False
    call = emu.pending_http_calls[0]
    kind = suite.clusters.get(call.upstream, "upstream")
    if kind == "dead":
        # Envoy's async client gets the router's local reply, not a reset (no "failed" callout).
        call.respond(503, [("content-length", str(len(CONNECT_FAILURE))), ("content-type", "text/plain")],
                     CONNECT_FAILURE)
    elif kind == "slow" and call.timeout_ms and call.timeout_ms < SLOW_DELAY_S * 1000:
        emu.advance(call.timeout_ms)  # the emulator's own deadline fires
    else:
        status, headers, body = upstream_reply(call.method or "GET", call.path or "/", dict(call.headers.items()), call.body)
        call.respond(status, headers + [("content-length", str(len(body)))], body)
    return True


def _drive(emu: Emulator, suite: Suite, stream: HttpStream) -> None:
    """Play the upstream, the callout clusters and the clock until the stream ends (or is stuck)."""
    for _ in range(100):
        if stream.done:
            return
        up = stream.upstream_request
        if up.end_of_stream and not stream.response.started:
            headers = dict((up.headers or {}).items()) if up.headers else {}
            status, reply_headers, body = upstream_reply(headers.get(":method", "GET"), headers.get(":path", "/"),
                                                         headers, bytes(up.body))
            send_like_envoy(stream, [(":status", str(status)), *reply_headers, ("content-length", str(len(body)))],
                            body, response=True)
            continue
        if _answer_callouts(emu, suite):
            continue
        try:
            emu.tick()
        except Exception:  # no tick period: nothing else can move the stream
            return
    raise AssertionError(f"emulated stream {stream.id} did not settle: request stopped={stream.request.stopped} "
                         f"response stopped={stream.response.stopped} started={stream.response.started}")


def run_in_emulator(suite: Suite) -> dict[str, Observation]:
    out = {}
    with Emulator(buffer_limit=suite.buffer_limit, log_level=LogLevel.DEBUG, clusters=set(suite.clusters)) as emu:
        config = json.dumps(suite.config, sort_keys=True) if suite.config else b""
        plugin = emu.load(suite.wasm, config=config, root_id=suite.root_id, vm_id=suite.vm_id or suite.name,
                          name=suite.name)
        for scenario in suite.scenarios:
            stream = plugin.http_stream()
            req = scenario.request
            send_like_envoy(stream, request_pairs(scenario), req.body)
            _drive(emu, suite, stream)
            resp = stream.downstream_response
            reset = stream.reset_by is not None
            status = None if reset or resp.headers is None else int(resp.headers[":status"])
            up = stream.upstream_request
            upstream = None
            if up.headers is not None:
                upstream = (up.headers.get(":method"), up.headers.get(":path"),
                            select(up.headers.items(), scenario.upstream_headers),
                            bytes(up.body) if up.end_of_stream else None)
            records = [(r.level.name.lower(), r.message) for r in emu.logs.records]
            out[scenario.name] = Observation(
                status=status,
                headers=select([] if reset or resp.headers is None else resp.headers.items(), scenario.response_headers),
                body=(None if reset else bytes(resp.body)) if scenario.body else None,
                upstream=upstream,
                logs=marked(records, scenario.marker) if scenario.logs else (),
                metrics={m: emu.metrics.get(m) for m in scenario.metrics},
            )
    return out


def diff(envoy: dict[str, Observation], emulated: dict[str, Observation]) -> list[str]:
    """Human-readable differences, one entry per field that disagrees."""
    problems = []
    for name, real in envoy.items():
        emu = emulated[name]
        for field in dataclasses.fields(Observation):
            a, b = getattr(real, field.name), getattr(emu, field.name)
            if a != b:
                problems.append(f"{name}.{field.name}:\n    envoy:    {a!r}\n    emulator: {b!r}")
    return problems
