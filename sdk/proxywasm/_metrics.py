"""Metrics: counters, gauges and histograms that Envoy exports with its own stats.

Metric objects can be created at module level: they are defined on the host lazily,
on first use, because hostcalls are not allowed while the module is being loaded.
Envoy prefixes their names with ``wasmcustom.``.

Tags become part of the stat name as ``<name>.<tag>=<value>`` segments, sorted by tag
(dots in values become ``_``; Envoy keeps other characters, such as ``:`` and
spaces, in ``/stats``, and its Prometheus output turns them into ``_``). Envoy turns
them into Prometheus labels with one ``stats_tags`` rule per tag name, for example::

    stats_config:
      stats_tags:
      - tag_name: method
        regex: "(\\\\.method=([^.]*))"
"""

from __future__ import annotations

import _proxywasm as _abi

from . import _hostcalls
from ._errors import hostcall_error
from ._types import MetricType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def stat_name(name: str, tags: Mapping[str, str] | None = None) -> str:
    """The Envoy stat name for metric `name` with `tags`."""
    if not tags:
        return name
    parts = [name]
    for key in sorted(tags):
        parts.append(f"{key}={str(tags[key]).replace('.', '_')}")
    return ".".join(parts)


class _Metric:
    _type: MetricType

    __slots__ = ("name", "tags", "_base", "_ids", "_children")

    def __init__(self, name: str, tags: Mapping[str, str] | None = None) -> None:
        if not name:
            raise ValueError("a metric needs a name (Envoy would call it just 'wasmcustom')")
        self._base = name  # without tags: `with_tags` adds its tags to this one's
        self.name = stat_name(name, tags)
        """The full stat name, tags included (without Envoy's ``wasmcustom.``)."""
        self.tags = dict(tags or {})
        self._ids: dict[int, int] = {}
        self._children: dict[object, _Metric] = {}

    def _id(self) -> int:
        # One id per VM: with the emulator, one process can run several VMs whose
        # seams hand out independent ids (the host context tells them apart).
        vm = _vm_key()
        metric_id = self._ids.get(vm)
        if metric_id is None:
            metric_id = self._ids[vm] = _hostcalls.define_metric(self._type, self.name.encode())
        return metric_id

    def _tagged(self, tags: Mapping[str, str]) -> _Metric:
        # One tag (the common case): the key is its (name, value) item, which
        # `with_tags` can look up without building anything else.
        key: object = next(iter(tags.items())) if len(tags) == 1 else tuple(sorted(tags.items()))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = type(self)(self._base, {**self.tags, **tags})
        return child

    def get(self) -> int:
        """The current value (from the host)."""
        return _hostcalls.get_metric(self._id())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class Counter(_Metric):
    """A monotonically increasing count."""

    __slots__ = ()
    _type = MetricType.COUNTER

    def inc(self, amount: int = 1) -> None:
        """Add `amount` (default 1); 0 does nothing, a negative amount is a ValueError."""
        # Per-request hot path: `_id` and the hostcall wrapper inlined.
        metric_id = self._ids.get(_current_vm[0])
        if metric_id is None:
            metric_id = self._id()
        try:
            _abi.increment_metric(metric_id, amount)
        except _abi.HostcallError as err:
            if amount == 0:  # Envoy refuses to add 0 (BAD_ARGUMENT); nothing to count
                return
            if amount < 0:
                raise ValueError(f"counter {self.name!r} cannot go down (inc({amount})); use a Gauge") from None
            raise hostcall_error(err.hostcall, err.status, metric_id=metric_id, offset=amount) from None

    def with_tags(self, **tags: str) -> Counter:
        """The counter with these extra tags (created once, then reused)."""
        if len(tags) == 1:  # per-request hot path: one dict lookup, no call
            for item in tags.items():
                child = self._children.get(item)
                if child is not None:
                    return child  # type: ignore[return-value]
        return self._tagged(tags)  # type: ignore[return-value]


class Gauge(_Metric):
    """A value that goes up and down."""

    __slots__ = ()
    _type = MetricType.GAUGE

    def set(self, value: int) -> None:
        """Set the gauge to `value` (Envoy gauges are unsigned: a negative value is a ValueError)."""
        _check_unsigned(self, value)
        _hostcalls.record_metric(self._id(), value)

    def add(self, delta: int) -> None:
        """Add `delta` (negative to subtract; below 0, Envoy wraps around to 2**64 - n)."""
        _hostcalls.increment_metric(self._id(), delta)

    def with_tags(self, **tags: str) -> Gauge:
        """The gauge with these extra tags (created once, then reused)."""
        return self._tagged(tags)  # type: ignore[return-value]


class Histogram(_Metric):
    """A distribution of recorded values (latencies, sizes)."""

    __slots__ = ()
    _type = MetricType.HISTOGRAM

    def record(self, value: int) -> None:
        """Record one observation (unsigned: a negative value is a ValueError)."""
        _check_unsigned(self, value)
        _hostcalls.record_metric(self._id(), value)

    def with_tags(self, **tags: str) -> Histogram:
        """The histogram with these extra tags (created once, then reused)."""
        return self._tagged(tags)  # type: ignore[return-value]


def _check_unsigned(metric: _Metric, value: int) -> None:
    # Envoy stores gauge and histogram values as uint64: -5 would show as 2**64 - 5.
    if value < 0:
        raise ValueError(f"{metric!r}: Envoy metrics are unsigned, got {value}")


_current_vm = [0]
"""Set by each dispatcher when it enters a callback (see `Dispatcher._enter`)."""


def _vm_key() -> int:
    return _current_vm[0]


# In a built module `Counter.inc` and `Counter.with_tags` run in C: one dict lookup
# and one hostcall, no Python frame.
_hostcalls.install_c_methods(Counter, "counter_methods", _current_vm)
