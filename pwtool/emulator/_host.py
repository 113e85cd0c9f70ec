"""The emulated Envoy: process-wide state, VMs, plugins, contexts and streams.

One :class:`Emulator` plays one Envoy process: a fake clock, the shared-data store and
shared queues (keyed by ``vm_id`` as in Envoy), the stats store, captured logs, and the
outgoing HTTP/gRPC calls the test answers. :meth:`Emulator.load` starts a plugin on
one or more VMs ("workers"); the VM backend is either a wasm module under wasmtime
(:mod:`._wasm`) or the plugin's Python source run natively (:mod:`._native`). Both
backends call the same per-VM :class:`~._hostcalls.Hostcalls` object.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Optional, Protocol, TypeVar, Union, cast

from ._codec import Headers, HeadersLike, describe, encode_pairs, to_bytes, to_pairs
from ._records import MAX_LOG_RECORD, CallRecord, HeaderMap, LocalResponse, LogRecord, Logs, Message, Metrics
from ._types import (
    Action,
    BufferType,
    EmulatorError,
    LogLevel,
    MapType,
    ModuleLoadError,
    PeerType,
    PluginStartError,
    Status,
    VMFailed,
    WasmTrap,
)

_Result = TypeVar("_Result")

__all__ = [
    "Emulator",
    "Plugin",
    "VM",
    "HttpStream",
    "TcpStream",
    "HttpCall",
    "GrpcCall",
    "GrpcStream",
    "Backend",
    "PropertyValue",
]

PropertyValue = Union[str, bytes, int, bool, Mapping[str, str]]
ForeignFunction = Callable[[bytes], bytes]

_DEFAULT_START_NS = 1_700_000_000_000_000_000


class Backend(Protocol):
    """What a VM implementation offers the host (wasm module or native Python)."""

    abi_version: str

    def call(self, name: str, *args: int) -> int:
        """Call the export ``proxy_<name>``; 0 when it is absent or returns nothing."""

    def has(self, name: str) -> bool:
        """Whether the module implements the callback ``proxy_<name>``."""

    @property
    def instructions(self) -> Optional[int]:
        """WebAssembly instructions executed so far, when the emulator counts them."""

    def close(self) -> None: ...


def encode_property(value: PropertyValue) -> bytes:
    """Serialize a property the way Envoy does (CEL values to bytes)."""
    if isinstance(value, bool):
        return b"\x01" if value else b"\x00"
    if isinstance(value, int):
        return struct.pack("<q", value) if value < 0 else struct.pack("<Q", value)
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return encode_pairs(to_pairs(value, "property value"))


def _grpc_status_of_http(status: int) -> int:
    """The gRPC status Envoy derives from an HTTP status (``response.grpc_status``)."""
    return {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}.get(status, 2)


def _eos(value: object) -> bool:
    """``end_of_stream`` must be a bool (0 and 1 are accepted too)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise EmulatorError(f"end_of_stream must be True or False, not {describe(value)}")


def _status_pairs(status: object, headers: HeadersLike) -> Headers:
    """``:status`` first, then ``headers`` without one; the status must be an int 100..999."""
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
        raise EmulatorError(f"the HTTP status must be an int from 100 to 999, not {describe(status)}")
    return [(b":status", str(status).encode())] + [p for p in to_pairs(headers) if p[0] != b":status"]


def _module_name(module: object) -> str:
    """How errors name a module: its path, or "module bytes"."""
    if isinstance(module, (bytes, bytearray, memoryview)):
        return "module bytes"
    if isinstance(module, (str, os.PathLike)):
        return str(os.fspath(module))
    return repr(module)


def _split_path(path: Union[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(path) if isinstance(path, tuple) else tuple(path.split("."))


# --------------------------------------------------------------------------- contexts


class _Context:
    """A context known to one VM (root, HTTP or TCP)."""

    kind = "root"
    stream: Union["HttpStream", "TcpStream"]  # set on HTTP and TCP contexts only

    def __init__(self, vm: "VM", context_id: int, root: Optional["RootContext"]) -> None:
        self.vm = vm
        self.id = context_id
        # Only RootContext passes no root: a root context is its own root.
        self.root: "RootContext" = root if root is not None else cast("RootContext", self)
        self.alive = True
        self.properties: dict[tuple[str, ...], bytes] = {}

    @property
    def root_context(self) -> "RootContext":
        return self.root


class RootContext(_Context):
    """The root context of one plugin in one VM."""

    def __init__(self, vm: "VM", context_id: int, plugin: "Plugin") -> None:
        super().__init__(vm, context_id, None)
        self.plugin = plugin
        self.tick_period_ms = 0
        self.next_tick_ns = 0
        self.configuring: Optional[bytes] = None  # plugin config visible during on_configure
        self.done_pending = False
        self.status: tuple[int, bytes] = (0, b"")
        self.http_call_response: Optional["HttpCall"] = None
        self.grpc_receive: Optional[bytes] = None
        self.grpc_initial_metadata: Optional[Headers] = None
        self.grpc_trailing_metadata: Optional[Headers] = None


# --------------------------------------------------------------------------- VMs


class VM:
    """Host-side state of one VM: its contexts and which one is current.

    ``call`` is the only way into the guest; it tracks the current context for the
    hostcalls (``contextOrEffectiveContext`` in proxy-wasm-cpp-host), turns traps into
    :class:`WasmTrap` and marks the VM failed, as Envoy does.
    """

    def __init__(self, emulator: "Emulator", vm_id: str, index: int, vm_config: bytes) -> None:
        from ._hostcalls import Hostcalls

        self.emulator = emulator
        self.vm_id = vm_id
        self.index = index
        self.vm_config = vm_config
        self.contexts: dict[int, _Context] = {}
        self.roots: list[RootContext] = []
        self._next_context_id = 1
        self.current: Optional[_Context] = None
        self.effective: Optional[_Context] = None
        self.failed: Optional[WasmTrap] = None
        self.hostcalls = Hostcalls(self)
        self.backend: Optional[Backend] = None
        self.abi_version = "0.2.1"
        self.call_data = b""
        self.depth = 0

    # -- context helpers
    def new_context_id(self) -> int:
        cid = self._next_context_id
        self._next_context_id += 1
        return cid

    def context(self) -> _Context:
        """The context hostcalls act on: the effective one if set and alive, else the current."""
        eff = self.effective
        if eff is not None and eff.alive:
            return eff
        cur = self.current
        if cur is None:
            if self.roots:
                return self.roots[0]
            raise EmulatorError("hostcall outside of any callback")
        return cur

    # -- calling into the guest
    def call(self, name: str, context: _Context, *args: int) -> int:
        if self.failed is not None:
            raise VMFailed(f"VM {self.index} of {self.vm_id!r} failed earlier: {self.failed}")
        assert self.backend is not None
        saved = (self.current, self.effective)
        self.current, self.effective = context, None
        self.depth += 1
        self.emulator._depth += 1
        log = self.emulator.calls if self.emulator.record_calls and self.backend.has(name) else None
        if log is not None:  # listed before the hostcalls it makes; its result comes after
            entry = len(log)
            log.append(CallRecord("callback", self.index, "proxy_" + name, (context.id, *args)))
        try:
            result = self.backend.call(name, context.id, *args)
            if log is not None:
                log[entry] = dataclasses.replace(log[entry], result=result)
            return result
        except WasmTrap as trap:
            self.failed = trap
            raise
        finally:
            self.depth -= 1
            self.emulator._depth -= 1
            self.current, self.effective = saved
            if self.emulator._depth == 0:
                self.emulator._drain()

    def has(self, name: str) -> bool:
        assert self.backend is not None
        return self.backend.has(name)

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()


# --------------------------------------------------------------------------- callouts


@dataclasses.dataclass(eq=False, kw_only=False)
class HttpCall:
    """An outgoing ``proxy_http_call`` waiting for the test to answer it."""

    emulator: "Emulator" = dataclasses.field(repr=False)
    root: RootContext = dataclasses.field(repr=False)
    token: int
    upstream: str
    headers: HeaderMap
    body: bytes
    trailers: HeaderMap
    timeout_ms: int
    deadline_ns: Optional[int]
    response_headers: Headers = dataclasses.field(default_factory=list)
    response_body: bytes = b""
    response_trailers: Headers = dataclasses.field(default_factory=list)
    done: bool = False

    @property
    def path(self) -> Optional[str]:
        return self.headers.get(":path")

    @property
    def method(self) -> Optional[str]:
        return self.headers.get(":method")

    @property
    def authority(self) -> Optional[str]:
        return self.headers.get(":authority")

    def respond(
        self,
        status: int = 200,
        headers: HeadersLike = None,
        body: Union[bytes, str] = b"",
        trailers: HeadersLike = None,
    ) -> None:
        """Deliver a response: ``on_http_call_response`` runs now."""
        body_b = to_bytes(body, "the response body")
        pairs = _status_pairs(status, headers)
        self.emulator._finish_http_call(self, pairs, body_b, to_pairs(trailers, "trailers"), (0, b""))

    def fail(self) -> None:
        """Reset the call: 0 headers, status "reset" (the upstream reset the stream).

        An endpoint that refuses the connection is not this: Envoy 1.40's router then
        answers the callout itself, 503 with a text body (tests/conformance checks it).
        """
        self.emulator._finish_http_call(self, [], b"", [], (int(Status.BROKEN_CONNECTION), b"reset"))

    def timeout(self) -> None:
        """Time the call out now: Envoy's async client answers 504 itself."""
        body = b"upstream request timeout"
        headers = [
            (b":status", b"504"),
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"text/plain"),
        ]
        self.emulator._finish_http_call(self, headers, body, [], (0, b""))


@dataclasses.dataclass(eq=False, kw_only=False)
class GrpcCall:
    """An outgoing unary ``proxy_grpc_call``."""

    emulator: "Emulator" = dataclasses.field(repr=False)
    root: RootContext = dataclasses.field(repr=False)
    token: int
    upstream: str
    service: str
    method: str
    metadata: HeaderMap
    message: bytes
    timeout_ms: int
    deadline_ns: Optional[int]
    done: bool = False

    def respond(self, message: bytes = b"", initial_metadata: HeadersLike = None, trailing_metadata: HeadersLike = None) -> None:
        """Succeed: ``on_grpc_receive`` with ``message`` (metadata callbacks first/last if given)."""
        message_b = to_bytes(message, "the gRPC message")
        self.emulator._finish_grpc(self, message_b, to_pairs(initial_metadata, "initial metadata"), to_pairs(trailing_metadata, "trailing metadata"), None)

    def fail(self, status: int = 14, message: str = "unavailable") -> None:
        """Fail with a gRPC status: ``on_grpc_close(token, status)``; ``get_status`` gives the message."""
        self.emulator._finish_grpc(self, None, [], [], (status, message.encode()))

    def timeout(self) -> None:
        """Run past the call's timeout: Envoy 1.40 closes it with UNAVAILABLE (14), not
        DEADLINE_EXCEEDED, and the message of its own 504 reply."""
        self.fail(14, "upstream request timeout{response_timeout}")


@dataclasses.dataclass(eq=False, kw_only=False)
class GrpcStream:
    """An outgoing ``proxy_grpc_stream``; the test plays the server side."""

    emulator: "Emulator" = dataclasses.field(repr=False)
    root: RootContext = dataclasses.field(repr=False)
    token: int
    upstream: str
    service: str
    method: str
    metadata: HeaderMap
    sent: list[bytes] = dataclasses.field(default_factory=list)
    local_closed: bool = False
    remote_closed: bool = False
    cancelled: bool = False
    half_closed: bool = False

    def send_initial_metadata(self, metadata: HeadersLike) -> None:
        self.emulator._grpc_stream_event(self, "initial", to_pairs(metadata, "initial metadata"))

    def send(self, message: bytes) -> None:
        self.emulator._grpc_stream_event(self, "message", to_bytes(message, "the gRPC message"))

    def send_trailing_metadata(self, metadata: HeadersLike) -> None:
        self.emulator._grpc_stream_event(self, "trailing", to_pairs(metadata, "trailing metadata"))

    def close(self, status: int = 0, message: str = "") -> None:
        self.emulator._grpc_stream_event(self, "close", (status, message.encode()))


# --------------------------------------------------------------------------- HTTP streams


class _Direction:
    """One direction of an HTTP stream as seen by the plugin's filter."""

    def __init__(self, name: str) -> None:
        self.name = name  # "request" | "response"
        self.headers: Optional[Headers] = None
        self.trailers: Optional[Headers] = None
        self.body = bytearray()  # the data the plugin sees / has buffered
        self.pending_body = bytearray()  # arrived while the headers were stopped
        self.pending_trailers: Optional[Headers] = None
        self.received_eos = False
        self.stopped: Optional[str] = None  # "headers" | "body" | "trailers"
        self.headers_visible = False
        self.trailers_visible = False
        self.body_visible = False
        self.started = False
        self.complete = False
        self.forwarded = Message()


class HttpStream:
    """One HTTP request/response through the plugin (an HTTP context).

    The test plays both peers: ``send_request_*`` is the downstream client and
    ``send_response_*`` the upstream server. What the plugin lets through is recorded
    in :attr:`upstream_request` and :attr:`downstream_response`.
    """

    def __init__(self, plugin: "Plugin", vm: VM, properties: Optional[Mapping[str, PropertyValue]] = None) -> None:
        self.plugin = plugin
        self.vm = vm
        self.emulator = plugin.emulator
        root = plugin.root_in(vm)
        self.context = _Context(vm, vm.new_context_id(), root)
        self.context.kind = "http"
        self.context.stream = self
        self.id = self.context.id
        self.request = _Direction("request")
        self.response = _Direction("response")
        self.local_response: Optional[LocalResponse] = None
        self.reset_by: Optional[str] = None
        self.route_cache_clears = 0
        self.done = False
        self.access_log_phase = False
        self.start_ns = plugin.emulator.now_ns  # request.time: when the stream began
        self.actions: list[tuple[str, Action]] = []
        self._local_pending: Optional[tuple[int, bytes, Headers, bytes, int, bool]] = None
        self._sent_request_headers: Headers = []
        self._extra_properties = {(_split_path(k)): encode_property(v) for k, v in (properties or {}).items()}
        vm.contexts[self.id] = self.context
        vm.call("on_context_create", self.context, root.id)

    # -- what the test sees
    @property
    def upstream_request(self) -> Message:
        """What the plugin let through to the upstream (headers, body, trailers)."""
        return self.request.forwarded

    @property
    def downstream_response(self) -> Message:
        """What the plugin let through to the client."""
        return self.response.forwarded

    @property
    def request_headers(self) -> HeaderMap:
        """The current request headers (as modified by the plugin so far)."""
        return HeaderMap(self.request.headers or [])

    @property
    def response_headers(self) -> HeaderMap:
        return HeaderMap(self.response.headers or [])

    @property
    def request_body(self) -> bytes:
        return bytes(self.request.forwarded.body) + bytes(self.request.body)

    @property
    def response_body(self) -> bytes:
        return bytes(self.response.forwarded.body) + bytes(self.response.body)

    @property
    def paused(self) -> bool:
        """True while the plugin holds the stream in either direction."""
        return not self.done and (self.request.stopped is not None or self.response.stopped is not None)

    @property
    def request_paused(self) -> bool:
        return not self.done and self.request.stopped is not None

    @property
    def response_paused(self) -> bool:
        return not self.done and self.response.stopped is not None

    @property
    def status(self) -> Optional[int]:
        """The HTTP status the client got (or will get), if any."""
        h = self.response.forwarded.headers
        if h is not None and h.get(":status"):
            return int(h[":status"])
        if self.local_response is not None:
            return self.local_response.status
        return None

    # -- driving the stream
    def send_request_headers(self, headers: HeadersLike, end_of_stream: bool = False) -> Action:
        """Client sends request headers; returns the plugin's action."""
        pairs, eos = to_pairs(headers, "request headers"), _eos(end_of_stream)
        return self.emulator._op(lambda: self._send_headers(self.request, pairs, eos))

    def send_request_body(self, body: Union[bytes, str], end_of_stream: bool = True) -> Optional[Action]:
        """Client sends a body chunk; ``None`` when the plugin was not called (headers held)."""
        data, eos = to_bytes(body, "the request body"), _eos(end_of_stream)
        return self.emulator._op(lambda: self._send_body(self.request, data, eos))

    def send_request_trailers(self, trailers: HeadersLike) -> Optional[Action]:
        pairs = to_pairs(trailers, "request trailers")
        return self.emulator._op(lambda: self._send_trailers(self.request, pairs))

    def send_response_headers(self, headers: HeadersLike, end_of_stream: bool = False) -> Action:
        """Upstream sends response headers (include ``:status``)."""
        pairs, eos = to_pairs(headers, "response headers"), _eos(end_of_stream)
        if not any(k == b":status" for k, _ in pairs):
            pairs.insert(0, (b":status", b"200"))
        return self.emulator._op(lambda: self._send_headers(self.response, pairs, eos))

    def send_response_body(self, body: Union[bytes, str], end_of_stream: bool = True) -> Optional[Action]:
        data, eos = to_bytes(body, "the response body"), _eos(end_of_stream)
        return self.emulator._op(lambda: self._send_body(self.response, data, eos))

    def send_response_trailers(self, trailers: HeadersLike) -> Optional[Action]:
        pairs = to_pairs(trailers, "response trailers")
        return self.emulator._op(lambda: self._send_trailers(self.response, pairs))

    def send_request(self, headers: HeadersLike, body: Union[bytes, str, None] = None, trailers: HeadersLike = None) -> Action:
        """Send a whole request (headers, then body and trailers if given); returns the header action."""
        end_after_headers = body is None and trailers is None
        action = self.send_request_headers(headers, end_of_stream=end_after_headers)
        if body is not None and not self.done:
            self.send_request_body(body, end_of_stream=trailers is None)
        if trailers is not None and not self.done:
            self.send_request_trailers(trailers)
        return action

    def send_response(self, status: int = 200, headers: HeadersLike = None, body: Union[bytes, str, None] = None, trailers: HeadersLike = None) -> Action:
        """Send a whole upstream response; returns the header action."""
        pairs = _status_pairs(status, headers)
        end_after_headers = body is None and trailers is None
        action = self.send_response_headers(pairs, end_of_stream=end_after_headers)
        if body is not None and not self.done:
            self.send_response_body(body, end_of_stream=trailers is None)
        if trailers is not None and not self.done:
            self.send_response_trailers(trailers)
        return action

    def complete(self) -> None:
        """End the stream now (client went away): ``on_log``, ``on_done``, ``on_delete``."""
        self.emulator._op(self._finish)

    close = complete

    # -- internals
    def _check_open(self, d: _Direction) -> None:
        if self.done:
            raise EmulatorError(f"HTTP stream {self.id} already ended")
        if d.received_eos and not (d is self.response and self.local_response is not None):
            raise EmulatorError(f"{d.name} already ended (end_of_stream was sent)")

    def _callback(self, name: str, *args: int) -> Action:
        raw = self.vm.call(name, self.context, *args)
        try:
            action = Action(raw)
        except ValueError:
            action = Action.PAUSE if raw else Action.CONTINUE
        if self._local_pending is not None and action == Action.CONTINUE:
            action = Action.PAUSE  # stopNextIteration after send_local_response
        self.actions.append((name, action))
        return action

    def _headers_cb(self, d: _Direction) -> str:
        return "on_request_headers" if d is self.request else "on_response_headers"

    def _send_headers(self, d: _Direction, pairs: Headers, eos: bool) -> Action:
        self._check_open(d)
        if d.started:
            raise EmulatorError(f"{d.name} headers already sent")
        if d is self.response and not self.request.started:
            raise EmulatorError(f"HTTP stream {self.id}: send the request headers before the response headers")
        d.started = True
        d.headers = [(k.lower(), v) for k, v in pairs]
        if d is self.request:
            self._sent_request_headers = list(d.headers)
        d.received_eos = eos
        return self._run_headers(d)

    def _run_headers(self, d: _Direction) -> Action:
        assert d.headers is not None
        d.headers_visible = True
        name = self._headers_cb(d)
        if self.vm.abi_version == "0.1.0":
            action = self._callback(name, len(d.headers))
        else:
            action = self._callback(name, len(d.headers), int(d.received_eos and not d.pending_body))
        if self.done:
            return action
        if action == Action.CONTINUE and d.stopped is None:
            self._forward_headers(d)
            if d.received_eos and not d.pending_body and d.pending_trailers is None:
                self._complete_direction(d)
        elif action != Action.CONTINUE:
            d.stopped = "headers"
        return action

    def _forward_headers(self, d: _Direction) -> None:
        d.headers_visible = False
        if d is self.request:
            refusal = self._router_refusal(self._sent_request_headers, d.headers or [])
            if refusal is not None:
                # Envoy's router answers instead of forwarding (checked against Envoy 1.40
                # by tests/conformance); the reply passes back through the plugin.
                self.emulator.defer(lambda: self._local_reply(*refusal, -1, from_host=True))
                return
        d.forwarded.headers = HeaderMap(list(d.headers or []))

    @staticmethod
    def _router_refusal(sent: Headers, headers: Headers) -> Optional[tuple[int, bytes, Headers, bytes]]:
        """What Envoy's router answers for request headers the plugin made unsendable.

        Only the plugin's changes are judged (what the test sent is taken as given): a
        removed ``:method``/``:path``/``:authority`` gives 404, a value with CR, LF or NUL 503.
        """
        names = {k for k, _ in headers}
        if {k for k, _ in sent} & {b":method", b":path", b":authority"} - names:
            return 404, b"", [], b"route_not_found"
        original = set(sent)
        for key, value in headers:
            if (key, value) not in original and any(c in value for c in b"\r\n\0"):
                return 503, b"invalid header value for: " + key, [], b"invalid_request_headers"
        return None

    def _send_body(self, d: _Direction, data: bytes, eos: bool) -> Optional[Action]:
        self._check_open(d)
        if not d.started:
            raise EmulatorError(f"send the {d.name} headers before the body")
        if d.stopped == "trailers" or d.trailers is not None:
            raise EmulatorError(f"{d.name} trailers already sent")
        d.received_eos = eos
        if d.stopped == "headers":
            d.pending_body += data
            return None
        buffering = d.stopped == "body"
        d.body += data
        if buffering and len(d.body) > self.emulator.buffer_limit:
            self._buffer_overflow(d)
            return None
        return self._run_body(d, eos)

    def _run_body(self, d: _Direction, eos: bool) -> Action:
        d.body_visible = True
        name = "on_request_body" if d is self.request else "on_response_body"
        action = self._callback(name, len(d.body), int(eos))
        if self.done:
            return action
        d.body_visible = False
        if action == Action.CONTINUE:
            if d.stopped in ("headers", None) and d.forwarded.headers is None:
                self._forward_headers(d)
            d.stopped = None
            self._forward_body(d)
            if eos:
                self._complete_direction(d)
        else:
            d.stopped = "body"
            d.body_visible = True
        return action

    def _forward_body(self, d: _Direction) -> None:
        d.forwarded.body += bytes(d.body)
        d.body.clear()

    def _send_trailers(self, d: _Direction, pairs: Headers) -> Optional[Action]:
        self._check_open(d)
        if not d.started:
            raise EmulatorError(f"send the {d.name} headers before the trailers")
        d.received_eos = True
        pairs = [(k.lower(), v) for k, v in pairs]
        if d.stopped == "headers":
            d.pending_trailers = pairs
            return None
        return self._run_trailers(d, pairs)

    def _run_trailers(self, d: _Direction, pairs: Headers) -> Action:
        d.trailers = pairs
        d.trailers_visible = True
        name = "on_request_trailers" if d is self.request else "on_response_trailers"
        action = self._callback(name, len(pairs))
        if self.done:
            return action
        d.trailers_visible = False
        if action == Action.CONTINUE:
            if d.forwarded.headers is None:
                self._forward_headers(d)
            d.stopped = None
            self._forward_body(d)
            d.forwarded.trailers = HeaderMap(list(d.trailers))
            self._complete_direction(d)
        else:
            d.stopped = "trailers"
            d.trailers_visible = True
        return action

    def _resume(self, d: _Direction) -> None:
        """Continue a held direction (``proxy_continue_stream``), as Envoy's continueDecoding."""
        if self.done or d.complete:
            return
        stopped, d.stopped = d.stopped, None
        if stopped == "headers":
            self._forward_headers(d)
            if d.pending_body or (d.received_eos and d.pending_trailers is None):
                d.body += d.pending_body
                d.pending_body.clear()
                eos = d.received_eos and d.pending_trailers is None
                if d.body or not eos:
                    self._run_body(d, eos)
                    if self.done or d.stopped is not None:
                        return
                elif eos:
                    self._complete_direction(d)
                    return
            if d.pending_trailers is not None:
                trailers, d.pending_trailers = d.pending_trailers, None
                self._run_trailers(d, trailers)
        elif stopped == "body":
            d.body_visible = False
            self._forward_body(d)
            if d.received_eos:
                self._complete_direction(d)
        elif stopped == "trailers":
            d.trailers_visible = False
            self._forward_body(d)
            d.forwarded.trailers = HeaderMap(list(d.trailers or []))
            self._complete_direction(d)

    def _complete_direction(self, d: _Direction) -> None:
        if d.complete:
            return
        d.complete = True
        d.forwarded.end_of_stream = True
        if d is self.response:
            self._finish()

    def _buffer_overflow(self, d: _Direction) -> None:
        """Envoy answers 413 (request) or 500 (response) past the buffer limit."""
        if d is self.request:
            self._local_reply(413, b"Payload Too Large", [], b"request_payload_too_large", -1, from_host=True)
        else:
            self._local_reply(500, b"Internal Server Error", [], b"response_payload_too_large", -1, from_host=True)

    def _local_reply(self, status: int, body: bytes, headers: Headers, details: bytes, grpc_status: int, from_host: bool = False) -> None:
        """Send a local reply through this filter's response path, as Envoy's sendLocalReply."""
        if self.done:
            return
        if self.response.forwarded.headers is not None:
            # The response already started: Envoy can only reset the stream.
            self.reset_by = "local_reply_after_response_started"
            self._finish()
            return
        self.local_response = LocalResponse(
            status=status,
            body=body,
            headers=HeaderMap(headers),
            details=details.decode("utf-8", "replace"),
            grpc_status=grpc_status,
            from_host=from_host,
        )
        # The request side stops here; nothing more reaches the upstream.
        self.request.stopped = None
        self.request.complete = True
        self.request.headers_visible = self.request.body_visible = self.request.trailers_visible = False
        resp = self.response
        if resp.started:
            # The upstream response is already in the filter chain but not sent downstream:
            # Envoy's sendDirectLocalReply bypasses the filters (no on_response_* callbacks).
            resp.headers_visible = resp.body_visible = resp.trailers_visible = False
            resp.stopped = None
            resp.body.clear()
            resp.pending_body.clear()
            direct: Headers = [(b":status", str(status).encode()), (b"content-length", str(len(body)).encode())]
            if body:
                direct.append((b"content-type", b"text/plain"))
            direct += [(k.lower(), v) for k, v in headers]
            resp.headers = direct
            resp.forwarded.headers = HeaderMap(direct)
            resp.forwarded.body = bytes(body)
            self._complete_direction(resp)
            return
        resp.headers = None
        resp.body.clear()
        resp.pending_body.clear()
        resp.stopped = None
        resp.started = True
        pairs: Headers = [(b":status", str(status).encode())]
        pairs.append((b"content-length", str(len(body)).encode()))
        if body:
            pairs.append((b"content-type", b"text/plain"))
        pairs += [(k.lower(), v) for k, v in headers]
        resp.headers = pairs
        resp.received_eos = not body
        if body:
            resp.pending_body += body
        action = self._run_headers(resp)
        if self.done or action != Action.CONTINUE:
            return
        if body:
            resp.body += resp.pending_body
            resp.pending_body.clear()
            resp.received_eos = True
            self._run_body(resp, True)

    def _finish(self) -> None:
        if self.done:
            return
        self.done = True
        ctx = self.context
        self.request.headers_visible = self.response.headers_visible = False
        self.request.body_visible = self.response.body_visible = False
        self.access_log_phase = True
        try:
            self.vm.call("on_log", ctx)
        finally:
            self.access_log_phase = False
        self.vm.call("on_done", ctx)
        self.vm.call("on_delete", ctx)
        ctx.alive = False
        self.vm.contexts.pop(self.id, None)

    # -- hostcall-facing accessors
    def header_map(self, map_type: int, mutable: bool) -> Optional[Headers]:
        """The live header list for ``map_type`` or ``None`` when Envoy would not expose it."""
        if self.access_log_phase:
            if mutable:
                return None
            if map_type == MapType.HTTP_REQUEST_HEADERS:
                return self.request.headers
            if map_type == MapType.HTTP_RESPONSE_HEADERS:
                return self.response.headers
            if map_type == MapType.HTTP_RESPONSE_TRAILERS:
                return self.response.trailers
            return None
        d = self.request if map_type in (MapType.HTTP_REQUEST_HEADERS, MapType.HTTP_REQUEST_TRAILERS) else self.response
        if map_type in (MapType.HTTP_REQUEST_HEADERS, MapType.HTTP_RESPONSE_HEADERS):
            return d.headers if d.headers_visible else None
        if map_type in (MapType.HTTP_REQUEST_TRAILERS, MapType.HTTP_RESPONSE_TRAILERS):
            if d.trailers_visible:
                return d.trailers
            if mutable and d.body_visible and d.received_eos and d.trailers is None:
                # Envoy lets a plugin add trailers from the last body callback.
                d.trailers = []
                d.trailers_visible = True
                return d.trailers
            return None
        return None

    def body_buffer(self, buffer_type: int) -> Optional[bytearray]:
        d = self.request if buffer_type == BufferType.HTTP_REQUEST_BODY else self.response
        return d.body if d.body_visible else None


# --------------------------------------------------------------------------- TCP streams


class TcpStream:
    """One TCP connection through a network-filter plugin."""

    def __init__(self, plugin: "Plugin", vm: VM) -> None:
        self.plugin = plugin
        self.vm = vm
        self.emulator = plugin.emulator
        root = plugin.root_in(vm)
        self.context = _Context(vm, vm.new_context_id(), root)
        self.context.kind = "tcp"
        self.context.stream = self
        self.id = self.context.id
        self.downstream_buffer = bytearray()
        self.upstream_buffer = bytearray()
        self.downstream_visible = False
        self.upstream_visible = False
        self.sent_upstream = bytearray()  # data from the client that reached the upstream
        self.sent_downstream = bytearray()  # data from the upstream that reached the client
        self.downstream_closed = False
        self.upstream_closed = False
        self.closed_by_plugin: Optional[str] = None
        self.done = False
        self.connection_held = False  # on_new_connection answered PAUSE and nothing resumed it yet
        self._downstream_ended = False
        vm.contexts[self.id] = self.context
        self.new_connection_action = self.emulator._op(self._open, root.id)

    def _open(self, root_id: int) -> Action:
        self.vm.call("on_context_create", self.context, root_id)
        action = Action(self.vm.call("on_new_connection", self.context) or 0)
        self.connection_held = action != Action.CONTINUE and not self.done
        return action

    def send_downstream_data(self, data: Union[bytes, str], end_of_stream: bool = False) -> Optional[Action]:
        """Client sends bytes; returns the action. Held data stays in the buffer, as in Envoy.

        None when the plugin was not called: while its ``on_new_connection`` holds the
        connection, Envoy reads nothing from the client; the plugin gets the data when it
        resumes the connection."""
        b, eos = to_bytes(data, "downstream data"), _eos(end_of_stream)
        return self.emulator._op(self._downstream_data, b, eos)

    def send_upstream_data(self, data: Union[bytes, str], end_of_stream: bool = False) -> Action:
        """The upstream sends bytes; returns the action. Held data stays in the buffer.

        An error while ``on_new_connection`` holds the connection: Envoy dials the
        upstream only once the plugin resumes it, so nothing can come from there yet."""
        b, eos = to_bytes(data, "upstream data"), _eos(end_of_stream)
        return self.emulator._op(self._upstream_data, b, eos)

    def _downstream_data(self, data: bytes, eos: bool) -> Optional[Action]:
        self._check_open()
        self.downstream_buffer += data
        self._downstream_ended = self._downstream_ended or eos
        if self.connection_held:
            return None
        return self._deliver(True, eos)

    def _upstream_data(self, data: bytes, eos: bool) -> Action:
        self._check_open()
        if self.connection_held:
            raise EmulatorError(
                f"TCP stream {self.id}: upstream data while on_new_connection holds the connection; "
                "Envoy connects the upstream only after the plugin resumes it (continue_stream)"
            )
        self.upstream_buffer += data
        return self._deliver(False, eos)

    def _check_open(self) -> None:
        if self.done:
            raise EmulatorError(f"TCP stream {self.id} already closed")

    def _deliver(self, downstream: bool, eos: bool) -> Action:
        """Hand the buffered data of one direction to the plugin; pass it on on CONTINUE."""
        buf = self.downstream_buffer if downstream else self.upstream_buffer
        if downstream:
            self.downstream_visible = True
        else:
            self.upstream_visible = True
        name = "on_downstream_data" if downstream else "on_upstream_data"
        action = Action(self.vm.call(name, self.context, len(buf), int(eos)) or 0)
        if action == Action.CONTINUE:
            self._flush(downstream)
        if not downstream and eos and not self.done:
            self._close(False, PeerType.UNKNOWN)
        return action

    def _resume_downstream(self) -> None:
        """``proxy_continue_stream(DOWNSTREAM)``: a connection held by ``on_new_connection``
        starts reading, so the plugin gets what the client sent meanwhile; data a data
        callback held goes on to the next filter without calling the plugin again."""
        if self.done:
            return
        if self.connection_held:
            self.connection_held = False
            if self.downstream_buffer or self._downstream_ended:
                self._deliver(True, self._downstream_ended)
            return
        self._flush(True)

    def _flush(self, downstream: bool) -> None:
        if downstream:
            self.sent_upstream += self.downstream_buffer
            self.downstream_buffer.clear()
            self.downstream_visible = False
        else:
            self.sent_downstream += self.upstream_buffer
            self.upstream_buffer.clear()
            self.upstream_visible = False

    def close_downstream(self, peer: PeerType = PeerType.REMOTE) -> None:
        """The client closes: ``on_downstream_connection_close`` then done/log/delete."""
        self.emulator._op(self._close, True, peer)

    def close_upstream(self, peer: PeerType = PeerType.REMOTE) -> None:
        self.emulator._op(self._close, False, peer)

    def _close(self, downstream: bool, peer: int) -> None:
        if self.done:
            return
        if downstream:
            if self.downstream_closed:
                return
            self.downstream_closed = True
            self.vm.call("on_downstream_connection_close", self.context, int(peer))
        else:
            if self.upstream_closed:
                return
            self.upstream_closed = True
            self.vm.call("on_upstream_connection_close", self.context, int(peer))
        if self.downstream_closed and not self.done:
            self.done = True
            self.vm.call("on_done", self.context)
            self.vm.call("on_log", self.context)
            self.vm.call("on_delete", self.context)
            self.context.alive = False
            self.vm.contexts.pop(self.id, None)


# --------------------------------------------------------------------------- plugins


class Plugin:
    """A plugin (root_id + configuration) running on one or more VMs of one module.

    Most test helpers are here (``http_stream``, ``tick``, ``logs``, ``metrics``,
    ``pending_http_calls``), forwarding to the :class:`Emulator` where state is shared.
    """

    def __init__(self, emulator: "Emulator", name: str, root_id: str, config: bytes, vms: list[VM]) -> None:
        self.emulator = emulator
        self.name = name
        self.root_id = root_id
        self.config = config
        self.vms = vms
        self.roots: dict[int, RootContext] = {}
        self.failure: Optional[str] = None
        self.shut_down = False

    @property
    def vm_id(self) -> str:
        return self.vms[0].vm_id

    @property
    def mode(self) -> str:
        b = self.vms[0].backend
        return getattr(b, "mode", "wasm")

    @property
    def instructions(self) -> Optional[int]:
        """WebAssembly instructions this plugin's VMs have executed so far: a repeatable
        measure of cost (``Emulator(count_instructions=True)``, wasm mode); else None."""
        counts = [vm.backend.instructions if vm.backend is not None else None for vm in self.vms]
        return None if None in counts else sum(c for c in counts if c is not None)

    def root_in(self, vm: VM) -> RootContext:
        return self.roots[vm.index]

    def _start_on(self, vm: VM) -> None:
        root = RootContext(vm, vm.new_context_id(), self)
        vm.contexts[root.id] = root
        vm.roots.append(root)
        self.roots[vm.index] = root
        vm.call("on_context_create", root, 0)
        # proxy-wasm-cpp-host calls on_vm_start once per root context, then on_configure.
        ok = vm.call("on_vm_start", root, len(vm.vm_config)) if vm.has("on_vm_start") else 1
        if not ok:
            self.failure = "on_vm_start"
            raise PluginStartError(f"on_vm_start returned false (vm {vm.index}, root_id {self.root_id!r})")
        self._configure(vm, root, self.config)

    def _configure(self, vm: VM, root: RootContext, config: bytes) -> None:
        root.configuring = config
        try:
            ok = vm.call("on_configure", root, len(config)) if vm.has("on_configure") else 1
        finally:
            root.configuring = None
        if not ok:
            self.failure = "on_configure"
            raise PluginStartError(f"on_configure returned false (vm {vm.index}, root_id {self.root_id!r}, config {config[:80]!r})")

    def configure(self, config: Union[bytes, str]) -> None:
        """Push a new configuration to every VM (what an ECDS update does)."""
        self.emulator._check_open()
        self.config = to_bytes(config, "config", "Envoy passes the configuration as bytes: serialize it first, e.g. json.dumps(...)")
        for vm in self.vms:
            self.emulator._op(self._configure, vm, self.roots[vm.index], self.config)

    def http_stream(self, worker: int = 0, properties: Optional[Mapping[str, PropertyValue]] = None) -> HttpStream:
        """Open an HTTP stream on VM ``worker`` (``on_context_create`` runs now)."""
        vm = self._stream_vm(worker)
        return self.emulator._op(lambda: HttpStream(self, vm, properties))

    def tcp_stream(self, worker: int = 0) -> TcpStream:
        return TcpStream(self, self._stream_vm(worker))

    def _worker(self, worker: int) -> VM:
        self.emulator._check_open()
        if isinstance(worker, bool) or not isinstance(worker, int) or not 0 <= worker < len(self.vms):
            raise EmulatorError(
                f"plugin {self.name!r}: no worker {worker!r}; it runs on {len(self.vms)} worker(s), 0 to {len(self.vms) - 1} (load(..., workers=N))"
            )
        return self.vms[worker]

    def _stream_vm(self, worker: int) -> VM:
        vm = self._worker(worker)
        if self.shut_down:
            raise EmulatorError(f"plugin {self.name!r} was shut down (Plugin.shutdown()); Envoy routes no new streams to a drained plugin")
        return vm

    def shutdown(self) -> None:
        """Envoy drains the plugin: ``on_done`` on each root; ``on_delete`` once it is done."""
        self.shut_down = True
        for vm in self.vms:
            root = self.roots.get(vm.index)
            if root is None or not root.alive or vm.failed is not None:
                continue
            done = self.emulator._op(lambda: vm.call("on_done", root))
            if done or not vm.has("on_done"):
                self.emulator._op(lambda: self._delete_root(root))
            else:
                root.done_pending = True

    def _delete_root(self, root: RootContext) -> None:
        if not root.alive:
            return
        root.done_pending = False
        root.vm.call("on_delete", root)
        root.alive = False
        root.vm.contexts.pop(root.id, None)

    @property
    def done(self) -> bool:
        return all(not r.alive for r in self.roots.values())

    # -- conveniences forwarded to the emulator
    @property
    def logs(self) -> Logs:
        return self.emulator.logs

    @property
    def metrics(self) -> Metrics:
        return self.emulator.metrics

    @property
    def pending_http_calls(self) -> list[HttpCall]:
        return [c for c in self.emulator.pending_http_calls if c.root.plugin is self]

    @property
    def pending_grpc_calls(self) -> list[GrpcCall]:
        return [c for c in self.emulator.pending_grpc_calls if c.root.plugin is self]

    @property
    def grpc_streams(self) -> list[GrpcStream]:
        return [c for c in self.emulator.grpc_streams if c.root.plugin is self]

    def tick(self, ms: Optional[int] = None) -> None:
        self.emulator.tick(ms)

    def advance(self, ms: int) -> None:
        self.emulator.advance(ms)

    def shared_data(self) -> dict[bytes, tuple[bytes, int]]:
        return self.emulator.shared_data(self.vm_id)

    def call_foreign(self, function_id: int, data: bytes, worker: int = 0) -> None:
        """Call the plugin's ``proxy_on_foreign_function`` with call data ``data``."""
        vm = self._worker(worker)
        root = self.roots[vm.index]
        data = to_bytes(data, "call data")

        def run() -> None:
            vm.call_data = data
            vm.call("on_foreign_function", root, function_id, len(data))

        self.emulator._op(run)


# --------------------------------------------------------------------------- the emulator


class _SharedQueue:
    def __init__(self, vm_id: str, name: str, token: int) -> None:
        self.vm_id = vm_id
        self.name = name
        self.token = token
        self.items: collections.deque[bytes] = collections.deque()
        self.owner: Optional[_Context] = None


class Emulator:
    """An emulated Envoy process holding every piece of host state tests assert on.

    Options (all keyword): ``log_level`` (what ``proxy_get_log_level`` returns and the
    minimum captured), ``buffer_limit`` (bytes Envoy buffers for a paused body before
    413/500), ``clusters`` (known upstream cluster names; ``None`` accepts any),
    ``properties`` (extra or overriding host properties, dotted paths), ``start_time_ns``,
    ``timeout`` (seconds a wasm callback may run), ``memory_limit`` (bytes of guest memory),
    ``env`` (environment variables visible to the module through WASI), ``build_cache``
    (where plugin directories built for wasm mode are cached), ``count_instructions``
    (count the WebAssembly instructions each wasm-mode plugin executes:
    :attr:`Plugin.instructions`; a little slower), ``record_calls`` (keep every callback
    and hostcall, with decoded arguments and results, in :attr:`calls` as
    :class:`CallRecord` entries: what a test asserts to prove which bytes a module sent).
    """

    def __init__(
        self,
        *,
        log_level: LogLevel = LogLevel.TRACE,
        buffer_limit: int = 1024 * 1024,
        clusters: Optional[Iterable[str]] = None,
        properties: Optional[Mapping[Union[str, tuple[str, ...]], PropertyValue]] = None,
        start_time_ns: int = _DEFAULT_START_NS,
        timeout: float = 10.0,
        memory_limit: int = 1024 * 1024 * 1024,
        env: Optional[Mapping[str, str]] = None,
        build_cache: Union[str, "os.PathLike[str]", None] = None,
        count_instructions: bool = False,
        record_calls: bool = False,
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise EmulatorError(f"timeout must be a number of seconds greater than 0, not {timeout!r}")
        self.count_instructions = count_instructions
        self.record_calls = record_calls
        self.calls: list[CallRecord] = []
        try:
            self.log_level = LogLevel(log_level)
        except ValueError:
            names = ", ".join(f"LogLevel.{level.name}" for level in LogLevel)
            raise EmulatorError(f"log_level must be one of {names} (or 0-5), not {log_level!r}") from None
        self.buffer_limit = buffer_limit
        self.clusters = None if clusters is None else set(clusters)
        self.now_ns = start_time_ns
        self.monotonic_ns = 1_000_000_000
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.env = dict(env or {})
        self.build_cache = build_cache
        self.logs = Logs()
        self.metrics = Metrics()
        self.properties: dict[tuple[str, ...], bytes] = {}
        for k, v in (properties or {}).items():
            self.properties[_split_path(k)] = encode_property(v)
        self.plugins: list[Plugin] = []
        self.vms: list[VM] = []
        self.pending_http_calls: list[HttpCall] = []
        self.pending_grpc_calls: list[GrpcCall] = []
        self.grpc_streams: list[GrpcStream] = []
        self.http_calls: list[HttpCall] = []  # every call ever made, answered or not
        self.foreign_functions: dict[bytes, ForeignFunction] = {}
        self._shared: dict[str, dict[bytes, tuple[bytes, int]]] = {}
        self._cas = 0
        self._queues: dict[int, _SharedQueue] = {}
        self._queue_tokens: dict[tuple[str, str], int] = {}
        self._next_http_token = 1
        self._next_grpc_token = 1
        self._deferred: collections.deque[Callable[[], None]] = collections.deque()
        self._depth = 0
        self._draining = False
        self._load_id = 0
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise EmulatorError("the emulator is closed (Emulator.close() released its VMs); start a new Emulator to run plugins again")

    # -- loading
    def load(
        self,
        module: Union[str, "os.PathLike[str]", bytes],
        *,
        config: Union[bytes, str] = b"",
        vm_config: Union[bytes, str] = b"",
        root_id: str = "",
        vm_id: str = "",
        name: str = "",
        workers: int = 1,
        mode: str = "wasm",
        share_vms_with: Optional[Plugin] = None,
    ) -> Plugin:
        """Start a plugin: create ``workers`` VMs and run create/vm_start/configure in each.

        ``module`` is a ``.wasm`` path, wasm bytes, or (native mode, or wasm mode with the
        build available) a plugin directory or ``plugin.py`` file. ``share_vms_with``
        starts a second root context in the VMs of an existing plugin. ``config`` and
        ``vm_config`` are str or bytes, as Envoy passes them (``json.dumps`` a dict first);
        ``workers`` is at least 1.

        A module that cannot load raises :class:`ModuleLoadError` (a bad plugin directory
        too), a failed ``on_vm_start``/``on_configure`` :class:`PluginStartError`, a trap
        while starting :class:`WasmTrap`; their messages start with the module's path (or
        "module bytes").
        """
        self._check_open()
        where = _module_name(module)
        try:
            return self._load(module, where, config, vm_config, root_id, vm_id, name, workers, mode, share_vms_with)
        except (ModuleLoadError, PluginStartError, WasmTrap) as exc:
            exc.locate(where)
            raise

    def _load(
        self,
        module: Union[str, "os.PathLike[str]", bytes],
        where: str,
        config: Union[bytes, str],
        vm_config: Union[bytes, str],
        root_id: str,
        vm_id: str,
        name: str,
        workers: int,
        mode: str,
        share_vms_with: Optional[Plugin],
    ) -> Plugin:
        json_hint = "Envoy passes the configuration as bytes: serialize it first, e.g. json.dumps(...)"
        cfg = to_bytes(config, "config", json_hint)
        vcfg = to_bytes(vm_config, "vm_config", json_hint)
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise EmulatorError(f"workers must be an int of at least 1 (the number of VMs to start), not {workers!r}")
        if share_vms_with is not None:
            vms = share_vms_with.vms
        else:
            from ._loader import make_backend

            self._load_id += 1
            vms = []
            for _ in range(workers):
                vm = VM(self, vm_id, len(self.vms), vcfg)
                self.vms.append(vm)
                vm.backend = make_backend(vm, module, mode)
                vm.abi_version = vm.backend.abi_version
                vms.append(vm)
        plugin = Plugin(self, name or root_id or "plugin", root_id, cfg, vms)
        self.plugins.append(plugin)
        for vm in vms:
            self._op(plugin._start_on, vm)
        return plugin

    def close(self) -> None:
        """Shut every plugin down and release the VMs; the emulator cannot be used after."""
        if self._closed:
            return
        for plugin in self.plugins:
            try:
                plugin.shutdown()
            except EmulatorError:
                pass
        self._closed = True
        for vm in self.vms:
            vm.close()
        self.vms.clear()

    def __enter__(self) -> "Emulator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running host operations (after-call actions run once the outermost call returns)
    def _op(self, fn: Callable[..., _Result], *args: Any) -> _Result:
        self._check_open()
        self._depth += 1
        try:
            return fn(*args)
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._drain()

    def defer(self, action: Callable[[], None]) -> None:
        """Run ``action`` once the current VM call returns (Envoy's after-VM-call actions)."""
        if self._depth == 0:
            self._op(action)
        else:
            self._deferred.append(action)

    def _drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        try:
            while self._deferred:
                action = self._deferred.popleft()
                self._depth += 1
                try:
                    action()
                finally:
                    self._depth -= 1
        finally:
            self._draining = False

    # -- logs
    def _log(self, vm: VM, level: int, message: bytes, dropped: int = 0) -> None:
        """Capture one log record: at most MAX_LOG_RECORD bytes of it, the rest noted as dropped."""
        if level < self.log_level:
            return
        if len(message) > MAX_LOG_RECORD:
            dropped += len(message) - MAX_LOG_RECORD
            message = message[:MAX_LOG_RECORD]
        if dropped:
            message += f"[... {dropped} bytes dropped]".encode()
        ctx = vm.context() if (vm.current or vm.roots) else None
        root_id = ctx.root_context.plugin.root_id if ctx is not None else ""
        self.logs.records.append(
            LogRecord(LogLevel(level), message.decode("utf-8", "replace"), root_id, ctx.id if ctx else 0, vm.index)
        )

    # -- time
    def advance(self, ms: int) -> None:
        """Move the fake clock forward ``ms`` milliseconds, firing due ticks and timeouts in order."""
        self._check_open()
        if isinstance(ms, bool) or not isinstance(ms, (int, float)) or ms < 0:
            raise EmulatorError(f"the clock only moves forward: advance() takes milliseconds >= 0, not {ms!r}")
        target = self.now_ns + ms * 1_000_000
        while True:
            due = self._next_due()
            if due is None or due > target:
                break
            step = due - self.now_ns
            if step > 0:
                self.now_ns += step
                self.monotonic_ns += step
            self._fire_due(due)
        step = target - self.now_ns
        self.now_ns += step
        self.monotonic_ns += step

    def tick(self, ms: Optional[int] = None) -> None:
        """Advance to the next tick (or by ``ms``), firing ``on_tick`` for every due root context."""
        if ms is None:
            ticks = [r.next_tick_ns for r in self._roots() if r.tick_period_ms > 0]
            if not ticks:
                raise EmulatorError("no root context has a tick period set")
            ms = max(0, (min(ticks) - self.now_ns + 999_999) // 1_000_000)
        self.advance(ms)

    def _roots(self) -> list[RootContext]:
        return [r for vm in self.vms if vm.failed is None for r in vm.roots if r.alive]

    def _next_due(self) -> Optional[int]:
        times = [r.next_tick_ns for r in self._roots() if r.tick_period_ms > 0]
        times += [c.deadline_ns for c in self.pending_http_calls if c.deadline_ns is not None]
        times += [c.deadline_ns for c in self.pending_grpc_calls if c.deadline_ns is not None]
        return min(times) if times else None

    def _fire_due(self, now: int) -> None:
        for call in list(self.pending_http_calls):
            if call.deadline_ns is not None and call.deadline_ns <= now:
                call.timeout()
        for gcall in list(self.pending_grpc_calls):
            if gcall.deadline_ns is not None and gcall.deadline_ns <= now:
                gcall.timeout()
        for root in self._roots():
            if root.tick_period_ms > 0 and root.next_tick_ns <= now:
                root.next_tick_ns = now + root.tick_period_ms * 1_000_000
                self._op(root.vm.call, "on_tick", root)

    def set_tick_period(self, root: RootContext, period_ms: int) -> None:
        root.tick_period_ms = period_ms
        root.next_tick_ns = self.now_ns + period_ms * 1_000_000

    # -- shared data (per vm_id, CAS as in proxy-wasm-cpp-host)
    def shared_data(self, vm_id: str = "") -> dict[bytes, tuple[bytes, int]]:
        """A copy of the shared data of ``vm_id``: key -> (value, cas)."""
        return dict(self._shared.get(vm_id, {}))

    def get_shared_data(self, vm_id: str, key: bytes) -> Optional[tuple[bytes, int]]:
        return self._shared.get(vm_id, {}).get(key)

    def set_shared_data(self, vm_id: str, key: Union[bytes, str], value: Union[bytes, str], cas: int = 0) -> Status:
        k = to_bytes(key, "the shared data key")
        v = to_bytes(value, "the shared data value")
        store = self._shared.setdefault(vm_id, {})
        cur = store.get(k)
        if cur is not None and cas != 0 and cas != cur[1]:
            return Status.CAS_MISMATCH
        self._cas = (self._cas + 1) & 0xFFFFFFFF or 1
        store[k] = (v, self._cas)
        return Status.OK

    # -- shared queues
    def register_queue(self, vm_id: str, name: str, owner: _Context) -> int:
        key = (vm_id, name)
        token = self._queue_tokens.get(key)
        if token is None:
            token = len(self._queues) + 1
            self._queue_tokens[key] = token
            self._queues[token] = _SharedQueue(vm_id, name, token)
        self._queues[token].owner = owner
        return token

    def resolve_queue(self, vm_id: str, name: str) -> Optional[int]:
        return self._queue_tokens.get((vm_id, name))

    def enqueue(self, token: int, data: bytes) -> Status:
        """Push onto a queue; the owner's ``on_queue_ready`` runs after the current call."""
        q = self._queues.get(token)
        if q is None:
            return Status.NOT_FOUND
        q.items.append(bytes(data))
        owner = q.owner

        def notify() -> None:
            if owner is not None and owner.alive and owner.vm.failed is None:
                owner.vm.call("on_queue_ready", owner, token)

        self.defer(notify)
        return Status.OK

    def enqueue_by_name(self, vm_id: str, name: str, data: Union[bytes, str]) -> None:
        """Test helper: enqueue onto a queue a plugin registered."""
        token = self.resolve_queue(vm_id, name)
        if token is None:
            raise EmulatorError(f"no shared queue {name!r} for vm_id {vm_id!r}")
        self.enqueue(token, to_bytes(data, "the queue item"))

    def dequeue(self, token: int) -> tuple[Status, bytes]:
        q = self._queues.get(token)
        if q is None:
            return Status.NOT_FOUND, b""
        if not q.items:
            return Status.EMPTY, b""
        return Status.OK, q.items.popleft()

    def queue_items(self, vm_id: str, name: str) -> list[bytes]:
        token = self.resolve_queue(vm_id, name)
        return list(self._queues[token].items) if token else []

    # -- foreign functions
    def register_foreign_function(self, name: str, fn: ForeignFunction) -> None:
        """Make ``proxy_call_foreign_function(name, args)`` return ``fn(args)``."""
        self.foreign_functions[name.encode()] = fn

    # -- callouts
    def cluster_known(self, name: str) -> bool:
        return self.clusters is None or name in self.clusters

    def new_http_call(self, root: RootContext, upstream: str, headers: Headers, body: bytes, trailers: Headers, timeout_ms: int) -> HttpCall:
        token = self._next_http_token
        self._next_http_token += 1
        deadline = self.now_ns + timeout_ms * 1_000_000 if timeout_ms > 0 else None
        call = HttpCall(self, root, token, upstream, HeaderMap(headers), body, HeaderMap(trailers), timeout_ms, deadline)
        self.pending_http_calls.append(call)
        self.http_calls.append(call)
        return call

    def _finish_http_call(self, call: HttpCall, headers: Headers, body: bytes, trailers: Headers, status: tuple[int, bytes]) -> None:
        self._check_open()
        if call.done:
            raise EmulatorError(f"HTTP call {call.token} was already answered")
        call.done = True
        self.pending_http_calls.remove(call)
        call.response_headers, call.response_body, call.response_trailers = headers, body, trailers
        root = call.root
        if not root.alive or root.vm.failed is not None:
            return

        def run() -> None:
            root.http_call_response = call
            root.status = status
            try:
                root.vm.call("on_http_call_response", root, call.token, len(headers), len(body), len(trailers))
            finally:
                root.http_call_response = None
                root.status = (0, b"")

        self._op(run)

    def new_grpc_call(self, root: RootContext, upstream: str, service: str, method: str, metadata: Headers, message: bytes, timeout_ms: int) -> GrpcCall:
        token = self._next_grpc_token * 2 + 1  # odd: calls, even: streams (Envoy's convention)
        self._next_grpc_token += 1
        deadline = self.now_ns + timeout_ms * 1_000_000 if timeout_ms > 0 else None
        call = GrpcCall(self, root, token, upstream, service, method, HeaderMap(metadata), message, timeout_ms, deadline)
        self.pending_grpc_calls.append(call)
        return call

    def new_grpc_stream(self, root: RootContext, upstream: str, service: str, method: str, metadata: Headers) -> GrpcStream:
        token = self._next_grpc_token * 2
        self._next_grpc_token += 1
        stream = GrpcStream(self, root, token, upstream, service, method, HeaderMap(metadata))
        self.grpc_streams.append(stream)
        return stream

    def _finish_grpc(self, call: GrpcCall, message: Optional[bytes], initial: Headers, trailing: Headers, failure: Optional[tuple[int, bytes]]) -> None:
        self._check_open()
        if call.done:
            raise EmulatorError(f"gRPC call {call.token} was already answered")
        call.done = True
        self.pending_grpc_calls.remove(call)
        root = call.root
        if not root.alive or root.vm.failed is not None:
            return

        def run() -> None:
            vm = root.vm
            if failure is not None:
                root.status = failure
                try:
                    vm.call("on_grpc_close", root, call.token, failure[0])
                finally:
                    root.status = (0, b"")
                return
            if initial:
                root.grpc_initial_metadata = initial
                try:
                    vm.call("on_grpc_receive_initial_metadata", root, call.token, len(initial))
                finally:
                    root.grpc_initial_metadata = None
            root.grpc_receive = message or b""
            try:
                vm.call("on_grpc_receive", root, call.token, len(root.grpc_receive))
            finally:
                root.grpc_receive = None
            if trailing:
                root.grpc_trailing_metadata = trailing
                try:
                    vm.call("on_grpc_receive_trailing_metadata", root, call.token, len(trailing))
                finally:
                    root.grpc_trailing_metadata = None

        self._op(run)

    def _grpc_stream_event(self, stream: GrpcStream, kind: str, payload: Any) -> None:
        self._check_open()
        if stream.remote_closed or stream.cancelled:
            raise EmulatorError(f"gRPC stream {stream.token} is closed")
        root = stream.root

        def run() -> None:
            vm = root.vm
            if kind == "initial":
                root.grpc_initial_metadata = payload
                try:
                    vm.call("on_grpc_receive_initial_metadata", root, stream.token, len(payload))
                finally:
                    root.grpc_initial_metadata = None
            elif kind == "message":
                root.grpc_receive = bytes(payload)
                try:
                    vm.call("on_grpc_receive", root, stream.token, len(payload))
                finally:
                    root.grpc_receive = None
            elif kind == "trailing":
                root.grpc_trailing_metadata = payload
                try:
                    vm.call("on_grpc_receive_trailing_metadata", root, stream.token, len(payload))
                finally:
                    root.grpc_trailing_metadata = None
            else:
                stream.remote_closed = True
                root.status = payload
                try:
                    vm.call("on_grpc_close", root, stream.token, payload[0])
                finally:
                    root.status = (0, b"")
                if stream in self.grpc_streams:  # Envoy forgets it once closed, as here
                    self.grpc_streams.remove(stream)

        self._op(run)

    # -- properties
    def property_value(self, ctx: _Context, path: tuple[str, ...]) -> Optional[bytes]:
        """Resolve a property path for ``ctx`` the way Envoy's attribute lookup would."""
        layers: list[dict[tuple[str, ...], bytes]] = []
        stream = getattr(ctx, "stream", None)
        if stream is not None:
            layers.append(ctx.properties)
            layers.append(getattr(stream, "_extra_properties", {}))
            layers.append(self._stream_properties(stream))
        root = ctx.root_context
        layers.append(self.properties)
        layers.append(self._plugin_properties(root))
        for layer in layers:
            if path in layer:
                return layer[path]
        # A prefix of leaves is a map: serialize its children as pairs.
        for layer in layers:
            children = [(k[len(path)], v) for k, v in layer.items() if len(k) == len(path) + 1 and k[: len(path)] == path]
            if children:
                return encode_pairs([(k.encode(), v) for k, v in children])
        return None

    def _plugin_properties(self, root: RootContext) -> dict[tuple[str, ...], bytes]:
        plugin = root.plugin
        return {
            ("plugin_name",): plugin.name.encode(),
            ("plugin_root_id",): plugin.root_id.encode(),
            ("plugin_vm_id",): root.vm.vm_id.encode(),
            # Envoy 1.40 has the node and the listener direction under xds (not at the top)
            ("xds", "node", "id"): b"emulator~127.0.0.1~emulator.default~default.svc.cluster.local",
            ("xds", "node", "cluster"): b"emulator",
            ("xds", "listener_direction"): encode_property(1),
        }

    def _stream_properties(self, stream: Any) -> dict[tuple[str, ...], bytes]:
        props: dict[tuple[str, ...], bytes] = {
            ("source", "address"): b"127.0.0.1:50000",
            ("source", "port"): encode_property(50000),
            ("destination", "address"): b"127.0.0.1:10000",
            ("destination", "port"): encode_property(10000),
            ("connection", "mtls"): encode_property(False),
            ("connection", "requested_server_name"): b"",  # plaintext: no SNI, but present
            ("connection", "id"): encode_property(stream.id),
            ("connection_id",): encode_property(stream.id),
        }
        if isinstance(stream, HttpStream):
            props.update(self._http_properties(stream))
        return props

    def _http_properties(self, stream: "HttpStream") -> dict[tuple[str, ...], bytes]:
        """The request and response attributes of an HTTP stream, as Envoy 1.40 has them.

        Envoy reads the ``request.*`` attributes that come from the request headers
        (path, host, method, id, ...) from the headers it holds for the filter: only in
        ``on_request_headers`` (and while that callback's pause lasts) and in ``on_log``;
        elsewhere they are absent and ``request.headers`` is an empty map. The same goes
        for ``response.headers``. Time, sizes, protocol, code and flags come from the
        stream's info and are there throughout.
        """
        props: dict[tuple[str, ...], bytes] = {
            ("request", "time"): encode_property(stream.start_ns),
            ("request", "protocol"): b"HTTP/1.1",
            ("request", "headers"): encode_pairs([]),
            ("response", "headers"): encode_pairs([]),
            ("response", "trailers"): encode_pairs([]),
            ("response", "flags"): encode_property(0),
            ("response", "size"): encode_property(len(stream.response.forwarded.body)),
        }
        req = HeaderMap(stream.request.headers or [])
        length = req.get("content-length")
        received = len(stream.request.forwarded.body) + len(stream.request.body) + len(stream.request.pending_body)
        props[("request", "size")] = encode_property(int(length) if length and length.isdigit() else received)
        if stream.access_log_phase:
            props[("request", "duration")] = encode_property(max(0, self.now_ns - stream.start_ns))
        logging = stream.access_log_phase
        if stream.request.headers is not None and (stream.request.headers_visible or logging):
            path = req.get(":path")
            if path is not None:
                props[("request", "path")] = path.encode()
                props[("request", "url_path")] = path.split("?", 1)[0].encode()
                if "?" in path:
                    props[("request", "query")] = path.split("?", 1)[1].encode()
            for key, name in ((":authority", "host"), (":method", "method"), (":scheme", "scheme"), ("x-request-id", "id"), ("user-agent", "useragent"), ("referer", "referer")):
                value = req.get(key)
                if value is not None:
                    props[("request", name)] = value.encode()
            props[("request", "headers")] = encode_pairs(list(stream.request.headers))
        resp = stream.response.headers
        status: Optional[int] = None
        if stream.local_response is not None:
            status = stream.local_response.status
            props[("response", "code_details")] = stream.local_response.details.encode()
        if resp is not None:
            resp_map = HeaderMap(resp)
            text = resp_map.get(":status")
            if text is not None and text.isdigit():
                status = int(text)
            if stream.local_response is None:
                props[("response", "code_details")] = b"via_upstream"
            if stream.response.headers_visible or logging:
                props[("response", "headers")] = encode_pairs(list(resp))
            grpc = resp_map.get("grpc-status")
            if grpc is not None and grpc.isdigit():
                props[("response", "grpc_status")] = encode_property(int(grpc))
        if status is not None:
            props[("response", "code")] = encode_property(status)
            props.setdefault(("response", "grpc_status"), encode_property(_grpc_status_of_http(status)))
        if stream.response.trailers is not None and (stream.response.trailers_visible or logging):
            props[("response", "trailers")] = encode_pairs(list(stream.response.trailers))
        return props
