"""Plain records the emulator hands to tests: header maps, messages, logs, metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, Optional, Union, overload

from ._codec import Headers, HeadersLike, to_pairs
from ._types import EmulatorError, LogLevel, MetricType

__all__ = ["CallRecord", "HeaderMap", "Message", "LocalResponse", "LogRecord", "Logs", "Metric", "Metrics", "MAX_LOG_RECORD"]

#: The most of one log message (proxy_log, or one fd_write) the host keeps; the rest is
#: dropped and noted as "[... N bytes dropped]", so a hostile module cannot fill the host's memory.
MAX_LOG_RECORD = 1024 * 1024


class HeaderMap:
    """An ordered multi-map of header pairs with case-insensitive lookup.

    Compares equal to a dict (``{"x": "1"}``) or a list of pairs, so tests read
    naturally: ``assert stream.upstream_request.headers["x-user"] == "bob"``.
    """

    __slots__ = ("pairs",)

    def __init__(self, pairs: HeadersLike = None) -> None:
        self.pairs: Headers = to_pairs(pairs)

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of ``name`` (decoded as UTF-8), or ``default``."""
        key = name.lower().encode()
        for k, v in self.pairs:
            if k.lower() == key:
                return v.decode("utf-8", "replace")
        return default

    def get_all(self, name: str) -> list[str]:
        key = name.lower().encode()
        return [v.decode("utf-8", "replace") for k, v in self.pairs if k.lower() == key]

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[str]:
        return (k.decode("utf-8", "replace") for k, _ in self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)

    def items(self) -> list[tuple[str, str]]:
        return [(k.decode("utf-8", "replace"), v.decode("utf-8", "replace")) for k, v in self.pairs]

    def to_dict(self) -> dict[str, str]:
        """Each name once (case-insensitively, spelled as it first appears), with the
        values of a repeated name joined by ``,`` in order, as the SDK's
        ``Headers.to_dict`` does; :meth:`items` keeps every pair apart."""
        result: dict[str, str] = {}
        spelling: dict[str, str] = {}
        for name, value in self.items():
            key = spelling.setdefault(name.lower(), name)
            result[key] = f"{result[key]},{value}" if key in result else value
        return result

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HeaderMap):
            return self.pairs == other.pairs
        if isinstance(other, dict):
            return self.items() == [(str(k), str(v)) for k, v in other.items()] or (
                len(other) == len(self.pairs) and self.to_dict() == {str(k): str(v) for k, v in other.items()}
            )
        if isinstance(other, list):
            try:
                return self.pairs == to_pairs(other)
            except EmulatorError:
                return False
        return NotImplemented

    def __repr__(self) -> str:
        return f"HeaderMap({self.items()!r})"


@dataclasses.dataclass
class Message:
    """What one side of a stream sent on past the plugin (to upstream or downstream)."""

    headers: Optional[HeaderMap] = None
    body: bytes = b""
    trailers: Optional[HeaderMap] = None
    end_of_stream: bool = False


@dataclasses.dataclass(frozen=True)
class LocalResponse:
    """A response the plugin generated with ``send_local_response`` (or the host, e.g. 413)."""

    status: int
    body: bytes
    headers: HeaderMap
    details: str
    grpc_status: int
    from_host: bool = False


@dataclasses.dataclass(frozen=True)
class LogRecord:
    level: LogLevel
    message: str
    root_id: str
    context_id: int
    vm: int


@dataclasses.dataclass(frozen=True)
class CallRecord:
    """One crossing between host and module, kept with ``Emulator(record_calls=True)``.

    ``kind`` is ``"callback"`` (the host called export ``name``, e.g.
    ``proxy_on_request_headers``, with ``args`` starting at the context id) or
    ``"hostcall"`` (the module called import ``name``, e.g.
    ``proxy_replace_header_map_value``, with ``args`` as the emulator decoded them from
    module memory: ints, and bytes for every pointer/size pair). A callback is listed
    before the hostcalls it made. ``result`` is what the call returned (for a
    hostcall: what it wrote back, or ``None``; ``None`` for a callback that trapped);
    ``status`` is the hostcall's status (0 for OK), always 0 for a callback.
    """

    kind: str
    vm: int
    name: str
    args: tuple[Any, ...]
    result: Any = None
    status: int = 0


class Logs:
    """Captured plugin logs; ``logs.error`` is the list of error messages, etc."""

    def __init__(self) -> None:
        self.records: list[LogRecord] = []

    def _by(self, level: LogLevel) -> list[str]:
        return [r.message for r in self.records if r.level == level]

    @property
    def trace(self) -> list[str]:
        return self._by(LogLevel.TRACE)

    @property
    def debug(self) -> list[str]:
        return self._by(LogLevel.DEBUG)

    @property
    def info(self) -> list[str]:
        return self._by(LogLevel.INFO)

    @property
    def warn(self) -> list[str]:
        return self._by(LogLevel.WARN)

    @property
    def error(self) -> list[str]:
        return self._by(LogLevel.ERROR)

    @property
    def critical(self) -> list[str]:
        return self._by(LogLevel.CRITICAL)

    @property
    def all(self) -> list[str]:
        return [r.message for r in self.records]

    def at_least(self, level: LogLevel) -> list[str]:
        return [r.message for r in self.records if r.level >= level]

    def contains(self, text: str, level: Optional[LogLevel] = None) -> bool:
        """True when some message (of ``level``, if given) contains ``text``."""
        return any(text in r.message and (level is None or r.level == level) for r in self.records)

    def clear(self) -> None:
        self.records.clear()

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return "Logs(" + ", ".join(f"{r.level.name}: {r.message!r}" for r in self.records[-20:]) + ")"


@dataclasses.dataclass
class Metric:
    name: str
    type: MetricType
    value: int = 0
    samples: list[int] = dataclasses.field(default_factory=list)


class Metrics:
    """Stats defined by plugins, shared by every VM like Envoy's stats store.

    ``metrics["name"]`` is the value of a counter or gauge, or the list of recorded
    samples of a histogram.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, Metric] = {}
        self._by_id: dict[int, Metric] = {}
        self._next_id = 1

    def define(self, metric_type: MetricType, name: str) -> int:
        key = name
        for mid, metric in self._by_id.items():
            if metric.name == key and metric.type == metric_type:
                return mid
        existing = self._by_name.get(key)
        if existing is None or existing.type != metric_type:
            existing = self._by_name[key] = Metric(name, metric_type)
        # Like Envoy, the metric type is encoded in the low bits of the id.
        mid = (self._next_id << 2) | int(metric_type)
        self._next_id += 1
        self._by_id[mid] = existing
        return mid

    def by_id(self, metric_id: int) -> Optional[Metric]:
        return self._by_id.get(metric_id)

    @overload
    def get(self, name: str) -> Union[int, list[int], None]: ...
    @overload
    def get(self, name: str, default: int) -> Union[int, list[int]]: ...
    def get(self, name: str, default: Optional[int] = None) -> Union[int, list[int], None]:
        metric = self._by_name.get(name)
        if metric is None:
            return default
        return list(metric.samples) if metric.type == MetricType.HISTOGRAM else metric.value

    def __getitem__(self, name: str) -> Union[int, list[int]]:
        value = self.get(name)
        if value is None:
            raise KeyError(f"no metric named {name!r}; defined: {sorted(self._by_name)}")
        return value

    def names(self) -> list[str]:
        """The names of every defined metric, sorted."""
        return sorted(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def metric(self, name: str) -> Metric:
        return self._by_name[name]

    def __repr__(self) -> str:
        return "Metrics(" + ", ".join(f"{n}={self.get(n)!r}" for n in self.names()) + ")"
