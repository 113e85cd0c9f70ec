"""Contexts: the objects plugin code subclasses.

* `RootContext` — one per plugin (root_id) per VM: VM start, configuration, ticks,
  queues, foreign functions; it creates the per-stream contexts.
* `HttpContext` — one per HTTP request/response stream.
* `TcpContext` — one per TCP connection.

Every callback has a no-op default that lets traffic through, so a plugin overrides
only what it needs. A stream callback returns an `Action` (None means CONTINUE), or is
an ``async def`` that may ``await`` callouts and `sleep`: the stream then stays paused
until the coroutine returns, and continues if it returns CONTINUE (or None).
"""

from __future__ import annotations

import sys

from . import _hostcalls
from ._body import Body
from ._callouts import GrpcResponse, GrpcStream, HttpResponse
from ._codec import grpc_service, to_bytes, to_str
from ._errors import BadArgument, ConfigError, HostcallError, NotFound, StreamGone
from ._headers import HostHeaders, serialize_headers
from ._json import loads
from ._tasks import Suspend, WaitKind
from ._types import Action, BufferType, LogLevel, MapType, StreamType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping
    from typing import Any, ClassVar

    from ._callouts import GrpcStreamHandler
    from ._dispatcher import Dispatcher
    from ._headers import HeadersLike
    from ._tasks import Task
    from ._types import PeerType

    ActionResult = Action | None | Coroutine[Any, Any, Action | None]
    """What a stream callback returns: an Action, None (= CONTINUE), or a coroutine."""


NOT_HELD: tuple[int, ...] = (0, 0, 0, 0)
"""The `_held` of a stream that no ``async`` callback holds (a list replaces it when one
does: one count per `StreamType`)."""


unexported_callbacks: dict[str, tuple[object, ...]] = {}
"""The callbacks the built module does not export, each with the SDK's no-op methods
for it. The build fills it once the plugin is imported (`leave_out_unused_callbacks`);
in native mode it stays empty."""


class Context:
    """What every context has: its id, its root, callouts and gRPC calls."""

    # Slots, not instance attributes: the shim reads and writes the ones it uses per
    # request at their offsets (docs/abi-seam.md). `_bind` sets them all.
    __slots__ = ("id", "root", "_dispatcher", "_bound", "_deleted", "_tasks", "__dict__")

    id: int
    """The host's context id."""
    root: RootContext
    """The root context (plugin) this context belongs to; a root is its own root."""

    _dispatcher: Dispatcher
    _bound: bool
    _deleted: bool
    _tasks: list[Task] | None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if unexported_callbacks:  # a class made after the build left callbacks out
            _report_unexported_overrides(cls)

    def _bind(self, context_id: int, root: RootContext | None, dispatcher: Dispatcher) -> None:
        self.id = context_id
        self.root = root if root is not None else self  # type: ignore[assignment]
        self._dispatcher = dispatcher
        self._bound = True
        self._deleted = False
        self._tasks = None

    def _activate(self) -> None:
        """Make this context the one the host acts on (no hostcall if it already is).

        Raises `StreamGone` if the host deleted it.
        """
        dispatcher = self._dispatcher
        if dispatcher.effective_context_id != self.id:
            if self._deleted:
                raise StreamGone(f"context {self.id} is gone (the stream or connection ended)")
            dispatcher.activate(self.id)

    @property
    def alive(self) -> bool:
        """False once the host deleted this context (the stream or connection is gone)."""
        return not getattr(self, "_deleted", False)  # not bound yet: alive

    @property
    def fail_open(self) -> bool:
        """Whether an exception in a callback lets traffic through (True) or stops it.

        Stream contexts follow their root; set ``fail_open = True`` on a class (or pass
        ``register(..., fail_open=True)``) to change it.
        """
        own = self.__dict__.get("fail_open")
        return self.root.fail_open if own is None else bool(own)

    @fail_open.setter
    def fail_open(self, value: bool) -> None:
        self.__dict__["fail_open"] = value

    def on_done(self) -> bool:
        """The host is about to finish this context. Return False to finish later
        (a root then calls `done()`). Default: True."""
        return True

    def _continue(self, stream: StreamType) -> bool:
        if self._deleted:
            return False
        try:
            self._activate()
            _hostcalls.continue_stream(stream)
        except (StreamGone, NotFound, BadArgument):
            return False
        return True

    def _close(self, stream: StreamType) -> bool:
        if self._deleted:
            return False
        try:
            self._activate()
            _hostcalls.close_stream(stream)
        except (StreamGone, NotFound, BadArgument):
            return False
        return True

    # -- HTTP callouts -----------------------------------------------------------------

    def dispatch_http_call(
        self,
        upstream: str,
        headers: HeadersLike | None = None,
        body: bytes | str = b"",
        trailers: HeadersLike | None = None,
        *,
        timeout_ms: int = 5000,
        callback: Callable[[HttpResponse], object] | None = None,
    ) -> int:
        """Send an HTTP request to cluster `upstream`; `callback(response)` runs when it
        is answered (with a response whose ``failed`` is True if it never was).

        Missing ``:method`` / ``:path`` / ``:authority`` headers default to GET (POST
        with a body), ``/`` and `upstream`. Returns the host's callout token.
        """
        pairs = _with_pseudo_headers(headers, upstream, bool(body))
        self._activate()
        token = _hostcalls.http_call(
            to_bytes(upstream),
            serialize_headers(pairs),
            to_bytes(body),
            serialize_headers(trailers),
            timeout_ms,
        )
        self._dispatcher.add_http_call(token, self, upstream, callback)
        return token

    async def http_call(
        self,
        upstream: str,
        headers: HeadersLike | None = None,
        body: bytes | str = b"",
        trailers: HeadersLike | None = None,
        *,
        timeout_ms: int = 5000,
    ) -> HttpResponse:
        """Send an HTTP request to cluster `upstream` and wait for the answer.

        Use with ``await`` inside an ``async`` callback; the stream stays paused until
        the callback returns. Raises `HttpCallTimeout` when the host gave up after
        `timeout_ms`, `HttpCallFailed` when there was no answer at all.
        """
        token = self.dispatch_http_call(upstream, headers, body, trailers, timeout_ms=timeout_ms)
        response: HttpResponse = await Suspend(WaitKind.HTTP_CALL, token)
        return response

    # -- gRPC --------------------------------------------------------------------------

    def dispatch_grpc_call(
        self,
        upstream: str,
        service: str,
        method: str,
        message: bytes,
        *,
        metadata: HeadersLike | None = None,
        timeout_ms: int = 5000,
        callback: Callable[[GrpcResponse], object] | None = None,
    ) -> int:
        """Make a unary gRPC call; `callback(response)` runs with its outcome.

        `upstream` is the cluster name (or a serialized GrpcService). Returns the token.
        """
        self._activate()
        token = _hostcalls.grpc_call(
            grpc_service(upstream),
            to_bytes(service),
            to_bytes(method),
            serialize_headers(metadata),
            to_bytes(message),
            timeout_ms,
        )
        self._dispatcher.add_grpc_call(token, self, upstream, service, method, callback)
        return token

    async def grpc_call(
        self,
        upstream: str,
        service: str,
        method: str,
        message: bytes,
        *,
        metadata: HeadersLike | None = None,
        timeout_ms: int = 5000,
    ) -> bytes:
        """Make a unary gRPC call and wait for the reply message (serialized protobuf).

        Raises `GrpcCallError` (with the gRPC status) when the call fails.
        """
        token = self.dispatch_grpc_call(
            upstream, service, method, message, metadata=metadata, timeout_ms=timeout_ms
        )
        reply: bytes = await Suspend(WaitKind.GRPC_CALL, token)
        return reply

    def open_grpc_stream(
        self,
        upstream: str,
        service: str,
        method: str,
        handler: GrpcStreamHandler | None = None,
        *,
        metadata: HeadersLike | None = None,
    ) -> GrpcStream:
        """Open a gRPC stream; its events go to `handler` and to ``await stream.receive()``."""
        self._activate()
        token = _hostcalls.grpc_stream(
            grpc_service(upstream), to_bytes(service), to_bytes(method), serialize_headers(metadata)
        )
        stream = GrpcStream(token, upstream, service, method, handler, self._dispatcher, self.id)
        self._dispatcher.add_grpc_stream(stream, self)
        return stream


class RootContext(Context):
    """The plugin: one instance per VM and root_id.

    Set `http_context` / `tcp_context` to the classes the host should instantiate for
    each stream, or override `new_http_context` / `new_tcp_context`.
    """

    http_context: ClassVar[type[HttpContext] | None] = None
    """Class instantiated for each HTTP stream (None: HTTP streams pass through)."""
    tcp_context: ClassVar[type[TcpContext] | None] = None
    """Class instantiated for each TCP connection (None: connections pass through)."""
    default_config: ClassVar[Mapping[str, Any]] = {}
    """Configuration values used when the plugin configuration leaves them out. The
    ``[config]`` table of the plugin's ``plugin.toml`` is merged over these."""

    fail_open: bool = False
    """Safe default: an exception in an HTTP callback answers 500 and stops the stream.
    True lets the stream continue instead."""

    _root_id: str | None = None
    configuration: bytes = b""
    """The raw plugin configuration of the last `on_configure`."""
    config: dict[str, Any]
    """The plugin configuration parsed by the default `on_configure` (JSON object
    merged over `default_config`)."""

    def __init__(self) -> None:
        self.config = self.defaults()

    @property
    def root_id(self) -> str:
        """The root_id the host created this root context for (the plugin_root_id
        property; read from the host on first use when only one plugin is registered)."""
        root_id = self._root_id
        if root_id is None:
            self._activate()
            try:
                root_id = to_str(_hostcalls.get_property(b"plugin_root_id"))
            except HostcallError:
                root_id = ""
            self._root_id = root_id
        return root_id

    @root_id.setter
    def root_id(self, value: str) -> None:
        self._root_id = value

    def defaults(self) -> dict[str, Any]:
        """`default_config` with plugin.toml's ``[config]`` table merged over it."""
        return {**self.default_config, **packaged_config()}

    def on_vm_start(self, vm_configuration: bytes) -> bool:
        """The VM started; `vm_configuration` is the raw VM configuration.
        Return False to fail the start. Default: True."""
        return True

    def on_configure(self, configuration: bytes) -> bool:
        """The plugin is (re)configured. Default: parse `configuration` as a JSON
        object into `self.config`, on top of `defaults()`, refusing values whose type
        differs from the default's and warning about keys without a default. Return
        False to reject the configuration (Envoy then refuses the plugin)."""
        defaults = self.defaults()
        # A ConfigError goes to the dispatcher, which logs it and refuses the configuration.
        config = parse_json_config(configuration, defaults, check_types=True)
        unknown = [key for key in config if key not in defaults] if defaults else []
        if unknown:
            known = ", ".join(repr(key) for key in defaults)
            names = ", ".join(repr(key) for key in unknown)
            keys = f"keys {names} are" if len(unknown) > 1 else f"key {names} is"
            _hostcalls.log(LogLevel.WARN, to_bytes(
                f"{plugin_label(self)}: configuration {keys} not among the known keys ({known}): "
                f"a typo? If so, {_FIX}"
            ))
        self.config = config
        return True

    def on_tick(self) -> Coroutine[Any, Any, None] | None:
        """The tick timer set with `set_tick_period` fired."""

    def on_queue_ready(self, queue_id: int) -> Coroutine[Any, Any, None] | None:
        """The shared queue `queue_id` (registered by this VM) has new items."""

    def on_foreign_function(self, function_id: int, arguments: bytes) -> Coroutine[Any, Any, None] | None:
        """The host called foreign function `function_id` on this plugin."""

    def new_http_context(self, context_id: int) -> HttpContext | None:
        """Create the context for a new HTTP stream (default: an `http_context`)."""
        cls = self.http_context
        return None if cls is None else self._dispatcher.instantiate(cls, context_id, self)

    def new_tcp_context(self, context_id: int) -> TcpContext | None:
        """Create the context for a new TCP connection (default: a `tcp_context`)."""
        cls = self.tcp_context
        return None if cls is None else self._dispatcher.instantiate(cls, context_id, self)

    def set_tick_period(self, milliseconds: int) -> None:
        """Call `on_tick` every `milliseconds` (0 stops the ticks)."""
        self._activate()
        self._dispatcher.set_user_tick_period(self, milliseconds)

    def done(self) -> None:
        """Tell the host this root finished, after `on_done` returned False."""
        self._activate()
        _hostcalls.done()


class HttpContext(Context):
    """One HTTP stream: request and response headers, bodies, trailers.

    Header callbacks get a `Headers` map, body callbacks a `Body`. Set
    `buffer_request_body` / `buffer_response_body` to receive the body once, complete,
    instead of chunk by chunk (the host buffers it, up to its buffer limit).
    """

    buffer_request_body = False
    """If True, on_request_body runs once with the whole body (Envoy buffers it)."""
    buffer_response_body = False
    """If True, on_response_body runs once with the whole body (Envoy buffers it)."""

    __slots__ = ("_request_headers", "_response_headers", "_held", "_response_started")

    _request_headers: HostHeaders | None
    _response_headers: HostHeaders | None
    _held: list[int] | tuple[int, ...]
    _response_started: bool
    _request_trailers: HostHeaders | None = None
    _response_trailers: HostHeaders | None = None
    _wants_pause: list[bool] | tuple[bool, ...] = (False, False, False, False)
    _local_reply = False

    def _bind(self, context_id: int, root: RootContext | None, dispatcher: Dispatcher) -> None:
        Context._bind(self, context_id, root, dispatcher)
        self._request_headers = HostHeaders(MapType.HTTP_REQUEST_HEADERS, dispatcher, context_id)
        self._response_headers = None
        self._held = NOT_HELD
        self._response_started = False

    # -- callbacks -----------------------------------------------------------------

    def on_request_headers(self, headers: HostHeaders, end_of_stream: bool) -> ActionResult:
        """Request headers arrived (`end_of_stream`: there is no body)."""
        return Action.CONTINUE

    def on_request_body(self, body: Body, end_of_stream: bool) -> ActionResult:
        """A request body chunk arrived (all of it, with `buffer_request_body`).
        Returning PAUSE buffers it: the next call sees the accumulated body."""
        return Action.CONTINUE

    def on_request_trailers(self, trailers: HostHeaders) -> ActionResult:
        """Request trailers arrived."""
        return Action.CONTINUE

    def on_response_headers(self, headers: HostHeaders, end_of_stream: bool) -> ActionResult:
        """Response headers arrived (`end_of_stream`: there is no body)."""
        return Action.CONTINUE

    def on_response_body(self, body: Body, end_of_stream: bool) -> ActionResult:
        """A response body chunk arrived (all of it, with `buffer_response_body`)."""
        return Action.CONTINUE

    def on_response_trailers(self, trailers: HostHeaders) -> ActionResult:
        """Response trailers arrived."""
        return Action.CONTINUE

    def on_log(self) -> None:
        """The stream is complete: the place for access logging."""

    # -- maps ------------------------------------------------------------------------

    @property
    def request_headers(self) -> HostHeaders:
        """The request headers (read once per callback, then cached)."""
        headers = self._request_headers
        if headers is None:
            headers = self._request_headers = HostHeaders(
                MapType.HTTP_REQUEST_HEADERS, self._dispatcher, self.id
            )
        return headers

    @property
    def response_headers(self) -> HostHeaders:
        """The response headers (read once per callback, then cached)."""
        headers = self._response_headers
        if headers is None:
            headers = self._response_headers = HostHeaders(
                MapType.HTTP_RESPONSE_HEADERS, self._dispatcher, self.id
            )
        return headers

    @property
    def request_trailers(self) -> HostHeaders:
        """The request trailers."""
        trailers = self._request_trailers
        if trailers is None:
            trailers = self._request_trailers = HostHeaders(
                MapType.HTTP_REQUEST_TRAILERS, self._dispatcher, self.id
            )
        return trailers

    @property
    def response_trailers(self) -> HostHeaders:
        """The response trailers."""
        trailers = self._response_trailers
        if trailers is None:
            trailers = self._response_trailers = HostHeaders(
                MapType.HTTP_RESPONSE_TRAILERS, self._dispatcher, self.id
            )
        return trailers

    def request_body(self, size: int | None = None) -> Body:
        """The request body buffer; empty when the host holds none (meaningful in body/trailer callbacks)."""
        if size is None:
            self._activate()
            size = _buffered_size(BufferType.HTTP_REQUEST_BODY)
        return Body(BufferType.HTTP_REQUEST_BODY, size, self._dispatcher, self.id)

    def response_body(self, size: int | None = None) -> Body:
        """The response body buffer; empty when the host holds none (meaningful in body/trailer callbacks)."""
        if size is None:
            self._activate()
            size = _buffered_size(BufferType.HTTP_RESPONSE_BODY)
        return Body(BufferType.HTTP_RESPONSE_BODY, size, self._dispatcher, self.id)

    # -- flow control ------------------------------------------------------------------

    def send_local_response(
        self,
        status: int,
        body: bytes | str = b"",
        headers: HeadersLike | None = None,
        *,
        grpc_status: int | None = None,
        details: str = "",
    ) -> None:
        """Answer the request from the plugin; the upstream never sees it.

        Return PAUSE from the callback afterwards. `details` becomes Envoy's
        response code details (no spaces); `grpc_status` adds a gRPC status.
        """
        self._activate()
        _hostcalls.send_local_response(
            status,
            to_bytes(details),
            to_bytes(body),
            serialize_headers(headers),
            -1 if grpc_status is None else grpc_status,
        )
        self._local_reply = True

    def resume_request(self) -> bool:
        """Continue the paused request, from any context (a tick, another stream).

        Returns False, instead of raising, when the stream is already gone.
        """
        return self._continue(StreamType.HTTP_REQUEST)

    def resume_response(self) -> bool:
        """Continue the paused response; False when the stream is already gone."""
        return self._continue(StreamType.HTTP_RESPONSE)

    def close_request(self) -> bool:
        """Reset the stream from the request side; False when it is already gone."""
        return self._close(StreamType.HTTP_REQUEST)

    def close_response(self) -> bool:
        """Reset the stream from the response side; False when it is already gone."""
        return self._close(StreamType.HTTP_RESPONSE)

    def clear_route_cache(self) -> None:
        """Make Envoy pick the route again after a change of ``:authority``/``:path``."""
        self._activate()
        _hostcalls.call_foreign_function(b"clear_route_cache", b"")

class TcpContext(Context):
    """One TCP connection: data in both directions and connection close."""

    _held: list[int] | tuple[int, ...] = NOT_HELD
    _wants_pause: list[bool] | tuple[bool, ...] = (False, False, False, False)
    _local_reply = False

    def on_new_connection(self) -> ActionResult:
        """A downstream connection was accepted."""
        return Action.CONTINUE

    def on_downstream_data(self, data: Body, end_of_stream: bool) -> ActionResult:
        """Data from the client arrived."""
        return Action.CONTINUE

    def on_upstream_data(self, data: Body, end_of_stream: bool) -> ActionResult:
        """Data from the server arrived."""
        return Action.CONTINUE

    def on_downstream_close(self, peer: PeerType) -> None:
        """The client side closed (`peer`: who closed it)."""

    def on_upstream_close(self, peer: PeerType) -> None:
        """The server side closed (`peer`: who closed it)."""

    def on_log(self) -> None:
        """The connection is complete: the place for access logging."""

    def resume_downstream(self) -> bool:
        """Continue reading from the client; False when the connection is gone."""
        return self._continue(StreamType.DOWNSTREAM)

    def resume_upstream(self) -> bool:
        """Continue reading from the server; False when the connection is gone."""
        return self._continue(StreamType.UPSTREAM)

    def close_downstream(self) -> bool:
        """Close the client connection; False when it is already gone."""
        return self._close(StreamType.DOWNSTREAM)

    def close_upstream(self) -> bool:
        """Close the server connection; False when it is already gone."""
        return self._close(StreamType.UPSTREAM)


def overrides(cls: type, name: str, no_ops: tuple[object, ...]) -> bool:
    """Whether `cls` has its own method `name`, not one of the SDK's `no_ops` for it."""
    return getattr(cls, name, no_ops[0]) not in no_ops


_OBJECT_INIT = object.__init__
_NEW_OBJECT = object.__new__


def creation_runs_code(cls: type[Context]) -> bool:
    """Whether making an instance of context class `cls` runs the plugin's own
    ``__init__`` or ``__new__`` (the shim makes instances of other classes itself)."""
    return cls.__init__ is not _OBJECT_INIT or cls.__new__ is not _NEW_OBJECT


HTTP_STREAM_CALLBACKS = (
    "on_request_headers", "on_request_body", "on_request_trailers",
    "on_response_headers", "on_response_body", "on_response_trailers",
)
BODY_AND_TRAILER_CALLBACKS = {
    "buffer_request_body": ("on_request_body", "on_request_trailers"),
    "buffer_response_body": ("on_response_body", "on_response_trailers"),
}
"""Per direction of an HTTP stream: its buffering flag, its body callback and its
trailers callback, which must answer PAUSE while the body callback holds the direction."""


TCP_DATA_CALLBACKS = ("on_downstream_data", "on_upstream_data")


def needs_body_callback(cls: type[HttpContext], flag: str) -> bool:
    """Whether streams of `cls` need the body callback of `flag`'s direction (a key of
    `BODY_AND_TRAILER_CALLBACKS`): the class reads or buffers that body, or its own
    ``__init__`` / ``__new__`` may set the buffering flag per stream."""
    body = BODY_AND_TRAILER_CALLBACKS[flag][0]
    return getattr(cls, body) is not getattr(HttpContext, body) or bool(getattr(cls, flag)) or creation_runs_code(cls)


def stream_creation_runs_code(cls: type[Context]) -> bool:
    """Whether the plugin's own code runs when an HTTP stream of `cls` (a context class,
    or a root class's factory) is made."""
    if issubclass(cls, RootContext):
        return cls.new_http_context is not RootContext.new_http_context
    return issubclass(cls, HttpContext) and creation_runs_code(cls)


def _report_unexported_overrides(cls: type[Context]) -> None:
    """Log, at once, that the host will never call `cls`'s overrides of callbacks the
    module was built without, or will make its streams late."""
    where = f"{cls.__module__}.{cls.__qualname__}"
    rebuild = "Define the class at import time (at module level) and rebuild."
    for name, no_ops in unexported_callbacks.items():
        if overrides(cls, name, no_ops):
            _hostcalls.log(
                LogLevel.ERROR,
                f"{where}.{name} will never be called: the module was built without proxy_{name}, since "
                f"no context class overrode {name} when the plugin was imported. {rebuild}",
            )
    for flag, (body, _) in BODY_AND_TRAILER_CALLBACKS.items():
        if body in unexported_callbacks and getattr(cls, flag, False):
            _hostcalls.log(
                LogLevel.ERROR,
                f"{where}.{flag} has no effect: the module was built without proxy_{body}, since no context "
                f"class buffered or read that body when the plugin was imported. {rebuild}",
            )
    if "on_request_headers" in unexported_callbacks and stream_creation_runs_code(cls):
        code = "new_http_context" if issubclass(cls, RootContext) else "__init__ / __new__"
        _hostcalls.log(
            LogLevel.ERROR,
            f"{where}.{code} will run on the first callback the module gets for a stream, not when the "
            "request starts: the module was built without proxy_on_request_headers, since no context "
            f"class needed it when the plugin was imported. {rebuild}",
        )


def _buffered_size(buffer_type: BufferType) -> int:
    """Size of a host buffer; 0 when the host has none (the body was passed on)."""
    try:
        return _hostcalls.get_buffer_status(buffer_type)[0]
    except NotFound:
        return 0


_packaged_cache: tuple[bytes, dict[str, Any], bool] | None = None
"""(raw JSON, parsed, whether every value is a scalar): parsed once, in the snapshot."""


def packaged_config() -> dict[str, Any]:
    """The ``[config]`` table of plugin.toml, which `pwtool build` embeds in the module
    (as the ``_pwtool_plugin`` module; the emulator provides it in native mode)."""
    global _packaged_cache
    raw = getattr(sys.modules.get("_pwtool_plugin"), "DEFAULT_CONFIG", b"")
    if not raw:
        return {}
    cache = _packaged_cache
    if cache is None or cache[0] != raw:
        parsed = _parse_object(raw, allow_nan=True)  # pwtool build has checked it
        flat = not any(isinstance(value, (dict, list)) for value in parsed.values())
        cache = _packaged_cache = (raw, parsed, flat)
    # A fresh dict for every caller; nested values are parsed again so none is shared.
    return dict(cache[1]) if cache[2] else _parse_object(raw, allow_nan=True)


def plugin_label(root: RootContext) -> str:
    """The plugin's class and root_id, to start a log line with."""
    return f"{type(root).__qualname__} (root_id {root.root_id!r})"


_FIX = "fix the plugin configuration (Envoy: configuration.value; Istio: pluginConfig)"
_FIX_JSON = "fix the JSON in the plugin configuration (Envoy: configuration.value; Istio: pluginConfig)"


def parse_json_config(
    data: bytes | str, defaults: Mapping[str, Any] | None = None, *, check_types: bool = False
) -> dict[str, Any]:
    """Parse a JSON object configuration over `defaults` (shallow merge).

    Empty configuration gives the defaults. Raises `ConfigError` for bytes that are not
    UTF-8, invalid JSON (NaN and Infinity included), JSON that is not an object and,
    with `check_types`, values whose JSON type differs from their default's.
    """
    config: dict[str, Any] = dict(defaults or {})
    parsed = _parse_object(data, allow_nan=False)
    if check_types and defaults:
        problems = [_type_problem(key, defaults[key], value) for key, value in parsed.items() if key in defaults]
        if any(problems):
            raise ConfigError(f"{'; '.join(p for p in problems if p)}; {_FIX}")
    config.update(parsed)
    return config


def _parse_object(data: bytes | str, *, allow_nan: bool) -> dict[str, Any]:
    """`data` (UTF-8 JSON) as a dict, {} when blank; `ConfigError` saying why not."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ConfigError(
                f"configuration is not valid UTF-8: byte 0x{data[error.start]:02x} at offset "
                f"{error.start} ({error.reason}); {_FIX}, saved as UTF-8"
            ) from None
    else:
        text = data
    if not text.strip():
        return {}
    try:
        parsed = loads(text, allow_nan=allow_nan)
    except ValueError as error:
        raise ConfigError(f"configuration is not valid JSON: {error}; {_FIX_JSON}") from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"configuration must be a JSON object, got {_describe(parsed)}; {_FIX}")
    return parsed


_KINDS = (
    (bool, "a boolean"),  # before int: True is an int
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def _kind(value: object) -> str | None:
    """The JSON type of `value` ("an integer", ...), "null" for None, None for others."""
    for cls, kind in _KINDS:
        if isinstance(value, cls):
            return kind
    return "null" if value is None else None


def _describe(value: object) -> str:
    """`value`'s JSON type, followed by the value when it is a short scalar."""
    kind = _kind(value) or type(value).__name__
    if value is None or isinstance(value, (list, dict)):
        return kind
    shown = ("true" if value else "false") if isinstance(value, bool) else repr(value)
    return f"{kind} ({shown if len(shown) <= 40 else shown[:37] + '...'})"


def _type_problem(key: str, default: object, value: object) -> str | None:
    """Why `value` may not replace `default` for configuration `key`; None if it may.

    A default of None (or of a type JSON never produces) accepts anything and a float
    default accepts an integer; otherwise the JSON types must match (a boolean is not a
    number). Arrays and objects are checked at the top only, as the merge is shallow.
    """
    expected = _kind(default)
    if expected is None or expected == "null":
        return None
    received = _kind(value)
    if received == expected or (expected == "a number" and received == "an integer"):
        return None
    return f"configuration key {key!r} must be {expected} like its default, got {_describe(value)}"


def _with_pseudo_headers(
    headers: HeadersLike | None, upstream: str, has_body: bool
) -> list[tuple[str | bytes, str | bytes]]:
    from ._headers import _pairs_of

    pairs = list(_pairs_of(headers)) if headers is not None else []
    names = {to_bytes(name).lower() for name, _ in pairs}
    defaults: list[tuple[str | bytes, str | bytes]] = []
    if b":method" not in names:
        defaults.append((":method", "POST" if has_body else "GET"))
    if b":path" not in names:
        defaults.append((":path", "/"))
    if b":authority" not in names:
        defaults.append((":authority", upstream))
    return defaults + pairs
