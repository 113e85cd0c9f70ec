"""Trailers and a buffered body with an ``async`` body callback, in real Envoy and in the emulator.

HTTP/1.1 carries trailers only in chunked messages, and Envoy passes them on only with
``enable_trailers`` on both codecs, so this suite sets that up itself: a raw client sends
a chunked POST with a trailer, a raw upstream records the bytes it gets. The plugin
buffers the request body, awaits a sleep in its body callback, appends to the body, and
then its trailers callback adds a trailer: the upstream must get both changes, and the
trailers callback must run after the body callback has finished (SDK: trailers end a
buffered body, so the body callback goes first, even when it is ``async``).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pwtool.emulator import Emulator
from pwtool.envoy import Envoy, free_port
from pwtool.manifests import bootstrap, http_filter, plugin_config

pytestmark = pytest.mark.envoy

PLUGIN = '''
import proxywasm
from proxywasm import Action, HttpContext


class Buffered(HttpContext):
    buffer_request_body = True

    async def on_request_body(self, body, end_of_stream):
        proxywasm.log_warn(f"trailers-suite body {body.read()!r}")
        await proxywasm.sleep(50)
        body.append(b"+")
        proxywasm.log_warn("trailers-suite body done")
        return Action.CONTINUE

    def on_request_trailers(self, trailers):
        proxywasm.log_warn(f"trailers-suite trailers t={trailers.get('t')}")
        trailers["x-seen"] = "yes"
        return Action.CONTINUE


proxywasm.register(Buffered)
'''

CHUNKED_POST = b"POST /t HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\nt: 1\r\n\r\n"
EXPECTED_LOGS = ["trailers-suite body b'xyz'", "trailers-suite body done", "trailers-suite trailers t=1"]


def parse_chunked(raw: bytes) -> tuple[bytes, dict[str, str]]:
    """The body and trailers of a chunked HTTP/1.1 request as received on the wire."""
    rest = raw.split(b"\r\n\r\n", 1)[1]
    body = b""
    while True:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            break
        body, rest = body + rest[:size], rest[size + 2:]
    trailers = dict(line.decode().split(": ", 1) for line in rest.split(b"\r\n") if line)
    return body, trailers


class RawUpstream:
    """Records each request's bytes (until the end of its chunked body), answers 200."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(10)
                data = b""
                while not (b"\r\n0\r\n" in data and data.endswith(b"\r\n\r\n")):
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                self.requests.append(data)
                connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    def __enter__(self) -> RawUpstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.close()


def enable_trailers(config: dict[str, Any]) -> dict[str, Any]:
    """Let Envoy's HTTP/1 codecs read and write trailers, downstream and upstream."""
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                network_filter["typed_config"]["http_protocol_options"] = {"enable_trailers": True}
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] == "upstream":
            cluster["typed_extension_protocol_options"] = {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http_protocol_options": {"enable_trailers": True}}}}
    return config


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory, built_plugin: Callable[[Path], Path]) -> Path:
    directory = tmp_path_factory.mktemp("trailers") / "buffered"
    directory.mkdir()
    (directory / "plugin.py").write_text(PLUGIN)
    (directory / "plugin.toml").write_text('name = "buffered"\n')
    return built_plugin(directory)


@pytest.fixture
def upstream() -> Iterator[RawUpstream]:
    with RawUpstream() as server:
        yield server


def test_async_buffered_body_then_trailers_in_envoy(module: Path, upstream: RawUpstream) -> None:
    listen, admin = free_port(), free_port()
    config = enable_trailers(bootstrap(
        http_filters=[http_filter(plugin_config(name="buffered", root_id="buffered", wasm_file=module))],
        listen_port=listen, admin_port=admin, upstream=upstream.address))
    with Envoy(config, admin_port=admin) as envoy:
        with socket.create_connection(("127.0.0.1", listen), timeout=10) as client:
            client.sendall(CHUNKED_POST)
            answer = client.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        logs = [line.split("trailers-suite", 1)[1] for line in envoy.log_text().splitlines() if "trailers-suite" in line]
    assert ["trailers-suite" + line for line in logs] == EXPECTED_LOGS
    (request,) = upstream.requests
    body, trailers = parse_chunked(request)
    assert body == b"xyz+" and trailers == {"t": "1", "x-seen": "yes"}


def test_the_emulator_does_the_same(module: Path) -> None:
    with Emulator() as emulator:
        plugin = emulator.load(module)
        stream = plugin.http_stream()
        stream.send_request_headers({":method": "POST", ":path": "/t", ":authority": "x"})
        stream.send_request_body("xyz", end_of_stream=False)
        stream.send_request_trailers({"t": "1"})
        assert stream.request_paused
        plugin.advance(50)
        assert plugin.logs.warn == EXPECTED_LOGS
        assert stream.upstream_request.body == b"xyz+"
        assert stream.upstream_request.trailers.to_dict() == {"t": "1", "x-seen": "yes"}
