"""Proxy-wasm ABI enums and the emulator's exceptions.

The values are those of the ABI spec and of Envoy (see DESIGN.md §3); they are
duplicated here on purpose, because the emulator must not depend on the SDK it tests.
"""

from __future__ import annotations

import enum

__all__ = [
    "Status",
    "Action",
    "LogLevel",
    "BufferType",
    "MapType",
    "StreamType",
    "MetricType",
    "PeerType",
    "HostcallError",
    "EmulatorError",
    "ModuleLoadError",
    "PluginStartError",
    "WasmTrap",
    "VMFailed",
]


class Status(enum.IntEnum):
    """ABI status codes (``WasmResult``)."""

    OK = 0
    NOT_FOUND = 1
    BAD_ARGUMENT = 2
    SERIALIZATION_FAILURE = 3
    PARSE_FAILURE = 4
    BAD_EXPRESSION = 5
    INVALID_MEMORY_ACCESS = 6
    EMPTY = 7
    CAS_MISMATCH = 8
    RESULT_MISMATCH = 9
    INTERNAL_FAILURE = 10
    BROKEN_CONNECTION = 11
    UNIMPLEMENTED = 12


class Action(enum.IntEnum):
    """What a stream callback asks the host to do next."""

    CONTINUE = 0
    PAUSE = 1


class LogLevel(enum.IntEnum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4
    CRITICAL = 5


class BufferType(enum.IntEnum):
    HTTP_REQUEST_BODY = 0
    HTTP_RESPONSE_BODY = 1
    DOWNSTREAM_DATA = 2
    UPSTREAM_DATA = 3
    HTTP_CALL_RESPONSE_BODY = 4
    GRPC_RECEIVE_BUFFER = 5
    VM_CONFIGURATION = 6
    PLUGIN_CONFIGURATION = 7
    CALL_DATA = 8


class MapType(enum.IntEnum):
    HTTP_REQUEST_HEADERS = 0
    HTTP_REQUEST_TRAILERS = 1
    HTTP_RESPONSE_HEADERS = 2
    HTTP_RESPONSE_TRAILERS = 3
    GRPC_RECEIVE_INITIAL_METADATA = 4
    GRPC_RECEIVE_TRAILING_METADATA = 5
    HTTP_CALL_RESPONSE_HEADERS = 6
    HTTP_CALL_RESPONSE_TRAILERS = 7


class StreamType(enum.IntEnum):
    REQUEST = 0
    RESPONSE = 1
    DOWNSTREAM = 2
    UPSTREAM = 3


class MetricType(enum.IntEnum):
    COUNTER = 0
    GAUGE = 1
    HISTOGRAM = 2


class PeerType(enum.IntEnum):
    UNKNOWN = 0
    LOCAL = 1
    REMOTE = 2


class HostcallError(Exception):
    """A hostcall returned a status other than OK (the seam's ``HostcallError``)."""

    def __init__(self, status: int, hostcall: str) -> None:
        super().__init__(status, hostcall)
        self.status = int(status)
        self.hostcall = hostcall

    def __str__(self) -> str:
        try:
            name = Status(self.status).name
        except ValueError:
            name = str(self.status)
        return f"{self.hostcall} failed: {name}"


class EmulatorError(Exception):
    """Base class of the errors the emulator raises to the test."""

    #: The module (file path, or "module bytes") the error is about, once known.
    module: "str | None" = None

    def locate(self, where: str) -> None:
        """Name the module (and plugin) the error is about at the front of the message, once."""
        if self.module is not None:
            return
        self.module = where
        message = str(self.args[0]) if self.args else ""
        if not message.startswith(where):
            self.args = (f"{where}: {message}", *self.args[1:])


class ModuleLoadError(EmulatorError):
    """The module cannot be loaded, for the reason Envoy would give."""


class PluginStartError(EmulatorError):
    """``on_vm_start`` or ``on_configure`` returned false."""


class WasmTrap(EmulatorError):
    """The module trapped (or ran out of time or memory) inside a callback."""

    def __init__(self, callback: str, trap: str) -> None:
        super().__init__(f"wasm trap in {callback}: {trap}")
        self.callback = callback
        self.trap = trap


class VMFailed(EmulatorError):
    """A callback was attempted on a VM that already trapped."""
