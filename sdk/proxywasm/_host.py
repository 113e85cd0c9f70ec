"""Host-wide services: time (the emulator's clock is fake) and foreign functions."""

from __future__ import annotations

from . import _hostcalls


def current_time_ns() -> int:
    """Wall-clock time in nanoseconds since the Unix epoch."""
    return _hostcalls.get_current_time_nanoseconds()


def current_time() -> float:
    """Wall-clock time in seconds since the Unix epoch (like `time.time()`)."""
    return _hostcalls.get_current_time_nanoseconds() / 1e9


def call_foreign_function(name: str, arguments: bytes | str = b"") -> bytes:
    """Call a host-provided foreign function (for example ``clear_route_cache``)."""
    from ._codec import to_bytes

    return _hostcalls.call_foreign_function(to_bytes(name), to_bytes(arguments))
