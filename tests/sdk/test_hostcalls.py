"""Every typed hostcall wrapper: right bytes in, typed exception out on a bad status."""

from __future__ import annotations

import pytest

import proxywasm
from proxywasm import _hostcalls
from proxywasm._errors import hostcall_error
from proxywasm._types import BufferType, MapType, MetricType, Status


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (Status.NOT_FOUND, proxywasm.NotFound),
        (Status.BAD_ARGUMENT, proxywasm.BadArgument),
        (Status.SERIALIZATION_FAILURE, proxywasm.SerializationFailure),
        (Status.PARSE_FAILURE, proxywasm.ParseFailure),
        (Status.INVALID_MEMORY_ACCESS, proxywasm.InvalidMemoryAccess),
        (Status.EMPTY, proxywasm.Empty),
        (Status.CAS_MISMATCH, proxywasm.CasMismatch),
        (Status.INTERNAL_FAILURE, proxywasm.InternalFailure),
        (Status.UNIMPLEMENTED, proxywasm.Unimplemented),
        (99, proxywasm.HostcallError),
    ],
)
def test_status_to_exception(status: int, cls: type) -> None:
    err = hostcall_error("proxy_get_shared_data", status, key=b"k")
    assert type(err) is cls
    assert isinstance(err, proxywasm.HostcallError)
    assert isinstance(err, proxywasm.ProxyWasmError)
    assert "proxy_get_shared_data(key=b'k') failed" in str(err)
    assert err.arguments == {"key": b"k"}


def test_every_seam_function_has_one_wrapper() -> None:
    from pwtool.emulator._hostcalls import SEAM_FUNCTIONS

    wrapped = {name for name in dir(_hostcalls) if not name.startswith("_") and callable(getattr(_hostcalls, name))}
    assert set(SEAM_FUNCTIONS) - {"set_dispatcher"} <= wrapped | {"set_dispatcher"}


def test_errors_name_hostcall_and_arguments(probe) -> None:
    def body(root):
        errors = []
        for call in (
            lambda: _hostcalls.get_shared_data(b"missing"),
            lambda: _hostcalls.dequeue_shared_queue(_hostcalls.register_shared_queue(b"q")),
            lambda: _hostcalls.log(9, b"x"),
            lambda: _hostcalls.get_property(b"no\0such"),
            lambda: _hostcalls.get_metric(12345),
            lambda: _hostcalls.resolve_shared_queue(b"", b"nope"),
            lambda: _hostcalls.set_effective_context(9999),
            lambda: _hostcalls.get_header_map_value(MapType.HTTP_REQUEST_HEADERS, b"x"),
        ):
            try:
                call()
            except proxywasm.HostcallError as exc:
                errors.append(exc)
        return errors

    errors = probe.run(body)
    assert [type(e).__name__ for e in errors[:3]] == ["NotFound", "Empty", "BadArgument"]
    assert str(errors[0]) == "proxy_get_shared_data(key=b'missing') failed: NOT_FOUND"
    assert errors[1].hostcall == "proxy_dequeue_shared_queue"
    assert errors[2].arguments == {"level": 9, "message": b"x"}
    assert errors[3].hostcall == "proxy_get_property" and isinstance(errors[3], proxywasm.NotFound)
    assert {e.hostcall for e in errors} >= {
        "proxy_get_metric",
        "proxy_resolve_shared_queue",
        "proxy_set_effective_context",
    }


def test_raw_wrappers_round_trip(probe) -> None:
    def body(root):
        _hostcalls.set_shared_data(b"k", b"v1", 0)
        value, cas = _hostcalls.get_shared_data(b"k")
        metric = _hostcalls.define_metric(MetricType.COUNTER, b"raw.counter")
        _hostcalls.increment_metric(metric, 3)
        gauge = _hostcalls.define_metric(MetricType.GAUGE, b"raw.gauge")
        _hostcalls.record_metric(gauge, 7)
        queue = _hostcalls.register_shared_queue(b"raw")
        _hostcalls.enqueue_shared_queue(queue, b"item")
        return (
            value,
            cas > 0,
            _hostcalls.get_metric(metric),
            _hostcalls.get_metric(gauge),
            _hostcalls.dequeue_shared_queue(queue),
            _hostcalls.get_log_level(),
            _hostcalls.get_current_time_nanoseconds() > 0,
            _hostcalls.get_buffer_status(BufferType.CALL_DATA)[0],
        )

    assert probe.run(body) == (b"v1", True, 3, 7, b"item", 0, True, 0)
    assert probe.metrics["raw.counter"] == 3


def test_header_map_wrappers(probe) -> None:
    seen = {}

    def on_request_headers(ctx, headers, eos):
        seen["size"] = _hostcalls.get_header_map_size(MapType.HTTP_REQUEST_HEADERS)
        seen["value"] = _hostcalls.get_header_map_value(MapType.HTTP_REQUEST_HEADERS, b"a")
        _hostcalls.set_header_map_pairs(
            MapType.HTTP_REQUEST_HEADERS, proxywasm.Headers([(":path", "/"), ("b", "2")]).serialize()
        )

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    stream.send_request_headers({":path": "/", "a": "1"}, end_of_stream=True)
    assert seen == {"size": len(":path/a1"), "value": b"1"}  # the size is in bytes, as in Envoy
    assert stream.upstream_request.headers.items() == [(":path", "/"), ("b", "2")]
