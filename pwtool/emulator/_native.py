"""Native mode: run a plugin's Python source in the test's interpreter.

A router module is installed as ``sys.modules["_proxywasm"]``; its functions forward
to the hostcalls of whichever VM is running a callback, so several native VMs can
coexist. The plugin (and with it the SDK, which calls ``set_dispatcher``) is imported
once per load; each VM gets its own dispatcher instance (``type(dispatcher)()``).
pdb, coverage and tracebacks work as for any Python code.

As for a build, plugin.toml is read with ``pwtool.build.metadata.load_metadata`` and
its ``[config]`` reaches the SDK as the packaged default configuration (module
``_pwtool_plugin``); a plugin without plugin.toml (which a build refuses) still loads
natively, with no packaged configuration. Each load imports the plugin's sibling
modules afresh and sees only its own (:mod:`._native_scope`). A plugin that cannot be
imported is a :class:`ModuleLoadError` naming the file, the line and the fix.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import traceback
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._codec import decode_pairs
from ._hostcalls import SEAM_FUNCTIONS, Hostcalls
from ._native_scope import PluginScope, installed_scope, metadata_module
from ._types import HostcallError, ModuleLoadError, Status

if TYPE_CHECKING:
    from pwtool.build.metadata import PluginMetadata

    from ._host import VM

__all__ = ["NativeBackend", "install_router", "router"]

_SAFE_DEFAULTS = {"on_vm_start": 0, "on_configure": 0, "on_done": 1}


def _unsafe_text(value: Any) -> bool:
    """Whether a header name or value holds CR, LF or NUL, which the runtime's C shim
    refuses (build/runtime/shim/header_cache.c): Envoy would pass them on."""
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return isinstance(data, (bytes, bytearray)) and (b"\r" in data or b"\n" in data or b"\0" in data)


def _unsafe_map(serialized: Any) -> bool:
    """`_unsafe_text` for any name or value of a serialized header map (one that does
    not parse is left to the hostcall, which refuses it)."""
    try:
        pairs = decode_pairs(serialized.encode("utf-8", "surrogateescape") if isinstance(serialized, str)
                             else bytes(serialized))
    except Exception:  # noqa: BLE001 - malformed: the hostcall says so
        return False
    return any(_unsafe_text(name) or _unsafe_text(value) for name, value in pairs)


_HEADER_TEXT_CHECKS: dict[str, Callable[[tuple[Any, ...]], bool]] = {
    "replace_header_map_value": lambda args: len(args) == 3 and (_unsafe_text(args[1]) or _unsafe_text(args[2])),
    "add_header_map_value": lambda args: len(args) == 3 and (_unsafe_text(args[1]) or _unsafe_text(args[2])),
    "set_header_map_pairs": lambda args: len(args) == 2 and _unsafe_map(args[1]),
    "send_local_response": lambda args: len(args) == 5 and _unsafe_map(args[3]),
    "http_call": lambda args: len(args) == 5 and (_unsafe_map(args[1]) or _unsafe_map(args[3])),
}
"""The seam functions whose header text the C shim checks before Envoy sees it, and how."""


class _Router(types.ModuleType):
    """The ``_proxywasm`` module of native mode: it forwards each seam function to the
    running VM's hostcalls, with the checks the C shim makes before calling Envoy."""

    HostcallError = HostcallError

    def __init__(self) -> None:
        super().__init__("_proxywasm", "Emulator-provided proxy-wasm seam (pwtool native mode).")
        self.active: Optional[Hostcalls] = None
        self.dispatcher: Any = None
        for name in SEAM_FUNCTIONS:
            setattr(self, name, self._forwarder(name))

    def _forwarder(self, name: str) -> Callable[..., Any]:
        router = self

        unsafe = _HEADER_TEXT_CHECKS.get(name)

        def forward(*args: Any) -> Any:
            hc = router.active
            if hc is None:
                raise RuntimeError(f"_proxywasm.{name} called outside of a plugin callback")
            if unsafe is not None and unsafe(args):
                raise HostcallError(int(Status.BAD_ARGUMENT), f"proxy_{name}")
            return getattr(hc, name)(*args)

        forward.__name__ = forward.__qualname__ = name
        return forward

    def set_dispatcher(self, dispatcher: Any) -> None:
        self.dispatcher = dispatcher


router = _Router()


def install_router() -> _Router:
    """Bind ``_proxywasm`` to the emulator (idempotent)."""
    current = sys.modules.get("_proxywasm")
    if current is not router:
        if current is not None and "proxywasm" in sys.modules:
            # The SDK was imported against another seam; re-import it against ours.
            for mod in [m for m in sys.modules if m == "proxywasm" or m.startswith("proxywasm.")]:
                del sys.modules[mod]
        sys.modules["_proxywasm"] = router
    return router


def _plugin_file(source: Path) -> Path:
    """The file native mode imports for ``source`` (a plugin directory or a .py file)."""
    if source.is_dir():
        candidate = source / "plugin.py"
        if candidate.is_file():
            return candidate
        if candidate.exists():
            raise ModuleLoadError(f"{candidate} is not a file. Fix: make {candidate} the plugin's Python source file")
        raise ModuleLoadError(f"{source} has no plugin.py. Fix: put the plugin's code in {candidate}")
    if source.suffix == ".py":
        if source.is_file():
            return source
        raise ModuleLoadError(f"{source}: no such file. Fix: pass the plugin directory (holding plugin.py and plugin.toml)")
    raise ModuleLoadError(
        f"native mode needs a plugin directory or a .py file, not {source}. "
        "Fix: pass the plugin directory (holding plugin.py and plugin.toml)"
    )


def _read_metadata(plugin_file: Path) -> "Optional[PluginMetadata]":
    """plugin.toml beside ``plugin_file``, read as ``pwtool build`` reads it (None if absent)."""
    from pwtool.build.metadata import METADATA_FILE, PluginError, load_metadata

    from ._loader import plugin_error

    directory = plugin_file.parent
    if not (directory / METADATA_FILE).exists():
        return None
    try:
        return load_metadata(directory, require_code=plugin_file.name == "plugin.py")
    except PluginError as exc:
        raise plugin_error(exc) from exc


class NativeBackend:
    """A VM whose 'module' is the plugin source imported in this interpreter."""

    mode = "native"
    abi_version = "0.2.1"
    module: types.ModuleType
    base_dispatcher: Any  # the dispatcher the plugin's import registered
    scope: PluginScope  # what this load owns in sys.modules and sys.path

    def __init__(self, vm: "VM", source: Path, shared: Optional["NativeBackend"] = None) -> None:
        self.vm = vm
        self.hc = vm.hostcalls
        self.router = install_router()
        self._source = source
        self._load_id = vm.emulator._load_id
        if shared is not None:
            self.module = shared.module
            self.scope = shared.scope
            base = shared.base_dispatcher
        else:
            path = _plugin_file(source)
            metadata = _read_metadata(path)
            self.scope = PluginScope(path.parent, metadata_module(metadata) if metadata is not None else None)
            label = f"plugin {metadata.name!r}" if metadata is not None else str(path)
            self.module = self._import(path, label)
            base = self.router.dispatcher
            if base is None:
                self.scope.discard()
                raise ModuleLoadError(
                    f"{source}: importing the plugin registered no dispatcher (it must import proxywasm)"
                )
        self.scope.acquire()
        self._closed = False
        self.base_dispatcher = base
        try:
            self.dispatcher = type(base)()
        except TypeError:
            self.dispatcher = base
        self._methods: dict[str, Optional[Callable[..., Any]]] = {}

    def _import(self, path: Path, label: str) -> types.ModuleType:
        """Import the plugin's file afresh, in its own scope (see :mod:`._native_scope`)."""
        router = self.router
        previous = router.active
        router.active = self.hc
        previous_scope = self.scope.install()
        name = path.stem
        try:
            before = self.scope.begin_import()
            try:
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise ModuleLoadError(f"cannot import {path}. Fix: pass a plugin directory holding plugin.py")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module  # a fresh module per load: registrations run again
                spec.loader.exec_module(module)
            except ModuleLoadError:
                raise
            except Exception as exc:
                raise ModuleLoadError(_import_failure(exc, path, label)) from exc
            finally:
                self.scope.end_import(before)
            if router.dispatcher is None:
                router.dispatcher = _find_dispatcher()
        except BaseException:
            self.scope.discard()
            if previous_scope is not None and not previous_scope.closed and installed_scope() is None:
                previous_scope.install()
            raise
        finally:
            router.active = previous
        if previous is not None:  # imported from inside another VM's callback
            self.scope.restore(previous_scope)
        return module

    def has(self, name: str) -> bool:
        return self._method(name) is not None

    def _method(self, name: str) -> Optional[Callable[..., Any]]:
        if name not in self._methods:
            self._methods[name] = getattr(self.dispatcher, name, None)
        return self._methods[name]

    def call(self, name: str, *args: int) -> int:
        method = self._method(name)
        default = _SAFE_DEFAULTS.get(name, 0)
        if method is None:
            return 1 if name in _SAFE_DEFAULTS else 0
        router = self.router
        previous = router.active
        router.active = self.hc
        scope = self.scope
        previous_scope = scope.install()  # itself when already installed
        try:
            result = method(*args)
        except Exception:
            # The shim's behaviour: log the traceback at error level, return the safe default.
            self.hc.log(4, traceback.format_exc().rstrip())
            return default
        finally:
            router.active = previous
            if previous is not None and previous_scope is not scope:  # nested in another VM's callback
                scope.restore(previous_scope)
        if result is None:
            return 0
        return int(result) & 0xFFFFFFFF

    instructions = None
    """Native code runs no WebAssembly: nothing to count."""

    def close(self) -> None:
        self._methods.clear()
        if not self._closed:
            self._closed = True
            self.scope.release()


def _find_dispatcher() -> Any:
    """Fallback when the SDK was imported earlier: ask it for its dispatcher."""
    sdk = sys.modules.get("proxywasm")
    disp_mod = sys.modules.get("proxywasm._dispatcher")
    for holder in (disp_mod, sdk):
        if holder is None:
            continue
        for attr in ("dispatcher", "_dispatcher", "DISPATCHER"):
            value = getattr(holder, attr, None)
            if value is not None and not isinstance(value, types.ModuleType):
                return value
        cls = getattr(holder, "Dispatcher", None)
        if cls is not None:
            try:
                return cls()
            except TypeError:
                pass
    return None


# --------------------------------------------------------------------------- import failures

_HERE = __file__


def _is_machinery(filename: str) -> bool:
    """Frames of importlib and of the emulator itself: noise in a plugin's traceback."""
    return filename.startswith("<frozen importlib") or filename == _HERE


def _trimmed_traceback(exc: BaseException) -> str:
    """``exc``'s traceback (chained ones included) without importlib's or the emulator's frames."""
    te = traceback.TracebackException.from_exception(exc)
    seen: set[int] = set()
    pending: list[Optional[traceback.TracebackException]] = [te]
    while pending:
        item = pending.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        item.stack = traceback.StackSummary.from_list([f for f in item.stack if not _is_machinery(f.filename)])
        pending.extend((item.__cause__, item.__context__))
    return "".join(te.format()).rstrip()


def _innermost_site(exc: BaseException, directory: Path) -> Optional[tuple[str, int]]:
    """(file, line) of the innermost frame of ``exc`` in a file of the plugin directory."""
    site: Optional[tuple[str, int]] = None
    prefix = str(directory.resolve()) + os.sep
    for frame, line in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if filename.startswith(prefix) or os.path.realpath(filename).startswith(prefix):
            site = (filename, line)
    return site


def _source_file_error(exc: Exception) -> bool:
    """Whether ``exc`` is about a Python file being imported (compiling or reading it),
    not raised by the plugin's code: importlib raised it, or it names an existing .py file."""
    frames = list(traceback.walk_tb(exc.__traceback__))
    if not frames or _is_machinery(frames[-1][0].f_code.co_filename):
        return True
    filename = exc.filename if isinstance(exc, (SyntaxError, OSError)) else None
    return isinstance(filename, str) and filename.endswith(".py") and (
        isinstance(exc, OSError) or os.path.isfile(filename))


def _import_failure(exc: Exception, path: Path, label: str) -> str:
    """The ModuleLoadError message for ``exc``, raised while importing ``path``."""
    directory = path.parent
    by_import = _source_file_error(exc)
    if isinstance(exc, SyntaxError) and by_import:
        from pwtool.build.imports import syntax_error_message

        file = Path(exc.filename or path)
        try:
            data = file.read_bytes()
        except OSError:
            data = b""
        text = (exc.text or "").strip()
        shown = f"\n    {text}" if text else ""
        fix = "" if b"\0" in data else f"\nFix: correct {file.name} there; pwtool build would reject it too"
        return f"{syntax_error_message(file, data, exc)} ({label} cannot be imported){shown}{fix}"
    site = _innermost_site(exc, directory)
    if isinstance(exc, ModuleNotFoundError) and exc.name and site is not None:
        top = exc.name.partition(".")[0]
        return (f"{site[0]}:{site[1]}: {label} imports {exc.name!r}, which is not found: neither in the plugin "
                f"directory {directory} nor on the test's sys.path.\n"
                f"Fix: put {top}.py (or the package {top}/) in {directory}, install the package in the test's "
                "environment, or remove the import")
    if isinstance(exc, OSError) and by_import and exc.filename is not None:
        return (f"{exc.filename}: cannot be read while importing {label}: {exc.strerror or exc}. "
                f"Fix: make {exc.filename} a readable Python source file")
    where = f"{site[0]}:{site[1]}" if site is not None else str(path)
    return (f"{where}: importing {label} raised {type(exc).__name__}: {exc}\n{_trimmed_traceback(exc)}\n"
            "Fix: the traceback above is the plugin's module-level code failing while it is imported; correct "
            "it, or move the code into a callback such as on_configure")
