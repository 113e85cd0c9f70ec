"""Shared data (a key-value store with compare-and-swap) and shared queues.

Both span every VM with the same ``vm_id`` on the host (all worker threads of a
plugin), which makes them the way for VMs to talk to each other.
"""

from __future__ import annotations

from . import _hostcalls
from ._codec import to_bytes
from ._errors import CasMismatch, Empty, NotFound
from ._types import Status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def get_shared_data(key: str | bytes) -> tuple[bytes | None, int]:
    """The value stored under `key` and its CAS token; ``(None, 0)`` if there is none."""
    try:
        return _hostcalls.get_shared_data(to_bytes(key))
    except NotFound:
        return None, 0


def set_shared_data(key: str | bytes, value: bytes | str, cas: int = 0) -> None:
    """Store `value` under `key`.

    With a `cas` token from `get_shared_data`, the write only happens if nobody wrote
    the key since; otherwise `CasMismatch` is raised. ``cas=0`` writes unconditionally.
    """
    _hostcalls.set_shared_data(to_bytes(key), to_bytes(value), cas)


def update_shared_data(
    key: str | bytes, update: Callable[[bytes | None], bytes | str], *, attempts: int = 10
) -> bytes:
    """Atomically replace the value of `key` with ``update(current_value)``.

    Reads the value with its CAS token, computes the new value and writes it with
    that token, retrying from the read when another VM wrote in between. Returns the
    value written; raises `CasMismatch` (naming the key and `attempts`) after
    `attempts` lost races, so a hot key fails instead of spinning.

    Atomic once the key exists. ABI 0.2.1 has no create-if-absent: the first write of
    an absent key is unconditional, so two VMs creating it at the same moment can lose
    one update. Where that matters, give the key its initial value first (for example
    in `on_configure`, with `set_shared_data` only when `get_shared_data` finds none).
    """
    key_bytes = to_bytes(key)
    for attempt in range(attempts):
        current, cas = get_shared_data(key_bytes)
        new_value = to_bytes(update(current))
        try:
            _hostcalls.set_shared_data(key_bytes, new_value, cas)
        except CasMismatch as err:
            if attempt == attempts - 1:
                arguments = {"key": key_bytes, "attempts": attempts}
                raise CasMismatch("update_shared_data", arguments, Status.CAS_MISMATCH) from err
            continue
        return new_value
    raise ValueError("attempts must be at least 1")


class SharedQueue:
    """A host queue of byte messages, shared by the VMs of one vm_id.

    The VM that `register`s a queue receives `RootContext.on_queue_ready` when items
    arrive; any VM can `resolve` it by name and `enqueue` into it.
    """

    __slots__ = ("id", "name")

    def __init__(self, queue_id: int, name: str = "") -> None:
        self.id = queue_id
        """The host's queue id (what `on_queue_ready` receives)."""
        self.name = name

    @classmethod
    def register(cls, name: str) -> SharedQueue:
        """Create (or re-open) the queue `name`, owned by the calling root context."""
        return cls(_hostcalls.register_shared_queue(to_bytes(name)), name)

    @classmethod
    def resolve(cls, name: str, vm_id: str | None = None) -> SharedQueue | None:
        """Look up the queue `name` registered by a VM with `vm_id` (default: the
        calling plugin's own vm_id); None when nobody registered it yet."""
        if vm_id is None:
            try:
                vm_id_bytes = _hostcalls.get_property(b"plugin_vm_id")
            except NotFound:
                vm_id_bytes = b""
        else:
            vm_id_bytes = to_bytes(vm_id)
        try:
            return cls(_hostcalls.resolve_shared_queue(vm_id_bytes, to_bytes(name)), name)
        except NotFound:
            return None

    def enqueue(self, data: bytes | str) -> None:
        """Append a message."""
        _hostcalls.enqueue_shared_queue(self.id, to_bytes(data))

    def dequeue(self) -> bytes | None:
        """Take the oldest message; None when the queue is empty."""
        try:
            return _hostcalls.dequeue_shared_queue(self.id)
        except Empty:
            return None

    def drain(self) -> Iterator[bytes]:
        """Take messages until the queue is empty."""
        while True:
            item = self.dequeue()
            if item is None:
                return
            yield item

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SharedQueue):
            return self.id == other.id
        if isinstance(other, int):
            return self.id == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"SharedQueue(id={self.id}, name={self.name!r})"
