"""Typed wrappers of the `_proxywasm` seam: one function per ABI 0.2.1 hostcall.

Each wrapper calls the seam function of the same name and turns the seam's
`HostcallError(status, hostcall)` into the matching subclass of
`proxywasm.HostcallError` (NotFound, BadArgument, CasMismatch, Empty, ...), whose
message names the hostcall and the arguments it was called with. Nothing else in the
SDK touches `_proxywasm` directly.
"""

from __future__ import annotations

import _proxywasm as _abi

from ._errors import hostcall_error


def log(level: int, message: bytes | str) -> None:
    try:
        _abi.log(level, message)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, level=level, message=message) from None


def get_log_level() -> int:
    try:
        return _abi.get_log_level()
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status) from None


def get_current_time_nanoseconds() -> int:
    try:
        return _abi.get_current_time_nanoseconds()
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status) from None


def set_tick_period_milliseconds(period: int) -> None:
    try:
        _abi.set_tick_period_milliseconds(period)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, period=period) from None


def get_property(path: bytes) -> bytes:
    try:
        return _abi.get_property(path)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, path=path) from None


def set_property(path: bytes, value: bytes) -> None:
    try:
        _abi.set_property(path, value)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, path=path, value=value) from None


def get_buffer_bytes(buffer_type: int, start: int, max_size: int) -> bytes:
    try:
        return _abi.get_buffer_bytes(buffer_type, start, max_size)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, buffer_type=buffer_type, start=start, max_size=max_size) from None


def get_buffer_status(buffer_type: int) -> tuple[int, int]:
    try:
        return _abi.get_buffer_status(buffer_type)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, buffer_type=buffer_type) from None


def set_buffer_bytes(buffer_type: int, start: int, size: int, data: bytes) -> None:
    try:
        _abi.set_buffer_bytes(buffer_type, start, size, data)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, buffer_type=buffer_type, start=start, size=size, data=data) from None


def get_header_map_pairs(map_type: int) -> bytes:
    try:
        return _abi.get_header_map_pairs(map_type)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, map_type=map_type) from None


def get_header_map_list(map_type: int) -> list[tuple[bytes, bytes]]:
    try:
        return _abi.get_header_map_list(map_type)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, map_type=map_type) from None


def set_header_map_pairs(map_type: int, pairs: bytes) -> None:
    try:
        _abi.set_header_map_pairs(map_type, pairs)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, map_type=map_type, pairs=pairs) from None


def get_header_map_size(map_type: int) -> int:
    try:
        return _abi.get_header_map_size(map_type)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, map_type=map_type) from None


def get_header_map_value(map_type: int, key: bytes) -> bytes:
    try:
        return _abi.get_header_map_value(map_type, key)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, map_type=map_type, key=key) from None


def find_header_map_value(map_type: int, key: str | bytes) -> str | None:
    try:
        return _abi.find_header_map_value(map_type, key)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, map_type=map_type, key=key) from None


def replace_header_map_value(map_type: int, key: bytes, value: bytes) -> None:
    try:
        _abi.replace_header_map_value(map_type, key, value)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, map_type=map_type, key=key, value=value) from None


def add_header_map_value(map_type: int, key: bytes, value: bytes) -> None:
    try:
        _abi.add_header_map_value(map_type, key, value)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, map_type=map_type, key=key, value=value) from None


def remove_header_map_value(map_type: int, key: bytes) -> None:
    try:
        _abi.remove_header_map_value(map_type, key)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, map_type=map_type, key=key) from None


def continue_stream(stream_type: int) -> None:
    try:
        _abi.continue_stream(stream_type)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, stream_type=stream_type) from None


def close_stream(stream_type: int) -> None:
    try:
        _abi.close_stream(stream_type)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, stream_type=stream_type) from None


def send_local_response(status_code: int, details: bytes, body: bytes, headers: bytes, grpc_status: int) -> None:
    try:
        _abi.send_local_response(status_code, details, body, headers, grpc_status)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, status_code=status_code, details=details, body=body, headers=headers, grpc_status=grpc_status) from None


def http_call(upstream: bytes, headers: bytes, body: bytes, trailers: bytes, timeout_ms: int) -> int:
    try:
        return _abi.http_call(upstream, headers, body, trailers, timeout_ms)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, upstream=upstream, headers=headers, body=body, trailers=trailers, timeout_ms=timeout_ms) from None


def grpc_call(upstream: bytes, service: bytes, method: bytes, initial_metadata: bytes, message: bytes, timeout_ms: int) -> int:
    try:
        return _abi.grpc_call(upstream, service, method, initial_metadata, message, timeout_ms)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, upstream=upstream, service=service, method=method, initial_metadata=initial_metadata, message=message, timeout_ms=timeout_ms) from None


def grpc_stream(upstream: bytes, service: bytes, method: bytes, initial_metadata: bytes) -> int:
    try:
        return _abi.grpc_stream(upstream, service, method, initial_metadata)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, upstream=upstream, service=service, method=method, initial_metadata=initial_metadata) from None


def grpc_send(token: int, message: bytes, end_stream: int) -> None:
    try:
        _abi.grpc_send(token, message, end_stream)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, token=token, message=message, end_stream=end_stream) from None


def grpc_cancel(token: int) -> None:
    try:
        _abi.grpc_cancel(token)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, token=token) from None


def grpc_close(token: int) -> None:
    try:
        _abi.grpc_close(token)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, token=token) from None


def get_status() -> tuple[int, bytes]:
    try:
        return _abi.get_status()
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status) from None


def get_shared_data(key: bytes) -> tuple[bytes, int]:
    try:
        return _abi.get_shared_data(key)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, key=key) from None


def set_shared_data(key: bytes, value: bytes, cas: int) -> None:
    try:
        _abi.set_shared_data(key, value, cas)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, key=key, value=value, cas=cas) from None


def register_shared_queue(name: bytes) -> int:
    try:
        return _abi.register_shared_queue(name)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, name=name) from None


def resolve_shared_queue(vm_id: bytes, name: bytes) -> int:
    try:
        return _abi.resolve_shared_queue(vm_id, name)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, vm_id=vm_id, name=name) from None


def enqueue_shared_queue(queue_id: int, data: bytes) -> None:
    try:
        _abi.enqueue_shared_queue(queue_id, data)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, queue_id=queue_id, data=data) from None


def dequeue_shared_queue(queue_id: int) -> bytes:
    try:
        return _abi.dequeue_shared_queue(queue_id)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, queue_id=queue_id) from None


def define_metric(metric_type: int, name: bytes) -> int:
    try:
        return _abi.define_metric(metric_type, name)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, metric_type=metric_type, name=name) from None


def increment_metric(metric_id: int, offset: int) -> None:
    try:
        _abi.increment_metric(metric_id, offset)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, metric_id=metric_id, offset=offset) from None


def record_metric(metric_id: int, value: int) -> None:
    try:
        _abi.record_metric(metric_id, value)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, metric_id=metric_id, value=value) from None


def get_metric(metric_id: int) -> int:
    try:
        return _abi.get_metric(metric_id)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, metric_id=metric_id) from None


def set_effective_context(context_id: int) -> None:
    try:
        _abi.set_effective_context(context_id)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, context_id=context_id) from None


def done() -> None:
    try:
        _abi.done()
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status) from None


def call_foreign_function(name: bytes, arguments: bytes) -> bytes:
    try:
        return _abi.call_foreign_function(name, arguments)
    except _abi.HostcallError as err:
        raise hostcall_error(err.hostcall, err.status, name=name, arguments=arguments) from None


def install_c_methods(cls: type, seam_function: str, *arguments: object) -> None:
    """Put the shim's C versions of some of `cls`'s methods on `cls`, when the seam has
    `seam_function` (a built module; the emulator's native mode has none).

    The C versions do the per-request case with no Python frame and call the methods
    they replace for everything else, so behaviour does not change (docs/abi-seam.md).
    """
    methods = getattr(_abi, seam_function, None)
    if methods is not None:
        for name, method in methods(cls, *arguments).items():
            setattr(cls, name, method)
