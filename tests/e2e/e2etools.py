"""Helpers for the end-to-end tests: small scripted HTTP services and polling."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Seen:
    """One request a `Service` received."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Service:
    """An HTTP service on 127.0.0.1 whose answers come from ``handler(seen) -> (status, headers, body)``."""

    handler: Callable[[Seen], Reply]
    requests: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()})
                service.requests.append(seen)
                status, headers, body = service.handler(seen)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # Envoy gave up on a slow answer (the timeout tests)

            do_GET = do_POST = _serve

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> "Service":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes


def fetch(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> Answer:
    """GET (or POST with ``data``) ``url``; error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def cluster(name: str, address: str) -> dict[str, Any]:
    """A static cluster ``name`` with the one endpoint ``host:port``."""
    host, _, port = address.rpartition(":")
    return {
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": host, "port_value": int(port)}}}}]}]},
    }


def hcm(config: dict[str, Any]) -> dict[str, Any]:
    """The HttpConnectionManager typed_config of a `bootstrap()` config (to tweak it)."""
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]  # type: ignore[no-any-return]
