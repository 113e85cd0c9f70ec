"""Header maps: a case-insensitive, multi-valued mapping of HTTP headers.

`Headers` is a plain in-memory map (build one for a callout or a local response).
The maps that HTTP contexts expose (request/response headers and trailers) are bound
to the host. A lookup by name goes through `find_header_map_value`, which a built
module answers from the map the shim reads whole once per callback (the emulator's
native mode asks for the one header); whole-map reads parse every pair, fetched with
ONE `get_header_map_pairs`, and cache them until the callback returns; each write is
one hostcall and updates the cache, so reads after writes see the writes. In a built
module the shim's C versions of the per-request methods replace some of them
(`install_c_methods`) and search the same map in C.
"""

from __future__ import annotations

from operator import itemgetter

import _proxywasm as _abi

from . import _hostcalls
from ._codec import serialize_header_map, to_bytes
from ._errors import hostcall_error

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

    from ._dispatcher import Dispatcher
    from ._types import MapType

    HeadersLike = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]
    """What APIs taking headers accept: a mapping, (name, value) pairs, or `Headers`."""


def _key(name: str | bytes) -> bytes:
    key = _KEYS.get(name)
    if key is None:
        key = (name.encode("utf-8", "surrogateescape") if isinstance(name, str) else bytes(name)).lower()
        if len(_KEYS) < 512 and isinstance(name, (str, bytes)):
            _KEYS[name] = key
    return key


_KEYS: dict[str | bytes, bytes] = {}
"""Header names as the lower-case bytes the host uses, for the names a plugin uses
(a dict lookup is cheaper than encoding and lower-casing on every call)."""


_TEXT = (str, bytes)
_name_of = itemgetter(0)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


class Headers:
    """Case-insensitive, multi-valued header map.

    Names compare case-insensitively and are stored lower-case (as Envoy does).
    Values are `str`; the ``*_bytes`` methods give the raw bytes. Indexing returns the
    first value of a name; `get_all` returns every value; iteration yields
    (name, value) pairs in order, repeated names included.
    """

    __slots__ = ("_pairs",)

    def __init__(self, headers: HeadersLike | None = None) -> None:
        self._pairs: list[tuple[bytes, bytes]] = []
        if headers is not None:
            for name, value in _pairs_of(headers):
                self._pairs.append((_key(name), to_bytes(value)))

    # -- reading ---------------------------------------------------------------------

    def _load(self) -> list[tuple[bytes, bytes]]:
        return self._pairs

    def get(self, name: str | bytes, default: str | None = None) -> str | None:
        """The first value of header `name`, or `default` when it is absent."""
        key = _KEYS.get(name)
        if key is None:
            key = _key(name)
        for k, v in self._load():
            if k == key:
                return v.decode("utf-8", "surrogateescape")
        return default

    def get_bytes(self, name: str | bytes) -> bytes | None:
        """The first value of header `name` as raw bytes, or None."""
        key = _key(name)
        for k, v in self._load():
            if k == key:
                return v
        return None

    def get_all(self, name: str | bytes) -> list[str]:
        """Every value of header `name`, in order (empty when absent)."""
        key = _key(name)
        return [_text(v) for k, v in self._load() if k == key]

    def __getitem__(self, name: str | bytes) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, (str, bytes)):
            return False
        key = _KEYS.get(name)
        if key is None:
            key = _key(name)
        for k, _ in self._load():
            if k == key:
                return True
        return False

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items())

    def __len__(self) -> int:
        """Number of (name, value) pairs, repeated names counted each time."""
        return len(self._load())

    def __bool__(self) -> bool:
        return bool(self._load())

    def items(self) -> list[tuple[str, str]]:
        """All (name, value) pairs in order, repeated names included."""
        return [(_text(k), _text(v)) for k, v in self._load()]

    def items_bytes(self) -> list[tuple[bytes, bytes]]:
        """All (name, value) pairs as raw bytes."""
        return list(self._load())

    def names(self) -> list[str]:
        """Distinct header names in order of first appearance."""
        seen: dict[bytes, None] = {}
        for k, _ in self._load():
            seen.setdefault(k, None)
        return [_text(k) for k in seen]

    def to_dict(self) -> dict[str, str]:
        """A plain dict; repeated headers are joined with ``,`` (as HTTP allows)."""
        result: dict[str, str] = {}
        for name, value in self.items():
            result[name] = f"{result[name]},{value}" if name in result else value
        return result

    def serialize(self) -> bytes:
        """The map in the ABI's serialized header-map layout."""
        return serialize_header_map(self._load())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._load() == other._load()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.items()!r})"

    # -- writing ---------------------------------------------------------------------

    def set(self, name: str | bytes, value: str | bytes) -> None:
        """Set header `name` to `value`, replacing every existing value."""
        self._replace_cached(_key(name), to_bytes(value))

    def __setitem__(self, name: str | bytes, value: str | bytes) -> None:
        self.set(name, value)  # HostHeaders rebinds this to its own `set` directly

    def add(self, name: str | bytes, value: str | bytes) -> None:
        """Add one more value for `name`, keeping the existing ones."""
        self._pairs.append((_key(name), to_bytes(value)))

    def remove(self, name: str | bytes) -> None:
        """Remove every value of `name`; removing an absent header is not an error."""
        self._remove_cached(_key(name))

    def __delitem__(self, name: str | bytes) -> None:
        key = _key(name)
        if not any(k == key for k, _ in self._load()):
            raise KeyError(name)
        self.remove(name)

    def replace_all(self, headers: HeadersLike) -> None:
        """Replace the whole map with `headers`."""
        self._pairs = [(_key(n), to_bytes(v)) for n, v in _pairs_of(headers)]

    def update(self, headers: HeadersLike) -> None:
        """Set several headers: each name in `headers` replaces every value of that name;
        other headers stay."""
        for name, value in _pairs_of(headers):
            self.set(name, value)

    def _replace_cached(self, key: bytes, value: bytes) -> None:
        pairs = self._pairs
        for index, (k, _) in enumerate(pairs):
            if k == key:
                pairs[index] = (key, value)
                pairs[index + 1 :] = [p for p in pairs[index + 1 :] if p[0] != key]
                return
        pairs.append((key, value))

    def _remove_cached(self, key: bytes) -> None:
        self._pairs = [p for p in self._pairs if p[0] != key]


class HostHeaders(Headers):
    """A header map owned by the host (request/response headers, trailers).

    Lookups by name go through `find_header_map_value`; whole-map reads are served
    from a per-callback cache filled by one hostcall; writes go to the host straight
    away (one hostcall each) and keep the cache coherent.
    """

    __slots__ = ("_map_type", "_dispatcher", "_context_id", "_epoch")

    def __init__(self, map_type: MapType, dispatcher: Dispatcher, context_id: int) -> None:
        # No super().__init__(): this runs for every request, keep it to four stores.
        self._pairs = []
        self._map_type = map_type
        self._dispatcher = dispatcher
        self._context_id = context_id
        self._epoch = -1

    # `get` and `in` are the per-request readers. Unless this object already parsed the
    # map in this callback (iteration does), they ask `find_header_map_value`.

    def get(self, name: str | bytes, default: str | None = None) -> str | None:
        """The first value of header `name`, or `default` when it is absent."""
        dispatcher = self._dispatcher
        if self._epoch != dispatcher.epoch:
            if dispatcher.effective_context_id != self._context_id:
                dispatcher.activate(self._context_id)
            try:
                value = _abi.find_header_map_value(self._map_type, name)
            except _abi.HostcallError:
                value = self._scan(name)  # a map the host cannot read now: the pairs path decides
            return default if value is None else value
        value = self._scan(name)
        return default if value is None else value

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, _TEXT):
            return False
        dispatcher = self._dispatcher
        if self._epoch != dispatcher.epoch:
            if dispatcher.effective_context_id != self._context_id:
                dispatcher.activate(self._context_id)
            try:
                return _abi.find_header_map_value(self._map_type, name) is not None
            except _abi.HostcallError:
                pass
        return self._scan(name) is not None

    def _scan(self, name: str | bytes) -> str | None:
        key = _key(name)
        for k, v in self._load():
            if k == key:
                return v.decode("utf-8", "surrogateescape")
        return None

    def _load(self) -> list[tuple[bytes, bytes]]:
        dispatcher = self._dispatcher
        if self._epoch != dispatcher.epoch:
            if dispatcher.effective_context_id != self._context_id:
                dispatcher.activate(self._context_id)
            try:
                self._pairs = _abi.get_header_map_list(self._map_type)  # parsed by the seam
            except _abi.HostcallError as err:
                raise hostcall_error(err.hostcall, err.status, map_type=self._map_type) from None
            self._epoch = dispatcher.epoch
        return self._pairs

    # The writers below are on the per-request hot path: conversions, checks and the
    # hostcall wrappers of `_hostcalls` are inlined rather than called, because each
    # Python call costs as much as the work itself. Errors are converted the same way.

    def set(self, name: str | bytes, value: str | bytes) -> None:
        """Set header `name` to `value`, replacing every existing value (one hostcall)."""
        dispatcher = self._dispatcher
        if dispatcher.effective_context_id != self._context_id:
            dispatcher.activate(self._context_id)
        try:
            _abi.replace_header_map_value(self._map_type, name, value)  # the host lower-cases
        except _abi.HostcallError as err:
            raise hostcall_error(err.hostcall, err.status, map_type=self._map_type, key=_key(name),
                                 value=to_bytes(value)) from None
        if self._epoch == dispatcher.epoch:
            self._replace_cached(_key(name), to_bytes(value))

    __setitem__ = set

    def add(self, name: str | bytes, value: str | bytes) -> None:
        """Add one more value for `name` (one hostcall)."""
        dispatcher = self._dispatcher
        if dispatcher.effective_context_id != self._context_id:
            dispatcher.activate(self._context_id)
        try:
            _abi.add_header_map_value(self._map_type, name, value)
        except _abi.HostcallError as err:
            raise hostcall_error(err.hostcall, err.status, map_type=self._map_type, key=_key(name),
                                 value=to_bytes(value)) from None
        if self._epoch == dispatcher.epoch:
            self._pairs.append((_key(name), to_bytes(value)))

    def remove(self, name: str | bytes) -> None:
        """Remove every value of `name` (one hostcall); absent headers are fine."""
        dispatcher = self._dispatcher
        if dispatcher.effective_context_id != self._context_id:
            dispatcher.activate(self._context_id)
        try:
            _abi.remove_header_map_value(self._map_type, name)
        except _abi.HostcallError as err:
            raise hostcall_error(err.hostcall, err.status, map_type=self._map_type, key=_key(name)) from None
        if self._epoch == dispatcher.epoch:
            self._remove_cached(_key(name))

    def _activate(self) -> None:
        dispatcher = self._dispatcher
        if dispatcher.effective_context_id != self._context_id:
            dispatcher.activate(self._context_id)

    def replace_all(self, headers: HeadersLike) -> None:
        """Replace the whole map with `headers` in one `set_header_map_pairs` hostcall."""
        pairs = [(_key(n), to_bytes(v)) for n, v in _pairs_of(headers)]
        self._activate()
        _hostcalls.set_header_map_pairs(self._map_type, serialize_header_map(pairs))
        self._pairs = pairs
        self._epoch = self._dispatcher.epoch

    def update(self, headers: HeadersLike) -> None:
        """Set several headers at once: one `set_header_map_pairs` for the whole map.

        Each name in `headers` replaces every existing value of that name; other
        headers stay. Cheaper than one `set` per header when there are several.
        """
        merged = Headers(self.items_bytes())
        merged.update(headers)
        self.replace_all(merged.items_bytes())


# In a built module ``get``, ``in``, ``set`` / ``[]=``, ``add`` and ``remove`` run in C:
# lookups search the map read once per callback, writes are one hostcall.
_hostcalls.install_c_methods(HostHeaders, "header_map_methods")


def _pairs_of(headers: HeadersLike) -> Iterable[tuple[str | bytes, str | bytes]]:
    if isinstance(headers, Headers):
        return headers.items_bytes()
    items = getattr(headers, "items", None)
    if items is not None:
        return items()  # type: ignore[no-any-return]
    return headers  # type: ignore[return-value]


def serialize_headers(headers: HeadersLike | None) -> bytes:
    """`headers` in the ABI layout (empty map for None)."""
    if headers is None:
        return b"\0\0\0\0"
    return serialize_header_map((_key(n), v) for n, v in _pairs_of(headers))
