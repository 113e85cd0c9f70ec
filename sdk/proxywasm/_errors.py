"""Exceptions raised by the SDK.

Every hostcall that returns a status other than OK raises a subclass of
`HostcallError` whose message names the hostcall and its arguments, so a failure
reads ``proxy_get_shared_data(key=b'hosts') failed: NOT_FOUND`` instead of a bare
status code.
"""

from __future__ import annotations

from ._types import Status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


class ProxyWasmError(Exception):
    """Base class of every exception the SDK raises."""


class HostcallError(ProxyWasmError):
    """A hostcall returned a status other than OK."""

    status: Status | int = -1

    def __init__(self, hostcall: str, arguments: Mapping[str, object], status: int) -> None:
        self.hostcall = hostcall
        self.arguments = dict(arguments)
        try:
            self.status = Status(status)
        except ValueError:
            self.status = status
        super().__init__(self._describe())

    def _describe(self) -> str:
        args = ", ".join(f"{name}={_short(value)}" for name, value in self.arguments.items())
        status = self.status.name if isinstance(self.status, Status) else f"status {self.status}"
        return f"{self.hostcall}({args}) failed: {status}"


class NotFound(HostcallError):
    """NOT_FOUND: the key, header, property, queue or context does not exist."""


class BadArgument(HostcallError):
    """BAD_ARGUMENT: the host rejected an argument (often: the context is gone)."""


class SerializationFailure(HostcallError):
    """SERIALIZATION_FAILURE: the host could not serialize the value."""


class ParseFailure(HostcallError):
    """PARSE_FAILURE: the host could not parse what it was given."""


class InvalidMemoryAccess(HostcallError):
    """INVALID_MEMORY_ACCESS: a pointer/size pair was out of bounds."""


class Empty(HostcallError):
    """EMPTY: the shared queue has nothing to dequeue."""


class CasMismatch(HostcallError):
    """CAS_MISMATCH: the shared data changed since it was read."""


class InternalFailure(HostcallError):
    """INTERNAL_FAILURE: the host failed internally."""


class Unimplemented(HostcallError):
    """UNIMPLEMENTED: the host does not offer this hostcall or feature."""


class StreamGone(ProxyWasmError):
    """The HTTP stream or TCP connection addressed no longer exists."""


class CalloutError(ProxyWasmError):
    """An HTTP callout or gRPC call did not produce a usable answer."""


class HttpCallFailed(CalloutError):
    """The HTTP callout failed: connection reset, no upstream, response too large."""

    def __init__(self, upstream: str, message: str) -> None:
        self.upstream = upstream
        super().__init__(f"HTTP call to {upstream!r} failed: {message}")


class HttpCallTimeout(HttpCallFailed):
    """The HTTP callout ran past its timeout (Envoy answered 504 itself)."""


class GrpcCallError(CalloutError):
    """A gRPC call or stream ended with a non-OK gRPC status."""

    def __init__(self, upstream: str, service: str, method: str, status: int, message: str) -> None:
        self.upstream = upstream
        self.service = service
        self.method = method
        self.status = status
        self.message = message
        super().__init__(
            f"gRPC {service}/{method} on {upstream!r} failed with status {status}: {message}"
        )


class GrpcCallTimeout(GrpcCallError):
    """The gRPC call ran past its timeout. Envoy reports that as UNAVAILABLE (14) with
    the message of its own 504 (``upstream request timeout``), and so does `status`."""


GRPC_TIMEOUT_MESSAGE = "upstream request timeout"
"""How the status message of a gRPC call that Envoy timed out starts."""


class ConfigError(ProxyWasmError):
    """The plugin or VM configuration is invalid."""


_BY_STATUS: dict[int, type[HostcallError]] = {
    Status.NOT_FOUND: NotFound,
    Status.BAD_ARGUMENT: BadArgument,
    Status.SERIALIZATION_FAILURE: SerializationFailure,
    Status.PARSE_FAILURE: ParseFailure,
    Status.INVALID_MEMORY_ACCESS: InvalidMemoryAccess,
    Status.EMPTY: Empty,
    Status.CAS_MISMATCH: CasMismatch,
    Status.INTERNAL_FAILURE: InternalFailure,
    Status.UNIMPLEMENTED: Unimplemented,
}


def hostcall_error(hostcall: str, status: int, **arguments: object) -> HostcallError:
    """The typed exception for `status` returned by `hostcall` called with `arguments`."""
    return _BY_STATUS.get(status, HostcallError)(hostcall, arguments, status)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
