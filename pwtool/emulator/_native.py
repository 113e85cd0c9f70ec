"""Native mode: run a plugin's Python source in the test's interpreter.

A router module is installed as ``sys.modules["_proxywasm"]``; its functions forward
to the hostcalls of whichever VM is running a callback, so several native VMs can
coexist. The plugin (and with it the SDK, which calls ``set_dispatcher``) is imported
once per load; each VM gets its own dispatcher instance (``type(dispatcher)()``).
pdb, coverage and tracebacks work as for any Python code.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._hostcalls import SEAM_FUNCTIONS, Hostcalls
from ._types import HostcallError, ModuleLoadError

if TYPE_CHECKING:
    from ._host import VM

__all__ = ["NativeBackend", "install_router", "router"]

_SAFE_DEFAULTS = {"on_vm_start": 0, "on_configure": 0, "on_done": 1}


class _Router(types.ModuleType):
    """The ``_proxywasm`` module of native mode."""

    HostcallError = HostcallError

    def __init__(self) -> None:
        super().__init__("_proxywasm", "Emulator-provided proxy-wasm seam (pwtool native mode).")
        self.active: Optional[Hostcalls] = None
        self.dispatcher: Any = None
        for name in SEAM_FUNCTIONS:
            setattr(self, name, self._forwarder(name))

    def _forwarder(self, name: str) -> Callable[..., Any]:
        router = self

        def forward(*args: Any) -> Any:
            hc = router.active
            if hc is None:
                raise RuntimeError(f"_proxywasm.{name} called outside of a plugin callback")
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
    if source.is_dir():
        candidate = source / "plugin.py"
        if not candidate.exists():
            raise ModuleLoadError(f"{source} has no plugin.py")
        return candidate
    if source.suffix == ".py":
        return source
    raise ModuleLoadError(f"native mode needs a plugin directory or a .py file, not {source}")


class NativeBackend:
    """A VM whose 'module' is the plugin source imported in this interpreter."""

    mode = "native"
    abi_version = "0.2.1"
    module: types.ModuleType
    base_dispatcher: Any  # the dispatcher the plugin's import registered

    def __init__(self, vm: "VM", source: Path, shared: Optional["NativeBackend"] = None) -> None:
        self.vm = vm
        self.hc = vm.hostcalls
        self.router = install_router()
        self._source = source
        self._load_id = vm.emulator._load_id
        if shared is not None:
            self.module = shared.module
            base = shared.base_dispatcher
        else:
            self.module = self._import(_plugin_file(source))
            base = self.router.dispatcher
            if base is None:
                raise ModuleLoadError(
                    f"{source}: importing the plugin registered no dispatcher (it must import proxywasm)"
                )
        self.base_dispatcher = base
        try:
            self.dispatcher = type(base)()
        except TypeError:
            self.dispatcher = base
        self._methods: dict[str, Optional[Callable[..., Any]]] = {}

    def _import(self, path: Path) -> types.ModuleType:
        previous = self.router.active
        self.router.active = self.hc
        directory = str(path.parent)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        name = path.stem
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                raise ModuleLoadError(f"cannot import {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # a fresh module per load: registrations run again
            spec.loader.exec_module(module)
            if self.router.dispatcher is None:
                self.router.dispatcher = _find_dispatcher()
            return module
        finally:
            self.router.active = previous

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
        try:
            result = method(*args)
        except Exception:
            # The shim's behaviour: log the traceback at error level, return the safe default.
            self.hc.log(4, traceback.format_exc().rstrip())
            return default
        finally:
            router.active = previous
        if result is None:
            return 0
        return int(result) & 0xFFFFFFFF

    instructions = None
    """Native code runs no WebAssembly: nothing to count."""

    def close(self) -> None:
        self._methods.clear()


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
