"""Property-based tests: the hostcall boundary and the header/body encodings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pwtool.emulator import Emulator, HostcallError, Plugin, Status, decode_pairs, encode_pairs

U32 = st.integers(min_value=0, max_value=2**32 - 1)
SMALL = st.integers(min_value=0, max_value=70_000)
# Pointers: mostly near the guest's memory (valid, borderline, just past the end), some anywhere.
PTR = st.one_of(st.integers(min_value=0, max_value=200_000), U32, st.sampled_from([0, 2**32 - 1, 2**31, 2**16 * 2 - 4]))
LEN = st.one_of(st.integers(min_value=0, max_value=64), SMALL, U32)
VALID_STATUSES = {int(s) for s in Status}

pairs_strategy = st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=80)), max_size=30)


@given(pairs_strategy)
def test_pairs_round_trip(pairs: list[tuple[bytes, bytes]]) -> None:
    assert decode_pairs(encode_pairs(pairs)) == pairs


@given(st.binary(max_size=400))
def test_decode_never_raises_and_is_canonical(data: bytes) -> None:
    pairs = decode_pairs(data)
    assert isinstance(pairs, list)
    if pairs:
        assert encode_pairs(pairs) == data  # only exact, complete encodings are accepted


@given(pairs_strategy, st.integers(min_value=1, max_value=12))
def test_truncated_encodings_are_rejected(pairs: list[tuple[bytes, bytes]], cut: int) -> None:
    assume(pairs)
    data = encode_pairs(pairs)
    assert decode_pairs(data[:-cut]) == []
    assert decode_pairs(data + b"\0" * cut) == []


@pytest.fixture(scope="module")
def fuzz_plugin(request: pytest.FixtureRequest) -> Plugin:
    from pwtool_zig import compile_c  # not "from conftest": several conftest modules share that name

    path = compile_c(Path(__file__).parent / "c_modules" / "filter.c", Path(request.config.cache.mkdir("pwtool-c-modules")))
    return Emulator(buffer_limit=4096).load(path, config="buffer")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(op=st.integers(min_value=0, max_value=11), a=PTR, b=PTR, c=LEN, d=PTR, e=LEN)
def test_fuzz_hostcalls_from_wasm(fuzz_plugin: Plugin, op: int, a: int, b: int, c: int, d: int, e: int) -> None:
    """Random pointers and lengths from inside a real module: a status, never a crash."""
    stream = fuzz_plugin.http_stream()
    stream.send_request_headers({":path": "/upload", "x-a": "1"})
    vm = fuzz_plugin.vms[0]
    status = vm.call("fuzz_hostcall", stream.context, op, a, b, c, d, e)
    status = status - 2**32 if status >= 2**31 else status
    assert status in VALID_STATUSES
    mem = vm.backend._view()[1]  # type: ignore[union-attr]
    if op == 0 and b + c > mem:
        assert status == Status.INVALID_MEMORY_ACCESS
    if op in (4, 6) and a % 9 not in (0, 2) and status != Status.INVALID_MEMORY_ACCESS:
        assert status == Status.BAD_ARGUMENT  # only the request headers are live here
    # The VM still works afterwards.
    if not stream.done:
        stream.complete()
    check = fuzz_plugin.http_stream()
    check.send_request_headers({":path": "/"}, end_of_stream=True)
    assert check.upstream_request.headers["x-c-module"] == "hello"


header_name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20).filter(
    lambda n: n not in ("x-replace", "x-remove", "x-evil", "x-log-level", "x-c-module")
)
header_value = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(header_name, header_value), max_size=20))
def test_headers_cross_the_wasm_boundary_intact(fuzz_plugin: Plugin, extra: list[tuple[str, str]]) -> None:
    stream = fuzz_plugin.http_stream()
    headers = [(":path", "/"), *extra]
    stream.send_request_headers(headers, end_of_stream=True)
    # replace_header_map_value adds a missing header, as Envoy's setCopy does
    assert stream.upstream_request.headers.items() == headers + [("x-c-module", "hello"), ("x-replace", "replaced")]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=700), min_size=1, max_size=10))
def test_body_chunks_are_buffered_then_rewritten(fuzz_plugin: Plugin, chunks: list[bytes]) -> None:
    stream = fuzz_plugin.http_stream()
    stream.send_request_headers({":path": "/upload"})
    for i, chunk in enumerate(chunks):
        if stream.done:
            break
        stream.send_request_body(chunk, end_of_stream=i == len(chunks) - 1)
    whole = b"".join(chunks)
    held_before_last = sum(len(c) for c in chunks[:-1])
    over = any(sum(len(c) for c in chunks[: i + 1]) > 4096 for i in range(1, len(chunks)))
    if over:
        assert stream.local_response is not None and stream.local_response.status == 413
        assert stream.upstream_request.body == b""
    else:
        assert held_before_last <= 4096
        assert stream.upstream_request.body == whole.upper()
        assert stream.upstream_request.end_of_stream


@settings(max_examples=200, deadline=None)
@given(
    calls=st.lists(
        st.tuples(st.sampled_from(["get", "set"]), st.sampled_from([b"k1", b"k2"]), st.binary(max_size=8), st.integers(0, 6)),
        max_size=30,
    )
)
def test_shared_data_cas_model(calls: list[tuple[str, bytes, bytes, int]]) -> None:
    """The host's CAS matches a simple model of proxy-wasm-cpp-host's SharedData."""
    emu = Emulator()
    model: dict[bytes, tuple[bytes, int]] = {}
    last_cas = 0
    for kind, key, value, cas in calls:
        current = model.get(key)
        status = emu.set_shared_data("", key, value, cas) if kind == "set" else None
        if kind == "get":
            assert emu.get_shared_data("", key) == current
            continue
        if current is not None and cas != 0 and cas != current[1]:
            assert status == Status.CAS_MISMATCH
        else:
            assert status == Status.OK
            new = emu.get_shared_data("", key)
            assert new is not None and new[0] == value and new[1] > last_cas
            last_cas = new[1]
            model[key] = new


def test_hostcall_error_carries_status_and_name() -> None:
    err = HostcallError(1, "proxy_get_header_map_value")
    assert (err.status, err.hostcall) == (1, "proxy_get_header_map_value")
    assert "NOT_FOUND" in str(err)
