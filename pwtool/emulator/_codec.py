"""Host-side codec for serialized header maps (DESIGN.md §3).

Layout, little-endian: u32 count, then (u32 key_len, u32 value_len) per entry, then
each key and each value followed by a NUL byte.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Union

from ._types import EmulatorError

if TYPE_CHECKING:
    from ._records import HeaderMap

__all__ = ["Headers", "HeadersLike", "encode_pairs", "decode_pairs", "to_pairs", "to_bytes", "MAX_PAIRS_BYTES", "MAX_PAIRS_COUNT"]

Headers = list[tuple[bytes, bytes]]
HeadersLike = Union[Mapping[str, str], Mapping[bytes, bytes], Iterable[tuple[Union[str, bytes], Union[str, bytes]]], "HeaderMap", None]


def describe(value: object) -> str:
    """A value for an error message: its type and a short repr."""
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def to_bytes(value: object, what: str = "value", hint: str = "") -> bytes:
    """``str`` (UTF-8), ``bytes``, ``bytearray`` or ``memoryview`` as bytes; anything else
    is an :class:`EmulatorError` (``bytes(5)`` would quietly give five NUL bytes).
    ``hint`` is added to the message for a dict or a list (say how to serialize it)."""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    extra = f"; {hint}" if hint and isinstance(value, (dict, list)) else ""
    raise EmulatorError(f"{what} must be str or bytes (or bytearray, memoryview), not {describe(value)}{extra}")


def _b(value: str | bytes, what: str = "header name or value") -> bytes:
    return to_bytes(value, what)


_HEADER_FORMS = "a dict, a list of (name, value) pairs, or a HeaderMap"


def to_pairs(headers: HeadersLike, what: str = "headers") -> Headers:
    """Normalize a dict, an iterable of ``(name, value)`` pairs or a HeaderMap to a list
    of ``(bytes, bytes)``; any other shape is an :class:`EmulatorError`."""
    if headers is None:
        return []
    from ._records import HeaderMap

    if isinstance(headers, HeaderMap):
        return list(headers.pairs)
    if isinstance(headers, Mapping):
        items: Iterable[Any] = headers.items()
    elif isinstance(headers, (str, bytes, bytearray, memoryview)) or not isinstance(headers, Iterable):
        raise EmulatorError(f"{what} must be {_HEADER_FORMS}, not {describe(headers)}")
    else:
        items = headers
    out: Headers = []
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise EmulatorError(f"{what}: item {i} must be a (name, value) pair, not {describe(item)}; pass {_HEADER_FORMS}")
        name, value = item
        key = _b(name, f"{what}: header name")
        out.append((key, _b(value, f"{what}: value of {key.decode('utf-8', 'replace')!r}")))
    return out


def encode_pairs(pairs: Headers) -> bytes:
    """Serialize pairs the way the ABI lays them out."""
    sizes = bytearray(struct.pack("<I", len(pairs)))
    data = bytearray()
    for key, value in pairs:
        sizes += struct.pack("<II", len(key), len(value))
        data += key + b"\0" + value + b"\0"
    return bytes(sizes + data)


MAX_PAIRS_BYTES = 1024 * 1024
MAX_PAIRS_COUNT = 1024


def decode_pairs(data: bytes) -> Headers:
    """Parse serialized pairs.

    Malformed input (short, oversized, missing NULs, trailing bytes) yields ``[]``,
    exactly as proxy-wasm-cpp-host's ``PairsUtil::toPairs`` does.
    """
    end = len(data)
    if end < 4 or end > MAX_PAIRS_BYTES:
        return []
    (count,) = struct.unpack_from("<I", data, 0)
    if count > MAX_PAIRS_COUNT or 4 + 8 * count > end:
        return []
    sizes = struct.unpack_from(f"<{2 * count}I", data, 4)
    pos = 4 + 8 * count
    out: Headers = []
    for i in range(count):
        klen, vlen = sizes[2 * i], sizes[2 * i + 1]
        if pos + klen + 1 > end or data[pos + klen] != 0:
            return []
        key = bytes(data[pos : pos + klen])
        pos += klen + 1
        if pos + vlen + 1 > end or data[pos + vlen] != 0:
            return []
        out.append((key, bytes(data[pos : pos + vlen])))
        pos += vlen + 1
    if pos != end:
        return []
    return out
