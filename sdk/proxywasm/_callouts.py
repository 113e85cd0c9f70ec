"""Results of HTTP callouts and gRPC calls, and gRPC streams."""

from __future__ import annotations

from . import _hostcalls
from ._codec import to_bytes
from ._errors import GRPC_TIMEOUT_MESSAGE, GrpcCallError, NotFound, StreamGone
from ._headers import Headers
from ._tasks import Suspend, WaitKind

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ._dispatcher import Dispatcher


_ENVOY_UPSTREAM_FAILURES = (b"upstream connect error or disconnect/reset before headers", b"no healthy upstream")
"""How the bodies of Envoy's own 503 local replies for an unreachable upstream start."""


class HttpResponse:
    """The answer to an HTTP callout: status, headers, body and trailers.

    Read in full when the answer arrives, so it stays usable after the callback.
    A callout that failed without any answer (connection reset, no upstream, ...)
    has ``status == 0`` and no headers, or is Envoy's own 503 for the failure (see
    `failed`); `await http_call(...)` raises instead.
    """

    __slots__ = ("upstream", "headers", "body", "trailers")

    def __init__(self, upstream: str, headers: Headers, body: bytes, trailers: Headers) -> None:
        self.upstream = upstream
        self.headers = headers
        self.body = body
        self.trailers = trailers

    @property
    def status(self) -> int:
        """The ``:status`` pseudo-header as an int (0 when there was no answer)."""
        value = self.headers.get(":status")
        try:
            return int(value) if value is not None else 0
        except ValueError:
            return 0

    @property
    def failed(self) -> bool:
        """True when the upstream gave no answer at all.

        That is no response (reset, response too large), or the 503 Envoy makes up
        itself when it cannot reach the upstream (connection refused or reset before
        headers, no healthy upstream): Envoy 1.40 reports those as a normal answer.
        """
        if not self.headers:
            return True
        return self.status == 503 and self.body.startswith(_ENVOY_UPSTREAM_FAILURES)

    @property
    def timed_out(self) -> bool:
        """True when Envoy gave up waiting: its own 504 ``upstream request timeout``."""
        return self.status == 504 and self.body == b"upstream request timeout"

    def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text."""
        return self.body.decode(encoding, "replace")

    def json(self) -> object:
        """The body parsed as JSON (ValueError when it is not JSON)."""
        from ._json import loads

        return loads(self.body)

    def __repr__(self) -> str:
        return f"HttpResponse(status={self.status}, body={len(self.body)} bytes)"


class GrpcResponse:
    """The outcome of a unary gRPC call: the reply message, or a failure status."""

    __slots__ = ("status", "message", "status_message")

    def __init__(self, status: int, message: bytes, status_message: str = "") -> None:
        self.status = status
        """gRPC status code; 0 (OK) when `message` holds the reply."""
        self.message = message
        """The serialized reply message (empty on failure)."""
        self.status_message = status_message

    @property
    def ok(self) -> bool:
        """True when the call succeeded."""
        return self.status == 0

    @property
    def timed_out(self) -> bool:
        """True when Envoy gave up waiting (it reports UNAVAILABLE, not DEADLINE_EXCEEDED)."""
        return self.status == 14 and self.status_message.startswith(GRPC_TIMEOUT_MESSAGE)

    def __repr__(self) -> str:
        return f"GrpcResponse(status={self.status}, message={len(self.message)} bytes)"


class GrpcStreamHandler:
    """Callbacks of a gRPC stream; subclass and override what you need."""

    def on_initial_metadata(self, stream: GrpcStream, metadata: Headers) -> None:
        """The server sent its initial metadata."""

    def on_message(self, stream: GrpcStream, message: bytes) -> None:
        """The server sent one message (serialized protobuf)."""

    def on_trailing_metadata(self, stream: GrpcStream, metadata: Headers) -> None:
        """The server sent its trailing metadata."""

    def on_close(self, stream: GrpcStream, status: int, message: str) -> None:
        """The stream ended with gRPC `status` (0 = OK) and a status message."""


class GrpcStream:
    """An open gRPC stream: send messages, close or cancel it.

    Received messages go to the handler given to `open_grpc_stream`, and can also be
    awaited one by one with `await stream.receive()`.
    """

    def __init__(
        self,
        token: int,
        upstream: str,
        service: str,
        method: str,
        handler: GrpcStreamHandler | None,
        dispatcher: Dispatcher,
        context_id: int,
    ) -> None:
        self.token = token
        self.upstream = upstream
        self.service = service
        self.method = method
        self.handler = handler
        self.closed = False
        self.status: int | None = None
        self.status_message = ""
        self.initial_metadata = Headers()
        self.trailing_metadata = Headers()
        self._dispatcher = dispatcher
        self._context_id = context_id
        self._inbox: list[bytes] = []

    def _activate(self) -> None:
        if self._dispatcher.effective_context_id != self._context_id:
            self._dispatcher.activate(self._context_id)

    def send(self, message: bytes | str, end_stream: bool = False) -> None:
        """Send one message; `end_stream` half-closes the stream after it."""
        self._activate()
        _hostcalls.grpc_send(self.token, to_bytes(message), int(end_stream))

    def close(self) -> bool:
        """Close the stream gracefully (half-close from our side).

        Returns False, instead of raising, when the stream has already ended (closed by
        the server, cancelled) or its context is gone.
        """
        return self._end(_hostcalls.grpc_close)

    def cancel(self) -> bool:
        """Abort the stream; no more callbacks follow.

        Returns False when the stream has already ended or its context is gone.
        """
        ended = self._end(_hostcalls.grpc_cancel)
        self.closed = True
        self._dispatcher.forget_grpc(self.token)
        return ended

    def _end(self, hostcall: Callable[[int], None]) -> bool:
        if self.closed:
            return False
        try:
            self._activate()
            hostcall(self.token)
        except (StreamGone, NotFound):
            self.closed = True
            self._dispatcher.forget_grpc(self.token)
            return False
        return True

    async def receive(self) -> bytes | None:
        """The next message, or None once the stream closed with status OK.

        Raises `GrpcCallError` if the stream closed with another status.
        """
        while not self._inbox:
            if self.closed:
                if self.status:
                    raise GrpcCallError(
                        self.upstream, self.service, self.method, self.status, self.status_message
                    )
                return None
            await Suspend(WaitKind.GRPC_STREAM, self.token)
        return self._inbox.pop(0)

    def _deliver(self, message: bytes) -> None:
        self._inbox.append(message)
        if self.handler is not None:
            self.handler.on_message(self, message)

    def __repr__(self) -> str:
        return f"GrpcStream({self.service}/{self.method} on {self.upstream!r}, token={self.token})"
