"""Small HTTP servers on 127.0.0.1 to put behind or beside Envoy.

``pwtool run`` puts an `EchoServer` behind Envoy when no upstream is given; tests use
`LocalHttpServer` with their own handler for upstreams and callout services (auth,
control planes), and read back what each one received.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Request:
    """One request a `LocalHttpServer` received; header names are lower-case."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, Mapping[str, str], bytes]
Handler = Callable[[Request], Reply]


class LocalHttpServer:
    """``with LocalHttpServer(handler) as server: server.port`` - HTTP/1.1 in a thread.

    ``handler(request) -> (status, headers, body)`` answers every request;
    ``requests`` lists what arrived, in order.
    """

    def __init__(self, handler: Handler, port: int = 0) -> None:
        self.requests: list[Request] = []
        self._handler = handler
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._request_handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="pwtool-http", daemon=True)

    def _request_handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                server.requests.append(request)
                status, headers, payload = server._handler(request)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client (Envoy) gave up, e.g. on a callout timeout

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                pass

        return _Handler

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "LocalHttpServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "LocalHttpServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def echo(request: Request) -> Reply:
    """Answer with a JSON description of the request (method, path, headers, body)."""
    payload = json.dumps({
        "method": request.method,
        "path": request.path,
        "headers": request.headers,
        "body": request.body.decode("utf-8", "replace"),
    }).encode()
    return 200, {"content-type": "application/json"}, payload


class EchoServer(LocalHttpServer):
    """An upstream that answers every request with `echo`: tests see what reached it."""

    def __init__(self, port: int = 0) -> None:
        super().__init__(echo, port)
