"""Byte layouts that cross the `_proxywasm` seam.

Header maps (headers, trailers, gRPC metadata) use the ABI layout: a little-endian
u32 count, then a (u32 key size, u32 value size) pair per entry, then every key and
every value followed by a NUL byte. Property paths are their segments joined by NUL.
Property values come back as raw strings, little-endian 64-bit integers, single-byte
booleans, or (for maps) header-map pairs.

Text is UTF-8 with ``surrogateescape``, so any byte string survives a round trip
through `str`.
"""

from __future__ import annotations

from _struct import pack, unpack_from  # the C module: `struct` would add a module to every snapshot

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    Text = str | bytes
    """A header name or value, a path segment: `str` (UTF-8) or raw `bytes`."""


def to_bytes(value: str | bytes) -> bytes:
    """`value` as bytes: `str` is UTF-8 encoded, `bytes` passes through."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    # bytes(7) would quietly be seven NUL bytes, bytes(None) a vague error.
    raise TypeError(f"expected bytes or str, not {type(value).__name__}")


def to_str(value: bytes) -> str:
    """`value` decoded as UTF-8, keeping undecodable bytes (surrogateescape)."""
    return value.decode("utf-8", "surrogateescape")


def serialize_header_map(pairs: Iterable[tuple[Text, Text]]) -> bytes:
    """Serialize (name, value) pairs into the ABI header-map layout."""
    encoded = [(to_bytes(name), to_bytes(value)) for name, value in pairs]
    sizes: list[int] = []
    data: list[bytes] = []
    for name, value in encoded:
        sizes.append(len(name))
        sizes.append(len(value))
        data.append(name)
        data.append(value)
    data.append(b"")  # so that the join below ends with a NUL
    return pack(f"<{len(sizes) + 1}I", len(encoded), *sizes) + b"\0".join(data)


def deserialize_header_map_bytes(data: bytes) -> list[tuple[bytes, bytes]]:
    """Parse the ABI header-map layout into (name, value) byte pairs."""
    if not data:
        return []
    (count,) = unpack_from("<I", data, 0)
    if count == 0:
        return []
    sizes = unpack_from(f"<{2 * count}I", data, 4)
    pos = 4 + 8 * count
    # Fast path, all in C: split the strings at their NULs, and use the split when its
    # lengths are exactly the announced sizes (no NUL inside a name or value).
    parts = data[pos:].split(b"\0")
    if len(parts) == 2 * count + 1 and not parts[-1] and tuple(map(len, parts[:-1])) == sizes:
        return list(zip(parts[0:-1:2], parts[1:-1:2]))
    pairs = []
    for i in range(0, 2 * count, 2):
        name_end = pos + sizes[i]
        value_start = name_end + 1
        value_end = value_start + sizes[i + 1]
        pairs.append((data[pos:name_end], data[value_start:value_end]))
        pos = value_end + 1
    if pos > len(data):
        raise ValueError(f"truncated header map: needs {pos} bytes, got {len(data)}")
    return pairs


def deserialize_header_map(data: bytes) -> list[tuple[str, str]]:
    """Parse the ABI header-map layout into (name, value) text pairs."""
    return [
        (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        for name, value in deserialize_header_map_bytes(data)
    ]


def serialize_property_path(path: str | Sequence[Text]) -> bytes:
    """Serialize a property path.

    A `str` is split on dots (``"request.path"``); pass a sequence of segments when a
    segment itself contains a dot (``("node", "metadata", "app.kubernetes.io/name")``).
    """
    if isinstance(path, str):
        return path.replace(".", "\0").encode("utf-8", "surrogateescape")
    if isinstance(path, bytes):
        return path
    return b"\0".join(to_bytes(segment) for segment in path)


def decode_int(value: bytes) -> int:
    """A property value holding a little-endian signed 64-bit integer."""
    if len(value) != 8:
        raise ValueError(f"expected 8 bytes for an integer property, got {len(value)}")
    return int.from_bytes(value, "little", signed=True)


def encode_int(value: int) -> bytes:
    """An integer as the host encodes integer properties."""
    return value.to_bytes(8, "little", signed=True)


def decode_bool(value: bytes) -> bool:
    """A property value holding a boolean (one byte, 0 or 1)."""
    if len(value) != 1:
        raise ValueError(f"expected 1 byte for a boolean property, got {len(value)}")
    return value != b"\0"


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def grpc_service(upstream: str | bytes) -> bytes:
    """The gRPC target of `proxy_grpc_call` / `proxy_grpc_stream`.

    A `str` is a cluster name, sent as a serialized ``GrpcService`` whose
    ``envoy_grpc.cluster_name`` it is. Envoy tries to parse a bare name as a
    ``GrpcService`` first, and some names ("h2", ...) parse as one with no target,
    which aborts Envoy 1.40 ("unset oneof"). `bytes` are taken as a serialized
    ``GrpcService`` already.
    """
    if not isinstance(upstream, str):
        return bytes(upstream)
    name = to_bytes(upstream)
    envoy_grpc = b"\x0a" + _varint(len(name)) + name  # EnvoyGrpc.cluster_name = 1
    return b"\x0a" + _varint(len(envoy_grpc)) + envoy_grpc  # GrpcService.envoy_grpc = 1
