"""proxywasm: write Envoy / Istio proxy-wasm plugins (ABI 0.2.1) in plain Python.

A plugin subclasses `HttpContext` (or `RootContext` / `TcpContext`), overrides the
callbacks it needs and registers itself::

    import proxywasm

    class AddHeader(proxywasm.HttpContext):
        def on_response_headers(self, headers, end_of_stream):
            headers["x-hello"] = "world"
            return proxywasm.Action.CONTINUE

    proxywasm.register(AddHeader)

Importing this package hands the dispatcher to the host through the `_proxywasm` seam
(docs/abi-seam.md). See docs/sdk.md for the whole API.
"""

from __future__ import annotations

from ._body import Body
from ._callouts import GrpcResponse, GrpcStream, GrpcStreamHandler, HttpResponse
from ._context import HttpContext, RootContext, TcpContext, parse_json_config
from ._dispatcher import Dispatcher, install_seam_dispatcher, register
from ._errors import (
    BadArgument,
    CalloutError,
    CasMismatch,
    ConfigError,
    Empty,
    GrpcCallError,
    GrpcCallTimeout,
    HostcallError,
    HttpCallFailed,
    HttpCallTimeout,
    InternalFailure,
    InvalidMemoryAccess,
    NotFound,
    ParseFailure,
    ProxyWasmError,
    SerializationFailure,
    StreamGone,
    Unimplemented,
)
from ._headers import Headers, HostHeaders
from ._host import call_foreign_function, current_time, current_time_ns
from ._log import (
    get_log_level,
    log,
    log_critical,
    log_debug,
    log_error,
    log_info,
    log_trace,
    log_warn,
)
from ._metrics import Counter, Gauge, Histogram
from ._properties import (
    Properties,
    get_property,
    get_property_bool,
    get_property_int,
    get_property_map,
    get_property_str,
    properties,
    set_property,
)
from ._shared import SharedQueue, get_shared_data, set_shared_data, update_shared_data
from ._tasks import sleep
from ._types import (
    Action,
    BufferType,
    GrpcStatus,
    LogLevel,
    MapType,
    MetricType,
    PeerType,
    Status,
    StreamType,
)

__all__ = [
    # contexts and registration
    "RootContext",
    "HttpContext",
    "TcpContext",
    "register",
    "Dispatcher",
    "parse_json_config",
    # stream data
    "Action",
    "Headers",
    "HostHeaders",
    "Body",
    # callouts and timers
    "HttpResponse",
    "GrpcResponse",
    "GrpcStream",
    "GrpcStreamHandler",
    "sleep",
    # shared state and metrics
    "get_shared_data",
    "set_shared_data",
    "update_shared_data",
    "SharedQueue",
    "Counter",
    "Gauge",
    "Histogram",
    # properties, host services, logging
    "properties",
    "Properties",
    "get_property",
    "get_property_str",
    "get_property_int",
    "get_property_bool",
    "get_property_map",
    "set_property",
    "call_foreign_function",
    "current_time",
    "current_time_ns",
    "log",
    "log_trace",
    "log_debug",
    "log_info",
    "log_warn",
    "log_error",
    "log_critical",
    "get_log_level",
    # enums
    "LogLevel",
    "PeerType",
    "Status",
    "BufferType",
    "MapType",
    "StreamType",
    "MetricType",
    "GrpcStatus",
    # exceptions
    "ProxyWasmError",
    "HostcallError",
    "NotFound",
    "BadArgument",
    "SerializationFailure",
    "ParseFailure",
    "InvalidMemoryAccess",
    "Empty",
    "CasMismatch",
    "InternalFailure",
    "Unimplemented",
    "StreamGone",
    "CalloutError",
    "HttpCallFailed",
    "HttpCallTimeout",
    "GrpcCallError",
    "GrpcCallTimeout",
    "ConfigError",
]

_registered_dispatcher = install_seam_dispatcher()
"""The dispatcher handed to the host (in native tests, the emulator makes one per VM)."""
