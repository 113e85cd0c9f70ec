"""Bodies and TCP data: a view of a host buffer during a body/data callback.

Envoy lets a plugin change a buffer in three ways only: replace it, prepend to it,
append to it. Reading is free-form (any slice). The size the callback reports is
known without a hostcall; the bytes are read on first use and cached for the rest of
the callback.
"""

from __future__ import annotations

from . import _hostcalls
from ._codec import to_bytes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ._dispatcher import Dispatcher
    from ._types import BufferType


class Body:
    """The body chunk (or whole buffered body) of the current callback."""

    __slots__ = ("_buffer_type", "_size", "_dispatcher", "_context_id", "_epoch", "_data")

    def __init__(
        self, buffer_type: BufferType, size: int, dispatcher: Dispatcher, context_id: int
    ) -> None:
        self._buffer_type = buffer_type
        self._size = size
        self._dispatcher = dispatcher
        self._context_id = context_id
        self._epoch = dispatcher.epoch
        self._data: bytes | None = None

    def __len__(self) -> int:
        """Size in bytes, as the host reported it (no hostcall)."""
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def _activate(self) -> None:
        dispatcher = self._dispatcher
        if dispatcher.effective_context_id != self._context_id:
            dispatcher.activate(self._context_id)

    def read(self, start: int = 0, size: int | None = None) -> bytes:
        """Up to `size` bytes from offset `start` (fewer at the end of the buffer, none
        past it); with no arguments the whole buffer (read once per callback, then
        cached). A negative `start` or `size` is a ValueError: use ``body[-n:]`` to
        count from the end."""
        if start == 0 and size is None:
            return self._all()
        if start < 0 or (size is not None and size < 0):
            raise ValueError(f"Body.read(start={start}, size={size}): start and size must not be negative")
        if size is None:
            size = self._size - start
        size = min(size, self._size - start)
        if self._data is not None and self._epoch == self._dispatcher.epoch:
            return self._data[start : start + size]
        if size <= 0:
            return b""
        self._activate()
        return _hostcalls.get_buffer_bytes(self._buffer_type, start, size)

    def _all(self) -> bytes:
        """The whole buffer (one hostcall, then cached for this callback)."""
        if self._data is None or self._epoch != self._dispatcher.epoch:
            if self._size == 0:
                self._data = b""
            else:
                self._activate()
                self._data = _hostcalls.get_buffer_bytes(self._buffer_type, 0, self._size)
            self._epoch = self._dispatcher.epoch
        return self._data

    def __bytes__(self) -> bytes:
        """The whole buffer: ``bytes(body)``."""
        return self._all()

    def __getitem__(self, index: slice) -> bytes:
        """``body[start:stop]``, with negative offsets counting from the end, as for bytes."""
        if not isinstance(index, slice):
            raise TypeError(f"Body indices must be slices, not {type(index).__name__}: use body[i:i + 1]")
        start, stop, step = index.indices(self._size)
        if step != 1:
            return self._all()[index]
        return self.read(start, max(0, stop - start))

    def text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """The whole buffer decoded as text."""
        return self._all().decode(encoding, errors)

    def json(self) -> object:
        """The whole buffer parsed as JSON (ValueError when it is not JSON)."""
        from ._json import loads

        return loads(self._all())

    def replace(self, data: bytes | str) -> None:
        """Replace the whole buffer with `data`."""
        payload = to_bytes(data)
        self._activate()
        _hostcalls.set_buffer_bytes(self._buffer_type, 0, self._size, payload)
        self._size = len(payload)
        self._data = payload
        self._epoch = self._dispatcher.epoch

    def prepend(self, data: bytes | str) -> None:
        """Insert `data` before the buffer's contents."""
        payload = to_bytes(data)
        self._activate()
        _hostcalls.set_buffer_bytes(self._buffer_type, 0, 0, payload)
        self._size += len(payload)
        if self._data is not None:
            self._data = payload + self._data

    def append(self, data: bytes | str) -> None:
        """Add `data` after the buffer's contents."""
        payload = to_bytes(data)
        self._activate()
        _hostcalls.set_buffer_bytes(self._buffer_type, self._size, 0, payload)
        self._size += len(payload)
        if self._data is not None:
            self._data = self._data + payload

    def clear(self) -> None:
        """Drop the buffer's contents."""
        self.replace(b"")

    def __repr__(self) -> str:
        return f"Body({self._buffer_type.name}, {self._size} bytes)"
