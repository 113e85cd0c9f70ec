"""Header-map and property codecs (pure logic), cross-checked with the emulator's codec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxywasm import _codec
from pwtool.emulator import decode_pairs, encode_pairs


def test_layout_matches_the_abi() -> None:
    data = _codec.serialize_header_map([("a", "bc"), (b"de", b"")])
    assert data == (
        (2).to_bytes(4, "little")
        + (1).to_bytes(4, "little") + (2).to_bytes(4, "little")
        + (2).to_bytes(4, "little") + (0).to_bytes(4, "little")
        + b"a\0bc\0de\0\0"
    )


def test_empty_map() -> None:
    assert _codec.serialize_header_map([]) == b"\0\0\0\0"
    assert _codec.deserialize_header_map(b"\0\0\0\0") == []
    assert _codec.deserialize_header_map(b"") == []


def test_binary_values_survive() -> None:
    pairs = [(b"grpc-bin", b"\0\xff\0"), (b"k", b"v")]
    assert _codec.deserialize_header_map_bytes(_codec.serialize_header_map(pairs)) == pairs


def test_truncated_map_is_an_error() -> None:
    data = _codec.serialize_header_map([("name", "value")])
    with pytest.raises(ValueError, match="truncated"):
        _codec.deserialize_header_map_bytes(data[:-3])


@given(st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=40)), max_size=12))
def test_round_trip_and_emulator_agreement(pairs: list[tuple[bytes, bytes]]) -> None:
    ours = _codec.serialize_header_map(pairs)
    assert _codec.deserialize_header_map_bytes(ours) == pairs
    assert ours == encode_pairs(pairs)
    assert decode_pairs(ours) == pairs


def test_text_uses_surrogateescape() -> None:
    (name, value), = _codec.deserialize_header_map(_codec.serialize_header_map([(b"x", b"\xff")]))
    assert _codec.to_bytes(value) == b"\xff"


def test_property_paths() -> None:
    assert _codec.serialize_property_path("request.path") == b"request\0path"
    assert _codec.serialize_property_path(("node", "metadata", "a.b")) == b"node\0metadata\0a.b"
    assert _codec.serialize_property_path(b"raw\0path") == b"raw\0path"


def test_property_values() -> None:
    assert _codec.decode_int(_codec.encode_int(-5)) == -5
    assert _codec.decode_bool(b"\1") is True
    assert _codec.decode_bool(b"\0") is False
    with pytest.raises(ValueError):
        _codec.decode_int(b"\1\2")
