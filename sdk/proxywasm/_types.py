"""The enums of the proxy-wasm ABI 0.2.1, named the way plugin code reads them."""

from __future__ import annotations

from enum import IntEnum


class Action(IntEnum):
    """What a stream callback tells the host to do next."""

    CONTINUE = 0
    """Pass the headers / body / data on to the next filter."""
    PAUSE = 1
    """Hold the stream here until the plugin resumes it (or, for a body, buffer it)."""


class LogLevel(IntEnum):
    """Envoy log levels, as `proxy_log` numbers them."""

    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4
    CRITICAL = 5


class PeerType(IntEnum):
    """Which side closed a TCP connection."""

    UNKNOWN = 0
    LOCAL = 1
    REMOTE = 2


class Status(IntEnum):
    """Result codes of hostcalls."""

    OK = 0
    NOT_FOUND = 1
    BAD_ARGUMENT = 2
    SERIALIZATION_FAILURE = 3
    PARSE_FAILURE = 4
    INVALID_MEMORY_ACCESS = 6
    EMPTY = 7
    CAS_MISMATCH = 8
    INTERNAL_FAILURE = 10
    UNIMPLEMENTED = 12


class BufferType(IntEnum):
    """Host buffers that `get_buffer_bytes` / `set_buffer_bytes` address."""

    HTTP_REQUEST_BODY = 0
    HTTP_RESPONSE_BODY = 1
    DOWNSTREAM_DATA = 2
    UPSTREAM_DATA = 3
    HTTP_CALL_RESPONSE_BODY = 4
    GRPC_RECEIVE_BUFFER = 5
    VM_CONFIGURATION = 6
    PLUGIN_CONFIGURATION = 7
    CALL_DATA = 8


class MapType(IntEnum):
    """Host header maps."""

    HTTP_REQUEST_HEADERS = 0
    HTTP_REQUEST_TRAILERS = 1
    HTTP_RESPONSE_HEADERS = 2
    HTTP_RESPONSE_TRAILERS = 3
    GRPC_RECEIVE_INITIAL_METADATA = 4
    GRPC_RECEIVE_TRAILING_METADATA = 5
    HTTP_CALL_RESPONSE_HEADERS = 6
    HTTP_CALL_RESPONSE_TRAILERS = 7


class StreamType(IntEnum):
    """Streams that `continue_stream` / `close_stream` address."""

    HTTP_REQUEST = 0
    HTTP_RESPONSE = 1
    DOWNSTREAM = 2
    UPSTREAM = 3


class MetricType(IntEnum):
    """Kinds of metric `define_metric` creates."""

    COUNTER = 0
    GAUGE = 1
    HISTOGRAM = 2


class GrpcStatus(IntEnum):
    """gRPC status codes (for local responses and gRPC call results)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16
