"""Host-side codec for serialized header maps (DESIGN.md §3).

Layout, little-endian: u32 count, then (u32 key_len, u32 value_len) per entry, then
each key and each value followed by a NUL byte.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Union

__all__ = ["Headers", "HeadersLike", "encode_pairs", "decode_pairs", "to_pairs", "MAX_PAIRS_BYTES", "MAX_PAIRS_COUNT"]

Headers = list[tuple[bytes, bytes]]
HeadersLike = Union[Mapping[str, str], Mapping[bytes, bytes], Iterable[tuple[Union[str, bytes], Union[str, bytes]]], None]


def _b(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def to_pairs(headers: HeadersLike) -> Headers:
    """Normalize a dict or an iterable of pairs to a list of ``(bytes, bytes)``."""
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(_b(k), _b(v)) for k, v in items]


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
