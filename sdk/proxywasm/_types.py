"""The enums of the proxy-wasm ABI 0.2.1, named the way plugin code reads them.

They are small `int` subclasses rather than `enum.IntEnum`: on CPython 3.11 reading an
IntEnum member (``Action.CONTINUE``) costs several times a plain class attribute, and
`enum` drags half a dozen modules into every plugin's snapshot. Members behave like
IntEnum members where it matters: they are ints, compare with ints, have a `name`,
print as ``Action.CONTINUE``, and ``Action(1)`` gives ``Action.PAUSE`` (or ValueError).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import ClassVar

    from typing_extensions import Self


class IntConstant(int):
    """Base of the SDK's enums: an `int` that knows its name."""

    __slots__ = ()
    _members: ClassVar[dict[int, IntConstant]]
    _names: ClassVar[dict[int, str]]

    def __new__(cls, value: int) -> Self:
        try:
            return cls._members[value]  # type: ignore[return-value]
        except (KeyError, TypeError):
            raise ValueError(f"{value!r} is not a valid {cls.__name__}") from None

    def __init_subclass__(cls) -> None:
        cls._members = {}
        cls._names = {}
        for name, value in list(vars(cls).items()):
            if not name.startswith("_") and type(value) is int:
                member = int.__new__(cls, value)
                setattr(cls, name, member)
                cls._members[value] = member
                cls._names[value] = name

    @property
    def name(self) -> str:
        """The member's name, e.g. ``"CONTINUE"``."""
        return self._names[int(self)]

    @property
    def value(self) -> int:
        """The member's value as a plain int."""
        return int(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}.{self._names[int(self)]}"

    __str__ = __repr__

    def __reduce__(self) -> tuple[type[Self], tuple[int]]:
        return type(self), (int(self),)


# Type checkers see real IntEnums (members typed as their class, exhaustiveness checks);
# the interpreter runs the lean IntConstant.
if TYPE_CHECKING:
    from enum import IntEnum as _Enum
else:
    _Enum = IntConstant


class Action(_Enum):
    """What a stream callback tells the host to do next."""

    CONTINUE = 0
    """Pass the headers / body / data on to the next filter."""
    PAUSE = 1
    """Hold the stream here until the plugin resumes it (or, for a body, buffer it)."""


class LogLevel(_Enum):
    """Envoy log levels, as `proxy_log` numbers them."""

    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4
    CRITICAL = 5


class PeerType(_Enum):
    """Which side closed a TCP connection."""

    UNKNOWN = 0
    LOCAL = 1
    REMOTE = 2


class Status(_Enum):
    """Result codes of hostcalls."""

    OK = 0
    NOT_FOUND = 1
    BAD_ARGUMENT = 2
    SERIALIZATION_FAILURE = 3
    PARSE_FAILURE = 4
    INVALID_MEMORY_ACCESS = 6
    EMPTY = 7
    CAS_MISMATCH = 8
    INTERNAL_FAILURE = 10
    UNIMPLEMENTED = 12


class BufferType(_Enum):
    """Host buffers that `get_buffer_bytes` / `set_buffer_bytes` address."""

    HTTP_REQUEST_BODY = 0
    HTTP_RESPONSE_BODY = 1
    DOWNSTREAM_DATA = 2
    UPSTREAM_DATA = 3
    HTTP_CALL_RESPONSE_BODY = 4
    GRPC_RECEIVE_BUFFER = 5
    VM_CONFIGURATION = 6
    PLUGIN_CONFIGURATION = 7
    CALL_DATA = 8


class MapType(_Enum):
    """Host header maps."""

    HTTP_REQUEST_HEADERS = 0
    HTTP_REQUEST_TRAILERS = 1
    HTTP_RESPONSE_HEADERS = 2
    HTTP_RESPONSE_TRAILERS = 3
    GRPC_RECEIVE_INITIAL_METADATA = 4
    GRPC_RECEIVE_TRAILING_METADATA = 5
    HTTP_CALL_RESPONSE_HEADERS = 6
    HTTP_CALL_RESPONSE_TRAILERS = 7


class StreamType(_Enum):
    """Streams that `continue_stream` / `close_stream` address."""

    HTTP_REQUEST = 0
    HTTP_RESPONSE = 1
    DOWNSTREAM = 2
    UPSTREAM = 3


class MetricType(_Enum):
    """Kinds of metric `define_metric` creates."""

    COUNTER = 0
    GAUGE = 1
    HISTOGRAM = 2


class GrpcStatus(_Enum):
    """gRPC status codes (for local responses and gRPC call results)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16
