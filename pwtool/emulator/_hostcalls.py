"""The per-VM implementation of the ``_proxywasm`` seam (docs/abi-seam.md).

Every method is one ABI 0.2.1 hostcall with bytes and ints: native mode binds this
object as ``_proxywasm``; the wasm adapter (:mod:`._wasm`) decodes pointers and calls
the same methods. Failures raise :class:`HostcallError` with Envoy's status code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ._codec import Headers, decode_pairs, encode_pairs
from ._types import BufferType, EmulatorError, HostcallError, MapType, MetricType, Status, StreamType

if TYPE_CHECKING:
    from ._host import VM, GrpcStream, HttpStream, RootContext, TcpStream, _Context

__all__ = ["Hostcalls", "SEAM_FUNCTIONS"]

SEAM_FUNCTIONS = (
    "log get_log_level get_current_time_nanoseconds set_tick_period_milliseconds get_property "
    "set_property get_buffer_bytes get_buffer_status set_buffer_bytes get_header_map_pairs "
    "get_header_map_list set_header_map_pairs get_header_map_size get_header_map_value find_header_map_value "
    "replace_header_map_value "
    "add_header_map_value remove_header_map_value continue_stream close_stream send_local_response "
    "http_call grpc_call grpc_stream grpc_send grpc_cancel grpc_close get_status get_shared_data "
    "set_shared_data register_shared_queue resolve_shared_queue enqueue_shared_queue "
    "dequeue_shared_queue define_metric increment_metric record_metric get_metric "
    "set_effective_context done call_foreign_function"
).split()

BytesLike = Union[bytes, bytearray, memoryview, str]


def _b(value: BytesLike) -> bytes:
    """A bytes or str argument as the shim takes it; anything else is a TypeError there,
    so here too (``bytes(5)`` would quietly give five NUL bytes)."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, int):
        raise TypeError(f"a bytes-like object or str is required, not {type(value).__name__!r}")
    return bytes(value)


def _err(status: Status, hostcall: str) -> HostcallError:
    return HostcallError(int(status), hostcall)


def _proto_fields(data: bytes) -> Optional[list[tuple[int, int, Union[int, bytes]]]]:
    """The (field number, wire type, value) entries of a serialized protobuf message,
    or None when `data` does not parse as one (groups count as not parsing).
    Protobuf varints are unsigned LEB128, as in the wasm binary format."""
    from pwtool.build.wasm_binary import WasmFormatError, read_uleb

    fields: list[tuple[int, int, Union[int, bytes]]] = []
    position = 0
    try:
        while position < len(data):
            key, position = read_uleb(data, position)
            wire = key & 7
            if key >> 3 == 0 or wire not in (0, 1, 2, 5):
                return None
            value: Union[int, bytes]
            if wire == 0:
                value, position = read_uleb(data, position)
            else:
                size = 8 if wire == 1 else 4 if wire == 5 else 0
                if wire == 2:
                    size, position = read_uleb(data, position)
                if position + size > len(data):
                    return None
                value, position = data[position:position + size], position + size
            fields.append((key >> 3, wire, value))
    except WasmFormatError:  # a varint cut short or too long
        return None
    return fields


def _parse_grpc_service(data: bytes) -> Optional[str]:
    """`data` read as Envoy reads a gRPC target: None when it is no ``GrpcService``,
    else its ``envoy_grpc.cluster_name`` ("" when it has none)."""
    fields = _proto_fields(data)
    if fields is None:
        return None
    cluster = ""
    for number, wire, value in fields:
        if number == 1 and wire == 2 and isinstance(value, bytes):
            for inner_number, inner_wire, inner_value in _proto_fields(value) or []:
                if inner_number == 1 and inner_wire == 2 and isinstance(inner_value, bytes):
                    cluster = inner_value.decode("utf-8", "replace")
    return cluster


class Hostcalls:
    """The seam functions of one VM; they act on the VM's current (or effective) context."""

    def __init__(self, vm: "VM") -> None:
        self._vm = vm
        self._emu = vm.emulator
        if vm.emulator.record_calls:
            self._record_calls()

    def _record_calls(self) -> None:
        """Put a recording wrapper over each seam function of this instance that is an
        ABI hostcall: every hostcall the module makes goes to the emulator's ``calls``
        (outermost only, when one uses another). The seam's own helpers
        (``find_header_map_value``, ``get_header_map_list``) are not hostcalls: the
        hostcalls they make are recorded instead, as a built module makes them."""
        from pwtool.abi import hostcalls_for

        from ._records import CallRecord

        log = self._emu.calls
        index = self._vm.index
        active = [0]

        def recording(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
            def record(*args: Any) -> Any:
                if active[0]:
                    return function(*args)
                active[0] += 1
                try:
                    result = function(*args)
                except HostcallError as error:
                    log.append(CallRecord("hostcall", index, "proxy_" + name, args, None, error.status))
                    raise
                finally:
                    active[0] -= 1
                log.append(CallRecord("hostcall", index, "proxy_" + name, args, result))
                return result

            return record

        abi = hostcalls_for(None)
        for name in SEAM_FUNCTIONS:
            if "proxy_" + name in abi:
                setattr(self, name, recording(name, getattr(self, name)))

    # -- helpers
    def _ctx(self) -> "_Context":
        return self._vm.context()

    def _stream(self) -> Optional["HttpStream"]:
        s = getattr(self._ctx(), "stream", None)
        from ._host import HttpStream

        return s if isinstance(s, HttpStream) else None

    def _tcp(self) -> Optional["TcpStream"]:
        s = getattr(self._ctx(), "stream", None)
        from ._host import TcpStream

        return s if isinstance(s, TcpStream) else None

    def _root(self) -> "RootContext":
        return self._ctx().root_context

    # -- logging, time, ticks
    def log(self, level: int, message: BytesLike, dropped: int = 0) -> None:
        """``dropped``: bytes of the message the wasm adapter did not copy (over the cap)."""
        if not 0 <= level <= 5:
            raise _err(Status.BAD_ARGUMENT, "proxy_log")
        self._emu._log(self._vm, level, _b(message), dropped=dropped)

    def get_log_level(self) -> int:
        return int(self._emu.log_level)

    def get_current_time_nanoseconds(self) -> int:
        return self._emu.now_ns

    def set_tick_period_milliseconds(self, period: int) -> None:
        self._emu.set_tick_period(self._root(), int(period))

    # -- properties
    def get_property(self, path: BytesLike) -> bytes:
        raw = _b(path)
        parts = tuple(p.decode("utf-8", "replace") for p in raw.rstrip(b"\0").split(b"\0")) if raw else ()
        if not parts:
            raise _err(Status.NOT_FOUND, "proxy_get_property")
        value = self._emu.property_value(self._ctx(), parts)
        if value is None:
            raise _err(Status.NOT_FOUND, "proxy_get_property")
        return value

    def set_property(self, path: BytesLike, value: BytesLike) -> None:
        ctx = self._ctx()
        if getattr(ctx, "stream", None) is None:
            raise _err(Status.NOT_FOUND, "proxy_set_property")  # no stream info outside a stream
        raw = _b(path)
        parts = tuple(p.decode("utf-8", "replace") for p in raw.rstrip(b"\0").split(b"\0"))
        ctx.properties[parts] = _b(value)

    # -- buffers
    def _buffer(self, buffer_type: int, hostcall: str) -> Union[bytes, bytearray]:
        if not 0 <= buffer_type <= int(BufferType.CALL_DATA):
            raise _err(Status.BAD_ARGUMENT, hostcall)
        bt = BufferType(buffer_type)
        ctx = self._ctx()
        buf: Optional[Union[bytes, bytearray]] = None
        if bt in (BufferType.HTTP_REQUEST_BODY, BufferType.HTTP_RESPONSE_BODY):
            stream = self._stream()
            buf = stream.body_buffer(bt) if stream is not None else None
        elif bt == BufferType.DOWNSTREAM_DATA:
            tcp = self._tcp()
            buf = tcp.downstream_buffer if tcp is not None and tcp.downstream_visible else None
        elif bt == BufferType.UPSTREAM_DATA:
            tcp = self._tcp()
            buf = tcp.upstream_buffer if tcp is not None and tcp.upstream_visible else None
        elif bt == BufferType.HTTP_CALL_RESPONSE_BODY:
            call = ctx.root_context.http_call_response
            buf = call.response_body if call is not None else None
        elif bt == BufferType.GRPC_RECEIVE_BUFFER:
            buf = ctx.root_context.grpc_receive
            if buf is None:
                buf = b""  # Envoy hands out an empty buffer rather than failing
        elif bt == BufferType.VM_CONFIGURATION:
            buf = self._vm.vm_config
        elif bt == BufferType.PLUGIN_CONFIGURATION:
            buf = ctx.root_context.configuring
        elif bt == BufferType.CALL_DATA:
            buf = self._vm.call_data
        if buf is None:
            raise _err(Status.NOT_FOUND, hostcall)
        return buf

    def get_buffer_bytes(self, buffer_type: int, start: int, max_size: int) -> bytes:
        buf = self._buffer(buffer_type, "proxy_get_buffer_bytes")
        if start < 0 or max_size < 0 or start + max_size > 0xFFFFFFFF:
            raise _err(Status.BAD_ARGUMENT, "proxy_get_buffer_bytes")
        if start > len(buf):
            return b""
        return bytes(buf[start : start + max_size])

    def get_buffer_status(self, buffer_type: int) -> tuple[int, int]:
        buf = self._buffer(buffer_type, "proxy_get_buffer_status")
        return len(buf), 0

    def set_buffer_bytes(self, buffer_type: int, start: int, size: int, data: BytesLike) -> None:
        buf = self._buffer(buffer_type, "proxy_set_buffer_bytes")
        if not isinstance(buf, bytearray):
            raise _err(Status.BAD_ARGUMENT, "proxy_set_buffer_bytes")  # immutable buffer
        value = _b(data)
        if start == 0:
            del buf[: max(0, size)]
            buf[0:0] = value
        elif start >= len(buf):
            buf += value
        else:
            raise _err(Status.BAD_ARGUMENT, "proxy_set_buffer_bytes")

    # -- header maps
    def _map(self, map_type: int, mutable: bool, hostcall: str) -> Optional[Headers]:
        if not 0 <= map_type <= int(MapType.HTTP_CALL_RESPONSE_TRAILERS):
            raise _err(Status.BAD_ARGUMENT, hostcall)
        mt = MapType(map_type)
        root = self._root()
        if mt in (MapType.HTTP_CALL_RESPONSE_HEADERS, MapType.HTTP_CALL_RESPONSE_TRAILERS):
            if mutable:
                return None
            call = root.http_call_response
            if call is None:
                return None
            return call.response_headers if mt == MapType.HTTP_CALL_RESPONSE_HEADERS else call.response_trailers
        if mt == MapType.GRPC_RECEIVE_INITIAL_METADATA:
            return None if mutable else root.grpc_initial_metadata
        if mt == MapType.GRPC_RECEIVE_TRAILING_METADATA:
            return None if mutable else root.grpc_trailing_metadata
        stream = self._stream()
        if stream is None:
            return None
        return stream.header_map(mt, mutable)

    def get_header_map_pairs(self, map_type: int) -> bytes:
        pairs = self._map(map_type, False, "proxy_get_header_map_pairs")
        if not pairs:
            return b""  # as Envoy: an absent or empty map is an empty buffer, status OK
        return encode_pairs(pairs)

    def get_header_map_list(self, map_type: int) -> list[tuple[bytes, bytes]]:
        """`get_header_map_pairs`, parsed: the seam's list of (name, value) pairs."""
        return list(decode_pairs(self.get_header_map_pairs(map_type)))

    def set_header_map_pairs(self, map_type: int, pairs: BytesLike) -> None:
        target = self._map(map_type, True, "proxy_set_header_map_pairs")
        if target is None:
            raise _err(Status.BAD_ARGUMENT, "proxy_set_header_map_pairs")
        target[:] = [(k.lower(), v) for k, v in decode_pairs(_b(pairs))]

    def get_header_map_size(self, map_type: int) -> int:
        target = self._map(map_type, True, "proxy_get_header_map_size")
        if target is None:
            raise _err(Status.BAD_ARGUMENT, "proxy_get_header_map_size")
        return sum(len(k) + len(v) for k, v in target)  # Envoy returns byteSize()

    def get_header_map_value(self, map_type: int, key: BytesLike) -> bytes:
        target = self._map(map_type, False, "proxy_get_header_map_value")
        abi01 = self._vm.abi_version == "0.1.0"
        if target is None:
            stream = self._stream()
            if stream is not None and stream.access_log_phase:
                if abi01:
                    return b""
                raise _err(Status.NOT_FOUND, "proxy_get_header_map_value")
            raise _err(Status.BAD_ARGUMENT, "proxy_get_header_map_value")
        k = _b(key).lower()
        for name, value in target:
            if name == k:
                return value
        if abi01:
            return b""
        raise _err(Status.NOT_FOUND, "proxy_get_header_map_value")

    def find_header_map_value(self, map_type: int, key: BytesLike) -> Optional[str]:
        """`get_header_map_value` for the per-request path: str value, None when absent."""
        try:
            value = self.get_header_map_value(map_type, key)
        except HostcallError as error:
            if error.status == Status.NOT_FOUND:
                return None
            raise
        return value.decode("utf-8", "surrogateescape")

    def replace_header_map_value(self, map_type: int, key: BytesLike, value: BytesLike) -> None:
        target = self._map(map_type, True, "proxy_replace_header_map_value")
        if target is None:
            raise _err(Status.BAD_ARGUMENT, "proxy_replace_header_map_value")
        k, v = _b(key).lower(), _b(value)
        idx = [i for i, (name, _) in enumerate(target) if name == k]
        if not idx:
            target.append((k, v))
            return
        target[idx[0]] = (k, v)
        for i in reversed(idx[1:]):
            del target[i]

    def add_header_map_value(self, map_type: int, key: BytesLike, value: BytesLike) -> None:
        target = self._map(map_type, True, "proxy_add_header_map_value")
        if target is None:
            raise _err(Status.BAD_ARGUMENT, "proxy_add_header_map_value")
        target.append((_b(key).lower(), _b(value)))

    def remove_header_map_value(self, map_type: int, key: BytesLike) -> None:
        target = self._map(map_type, True, "proxy_remove_header_map_value")
        if target is None:
            raise _err(Status.BAD_ARGUMENT, "proxy_remove_header_map_value")
        k = _b(key).lower()
        target[:] = [(n, v) for n, v in target if n != k]

    # -- stream control
    def continue_stream(self, stream_type: int) -> None:
        if not 0 <= stream_type <= int(StreamType.UPSTREAM):
            raise _err(Status.BAD_ARGUMENT, "proxy_continue_stream")
        st = StreamType(stream_type)
        if st == StreamType.UPSTREAM:
            raise _err(Status.UNIMPLEMENTED, "proxy_continue_stream")
        ctx = self._ctx()
        stream = getattr(ctx, "stream", None)
        from ._host import HttpStream, TcpStream

        if isinstance(stream, HttpStream) and st in (StreamType.REQUEST, StreamType.RESPONSE):
            d = stream.request if st == StreamType.REQUEST else stream.response
            # Envoy drops its pointers to the request maps and resumes after the VM call.
            stream.request.headers_visible = stream.request.body_visible = stream.request.trailers_visible = False
            self._emu.defer(lambda: stream._resume(d))
        elif isinstance(stream, TcpStream) and st == StreamType.DOWNSTREAM:
            self._emu.defer(stream._resume_downstream)

    def close_stream(self, stream_type: int) -> None:
        if not 0 <= stream_type <= int(StreamType.UPSTREAM):
            raise _err(Status.BAD_ARGUMENT, "proxy_close_stream")
        st = StreamType(stream_type)
        stream = getattr(self._ctx(), "stream", None)
        from ._host import HttpStream, TcpStream

        if isinstance(stream, HttpStream) and st in (StreamType.REQUEST, StreamType.RESPONSE):

            def reset() -> None:
                stream.reset_by = "wasm_close_stream"
                stream._finish()

            self._emu.defer(reset)
        elif isinstance(stream, TcpStream) and st in (StreamType.DOWNSTREAM, StreamType.UPSTREAM):
            stream.closed_by_plugin = st.name.lower()
            self._emu.defer(lambda: stream._close(True, 1))

    def send_local_response(self, status_code: int, details: BytesLike, body: BytesLike, headers: BytesLike, grpc_status: int) -> None:
        stream = self._stream()
        pairs = decode_pairs(_b(headers))
        if stream is None:
            return  # Envoy ignores it outside an HTTP stream
        if stream._local_pending is not None or stream.local_response is not None:
            return
        args = (int(status_code), _b(body), pairs, _b(details), grpc_status if grpc_status < 2**31 else grpc_status - 2**32)
        stream._local_pending = args + (False,)

        def send() -> None:
            stream._local_pending = None
            stream._local_reply(*args)

        self._emu.defer(send)

    # -- callouts
    def http_call(self, upstream: BytesLike, headers: BytesLike, body: BytesLike, trailers: BytesLike, timeout_ms: int) -> int:
        if timeout_ms < 0 or timeout_ms >= 2**31:
            raise _err(Status.BAD_ARGUMENT, "proxy_http_call")
        cluster = _b(upstream).decode("utf-8", "replace")
        if not self._emu.cluster_known(cluster):
            raise _err(Status.BAD_ARGUMENT, "proxy_http_call")
        hdrs = [(k.lower(), v) for k, v in decode_pairs(_b(headers))]
        names = {k for k, _ in hdrs}
        if not {b":path", b":method", b":authority"} <= names:
            raise _err(Status.BAD_ARGUMENT, "proxy_http_call")
        body_b = _b(body)
        if body_b:
            hdrs = [(k, v) for k, v in hdrs if k != b"content-length"] + [(b"content-length", str(len(body_b)).encode())]
        call = self._emu.new_http_call(self._root(), cluster, hdrs, body_b, decode_pairs(_b(trailers)), int(timeout_ms))
        return call.token

    def grpc_call(self, upstream: BytesLike, service: BytesLike, method: BytesLike, initial_metadata: BytesLike, message: BytesLike, timeout_ms: int) -> int:
        cluster = self._grpc_cluster(_b(upstream), "proxy_grpc_call")
        call = self._emu.new_grpc_call(
            self._root(), cluster, _b(service).decode("utf-8", "replace"), _b(method).decode("utf-8", "replace"),
            decode_pairs(_b(initial_metadata)), _b(message), int(timeout_ms),
        )
        return call.token

    def grpc_stream(self, upstream: BytesLike, service: BytesLike, method: BytesLike, initial_metadata: BytesLike) -> int:
        cluster = self._grpc_cluster(_b(upstream), "proxy_grpc_stream")
        stream = self._emu.new_grpc_stream(
            self._root(), cluster, _b(service).decode("utf-8", "replace"), _b(method).decode("utf-8", "replace"),
            decode_pairs(_b(initial_metadata)),
        )
        return stream.token

    def _grpc_cluster(self, upstream: bytes, hostcall: str) -> str:
        """The cluster a gRPC call or stream goes to, found as Envoy 1.40 finds it.

        Envoy first parses `upstream` as a serialized ``GrpcService``: if that works,
        its ``envoy_grpc.cluster_name`` is the cluster, and an unknown one makes the
        call fail with INTERNAL_FAILURE. A ``GrpcService`` without that target aborts
        Envoy ("unset oneof"), which some bare names (``"h2"``) parse as. Otherwise
        `upstream` is the cluster name, and an unknown one is PARSE_FAILURE.
        """
        parsed = _parse_grpc_service(upstream)
        if parsed is None:
            cluster = upstream.decode("utf-8", "replace")
            if not self._emu.cluster_known(cluster):
                raise _err(Status.PARSE_FAILURE, hostcall)
            return cluster
        if not parsed:
            raise EmulatorError(
                f"{hostcall}: {upstream!r} parses as a GrpcService with no envoy_grpc target; "
                "Envoy 1.40 aborts on it (panic: unset oneof)"
            )
        if not self._emu.cluster_known(parsed):
            raise _err(Status.INTERNAL_FAILURE, hostcall)
        return parsed

    def _grpc_stream_by_token(self, token: int) -> Optional["GrpcStream"]:
        for s in self._emu.grpc_streams:
            if s.token == token and s.root is self._root():
                return s
        return None

    def grpc_send(self, token: int, message: BytesLike, end_stream: int) -> None:
        if token % 2 == 1:
            raise _err(Status.BAD_ARGUMENT, "proxy_grpc_send")
        s = self._grpc_stream_by_token(token)
        if s is None:
            raise _err(Status.NOT_FOUND, "proxy_grpc_send")
        s.sent.append(_b(message))
        if end_stream:
            s.half_closed = True

    def _grpc_end(self, token: int, hostcall: str, cancel: bool) -> None:
        if token % 2 == 1:
            for c in self._emu.pending_grpc_calls:
                if c.token == token and c.root is self._root():
                    c.done = True
                    self._emu.pending_grpc_calls.remove(c)
                    return
            raise _err(Status.NOT_FOUND, hostcall)
        s = self._grpc_stream_by_token(token)
        if s is None:
            raise _err(Status.NOT_FOUND, hostcall)
        if cancel:
            s.cancelled = True
            self._emu.grpc_streams.remove(s)
        else:
            s.local_closed = True
            if s.remote_closed:
                self._emu.grpc_streams.remove(s)

    def grpc_cancel(self, token: int) -> None:
        self._grpc_end(token, "proxy_grpc_cancel", True)

    def grpc_close(self, token: int) -> None:
        self._grpc_end(token, "proxy_grpc_close", False)

    def get_status(self) -> tuple[int, bytes]:
        return self._root().status

    # -- shared data and queues
    def get_shared_data(self, key: BytesLike) -> tuple[bytes, int]:
        entry = self._emu.get_shared_data(self._vm.vm_id, _b(key))
        if entry is None:
            raise _err(Status.NOT_FOUND, "proxy_get_shared_data")
        return entry

    def set_shared_data(self, key: BytesLike, value: BytesLike, cas: int) -> None:
        status = self._emu.set_shared_data(self._vm.vm_id, _b(key), _b(value), int(cas))
        if status != Status.OK:
            raise _err(status, "proxy_set_shared_data")

    def register_shared_queue(self, name: BytesLike) -> int:
        return self._emu.register_queue(self._vm.vm_id, _b(name).decode("utf-8", "replace"), self._ctx())

    def resolve_shared_queue(self, vm_id: BytesLike, name: BytesLike) -> int:
        token = self._emu.resolve_queue(_b(vm_id).decode("utf-8", "replace"), _b(name).decode("utf-8", "replace"))
        if token is None:
            raise _err(Status.NOT_FOUND, "proxy_resolve_shared_queue")
        return token

    def enqueue_shared_queue(self, queue_id: int, data: BytesLike) -> None:
        status = self._emu.enqueue(int(queue_id), _b(data))
        if status != Status.OK:
            raise _err(status, "proxy_enqueue_shared_queue")

    def dequeue_shared_queue(self, queue_id: int) -> bytes:
        status, data = self._emu.dequeue(int(queue_id))
        if status != Status.OK:
            raise _err(status, "proxy_dequeue_shared_queue")
        return data

    # -- metrics
    def define_metric(self, metric_type: int, name: BytesLike) -> int:
        if not 0 <= metric_type <= 2:
            raise _err(Status.BAD_ARGUMENT, "proxy_define_metric")
        return self._emu.metrics.define(MetricType(metric_type), _b(name).decode("utf-8", "replace"))

    def increment_metric(self, metric_id: int, offset: int) -> None:
        kind = metric_id & 3
        metric = self._emu.metrics.by_id(metric_id)
        if kind == MetricType.COUNTER:
            if metric is None:
                raise _err(Status.NOT_FOUND, "proxy_increment_metric")
            if offset <= 0:
                raise _err(Status.BAD_ARGUMENT, "proxy_increment_metric")
            metric.value += offset
        elif kind == MetricType.GAUGE:
            if metric is None:
                raise _err(Status.NOT_FOUND, "proxy_increment_metric")
            metric.value += offset
        else:
            raise _err(Status.BAD_ARGUMENT, "proxy_increment_metric")

    def record_metric(self, metric_id: int, value: int) -> None:
        metric = self._emu.metrics.by_id(metric_id)
        if metric is None or (metric_id & 3) == 3:
            raise _err(Status.NOT_FOUND, "proxy_record_metric")
        value &= 0xFFFFFFFFFFFFFFFF
        if metric.type == MetricType.COUNTER:
            metric.value += value
        elif metric.type == MetricType.GAUGE:
            metric.value = value
        else:
            metric.samples.append(value)

    def get_metric(self, metric_id: int) -> int:
        kind = metric_id & 3
        if kind not in (MetricType.COUNTER, MetricType.GAUGE):
            raise _err(Status.BAD_ARGUMENT, "proxy_get_metric")
        metric = self._emu.metrics.by_id(metric_id)
        if metric is None:
            raise _err(Status.NOT_FOUND, "proxy_get_metric")
        return metric.value & 0xFFFFFFFFFFFFFFFF

    # -- contexts
    def set_effective_context(self, context_id: int) -> None:
        ctx = self._vm.contexts.get(int(context_id))
        if ctx is None or not ctx.alive:
            raise _err(Status.BAD_ARGUMENT, "proxy_set_effective_context")
        self._vm.effective = ctx

    def done(self) -> None:
        root = self._root()
        if not root.done_pending:
            raise _err(Status.NOT_FOUND, "proxy_done")
        plugin = root.plugin
        self._emu.defer(lambda: plugin._delete_root(root))

    def call_foreign_function(self, name: BytesLike, arguments: BytesLike) -> bytes:
        fname = _b(name)
        if fname == b"clear_route_cache":
            stream = self._stream()
            if stream is not None:
                stream.route_cache_clears += 1
            return b""
        fn = self._emu.foreign_functions.get(fname)
        if fn is None:
            raise _err(Status.NOT_FOUND, "proxy_call_foreign_function")
        return bytes(fn(_b(arguments)))

    # -- ABI 0.1.0 only (not part of the seam; used by the wasm adapter)
    def abi01_get_configuration(self) -> bytes:
        root = self._root()
        if root.configuring is not None:
            return root.configuring
        return self._vm.vm_config

    def abi01_clear_route_cache(self) -> None:
        self.call_foreign_function(b"clear_route_cache", b"")

    # -- the seam's remaining names
    HostcallError = HostcallError
