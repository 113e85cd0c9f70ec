"""The pieces of the coroutine driver that plugin-facing awaitables share.

An `async def` callback runs as a task driven by the dispatcher with
`coroutine.send()`. When the coroutine awaits something the host will answer later
(an HTTP callout, a gRPC call, a timer), it yields a `Suspend` to the driver, which
files the task under the callout token (or the timer deadline) and returns to the
host. When the answer arrives, the driver sends it into the coroutine (or throws the
matching exception) and drives it to its next suspension or to its end.

No asyncio: one VM runs one thread, and the host is the event loop.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Coroutine, Generator
    from typing import Any

    from ._context import Context
    from ._types import StreamType


class WaitKind:
    """What a suspended task waits for."""

    HTTP_CALL = 0
    GRPC_CALL = 1
    GRPC_STREAM = 2
    SLEEP = 3


class Suspend:
    """Awaitable that hands `(kind, key)` to the driver and returns what it sends back."""

    __slots__ = ("kind", "key")

    def __init__(self, kind: int, key: int) -> None:
        self.kind = kind
        self.key = key

    def __await__(self) -> Generator[Suspend, Any, Any]:
        return (yield self)


class Task:
    """A running `async` callback: its coroutine, its context, the stream it holds."""

    __slots__ = ("coroutine", "context", "stream")

    def __init__(
        self, coroutine: Coroutine[Any, Any, Any], context: Context, stream: StreamType | None
    ) -> None:
        self.coroutine = coroutine
        self.context = context
        self.stream = stream
        """The stream paused while the task runs (continued when it returns CONTINUE)."""

    def __repr__(self) -> str:
        return f"Task({getattr(self.coroutine, '__qualname__', self.coroutine)!r}, context={self.context.id})"


async def sleep(milliseconds: int) -> None:
    """Suspend the current `async` callback for `milliseconds`, using the root's ticks.

    Resolution is the tick timer's: the host fires it at the earliest deadline of all
    sleepers of the plugin (and at the plugin's own tick period, when it set one).
    """
    await Suspend(WaitKind.SLEEP, max(0, int(milliseconds)))
