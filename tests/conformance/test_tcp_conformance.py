"""TCP (network filter) scenarios: `plugins/tcp_filter` in real Envoy and in the emulator.

Envoy runs the module as an `envoy.filters.network.wasm` filter in front of
`tcp_proxy` to an echo server; the emulator gets the same bytes in the same order.
Both must agree on what reached the upstream, what the client received, the plugin's
log lines and its metrics.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conformance_kit import envoy_wasm_logs, marked

from pwtool.emulator import Emulator, LogLevel
from pwtool.envoy import Envoy, free_port
from pwtool.manifests import plugin_config

REPO = Path(__file__).resolve().parents[2]
MARKER = "tcp_filter:"
METRIC_PREFIX = "tcp_filter."


@dataclass(frozen=True)
class TcpObservation:
    upstream_received: bytes
    client_received: bytes
    logs: tuple[tuple[str, str], ...]
    metrics: dict[str, int]


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        received = bytearray()
        while True:
            chunk = self.request.recv(65536)
            if not chunk:
                break
            received += chunk
            self.request.sendall(chunk)
        self.server.received.append(bytes(received))  # type: ignore[attr-defined]


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.received: list[bytes] = []


def _tcp_config(wasm: Path, listen: int, admin: int, upstream_port: int, config: dict[str, Any]) -> dict[str, Any]:
    plugin = plugin_config(name="tcp_filter", root_id="tcp_filter", wasm_file=wasm, config=config)
    return {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{
                "name": "tcp",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                "filter_chains": [{"filters": [
                    {"name": "envoy.filters.network.wasm", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm",
                        "config": plugin}},
                    {"name": "envoy.filters.network.tcp_proxy", "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                        "stat_prefix": "tcp", "cluster": "echo"}},
                ]}],
            }],
            "clusters": [{
                "name": "echo", "type": "STATIC", "connect_timeout": "1s",
                "load_assignment": {"cluster_name": "echo", "endpoints": [{"lb_endpoints": [{"endpoint": {
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}}}]}]},
            }],
        },
    }


def _client_exchange(port: int, payload: bytes) -> bytes:
    """Send ``payload``, read the echo (or until Envoy closes), then close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(payload)
        received = bytearray()
        deadline = time.monotonic() + 5
        while len(received) < len(payload) and time.monotonic() < deadline:
            try:
                chunk = client.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            received += chunk
    return bytes(received)


def _metrics(values: dict[str, int | None]) -> dict[str, int]:
    return {name: value for name, value in values.items() if value is not None}


def run_in_envoy(wasm: Path, payload: bytes, config: dict[str, Any]) -> TcpObservation:
    listen, admin = free_port(), free_port()
    echo = _EchoServer()
    thread = threading.Thread(target=echo.serve_forever, daemon=True)
    thread.start()
    try:
        with Envoy(_tcp_config(wasm, listen, admin, echo.server_address[1], config), admin_port=admin) as envoy:
            client_received = _client_exchange(listen, payload)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and MARKER + " connection" not in envoy.log_text().split("bytes in")[0]:
                time.sleep(0.1)
            time.sleep(0.5)  # the connection's last callbacks
            logs = marked(envoy_wasm_logs(envoy.log_text()), MARKER)
            stats = envoy.stats("wasmcustom.")
            metrics = {name[len("wasmcustom."):]: value for name, value in stats.items()
                       if name.startswith("wasmcustom." + METRIC_PREFIX)}
    finally:
        echo.shutdown()
        echo.server_close()
    return TcpObservation(b"".join(echo.received), client_received, logs, metrics)


def run_in_emulator(wasm: Path, payload: bytes, config: dict[str, Any]) -> TcpObservation:
    with Emulator(log_level=LogLevel.DEBUG) as emulator:
        plugin = emulator.load(wasm, config=json.dumps(config), root_id="tcp_filter", name="tcp_filter")
        stream = plugin.tcp_stream()
        stream.send_downstream_data(payload)
        if stream.sent_upstream and not stream.done:
            stream.send_upstream_data(bytes(stream.sent_upstream))  # the echo server's answer
        if not stream.done:
            stream.close_downstream()
        if not stream.upstream_closed:
            stream.close_upstream()
        records = [(r.level.name.lower(), r.message) for r in emulator.logs.records]
        metrics = {name: emulator.metrics.get(name) for name in emulator.metrics.names()
                   if name.startswith(METRIC_PREFIX)}
        return TcpObservation(bytes(stream.sent_upstream), bytes(stream.sent_downstream),
                              marked(records, MARKER), _metrics(metrics))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tcp_wasm(built_plugin: Any) -> Path:
    return built_plugin("tcp_filter")  # type: ignore[no-any-return]


@pytest.mark.parametrize(("payload", "config"), [
    (b"hello through the proxy", {"reject_prefix": ""}),
    (b"EVIL request", {"reject_prefix": "EVIL"}),
], ids=["forwarded", "rejected"])
def test_tcp_filter_agrees_with_envoy(tcp_wasm: Path, payload: bytes, config: dict[str, Any]) -> None:
    in_envoy = run_in_envoy(tcp_wasm, payload, config)
    emulated = run_in_emulator(tcp_wasm, payload, config)
    assert emulated == in_envoy
    if config["reject_prefix"]:
        assert in_envoy.upstream_received == b"" and in_envoy.client_received == b""
        assert any("rejected" in message for _, message in in_envoy.logs)
    else:
        assert in_envoy.upstream_received == payload == in_envoy.client_received
        assert any(f"{len(payload)} bytes in, {len(payload)} bytes out" in message for _, message in in_envoy.logs)


WAITS_AND_READS = """
import proxywasm
from proxywasm import TcpContext


class Reads(TcpContext):
    async def on_new_connection(self):
        await proxywasm.sleep(300)
        proxywasm.log_warn("reads: let through")

    def on_downstream_data(self, data, end_of_stream):
        if len(data):
            proxywasm.log_warn(f"reads: data {bytes(data.read())!r}")


proxywasm.register(type("Plugin", (proxywasm.RootContext,), {"tcp_context": Reads}))
"""


class _TimedEcho(_Echo):
    def handle(self) -> None:
        self.server.accepted.append(time.monotonic())  # type: ignore[attr-defined]
        super().handle()


def test_modules_without_data_callbacks_in_envoy(plugin_source: Any, built_plugin: Any) -> None:
    """A module that reads no data exports no data callback, and Envoy passes the bytes
    both ways. One whose on_new_connection awaits needs none either: Envoy reads nothing
    from the connection (the upstream is not even dialled) until the coroutine ends,
    though the client's data arrived at once."""
    from pwtool.build.wasm_binary import Module

    counts = built_plugin(REPO / "tests" / "build" / "plugins" / "tcp_counts")
    waits = built_plugin(REPO / "tests" / "build" / "plugins" / "tcp_waits")
    reads = built_plugin(plugin_source("tcp_reads", WAITS_AND_READS))
    exported = {name: {e.name for e in Module.parse(wasm.read_bytes()).exports()} for name, wasm in
                (("counts", counts), ("waits", waits))}
    for name in ("counts", "waits"):
        assert not exported[name] & {"proxy_on_downstream_data", "proxy_on_upstream_data"}
    for wasm, payload in ((counts, b"counted bytes " * 5000), (waits, b"early bytes"), (reads, b"read late")):
        listen, admin = free_port(), free_port()
        echo = _EchoServer()
        echo.RequestHandlerClass = _TimedEcho
        echo.accepted = []  # type: ignore[attr-defined]
        thread = threading.Thread(target=echo.serve_forever, daemon=True)
        thread.start()
        try:
            with Envoy(_tcp_config(wasm, listen, admin, echo.server_address[1], {}), admin_port=admin) as envoy:
                sent_at = time.monotonic()
                assert _client_exchange(listen, payload) == payload
                stats = envoy.stats("wasmcustom.tcp_counts")
                logs = [message for _, message in marked(envoy_wasm_logs(envoy.log_text()), "reads:")]
                assert envoy.process is not None and envoy.process.poll() is None
        finally:
            echo.shutdown()
            echo.server_close()
        assert b"".join(echo.received) == payload
        if wasm == counts:
            assert stats == {"wasmcustom.tcp_counts.connections": 1}
        else:
            assert echo.accepted[0] - sent_at >= 0.25, "the upstream was dialled while the plugin held the connection"
        if wasm == reads:  # the plugin gets the data only once it resumes (the emulator does the same)
            assert logs == ["reads: let through", "reads: data b'read late'"]
