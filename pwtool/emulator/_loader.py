"""Turn what a test names (a .wasm, wasm bytes, a plugin dir) into a VM backend."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Union

from ._types import EmulatorError, ModuleLoadError

if TYPE_CHECKING:
    from ._host import VM, Backend
    from ._native import NativeBackend

__all__ = ["make_backend", "build_plugin_cached", "plugin_error", "MODES"]

MODES = ("wasm", "native")


def plugin_error(error: Exception) -> ModuleLoadError:
    """The ModuleLoadError for a ``PluginError`` of pwtool.build (a bad plugin directory),
    the same in both modes; its message names the file, and the fix when it has none."""
    message = str(error)
    if "Fix:" not in message:
        what = "plugin.toml" if "plugin.toml" in message else "the file named above"
        message += f". Fix: correct {what}; `pwtool build` checks it the same way"
    return ModuleLoadError(message)


def build_plugin_cached(plugin: Union[str, "os.PathLike[str]"], cache_dir: Union[str, "os.PathLike[str]", None] = None) -> Path:
    """Build a plugin directory with ``pwtool.build.build_plugin``, cached by source hash."""
    src = Path(plugin)
    plugin_dir = src if src.is_dir() else src.parent
    try:
        from pwtool.build import BuildError, PluginError, build_inputs_digest, build_plugin
    except ImportError as exc:  # the build API is the lead's; say clearly what is missing
        raise ModuleLoadError(f"cannot build {plugin_dir}: pwtool.build.build_plugin is unavailable ({exc})") from exc
    cache = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "pwtool-emulator-builds"
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / f"{plugin_dir.name}-{build_inputs_digest(plugin_dir)}.wasm"
    if not out.exists():
        tmp = out.with_suffix(f".{os.getpid()}.tmp.wasm")
        try:
            build_plugin(plugin_dir, tmp)
        except PluginError as exc:  # a bad plugin directory is a module that cannot load
            raise plugin_error(exc) from exc
        except BuildError as exc:
            raise ModuleLoadError(str(exc)) from exc
        os.replace(tmp, out)
    return out


def make_backend(vm: "VM", module: Union[str, "os.PathLike[str]", bytes], mode: str) -> "Backend":
    """Create the backend of ``vm`` for ``module`` in ``mode`` ("wasm" or "native")."""
    if mode not in MODES:
        raise EmulatorError(f"mode must be one of {', '.join(map(repr, MODES))}, not {mode!r}")
    if mode == "native":
        from ._native import NativeBackend

        if isinstance(module, (bytes, bytearray, memoryview)):
            raise ModuleLoadError("native mode needs the plugin's source, not wasm bytes")
        shared = _shared_native(vm, Path(module))
        return NativeBackend(vm, Path(module), shared)
    from ._wasm import WasmBackend

    if isinstance(module, (bytes, bytearray, memoryview)):
        return WasmBackend(vm, bytes(module))
    if not isinstance(module, (str, os.PathLike)):
        raise ModuleLoadError(f"module must be a .wasm path, wasm bytes or a plugin directory, not {type(module).__name__}")
    path = Path(module)
    if path.is_dir() or path.suffix == ".py":
        path = build_plugin_cached(path, vm.emulator.build_cache)
    if not path.exists():
        raise ModuleLoadError("no such file")
    return WasmBackend(vm, path.read_bytes())


def _shared_native(vm: "VM", source: Path) -> "NativeBackend | None":
    """Workers of one load share the imported plugin module (one import per load)."""
    from ._native import NativeBackend

    for other in reversed(vm.emulator.vms):
        backend = other.backend
        if other is not vm and isinstance(backend, NativeBackend) and getattr(backend, "_source", None) == source and getattr(backend, "_load_id", None) == vm.emulator._load_id:
            return backend
    return None
