"""The dispatcher: where every ABI callback enters Python.

The host (the C shim in wasm, the emulator in native tests) calls one method per
callback export, named after it (``proxy_on_request_headers`` -> `on_request_headers`).
The dispatcher keeps the registry of one VM: context ids to context objects, callout
tokens to what waits for them (a callback or a suspended coroutine), and the timers of
`sleep`. It catches every exception of plugin code (`BaseException`: in a VM even
`SystemExit` or `KeyboardInterrupt` is only a plugin failing), logs it with its
traceback, and applies the plugin's failure behaviour (see `Dispatcher._failed`).

Plugins are registered process-wide with `register()`; a `Dispatcher()` reads that
registry when the host creates a root context, so the emulator can create one
dispatcher per emulated VM.
"""

from __future__ import annotations

import sys
from _heapq import heappop, heappush  # the C module: `heapq` would add a module to every snapshot

import _proxywasm as _abi

from . import _hostcalls
from ._body import Body
from ._callouts import GrpcResponse, GrpcStream, HttpResponse
from ._codec import deserialize_header_map_bytes, to_str
from ._context import (
    BODY_AND_TRAILER_CALLBACKS,
    HTTP_STREAM_CALLBACKS,
    NOT_HELD,
    TCP_DATA_CALLBACKS,
    Context,
    HttpContext,
    RootContext,
    TcpContext,
    creation_runs_code,
    needs_body_callback,
    overrides,
    packaged_config,
    plugin_label,
    stream_creation_runs_code,
    unexported_callbacks,
)
from ._errors import (
    BadArgument,
    ConfigError,
    GrpcCallError,
    GrpcCallTimeout,
    HostcallError,
    HttpCallFailed,
    HttpCallTimeout,
    NotFound,
    StreamGone,
)
from ._headers import Headers, HostHeaders
from ._log import format_exception
from ._metrics import _current_vm
from ._tasks import Suspend, Task, WaitKind
from ._types import Action, BufferType, LogLevel, MapType, PeerType, StreamType

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping
    from typing import Any, TypeVar

    C = TypeVar("C", bound=Context)
    R = TypeVar("R", bound=type[Context])

_DEFAULT_NEW_HTTP = RootContext.new_http_context
_DEFAULT_NEW_TCP = RootContext.new_tcp_context
_BODY_CALLBACKS = {body: flag for flag, (body, _) in BODY_AND_TRAILER_CALLBACKS.items()}
"""Body callbacks and the flag that makes the SDK buffer them."""
_REQUEST_HEADERS = MapType.HTTP_REQUEST_HEADERS
_RESPONSE_HEADERS = MapType.HTTP_RESPONSE_HEADERS
_NOOP_ON_DONE = Context.on_done
_NOOP_ON_LOG = (HttpContext.on_log, TcpContext.on_log)
_CONTINUE = Action.CONTINUE
_PAUSE = Action.PAUSE
_REQUEST = StreamType.HTTP_REQUEST
_RESPONSE = StreamType.HTTP_RESPONSE
_DOWNSTREAM = StreamType.DOWNSTREAM
_UPSTREAM = StreamType.UPSTREAM

FAILURE_DETAILS = "python_plugin_exception"
"""Response code details of the 500 a failing HTTP callback answers (fail closed)."""


# -- registry --------------------------------------------------------------------------


class Registration:
    """A registered plugin: its root context class, root_id and failure behaviour."""

    __slots__ = ("root_class", "root_id", "fail_open", "module_name", "module")

    def __init__(
        self,
        root_class: type[RootContext],
        root_id: str,
        fail_open: bool | None,
        module_name: str = "",
        module: object = None,
    ) -> None:
        self.root_class = root_class
        self.root_id = root_id
        self.fail_open = fail_open
        self.module_name = module_name
        """The module that registered the plugin, so that re-importing it (the
        emulator loads each plugin's ``plugin.py`` afresh) replaces its registrations."""
        self.module = module

    def __repr__(self) -> str:
        return f"Registration({self.root_class.__qualname__}, root_id={self.root_id!r})"


_registry: dict[str, Registration] = {}
_seam_dispatcher: Dispatcher | None = None
_deferred_import: Callable[[], bytes] | None = None


def register(plugin: R, *, root_id: str = "", fail_open: bool | None = None) -> R:
    """Register a plugin; usable as a call or as a class decorator.

    `plugin` is a `RootContext` subclass, or an `HttpContext` / `TcpContext` subclass
    (a root that creates it for every stream is made for you). `root_id` selects the
    plugin when one module serves several (Envoy's ``root_id``, Istio's
    ``pluginName``); a module with one plugin serves any root_id. `fail_open`
    overrides the plugin's failure behaviour. Registering the same root_id again
    replaces the earlier registration.
    """
    if isinstance(plugin, type) and issubclass(plugin, RootContext):
        root_class: type[RootContext] = plugin
    elif isinstance(plugin, type) and issubclass(plugin, HttpContext):
        root_class = type(
            f"{plugin.__name__}Root",
            (RootContext,),
            {"http_context": plugin, "__module__": plugin.__module__, **_fail_open_of(plugin)},
        )
    elif isinstance(plugin, type) and issubclass(plugin, TcpContext):
        root_class = type(
            f"{plugin.__name__}Root",
            (RootContext,),
            {"tcp_context": plugin, "__module__": plugin.__module__, **_fail_open_of(plugin)},
        )
    else:
        raise TypeError(
            f"register() takes a RootContext, HttpContext or TcpContext subclass, not {plugin!r}"
        )
    module_name = plugin.__module__
    module = sys.modules.get(module_name)
    for key, old in list(_registry.items()):
        if old.module_name == module_name and old.module is not module:
            del _registry[key]  # registered by an earlier import of the same module
    _registry[root_id] = Registration(root_class, root_id, fail_open, module_name, module)
    if _seam_dispatcher is not None:
        _seam_dispatcher.expect_registered_roots()
        packaged_config()  # parsed now, so the snapshot holds it
    return plugin


def install_seam_dispatcher() -> Dispatcher:
    """Create the VM's dispatcher and hand it to the host through ``_proxywasm``."""
    global _seam_dispatcher
    dispatcher = _seam_dispatcher = Dispatcher()
    _abi.set_dispatcher(dispatcher)
    return dispatcher


def defer_plugin_import(load: Callable[[], bytes]) -> None:
    """Import the plugin when the VM's first root context is created, not at build time.

    For the dev loop (``pwtool run --watch``): its module holds the interpreter and the
    SDK only, and the plugin's compiled code comes in the VM configuration, so the
    module's bytes stay the same across edits and Envoy reuses its compiled code.
    ``load`` imports the plugin (which registers it) and returns the VM configuration
    meant for the plugin; an exception it raises is logged and the VM refuses to start.
    """
    global _deferred_import
    _deferred_import = load


def registrations() -> dict[str, Registration]:
    """A copy of the process-wide plugin registry, by root_id."""
    return dict(_registry)


def unregister_all() -> None:
    """Forget every registered plugin (for tests that load several plugins)."""
    _registry.clear()


def _fail_open_of(cls: type[Context]) -> dict[str, bool]:
    value = cls.__dict__.get("fail_open")
    return {"fail_open": value} if isinstance(value, bool) else {}


class _UnknownPlugin(RootContext):
    """Stands in when no registered plugin matches a root_id: refuses to start."""

    def on_vm_start(self, vm_configuration: bytes) -> bool:
        return False

    def on_configure(self, configuration: bytes) -> bool:
        return False


def _reseed_random() -> None:
    """A built module starts from a snapshot, so a `random` imported at build time would
    give every VM the same sequence: seed it from the host's randomness per VM."""
    module = sys.modules.get("random")
    if module is not None:
        module.seed()


# -- callout and timer bookkeeping -----------------------------------------------------


class _Callout:
    """What waits for an HTTP callout or unary gRPC call token."""

    __slots__ = ("context", "upstream", "service", "method", "callback", "task")

    def __init__(
        self,
        context: Context,
        upstream: str,
        callback: Callable[[Any], object] | None,
        service: str = "",
        method: str = "",
    ) -> None:
        self.context = context
        self.upstream = upstream
        self.service = service
        self.method = method
        self.callback = callback
        self.task: Task | None = None


class _Timers:
    """The sleepers of one root context, and the root's own tick period."""

    __slots__ = ("sleepers", "sequence", "user_period_ms", "host_period_ms", "next_user_tick_ns")

    def __init__(self) -> None:
        self.sleepers: list[tuple[int, int, Task]] = []
        self.sequence = 0
        self.user_period_ms = 0
        self.host_period_ms = 0
        self.next_user_tick_ns = 0


# -- the dispatcher --------------------------------------------------------------------


def idle_callbacks_for(
    roots: tuple[tuple[type[RootContext], type[HttpContext] | None, type[TcpContext] | None], ...],
    held_ever: bool,
) -> frozenset[str]:
    """The callbacks that roots of these (root, HTTP, TCP) classes never need.

    ``on_log`` / ``on_done`` are idle when no context class of any root overrides
    them (and roots use the default context factories). The body callbacks are idle
    when no HTTP context class overrides them or buffers bodies, until an ``async``
    callback first holds a stream (`held_ever`: a held stream must answer its body
    callbacks with PAUSE, so from then on they are forwarded). Stream
    ``on_context_create`` is idle when, besides, there is exactly one root: streams are
    created lazily on their first callback anyway, and their root is that sole root.
    """
    key = (roots, held_ever)
    known = _idle_memo.get(key)
    if known is not None:
        return known
    idle = {"on_log", "on_done"}
    if not held_ever:
        idle.update(_BODY_CALLBACKS)
    for cls, http_context, tcp_context in roots:
        if cls.on_done is not _NOOP_ON_DONE:
            idle.discard("on_done")
        if cls.new_http_context is not _DEFAULT_NEW_HTTP or cls.new_tcp_context is not _DEFAULT_NEW_TCP:
            idle.clear()
            break
        http_class = http_context or HttpContext
        for name, flag in _BODY_CALLBACKS.items():
            if needs_body_callback(http_class, flag):
                idle.discard(name)
        for stream_class in (http_class, tcp_context):
            if stream_class is None:
                continue
            if stream_class.on_done is not _NOOP_ON_DONE:
                idle.discard("on_done")
            if stream_class.on_log not in _NOOP_ON_LOG:
                idle.discard("on_log")
    if len(roots) == 1 and "on_log" in idle:
        idle.add("on_context_create")
    result = _idle_memo[key] = frozenset(idle)
    return result


def leave_out_unused_callbacks() -> list[str]:
    """The callbacks a built module need not export, recorded for the running module.

    ``on_log``, ``on_done`` and the HTTP stream callbacks do nothing unless some context
    class overrides them, and Envoy does not call a callback the module does not
    export: leaving them out saves a call into the VM per request each (a filter that
    only rewrites responses no longer enters Python for the request's headers), and one
    per body chunk. A stream is created on its first callback anyway;
    ``on_request_headers`` stays when an HTTP context class has its own ``__init__`` or
    ``__new__``, or a root its own ``new_http_context``, so that this code still runs
    when the request starts. A body callback also stays for its buffering flag, and a
    trailers callback with its body callback. A stream held by its headers needs neither:
    Envoy keeps that direction's body and trailers from the filter until it resumes
    (a header PAUSE is StopAllIterationAndWatermark). The build calls this once the
    plugin is imported, when every class of the plugin exists; a class made later that
    needs a left-out callback is reported when it is made (`Context.__init_subclass__`).
    The TCP data callbacks follow the same rule: while ``on_new_connection`` holds a
    connection, Envoy reads nothing from it, and hands the filter the data once it resumes.
    """
    no_ops: dict[str, tuple[object, ...]] = {
        "on_log": _NOOP_ON_LOG,
        "on_done": (_NOOP_ON_DONE,),
        **{name: (getattr(HttpContext, name),) for name in HTTP_STREAM_CALLBACKS},
        **{name: (getattr(TcpContext, name),) for name in TCP_DATA_CALLBACKS},
    }
    classes: list[type[Context]] = []
    pending: list[type[Context]] = [Context]
    while pending:
        cls = pending.pop()
        classes.append(cls)
        pending.extend(cls.__subclasses__())
    unused = [name for name, kept in no_ops.items() if not any(overrides(cls, name, kept) for cls in classes)]
    plugin_code_makes_streams = any(stream_creation_runs_code(cls) for cls in classes)
    if "on_request_headers" in unused and plugin_code_makes_streams:
        # Streams are made on their first callback: the plugin's __init__ or context
        # factory keeps running when the request starts, not when a later callback comes.
        unused.remove("on_request_headers")
    http_classes = [cls for cls in classes if issubclass(cls, HttpContext)]
    for flag, (body, trailers) in BODY_AND_TRAILER_CALLBACKS.items():
        # The body callback also runs for a buffering flag, which a root's own context
        # factory may set per stream too; the trailers callback stays with the body
        # callback, since it ends a buffered body and must answer PAUSE while that
        # callback holds.
        needed = plugin_code_makes_streams or any(needs_body_callback(cls, flag) for cls in http_classes)
        if body in unused and needed:
            unused.remove(body)
        if trailers in unused and body not in unused:
            unused.remove(trailers)
    unexported_callbacks.update((name, no_ops[name]) for name in unused)
    return unused


_idle_memo: dict[tuple[tuple[tuple[type, type | None, type | None], ...], bool], frozenset[str]] = {}
"""`idle_callbacks_for` results: filled in the snapshot by `register()`, so creating the
VM's root costs a lookup."""


class Dispatcher:
    """Receives every ABI callback of one VM and routes it to plugin objects."""

    # Slots: the shim's header fast path writes these two on every request.
    __slots__ = ("epoch", "effective_context_id", "__dict__")

    idle_callbacks: frozenset[str] = frozenset()
    """Callbacks the registered plugins do not need (see docs/abi-seam.md): the shim
    answers them with their default without entering Python. Kept up to date as roots
    come and go by the dispatcher registered with the seam (`install_seam_dispatcher`)."""

    def __init__(self, plugins: Mapping[str, Registration] | None = None) -> None:
        """`plugins` defaults to the live process-wide registry filled by `register()`."""
        self._plugins = plugins
        self.epoch = 0
        """Incremented at every callback: caches of host data are valid for one epoch."""
        self.effective_context_id = 0
        """The context the host currently acts on."""
        self._contexts: dict[int, Context] = {}
        """Root and TCP contexts by id; HTTP streams are only in `_http_contexts` (one
        table to update per request). `_find` looks in both."""
        self._http_contexts: dict[int, HttpContext] = {}
        self._tcp_contexts: dict[int, TcpContext] = {}
        self._vm_key = id(self)
        self._roots: dict[int, RootContext] = {}
        self._pending: dict[int, int] = {}
        self._http_calls: dict[int, _Callout] = {}
        self._grpc_calls: dict[int, _Callout] = {}
        self._grpc_streams: dict[int, GrpcStream] = {}
        self._stream_waiters: dict[int, Task] = {}
        self._timers: dict[int, _Timers] = {}
        self.stream_table = self._http_contexts
        """Read by the shim (docs/abi-seam.md): it drops a finished stream from it
        itself, as the first lines of `on_delete` do, without entering Python."""
        self.header_fast_path: list[tuple[Any, ...] | None] = [None]
        """Read by the shim (docs/abi-seam.md): while one root serves every stream
        through the default factory, what the shim needs to run the per-request part
        of `on_request_headers` / `on_response_headers` itself (`_header_fast_path`)."""
        self._sole_root: RootContext | None = None
        """The only root while stream context creations are not forwarded: the root of
        every stream created then (`_root_for`)."""
        self._held_ever = False
        """Whether an ``async`` callback ever held a stream (see `_update_idle`)."""
        self._plugin_vm_configuration: bytes | None = None
        """The VM configuration meant for the plugin, when a deferred import (see
        `defer_plugin_import`) took the plugin's code out of the host's."""

    # -- helpers used by contexts ------------------------------------------------------

    def activate(self, context_id: int) -> None:
        """Make `context_id` the effective context (`proxy_set_effective_context`).

        Raises `StreamGone` when the host no longer knows the context, or this
        dispatcher has deleted it.
        """
        if context_id not in self._http_contexts and context_id not in self._contexts and context_id not in self._pending:
            raise StreamGone(f"context {context_id} is gone (the stream or connection ended)")
        try:
            _hostcalls.set_effective_context(context_id)
        except (NotFound, BadArgument) as error:
            raise StreamGone(
                f"context {context_id} is gone (the stream or connection ended): {error}"
            ) from None
        self.effective_context_id = context_id

    def instantiate(self, cls: type[C], context_id: int, root: RootContext | None) -> C:
        """Create a context whose id and root are set before its ``__init__`` runs."""
        context = cls.__new__(cls)
        context._bind(context_id, root, self)
        cls.__init__(context)
        return context

    def add_http_call(
        self,
        token: int,
        context: Context,
        upstream: str,
        callback: Callable[[HttpResponse], object] | None,
    ) -> None:
        self._http_calls[token] = _Callout(context, upstream, callback)

    def add_grpc_call(
        self,
        token: int,
        context: Context,
        upstream: str,
        service: str,
        method: str,
        callback: Callable[[GrpcResponse], object] | None,
    ) -> None:
        self._grpc_calls[token] = _Callout(context, upstream, callback, service, method)

    def add_grpc_stream(self, stream: GrpcStream, context: Context) -> None:
        self._grpc_streams[stream.token] = stream

    def forget_grpc(self, token: int) -> None:
        self._grpc_streams.pop(token, None)
        self._grpc_calls.pop(token, None)
        waiter = self._stream_waiters.pop(token, None)
        if waiter is not None:
            self._resume(waiter, None)

    def set_user_tick_period(self, root: RootContext, milliseconds: int) -> None:
        """The root's own tick period; sleepers may make the host tick more often."""
        timers = self._timers.get(root.id)
        if timers is None:
            timers = self._timers[root.id] = _Timers()
        timers.user_period_ms = max(0, milliseconds)
        now = _hostcalls.get_current_time_nanoseconds()
        timers.next_user_tick_ns = now + timers.user_period_ms * 1_000_000
        self._program_ticks(timers, now)

    # -- context lifecycle -------------------------------------------------------------

    def on_context_create(self, context_id: int, parent_context_id: int) -> None:
        self.epoch += 1
        self.effective_context_id = context_id
        if parent_context_id:
            # Created on its first callback, when we know if it is HTTP or TCP.
            self._pending[context_id] = parent_context_id
            return
        self._create_root(context_id)

    def _create_root(self, context_id: int) -> RootContext:
        global _deferred_import
        if _deferred_import is not None and self is _seam_dispatcher:
            load, _deferred_import = _deferred_import, None
            try:
                self._plugin_vm_configuration = load()
            except BaseException as exc:
                self._log_exception(exc, "importing the plugin")  # then no plugin is registered
        plugins = self._plugins if self._plugins is not None else _registry
        root_id: str | None = None  # one plugin serves every root_id: read it when asked
        if len(plugins) == 1:
            registration: Registration | None = next(iter(plugins.values()))
        else:
            try:
                root_id = to_str(_hostcalls.get_property(b"plugin_root_id"))
            except HostcallError:
                root_id = ""
            registration = plugins.get(root_id)
        root: RootContext
        if registration is None:
            known = ", ".join(repr(r) for r in plugins) or "none"
            self._log(
                LogLevel.ERROR,
                f"no plugin registered for root_id {root_id!r} (registered: {known}); "
                "call proxywasm.register() in plugin.py",
            )
            root = self.instantiate(_UnknownPlugin, context_id, None)
        else:
            try:
                root = self.instantiate(registration.root_class, context_id, None)
            except BaseException as exc:
                self._log_exception(exc, f"creating {registration.root_class.__qualname__}")
                root = self.instantiate(_UnknownPlugin, context_id, None)
            if registration.fail_open is not None:
                root.fail_open = registration.fail_open
        root._root_id = root_id
        self._roots[context_id] = root
        self._contexts[context_id] = root
        self._update_idle()
        return root

    def _update_idle(self) -> None:
        """Tell the shim which callbacks no live root needs (see `idle_callbacks_for`)."""
        roots = self._roots.values()
        idle = idle_callbacks_for(tuple((type(r), r.http_context, r.tcp_context) for r in roots), self._held_ever)
        if "on_context_create" in idle:  # implies exactly one root
            self._sole_root = next(iter(roots))
        elif self._sole_root is not None and self._sole_root._deleted:
            self._sole_root = None
        self.header_fast_path[0] = self._header_fast_path(idle)
        self._publish_idle(idle)

    def _header_fast_path(self, idle: frozenset[str]) -> tuple[Any, ...] | None:
        """The shim's fast path for header callbacks, valid while `idle` is published.

        It exists while stream context creations are not forwarded (one root) and the
        root uses the default `new_http_context`; the shim then does what
        `on_request_headers` / `on_response_headers` do, creating contexts of a class
        without `__init__` / `__new__` as `_bind` would, and calls back into this
        dispatcher for everything else.
        The layout is the shim's (callbacks.c, docs/abi-seam.md).
        """
        root = self._sole_root
        if "on_context_create" not in idle or root is None:  # idle implies the default factories
            return None
        cls = root.http_context or HttpContext
        return (root, cls, not creation_runs_code(cls), HostHeaders, _REQUEST_HEADERS, _RESPONSE_HEADERS, NOT_HELD,
                self._pending, _current_vm, self._vm_key, _REQUEST, _RESPONSE, not self._held_ever)

    def expect_registered_roots(self) -> None:
        """Publish the idle callbacks for one root per registered plugin, before any exists.

        Called by `register()`, so the snapshot already holds the set that the VM's
        root will produce: creating that root then changes nothing in the shim.
        """
        plugins = self._plugins if self._plugins is not None else _registry
        if self._roots:
            return
        roots = tuple((r.root_class, r.root_class.http_context, r.root_class.tcp_context) for r in plugins.values())
        self._publish_idle(idle_callbacks_for(roots, self._held_ever))

    def _publish_idle(self, idle: frozenset[str]) -> None:
        if idle != self.idle_callbacks:
            self.idle_callbacks = idle
            if self is _seam_dispatcher:
                _abi.set_dispatcher(self)

    def _root_for(self, context_id: int) -> RootContext:
        root = self._roots.get(self._pending.pop(context_id, 0))
        if root is None:
            if len(self._roots) == 1:
                root = next(iter(self._roots.values()))
            elif self._sole_root is not None and not self._sole_root._deleted:
                root = self._sole_root  # created while its creation was not forwarded
            else:
                root = self._create_root(0)
        return root

    def _create_http(self, context_id: int) -> HttpContext:
        root = self._sole_root  # set while stream creations are not forwarded (one root)
        if root is None or root._deleted or self._pending:
            root = self._root_for(context_id)
        context: HttpContext | None
        try:
            context = root.new_http_context(context_id)
        except BaseException as exc:
            self._log_exception(exc, f"creating the HTTP context of {type(root).__qualname__}")
            context = None
        if context is None:
            context = self.instantiate(HttpContext, context_id, root)
        elif not getattr(context, "_bound", False):
            context._bind(context_id, root, self)
        self._http_contexts[context_id] = context
        return context

    def _create_tcp(self, context_id: int) -> TcpContext:
        root = self._root_for(context_id)
        context: TcpContext | None
        try:
            context = root.new_tcp_context(context_id)
        except BaseException as exc:
            self._log_exception(exc, f"{type(root).__qualname__}.new_tcp_context")
            context = None
        if context is None:
            context = self.instantiate(TcpContext, context_id, root)
        elif not getattr(context, "_bound", False):
            context._bind(context_id, root, self)
        self._contexts[context_id] = self._tcp_contexts[context_id] = context
        return context

    def _find(self, context_id: int) -> Context | None:
        """The context with this id, of any kind, or None."""
        context: Context | None = self._http_contexts.get(context_id)
        return context if context is not None else self._contexts.get(context_id)

    def _existing(self, context_id: int) -> Context | None:
        """The context, materializing a pending one the way its root prefers."""
        context = self._find(context_id)
        if context is None and context_id in self._pending:
            root = self._roots.get(self._pending[context_id])
            if root is not None and root.tcp_context is not None and root.http_context is None:
                return self._create_tcp(context_id)
            return self._create_http(context_id)
        return context

    def on_done(self, context_id: int) -> bool:
        self.epoch += 1
        self.effective_context_id = context_id
        _current_vm[0] = self._vm_key
        context = self._find(context_id)
        if context is None or type(context).on_done is _NOOP_ON_DONE:
            return True
        try:
            return bool(context.on_done())
        except BaseException as exc:
            self._log_exception(exc, f"{type(context).__qualname__}.on_done")
            return True

    def on_log(self, context_id: int) -> None:
        self.epoch += 1
        self.effective_context_id = context_id
        _current_vm[0] = self._vm_key
        context: Context | None = self._http_contexts.get(context_id)
        if context is None:
            context = self._existing(context_id)
        if isinstance(context, (HttpContext, TcpContext)) and type(context).on_log not in _NOOP_ON_LOG:
            try:
                context.on_log()
            except BaseException as exc:
                self._log_exception(exc, f"{type(context).__qualname__}.on_log")

    def on_delete(self, context_id: int) -> None:
        stream = self._http_contexts.pop(context_id, None)
        if stream is not None and not stream._tasks:  # the per-request case, kept short
            stream._deleted = True
            return
        self.epoch += 1
        self.effective_context_id = context_id
        context = stream if stream is not None else self._contexts.pop(context_id, None)
        if context is None:
            self._pending.pop(context_id, None)
            return
        context._deleted = True
        if stream is None and self._tcp_contexts.pop(context_id, None) is None:
            if self._roots.pop(context_id, None) is not None:
                self._update_idle()
            self._timers.pop(context_id, None)
        tasks = context._tasks
        if tasks:
            context._tasks = None
            # The plugin's `finally` blocks run now; what they do with the deleted
            # context raises StreamGone (no context is effective, so it is checked).
            self.effective_context_id = 0
            for task in tasks:
                self._close_task(task)

    # -- root callbacks ----------------------------------------------------------------

    def _root(self, context_id: int) -> RootContext:
        root = self._roots.get(context_id)
        return root if root is not None else self._create_root(context_id)

    def on_vm_start(self, context_id: int, vm_configuration_size: int) -> bool:
        self._enter(context_id)
        root = self._root(context_id)
        _reseed_random()
        try:
            data = self._plugin_vm_configuration
            if data is None:
                data = self._read_buffer(BufferType.VM_CONFIGURATION, vm_configuration_size)
            return self._run_bool(root, root.on_vm_start(data))
        except BaseException as exc:
            self._log_exception(exc, f"{type(root).__qualname__}.on_vm_start")
            return False

    def on_configure(self, context_id: int, configuration_size: int) -> bool:
        self._enter(context_id)
        root = self._root(context_id)
        try:
            data = self._read_buffer(BufferType.PLUGIN_CONFIGURATION, configuration_size)
            root.configuration = data
            return self._run_bool(root, root.on_configure(data))
        except ConfigError as exc:
            self._log(LogLevel.ERROR, f"{plugin_label(root)}: {exc}")
            return False
        except BaseException as exc:
            self._log_exception(exc, f"{type(root).__qualname__}.on_configure")
            return False

    def _run_bool(self, root: RootContext, result: object) -> bool:
        if isinstance(result, bool) or result is None:
            return result is not False
        if hasattr(result, "send"):  # an async callback: runs on; the start succeeded
            self._start(root, result, None)  # type: ignore[arg-type]
            return True
        if isinstance(result, int):
            return result != 0
        raise TypeError(f"returned {_describe(result)}; return True, False or None")

    def on_tick(self, context_id: int) -> None:
        self._enter(context_id)
        root = self._root(context_id)
        timers = self._timers.get(context_id)
        if timers is None or not timers.sleepers:
            if timers is not None and timers.host_period_ms != timers.user_period_ms:
                # The tick the last sleepers' period was set for: back to the root's own.
                now = _hostcalls.get_current_time_nanoseconds()
                timers.next_user_tick_ns = now + timers.user_period_ms * 1_000_000
                self._program_ticks(timers, now)
            self._user_tick(root)
            return
        now = _hostcalls.get_current_time_nanoseconds()
        sleepers = timers.sleepers
        while sleepers and sleepers[0][0] <= now:
            task = heappop(sleepers)[2]
            self._resume(task, None)
        if timers.user_period_ms and now >= timers.next_user_tick_ns:
            timers.next_user_tick_ns = now + timers.user_period_ms * 1_000_000
            if self.effective_context_id != context_id:
                self.activate(context_id)
            self._user_tick(root)
        if context_id in self._timers:
            self._program_ticks(timers, now)

    def _user_tick(self, root: RootContext) -> None:
        try:
            result = root.on_tick()
            if result is not None and hasattr(result, "send"):
                self._start(root, result, None)
        except BaseException as exc:
            self._log_exception(exc, f"{type(root).__qualname__}.on_tick")

    def on_queue_ready(self, context_id: int, queue_id: int) -> None:
        self._enter(context_id)
        root = self._root(context_id)
        try:
            result = root.on_queue_ready(queue_id)
            if result is not None and hasattr(result, "send"):
                self._start(root, result, None)
        except BaseException as exc:
            self._log_exception(exc, f"{type(root).__qualname__}.on_queue_ready")

    def on_foreign_function(self, context_id: int, function_id: int, arguments_size: int) -> None:
        self._enter(context_id)
        root = self._root(context_id)
        try:
            data = self._read_buffer(BufferType.CALL_DATA, arguments_size)
            result = root.on_foreign_function(function_id, data)
            if result is not None and hasattr(result, "send"):
                self._start(root, result, None)
        except BaseException as exc:
            self._log_exception(exc, f"{type(root).__qualname__}.on_foreign_function")

    # -- HTTP callbacks (the hot path) -------------------------------------------------

    def on_request_headers(self, context_id: int, num_headers: int, end_of_stream: int) -> int:
        # In a built module the shim usually does this in C (header_fast_path).
        self._enter(context_id)
        context = self._http_contexts.get(context_id)
        if context is None:
            context = self._create_http(context_id)
        try:
            result = context.on_request_headers(context.request_headers, end_of_stream != 0)
        except BaseException as exc:
            return self._failed(context, exc, _REQUEST, "on_request_headers")
        return self._action(context, result, _REQUEST)

    def on_response_headers(self, context_id: int, num_headers: int, end_of_stream: int) -> int:
        # In a built module the shim usually does this in C (header_fast_path).
        self._enter(context_id)
        context = self._http_contexts.get(context_id)
        if context is None:
            context = self._create_http(context_id)
        context._response_started = True
        try:
            result = context.on_response_headers(context.response_headers, end_of_stream != 0)
        except BaseException as exc:
            return self._failed(context, exc, _RESPONSE, "on_response_headers")
        return self._action(context, result, _RESPONSE)

    def on_request_body(self, context_id: int, body_size: int, end_of_stream: int) -> int:
        self._enter(context_id)
        context = self._http(context_id)
        if context.buffer_request_body and not end_of_stream:
            return _PAUSE
        body = Body(BufferType.HTTP_REQUEST_BODY, body_size, self, context_id)
        try:
            result = context.on_request_body(body, end_of_stream != 0)
        except BaseException as exc:
            return self._failed(context, exc, _REQUEST, "on_request_body")
        return self._action(context, result, _REQUEST)

    def on_response_body(self, context_id: int, body_size: int, end_of_stream: int) -> int:
        self._enter(context_id)
        context = self._http(context_id)
        if context.buffer_response_body and not end_of_stream:
            return _PAUSE
        body = Body(BufferType.HTTP_RESPONSE_BODY, body_size, self, context_id)
        try:
            result = context.on_response_body(body, end_of_stream != 0)
        except BaseException as exc:
            return self._failed(context, exc, _RESPONSE, "on_response_body")
        return self._action(context, result, _RESPONSE)

    def on_request_trailers(self, context_id: int, num_trailers: int) -> int:
        self._enter(context_id)
        context = self._http(context_id)
        try:
            if context.buffer_request_body:
                # Trailers end the body: hand the buffered body over first.
                result = _then(context.on_request_body(context.request_body(), True),
                               lambda: context.on_request_trailers(context.request_trailers))
            else:
                result = context.on_request_trailers(context.request_trailers)
        except BaseException as exc:
            return self._failed(context, exc, _REQUEST, "on_request_trailers")
        return self._action(context, result, _REQUEST)

    def on_response_trailers(self, context_id: int, num_trailers: int) -> int:
        self._enter(context_id)
        context = self._http(context_id)
        try:
            if context.buffer_response_body:
                result = _then(context.on_response_body(context.response_body(), True),
                               lambda: context.on_response_trailers(context.response_trailers))
            else:
                result = context.on_response_trailers(context.response_trailers)
        except BaseException as exc:
            return self._failed(context, exc, _RESPONSE, "on_response_trailers")
        return self._action(context, result, _RESPONSE)

    def _http(self, context_id: int) -> HttpContext:
        context = self._http_contexts.get(context_id)
        if context is None:
            return self._create_http(context_id)
        return context

    # -- TCP callbacks -----------------------------------------------------------------

    def _tcp(self, context_id: int) -> TcpContext:
        context = self._tcp_contexts.get(context_id)
        if context is None:
            return self._create_tcp(context_id)
        return context

    def on_new_connection(self, context_id: int) -> int:
        self._enter(context_id)
        context = self._tcp(context_id)
        try:
            result = context.on_new_connection()
        except BaseException as exc:
            return self._failed(context, exc, _DOWNSTREAM, "on_new_connection")
        return self._action(context, result, _DOWNSTREAM)

    def on_downstream_data(self, context_id: int, data_size: int, end_of_stream: int) -> int:
        self._enter(context_id)
        context = self._tcp(context_id)
        data = Body(BufferType.DOWNSTREAM_DATA, data_size, self, context_id)
        try:
            result = context.on_downstream_data(data, end_of_stream != 0)
        except BaseException as exc:
            return self._failed(context, exc, _DOWNSTREAM, "on_downstream_data")
        return self._action(context, result, _DOWNSTREAM)

    def on_upstream_data(self, context_id: int, data_size: int, end_of_stream: int) -> int:
        self._enter(context_id)
        context = self._tcp(context_id)
        data = Body(BufferType.UPSTREAM_DATA, data_size, self, context_id)
        try:
            result = context.on_upstream_data(data, end_of_stream != 0)
        except BaseException as exc:
            return self._failed(context, exc, _UPSTREAM, "on_upstream_data")
        return self._action(context, result, _UPSTREAM)

    def on_downstream_connection_close(self, context_id: int, peer_type: int) -> None:
        self._enter(context_id)
        context = self._tcp(context_id)
        try:
            context.on_downstream_close(_peer(peer_type))
        except BaseException as exc:
            self._log_exception(exc, f"{type(context).__qualname__}.on_downstream_close")

    def on_upstream_connection_close(self, context_id: int, peer_type: int) -> None:
        self._enter(context_id)
        context = self._tcp(context_id)
        try:
            context.on_upstream_close(_peer(peer_type))
        except BaseException as exc:
            self._log_exception(exc, f"{type(context).__qualname__}.on_upstream_close")

    # -- callout callbacks -------------------------------------------------------------

    def on_http_call_response(
        self, context_id: int, token: int, num_headers: int, body_size: int, num_trailers: int
    ) -> None:
        self._enter(context_id)
        callout = self._http_calls.pop(token, None)
        if callout is None or callout.context._deleted:
            return
        try:
            headers = self._read_map(MapType.HTTP_CALL_RESPONSE_HEADERS, num_headers)
            body = self._read_buffer(BufferType.HTTP_CALL_RESPONSE_BODY, body_size)
            trailers = self._read_map(MapType.HTTP_CALL_RESPONSE_TRAILERS, num_trailers)
        except HostcallError as exc:
            self._log_exception(exc, f"reading the response of HTTP call {token}")
            headers, body, trailers = Headers(), b"", Headers()
        response = HttpResponse(callout.upstream, headers, body, trailers)
        if callout.task is not None:
            error: Exception | None = None
            if response.failed:
                reason = (
                    f"Envoy answered {response.status}: {response.text()}"
                    if response.headers
                    else "no response (reset, no healthy upstream, or response too large)"
                )
                error = HttpCallFailed(callout.upstream, reason)
            elif response.timed_out:
                error = HttpCallTimeout(callout.upstream, "timed out")
            self._resume(callout.task, response, error)
        elif callout.callback is not None:
            self._run_callback(callout.context, callout.callback, response, "HTTP call callback")

    def _live_grpc_stream(self, token: int, cancel: bool = True) -> GrpcStream | None:
        """The open gRPC stream `token`, or None. A stream whose context is gone is
        dropped, and cancelled unless it is closing: its late events are ignored, as a
        late callout answer is.
        """
        stream = self._grpc_streams.get(token)
        if stream is not None and self._find(stream._context_id) is None:
            stream.closed = True
            self.forget_grpc(token)
            if cancel:
                try:
                    _hostcalls.grpc_cancel(token)  # the host calls us on the stream's context
                except HostcallError:
                    pass  # it has ended already
            return None
        return stream

    def on_grpc_receive_initial_metadata(self, context_id: int, token: int, num_headers: int) -> None:
        self._enter(context_id)
        stream = self._live_grpc_stream(token)
        if stream is None:
            return
        stream.initial_metadata = self._read_map(MapType.GRPC_RECEIVE_INITIAL_METADATA, num_headers)
        if stream.handler is not None:
            self._run_callback(
                self._find(context_id),
                lambda m: stream.handler.on_initial_metadata(stream, m),  # type: ignore[union-attr]
                stream.initial_metadata,
                "gRPC stream on_initial_metadata",
            )

    def on_grpc_receive_trailing_metadata(self, context_id: int, token: int, num_trailers: int) -> None:
        self._enter(context_id)
        stream = self._live_grpc_stream(token)
        if stream is None:
            return
        stream.trailing_metadata = self._read_map(MapType.GRPC_RECEIVE_TRAILING_METADATA, num_trailers)
        if stream.handler is not None:
            self._run_callback(
                self._find(context_id),
                lambda m: stream.handler.on_trailing_metadata(stream, m),  # type: ignore[union-attr]
                stream.trailing_metadata,
                "gRPC stream on_trailing_metadata",
            )

    def on_grpc_receive(self, context_id: int, token: int, message_size: int) -> None:
        self._enter(context_id)
        message = self._read_buffer(BufferType.GRPC_RECEIVE_BUFFER, message_size)
        call = self._grpc_calls.pop(token, None)
        if call is not None:  # a unary call: its one reply
            if call.context._deleted:
                return
            if call.task is not None:
                self._resume(call.task, message)
            elif call.callback is not None:
                self._run_callback(call.context, call.callback, GrpcResponse(0, message), "gRPC call callback")
            return
        stream = self._live_grpc_stream(token)
        if stream is None:
            return
        stream._inbox.append(message)
        if stream.handler is not None:
            self._run_callback(
                self._find(context_id),
                lambda m: stream.handler.on_message(stream, m),  # type: ignore[union-attr]
                message,
                "gRPC stream on_message",
            )
        waiter = self._stream_waiters.pop(token, None)
        if waiter is not None:
            self._resume(waiter, None)

    def on_grpc_close(self, context_id: int, token: int, status_code: int) -> None:
        self._enter(context_id)
        try:
            status_message = to_str(_hostcalls.get_status()[1])
        except HostcallError:
            status_message = ""
        call = self._grpc_calls.pop(token, None)
        if call is not None:  # a unary call that failed
            if call.context._deleted:
                return
            response = GrpcResponse(status_code or 2, b"", status_message)
            if call.task is not None:
                error_class = GrpcCallTimeout if response.timed_out else GrpcCallError
                error = error_class(call.upstream, call.service, call.method, status_code, status_message)
                self._resume(call.task, None, error)
            elif call.callback is not None:
                self._run_callback(call.context, call.callback, response, "gRPC call callback")
            return
        stream = self._live_grpc_stream(token, cancel=False)
        self._grpc_streams.pop(token, None)
        if stream is None:
            return
        stream.closed = True
        stream.status = status_code
        stream.status_message = status_message
        if stream.handler is not None:
            self._run_callback(
                self._find(context_id),
                lambda s: stream.handler.on_close(stream, s, status_message),  # type: ignore[union-attr]
                status_code,
                "gRPC stream on_close",
            )
        waiter = self._stream_waiters.pop(token, None)
        if waiter is not None:
            self._resume(waiter, None)

    # -- the coroutine driver ------------------------------------------------------------

    def _start(self, context: Context, coroutine: Coroutine[Any, Any, Any], stream: StreamType | None) -> int:
        """Run an ``async`` callback until it first suspends; PAUSE its stream if it does."""
        task = Task(coroutine, context, stream)
        try:
            finished, result = self._advance(task, None, None)
        except BaseException as exc:
            if stream is None:
                self._callback_failed(context, exc, "async callback")
                return _CONTINUE
            return self._failed(context, exc, stream, getattr(coroutine, "__name__", "callback"))
        if finished:
            if stream is None:
                return _CONTINUE
            return self._action(context, result, stream)
        if context._tasks is None:
            context._tasks = []
        context._tasks.append(task)
        if stream is not None:
            if not self._held_ever:
                self._held_ever = True
                self._update_idle()  # body callbacks of held streams must answer PAUSE
            held = context._held  # type: ignore[attr-defined]
            if held.__class__ is tuple:
                held = context._held = [0, 0, 0, 0]  # type: ignore[attr-defined]
                context._wants_pause = [False, False, False, False]  # type: ignore[attr-defined]
            held[stream] += 1
            return _PAUSE
        return _CONTINUE

    def _advance(self, task: Task, value: object, error: BaseException | None) -> tuple[bool, Any]:
        """Drive `task` until it waits for the host (False, None) or ends (True, result)."""
        coroutine = task.coroutine
        while True:
            try:
                if error is None:
                    request = coroutine.send(value)
                else:
                    request = coroutine.throw(error)
            except StopIteration as stop:
                return True, stop.value
            error = self._file(task, request)
            if error is None:
                return False, None
            value = None

    def _file(self, task: Task, request: object) -> Exception | None:
        """Record what a suspended task waits for; an exception to throw if impossible."""
        if not isinstance(request, Suspend):
            return TypeError(
                f"cannot await {request!r} in a proxy-wasm callback: only the SDK's "
                "awaitables (http_call, grpc_call, GrpcStream.receive, sleep) can be awaited"
            )
        kind = request.kind
        key = request.key
        if kind == WaitKind.HTTP_CALL or kind == WaitKind.GRPC_CALL:
            table = self._http_calls if kind == WaitKind.HTTP_CALL else self._grpc_calls
            callout = table.get(key)
            if callout is None:
                return RuntimeError(f"no pending call with token {key}")
            callout.task = task
        elif kind == WaitKind.GRPC_STREAM:
            if key not in self._grpc_streams:
                return RuntimeError(f"no open gRPC stream with token {key}")
            self._stream_waiters[key] = task
        elif kind == WaitKind.SLEEP:
            self._add_sleeper(task, key)
        else:
            return RuntimeError(f"unknown wait kind {kind}")
        return None

    def _resume(self, task: Task, value: object, error: BaseException | None = None) -> None:
        """Continue a suspended task with `value` (or by raising `error` in it)."""
        context = task.context
        if context._deleted:
            return
        if self.effective_context_id != context.id:
            try:
                self.activate(context.id)
            except StreamGone:
                self._forget_task(task)
                self._close_task(task)
                return
        try:
            finished, result = self._advance(task, value, error)
        except BaseException as exc:
            self._forget_task(task)
            self._task_failed(task, exc)
            return
        if finished:
            self._forget_task(task)
            self._task_finished(task, result)

    def _close_task(self, task: Task) -> None:
        """End a task whose context is gone: its `finally` blocks run, and whatever they
        raise is logged (it must not escape into the host's callback)."""
        try:
            task.coroutine.close()
        except BaseException as exc:
            context = task.context
            self._log_exception(exc, f"{type(context).__qualname__} async callback ended with context {context.id}")

    def _forget_task(self, task: Task) -> None:
        tasks = task.context._tasks
        if tasks is not None and task in tasks:
            tasks.remove(task)

    def _task_finished(self, task: Task, result: object) -> None:
        stream = task.stream
        if stream is None:
            return
        context = task.context
        held: list[int] = context._held  # type: ignore[attr-defined]
        held[stream] -= 1
        wants_pause: list[bool] = context._wants_pause  # type: ignore[attr-defined]
        if result is not None and result == _PAUSE:
            wants_pause[stream] = True
            return
        if held[stream] == 0 and not wants_pause[stream] and not context._local_reply:  # type: ignore[attr-defined]
            context._continue(stream)

    def _task_failed(self, task: Task, exc: BaseException) -> None:
        context = task.context
        stream = task.stream
        if stream is None:  # a callout or root callback: as if it had failed synchronously
            self._callback_failed(context, exc, f"async callback (context {context.id})")
            return
        self._log_exception(exc, f"{type(context).__qualname__} async callback (context {context.id})")
        context._held[stream] -= 1  # type: ignore[attr-defined]
        if context.fail_open:
            self._task_finished_open(task)
        else:
            self._fail_closed(context, stream)

    def _task_finished_open(self, task: Task) -> None:
        context = task.context
        stream = task.stream
        assert stream is not None
        if context._held[stream] == 0 and not context._local_reply:  # type: ignore[attr-defined]
            context._continue(stream)

    def _while_held(self, context: Context, result: int, stream: StreamType) -> int:
        """A callback on a direction an ``async`` callback still holds: stay paused."""
        context._wants_pause[stream] = result == _PAUSE  # type: ignore[attr-defined]
        return _PAUSE

    def _action(self, context: Context, result: object, stream: StreamType) -> int:
        if result is None:
            result = _CONTINUE
        elif not isinstance(result, int):
            if not hasattr(result, "send"):
                return self._failed(context, _not_an_action(result), stream, "callback")
            return self._start(context, result, stream)  # type: ignore[arg-type]
        elif result != _CONTINUE and result != _PAUSE:  # the host would hold the stream forever
            return self._failed(context, _not_an_action(result), stream, "callback")
        if context._held[stream]:  # type: ignore[attr-defined]
            return self._while_held(context, result, stream)
        return result

    # -- timers ------------------------------------------------------------------------

    def _add_sleeper(self, task: Task, milliseconds: int) -> None:
        root = task.context.root
        timers = self._timers.get(root.id)
        if timers is None:
            timers = self._timers[root.id] = _Timers()
        now = _hostcalls.get_current_time_nanoseconds()
        if timers.user_period_ms and not timers.sleepers and timers.next_user_tick_ns <= now:
            # Nobody slept since then, so the host ticked at the root's own period from
            # next_user_tick_ns on: the root's next tick is the next of that series
            # (never further away, or frequent sleepers would starve on_tick).
            period_ns = timers.user_period_ms * 1_000_000
            behind = now - timers.next_user_tick_ns
            timers.next_user_tick_ns += (behind // period_ns + 1) * period_ns
        timers.sequence += 1
        heappush(timers.sleepers, (now + milliseconds * 1_000_000, timers.sequence, task))
        self._program_ticks(timers, now)

    def _program_ticks(self, timers: _Timers, now: int) -> None:
        """Set the host tick period to reach the next deadline (sleeper or user tick)."""
        candidates = []
        if timers.sleepers:
            candidates.append(timers.sleepers[0][0] - now)
        if timers.user_period_ms:
            candidates.append(timers.next_user_tick_ns - now)
        period = max(1, -(-min(candidates) // 1_000_000)) if candidates else 0
        if period != timers.host_period_ms:
            _hostcalls.set_tick_period_milliseconds(period)
            timers.host_period_ms = period

    # -- failure behaviour ---------------------------------------------------------------

    def _failed(self, context: Context, exc: BaseException, stream: StreamType, callback: str) -> int:
        """An exception escaped a stream callback: log it, then fail open or closed.

        Fail closed (the default): an HTTP stream is answered with a 500 local response
        (details ``python_plugin_exception``) or reset if the answer cannot be sent any
        more; a TCP connection is closed. Either way the callback returns PAUSE.
        Fail open: the callback returns CONTINUE, as if nothing happened.
        """
        self._log_exception(exc, f"{type(context).__qualname__}.{callback} (context {context.id})")
        if context.fail_open:
            return _CONTINUE
        self._fail_closed(context, stream)
        return _PAUSE

    def _fail_closed(self, context: Context, stream: StreamType) -> None:
        try:
            if isinstance(context, HttpContext):
                if not context._local_reply:
                    try:
                        context.send_local_response(
                            500, b"plugin error\n", details=FAILURE_DETAILS
                        )
                    except HostcallError:
                        context._close(stream)
            else:
                context._close(_DOWNSTREAM)
        except BaseException as exc:  # never let failure handling fail the VM
            self._log_exception(exc, "failing closed")

    def _run_callback(
        self, context: Context | None, callback: Callable[[Any], object], argument: object, what: str
    ) -> None:
        try:
            result = callback(argument)
            if result is not None and hasattr(result, "send") and context is not None:
                self._start(context, result, None)  # type: ignore[arg-type]
        except BaseException as exc:
            self._callback_failed(context, exc, what)

    def _callback_failed(self, context: Context | None, exc: BaseException, what: str) -> None:
        """An exception escaped a callback that holds no stream itself (a callout's, a
        gRPC stream handler's, a root's), at once or after an ``await``: log it; an HTTP
        stream's callback then fails its stream closed, unless the plugin fails open."""
        name = type(context).__qualname__ if context is not None else "plugin"
        self._log_exception(exc, f"{name} {what}")
        if context is not None and not context.fail_open and isinstance(context, HttpContext):
            self._fail_closed(context, _RESPONSE if context._response_started else _REQUEST)

    # -- small helpers -------------------------------------------------------------------

    def _enter(self, context_id: int) -> None:
        self.epoch += 1
        self.effective_context_id = context_id
        _current_vm[0] = self._vm_key

    def _read_buffer(self, buffer_type: BufferType, size: int) -> bytes:
        if size <= 0:
            return b""
        return _hostcalls.get_buffer_bytes(buffer_type, 0, size)

    def _read_map(self, map_type: MapType, count: int) -> Headers:
        headers = Headers()
        if count > 0:
            try:
                headers._pairs = deserialize_header_map_bytes(_hostcalls.get_header_map_pairs(map_type))
            except NotFound:
                pass
        return headers

    def _log(self, level: LogLevel, message: str) -> None:
        try:
            _hostcalls.log(level, message.encode("utf-8", "replace"))
        except HostcallError:
            pass

    def _log_exception(self, exc: BaseException, where: str) -> None:
        if _OUTSIDE_A_VM and isinstance(exc, KeyboardInterrupt):
            raise exc  # the user's Ctrl-C in a native test run, not a plugin failing
        if isinstance(exc, MemoryError):
            _release_frames(exc)
        try:
            text = format_exception(exc)
        except BaseException:  # out of memory again, say: the type at least
            text = f"{type(exc).__qualname__} (its traceback could not be formatted)"
        self._log(LogLevel.ERROR, f"exception in {where}:\n{text}")


_OUTSIDE_A_VM = sys.platform != "wasi"
"""Whether the SDK runs natively (the emulator's native mode), where a KeyboardInterrupt
is a real Ctrl-C; in a VM nothing sends one, so it is only a plugin raising it."""


def _release_frames(exc: BaseException) -> None:
    """Free the locals of the finished frames in `exc`'s traceback (what ran out of
    memory usually still holds it); the traceback keeps their file names and lines."""
    tb = exc.__traceback__
    while tb is not None:
        try:
            tb.tb_frame.clear()
        except RuntimeError:  # a frame still running: the dispatcher's own
            pass
        tb = tb.tb_next


def _describe(value: object) -> str:
    """`value` for an error message: its type, and its repr when short."""
    try:
        text = repr(value)
    except BaseException:  # a failing __repr__, an int too long to print
        text = ""
    if not text or len(text) > 80:
        return f"a {type(value).__qualname__}"
    return f"{text} ({type(value).__qualname__})"


def _not_an_action(result: object) -> TypeError:
    return TypeError(f"a stream callback returned {_describe(result)}; return Action.CONTINUE, Action.PAUSE, "
                     "None, or a coroutine (async def)")


def _then(first: object, second: Callable[[], object]) -> object:
    """The result of callback `first`, or when it lets the stream go on, of calling
    `second`: a buffered body's callback, then the trailers callback. When either is
    ``async``, a coroutine that awaits them in that order."""
    if first is None or first is _CONTINUE:
        return second()
    if isinstance(first, int):
        return first
    both = _await_then(first, second)
    both.__name__ = getattr(first, "__name__", "callback")  # type: ignore[attr-defined]  # named in failure logs
    return both


async def _await_then(first: Any, second: Callable[[], object]) -> object:
    result = await first
    if result is not None and result != _CONTINUE:
        return result
    result = second()
    if result is not None and not isinstance(result, int):
        result = await result  # type: ignore[misc]
    return result


def _peer(value: int) -> PeerType:
    try:
        return PeerType(value)
    except ValueError:
        return PeerType.UNKNOWN
