"""pwtool's proxy-wasm host emulator and pytest harness.

Run any proxy-wasm module (ABI 0.1.0, 0.2.0, 0.2.1) under wasmtime, or a plugin's
Python source natively, against an emulated Envoy::

    from pwtool.emulator import Emulator

    emu = Emulator()
    plugin = emu.load("dist/my_plugin.wasm", config=b'{"x": 1}')
    stream = plugin.http_stream()
    assert stream.send_request_headers({":path": "/"}, end_of_stream=True) == Action.CONTINUE
    assert stream.upstream_request.headers["x-added"] == "1"
"""

from ._codec import decode_pairs, encode_pairs
from ._host import Emulator, GrpcCall, GrpcStream, HttpCall, HttpStream, Plugin, TcpStream, VM
from ._loader import build_plugin_cached
from ._records import CallRecord, HeaderMap, LocalResponse, LogRecord, Logs, Message, Metric, Metrics
from ._types import (
    Action,
    BufferType,
    EmulatorError,
    HostcallError,
    LogLevel,
    MapType,
    MetricType,
    ModuleLoadError,
    PeerType,
    PluginStartError,
    Status,
    StreamType,
    VMFailed,
    WasmTrap,
)

__all__ = [
    "Emulator",
    "Plugin",
    "VM",
    "HttpStream",
    "TcpStream",
    "HttpCall",
    "GrpcCall",
    "GrpcStream",
    "CallRecord",
    "HeaderMap",
    "Message",
    "LocalResponse",
    "LogRecord",
    "Logs",
    "Metric",
    "Metrics",
    "Action",
    "BufferType",
    "LogLevel",
    "MapType",
    "MetricType",
    "PeerType",
    "Status",
    "StreamType",
    "HostcallError",
    "EmulatorError",
    "ModuleLoadError",
    "PluginStartError",
    "VMFailed",
    "WasmTrap",
    "build_plugin_cached",
    "encode_pairs",
    "decode_pairs",
]
