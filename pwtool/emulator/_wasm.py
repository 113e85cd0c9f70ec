"""Wasm mode: run any proxy-wasm core module under wasmtime-py.

The adapter maps every ``env.proxy_*`` import (pointers, guest memory, status codes,
allocations through the module's ``malloc``/``proxy_on_memory_allocate``) onto the
VM's :class:`~._hostcalls.Hostcalls`, so wasm and native mode share one host. It
offers only the WASI functions Envoy offers, and refuses any other import with
Envoy's message. Each callback runs under an epoch deadline and a memory limit.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import struct
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

import wasmtime
from wasmtime import _ffi as ffi

from ._records import MAX_LOG_RECORD
from ._types import HostcallError, ModuleLoadError, Status, WasmTrap

if TYPE_CHECKING:
    from ._host import VM

from pwtool.abi import ABI_VERSION_EXPORTS as ABI_VERSIONS
from pwtool.abi import ENVOY_WASI_FUNCTIONS as ALLOWED_WASI
from pwtool.abi import export_signature_problem

__all__ = ["WasmBackend", "ALLOWED_WASI", "ABI_VERSIONS", "abi_version_of", "check_exports", "compile_module"]

_I32 = wasmtime.ValType.i32()
_I64 = wasmtime.ValType.i64()

# name -> (params, has i32 result); "I" = i64.
_PROXY_SIGS: dict[str, str] = {
    "log": "iii",
    "get_log_level": "i",
    "get_current_time_nanoseconds": "i",
    "set_tick_period_milliseconds": "i",
    "get_property": "iiii",
    "set_property": "iiii",
    "get_buffer_bytes": "iiiii",
    "get_buffer_status": "iii",
    "set_buffer_bytes": "iiiii",
    "get_header_map_pairs": "iii",
    "set_header_map_pairs": "iii",
    "get_header_map_size": "ii",
    "get_header_map_value": "iiiii",
    "replace_header_map_value": "iiiii",
    "add_header_map_value": "iiiii",
    "remove_header_map_value": "iii",
    "send_local_response": "iiiiiiii",
    "http_call": "iiiiiiiiii",
    "grpc_call": "iiiiiiiiiiii",
    "grpc_stream": "iiiiiiiii",
    "grpc_send": "iiii",
    "grpc_cancel": "i",
    "grpc_close": "i",
    "get_status": "iii",
    "get_shared_data": "iiiii",
    "set_shared_data": "iiiii",
    "register_shared_queue": "iii",
    "resolve_shared_queue": "iiiii",
    "enqueue_shared_queue": "iii",
    "dequeue_shared_queue": "iii",
    "define_metric": "iiii",
    "increment_metric": "iI",
    "record_metric": "iI",
    "get_metric": "ii",
    "set_effective_context": "i",
    "done": "",
    "call_foreign_function": "iiiiii",
}
_ABI_SPECIFIC: dict[str, dict[str, str]] = {
    "0.1.0": {"get_configuration": "ii", "continue_request": "", "continue_response": "", "clear_route_cache": ""},
    "0.2.0": {"continue_stream": "i", "close_stream": "i"},
    "0.2.1": {"continue_stream": "i", "close_stream": "i", "get_log_level": "i"},
}
_WASI_SIGS: dict[str, tuple[str, bool]] = {
    "fd_write": ("iiii", True),
    "fd_read": ("iiii", True),
    "fd_seek": ("iIii", True),
    "fd_close": ("i", True),
    "fd_fdstat_get": ("ii", True),
    "environ_get": ("ii", True),
    "environ_sizes_get": ("ii", True),
    "args_get": ("ii", True),
    "args_sizes_get": ("ii", True),
    "clock_time_get": ("iIi", True),
    "random_get": ("ii", True),
    "proc_exit": ("i", False),
}
_ENV_EXTRA: dict[str, tuple[str, bool]] = {
    "emscripten_notify_memory_growth": ("i", False),
    "pthread_equal": ("ii", True),
}

_EPOCH_TICK_S = 0.01


class _OOB(Exception):
    """A guest pointer/length pair outside linear memory."""


class _NoMemory(Exception):
    """A hostcall needed guest memory before the instance (and its memory) existed."""


class _StartHostcall(Exception):
    """A hostcall made by the start function (during instantiation) could not run."""


class _ProcExit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"proc_exit({code})")
        self.code = code


def _functype(params: str, result: bool) -> wasmtime.FuncType:
    return wasmtime.FuncType([_I64 if c == "I" else _I32 for c in params], [_I32] if result else [])


_FUEL = 1 << 62  # with count_instructions: more than any test can spend


class _Engine:
    """One engine per process (two when instructions are counted), with an epoch ticker
    thread so deadlines need no fuel."""

    _lock = threading.Lock()
    _instances: dict[bool, "_Engine"] = {}

    def __init__(self, count_instructions: bool = False) -> None:
        config = wasmtime.Config()
        config.epoch_interruption = True
        config.consume_fuel = count_instructions  # wasmtime's fuel: one unit per instruction
        try:
            config.cache = True
        except Exception:  # pragma: no cover - cache dir not writable
            pass
        self.engine = wasmtime.Engine(config)
        self.modules: dict[str, wasmtime.Module] = {}
        thread = threading.Thread(target=self._tick, name="pwtool-epoch", daemon=True)
        thread.start()

    def _tick(self) -> None:
        import time

        while True:
            time.sleep(_EPOCH_TICK_S)
            self.engine.increment_epoch()

    @classmethod
    def get(cls, count_instructions: bool = False) -> "_Engine":
        with cls._lock:
            engine = cls._instances.get(count_instructions)
            if engine is None:
                engine = cls._instances[count_instructions] = _Engine(count_instructions)
            return engine


def compile_module(code: bytes, count_instructions: bool = False) -> wasmtime.Module:
    """Compile (and cache by content hash) a wasm module, with Envoy's load errors."""
    eng = _Engine.get(count_instructions)
    key = hashlib.sha256(code).hexdigest()
    module = eng.modules.get(key)
    if module is None:
        if code[:4] != b"\0asm":
            raise ModuleLoadError("Failed to parse corrupted Wasm module")
        if code[4:8] != b"\x01\0\0\0":
            # A component (version 0x0d...) or anything else Envoy cannot load.
            raise ModuleLoadError("Missing or unknown Proxy-Wasm ABI version (not a core module)")
        try:
            module = wasmtime.Module(eng.engine, code)
        except wasmtime.WasmtimeError as exc:
            raise ModuleLoadError(f"Failed to load Wasm bytecode: {str(exc).splitlines()[0]}") from exc
        eng.modules[key] = module
    return module


def abi_version_of(module: wasmtime.Module) -> str:
    found = [ABI_VERSIONS[e.name] for e in module.exports if e.name in ABI_VERSIONS]
    if not found:
        raise ModuleLoadError("Missing or unknown Proxy-Wasm ABI version")
    return found[-1]


def _kind(ty: Any) -> str:
    return {"FuncType": "function", "GlobalType": "global", "MemoryType": "memory", "TableType": "table"}.get(type(ty).__name__, type(ty).__name__)


def check_exports(module: wasmtime.Module, abi: str) -> str:
    """Check the exports Envoy looks up by name; return the allocator's export name.

    As proxy-wasm-cpp-host: a function with the wrong signature fails the load, and an
    export of another kind counts as missing (so no allocator function fails the load).
    """
    types = {e.name: e.type for e in module.exports}
    for name, ty in types.items():
        if isinstance(ty, wasmtime.FuncType):
            problem = export_signature_problem(name, [str(p) for p in ty.params], [str(r) for r in ty.results], abi)
            if problem is not None:
                raise ModuleLoadError(problem)
    for name in ("malloc", "proxy_on_memory_allocate"):
        if isinstance(types.get(name), wasmtime.FuncType):
            return name
    wrong = [f"{name} is exported as a {_kind(types[name])}, not a function" for name in ("malloc", "proxy_on_memory_allocate") if name in types]
    hint = "; ".join(wrong + ["Envoy needs malloc or proxy_on_memory_allocate exported as a function (i32) -> i32"])
    raise ModuleLoadError(f"Wasm module is missing malloc function ({hint})")


def _expected_import(module_name: str, name: str, abi: str) -> Optional[tuple[str, bool]]:
    if module_name == "env":
        if name.startswith("proxy_"):
            short = name[len("proxy_"):]
            specific = _ABI_SPECIFIC[abi]
            if short in specific:
                return specific[short], True
            if short in _PROXY_SIGS and short not in ("continue_stream", "close_stream", "get_log_level"):
                return _PROXY_SIGS[short], True
            return None
        return _ENV_EXTRA.get(name)
    if module_name in ("wasi_snapshot_preview1", "wasi_unstable"):
        return _WASI_SIGS.get(name)
    return None


class WasmBackend:
    """A VM running one wasm module instance."""

    mode = "wasm"

    def __init__(self, vm: "VM", code: bytes) -> None:
        self.vm = vm
        self.hc = vm.hostcalls
        emu = vm.emulator
        self.module = compile_module(code, emu.count_instructions)
        self.abi_version = abi_version_of(self.module)
        self._malloc_name = check_exports(self.module, self.abi_version)
        self.store = wasmtime.Store(_Engine.get(emu.count_instructions).engine)
        if emu.count_instructions:
            self.store.set_fuel(_FUEL)
        self.store.set_limits(memory_size=emu.memory_limit)
        self.store.set_epoch_deadline(1 << 62)
        self._ticks = max(1, int(emu.timeout / _EPOCH_TICK_S))
        self._instantiating = False
        self._depth = 0
        self._mem: Optional[wasmtime.Memory] = None
        self._callbacks: list[Any] = []  # keeps the ctypes trampolines alive
        self._nresults: dict[str, int] = {}
        self._ptypes: dict[str, list[str]] = {}
        self._pending_exc: Optional[BaseException] = None
        self._ctx = self.store._context()
        linker = wasmtime.Linker(self.store.engine)
        for imp in self.module.imports:
            expected = _expected_import(imp.module, imp.name or "", self.abi_version)
            ty = imp.type
            if expected is None or not isinstance(ty, wasmtime.FuncType):
                raise ModuleLoadError(f"Failed to load Wasm module due to a missing import: {imp.module}.{imp.name}")
            want = _functype(*expected)
            if [str(p) for p in ty.params] != [str(p) for p in want.params] or [str(r) for r in ty.results] != [str(r) for r in want.results]:
                raise ModuleLoadError(f"Failed to load Wasm module due to an import type mismatch: {imp.module}.{imp.name}")
            impl = self._import_impl(imp.module, imp.name or "")
            self._define_fast(linker, imp.module, imp.name or "", want, impl, expected[0], expected[1])
        # The start function (if any) runs here: under the deadline like any callback.
        self._instantiating = True
        self.store.set_epoch_deadline(self._ticks)
        try:
            self.instance = linker.instantiate(self.store, self.module)
        except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
            pending, self._pending_exc = self._pending_exc, None
            if pending is not None:
                raise self._from_host("the start function", pending) from exc
            if isinstance(exc, wasmtime.Trap):
                raise WasmTrap("the start function", self._describe(exc, "the start function")) from exc
            raise ModuleLoadError(f"Failed to instantiate Wasm module: {str(exc).strip().splitlines()[0]}") from exc
        finally:
            self._instantiating = False
            self.store.set_epoch_deadline(1 << 62)
        ex = self.instance.exports(self.store)
        mem = ex.get("memory")
        if not isinstance(mem, wasmtime.Memory):
            raise ModuleLoadError("Wasm module is missing an exported memory")
        self._mem = mem
        self._funcs: dict[str, wasmtime.Func] = {}
        for e in self.module.exports:
            f = ex.get(e.name)
            if isinstance(f, wasmtime.Func):
                self._funcs[e.name] = f
        self._malloc = self._funcs[self._malloc_name]
        # Reactor start-up as proxy-wasm-cpp-host does it.
        if "_initialize" in self._funcs:
            self._run("_initialize", self._funcs["_initialize"])
            main = self._funcs.get("main")
            if main is not None:
                self._run("main", main, *([0, 0] if len(main.type(self.store).params) == 2 else []))
            elif "__main_void" in self._funcs:
                self._run("__main_void", self._funcs["__main_void"])
        elif "_start" in self._funcs:
            self._run("_start", self._funcs["_start"])

    # -- calling into the module
    @property
    def instructions(self) -> Optional[int]:
        """WebAssembly instructions executed so far (with ``count_instructions``), else None."""
        if not self.vm.emulator.count_instructions:
            return None
        return _FUEL - self.store.get_fuel()

    def has(self, name: str) -> bool:
        return ("proxy_" + name) in self._funcs

    def call(self, name: str, *args: int) -> int:
        func = self._funcs.get("proxy_" + name)
        if func is None:
            return 1 if name in ("on_vm_start", "on_configure", "on_done") else 0
        if self.abi_version == "0.1.0" and name in ("on_request_headers", "on_response_headers"):
            args = args[:2]
        result = self._run("proxy_" + name, func, *args)
        return 0 if result is None else int(result) & 0xFFFFFFFF

    def _run(self, label: str, func: wasmtime.Func, *args: int) -> Any:
        """Call an export through wasmtime's unchecked C API (wasmtime-py's checked path
        converts every value through Python objects and costs ~10x more)."""
        nres = self._nresults.get(label)
        if nres is None:
            ty = func.type(self.store)
            nres = self._nresults[label] = len(ty.results)
            self._ptypes[label] = [str(t) for t in ty.params]
        ptypes = self._ptypes[label]
        if len(args) != len(ptypes):
            raise WasmTrap(label, f"called with {len(args)} arguments, the export takes {len(ptypes)}")
        vals = (ffi.wasmtime_val_raw_t * max(1, len(args), nres))()
        for i, (a, t) in enumerate(zip(args, ptypes)):
            if t == "i64":
                vals[i].i64 = ((a + 2**63) % 2**64) - 2**63
            else:
                vals[i].i32 = ((a + 2**31) % 2**32) - 2**31
        top = self._depth == 0
        if top:
            self.store.set_epoch_deadline(self._ticks)
        self._depth += 1
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        try:
            error = ffi.wasmtime_func_call_unchecked(self._ctx, ctypes.byref(func._func), vals, len(vals), ctypes.byref(trap))
        finally:
            self._depth -= 1
            if top:
                self.store.set_epoch_deadline(1 << 62)
        pending, self._pending_exc = self._pending_exc, None
        if error:
            err = wasmtime.WasmtimeError._from_ptr(error)
            if pending is not None:
                raise self._from_host(label, pending)
            raise WasmTrap(label, str(err).splitlines()[0])
        if trap:
            trap_obj = wasmtime.Trap._from_ptr(trap)
            if pending is not None:
                raise self._from_host(label, pending)
            raise WasmTrap(label, self._describe(trap_obj))
        return vals[0].i32 if nres else None

    def _from_host(self, label: str, exc: BaseException) -> BaseException:
        if isinstance(exc, _ProcExit):
            return WasmTrap(label, f"proc_exit({exc.code})")
        if isinstance(exc, _StartHostcall):
            return WasmTrap(label, str(exc))
        return exc  # WasmTrap from a nested call, or a bug/exception in host code: surface it as is

    def _define_fast(self, linker: wasmtime.Linker, module: str, name: str, ty: wasmtime.FuncType, impl: Callable[..., Any], params: str, result: bool) -> None:
        backend = self
        i64 = [c == "I" for c in params]
        n = len(params)

        def trampoline(env: Any, caller: Any, vals: Any, nvals: int) -> int:
            try:
                args = [vals[i].i64 if i64[i] else vals[i].i32 for i in range(n)]
                out = impl(*args)
                if result:
                    vals[0].i32 = ((int(out) + 2**31) % 2**32) - 2**31
                return 0
            except BaseException as exc:  # noqa: BLE001 - re-raised by _run
                if backend._instantiating and not isinstance(exc, _ProcExit):
                    # Envoy runs no hostcall before the module is instantiated: no memory, no context.
                    why = "before the module's memory is available" if isinstance(exc, _NoMemory) else f"and failed: {exc}"
                    exc = _StartHostcall(f"hostcall {module}.{name} called from the start function, {why}")
                backend._pending_exc = exc
                msg = b"host function raised"
                return ctypes.cast(ffi.wasmtime_trap_new(msg, len(msg)), ctypes.c_void_p).value or 0

        cb = ffi.wasmtime_func_unchecked_callback_t(trampoline)
        self._callbacks.append(cb)
        mod_b, name_b = module.encode(), name.encode()
        error = ffi.wasmtime_linker_define_func_unchecked(
            linker.ptr(), mod_b, len(mod_b), name_b, len(name_b), ty.ptr(), cb, None, ctypes.CFUNCTYPE(None, ctypes.c_void_p)()  # a null finalizer
        )
        if error:
            raise ModuleLoadError(str(wasmtime.WasmtimeError._from_ptr(error)))

    def _describe(self, exc: wasmtime.Trap, what: str = "the callback") -> str:
        code = exc.trap_code
        text = exc.message or str(exc)
        reasons = [line.strip() for line in text.splitlines() if "wasm trap:" in line]
        msg = reasons[-1] if reasons else text.strip().splitlines()[-1].strip()
        if code is not None and code.name.lower() not in msg.lower().replace(" ", "_"):
            msg = f"{msg} ({code.name.lower()})"
        if code == wasmtime.TrapCode.INTERRUPT:
            return f"deadline exceeded: {what} ran longer than {self.vm.emulator.timeout}s (interrupt)"
        frames = []
        for f in (exc.frames or [])[:5]:
            frames.append(f.func_name or f"func[{f.func_index}]")
        where = f" in {' <- '.join(frames)}" if frames else ""
        return f"{msg}{where}"

    def close(self) -> None:
        self._funcs.clear()

    # -- guest memory
    def _view(self) -> tuple[int, int]:
        if self._mem is None:
            raise _NoMemory()
        return ctypes.addressof(self._mem.data_ptr(self.store).contents), self._mem.data_len(self.store)

    def read(self, ptr: int, size: int) -> bytes:
        ptr &= 0xFFFFFFFF
        size &= 0xFFFFFFFF
        base, length = self._view()
        if ptr + size > length:
            raise _OOB()
        return ctypes.string_at(base + ptr, size) if size else b""

    def write(self, ptr: int, data: bytes) -> None:
        ptr &= 0xFFFFFFFF
        base, length = self._view()
        if ptr + len(data) > length:
            raise _OOB()
        ctypes.memmove(base + ptr, data, len(data))

    def write_u32(self, ptr: int, value: int) -> None:
        self.write(ptr, struct.pack("<I", value & 0xFFFFFFFF))

    def write_u64(self, ptr: int, value: int) -> None:
        self.write(ptr, struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF))

    def alloc(self, size: int) -> int:
        addr = self._run(self._malloc_name, self._malloc, size)
        addr = int(addr) & 0xFFFFFFFF
        if addr == 0:
            raise _OOB()
        _, length = self._view()
        if addr + size > length:
            raise _OOB()
        return addr

    def out_bytes(self, data: bytes, ptr_ptr: int, size_ptr: int) -> None:
        """Envoy's copyToPointerSize: allocate in the guest, copy, store pointer and size."""
        addr = 0
        if data:
            addr = self.alloc(len(data))
            self.write(addr, data)
        self.write_u32(ptr_ptr, addr)
        self.write_u32(size_ptr, len(data))

    # -- imports
    def _import_impl(self, module: str, name: str) -> Callable[..., Any]:
        if module != "env":
            wasi: Callable[..., Any] = getattr(self, "wasi_" + name)
            return wasi
        if not name.startswith("proxy_"):
            other: Callable[..., Any] = getattr(self, "env_" + name)
            return other
        impl = getattr(self, "p_" + name[len("proxy_"):])
        hostcall = name

        def wrapped(*args: int) -> int:
            try:
                impl(*args)
                return 0
            except HostcallError as err:
                return err.status
            except _OOB:
                return int(Status.INVALID_MEMORY_ACCESS)

        wrapped.__name__ = hostcall
        return wrapped

    # proxy_* — each returns None (OK) or raises HostcallError / _OOB.
    def p_log(self, level: int, ptr: int, size: int) -> None:
        size &= 0xFFFFFFFF
        if size <= MAX_LOG_RECORD:
            self.hc.log(level, self.read(ptr, size))
            return
        if (ptr & 0xFFFFFFFF) + size > self._view()[1]:
            raise _OOB()  # the whole range must be in memory, as for a shorter message
        self.hc.log(level, self.read(ptr, MAX_LOG_RECORD), dropped=size - MAX_LOG_RECORD)

    def p_get_log_level(self, out: int) -> None:
        self.write_u32(out, self.hc.get_log_level())

    def p_get_current_time_nanoseconds(self, out: int) -> None:
        self.write_u64(out, self.hc.get_current_time_nanoseconds())

    def p_set_tick_period_milliseconds(self, period: int) -> None:
        self.hc.set_tick_period_milliseconds(period & 0xFFFFFFFF)

    def p_get_property(self, p: int, n: int, out_p: int, out_n: int) -> None:
        self.out_bytes(self.hc.get_property(self.read(p, n)), out_p, out_n)

    def p_set_property(self, p: int, n: int, vp: int, vn: int) -> None:
        self.hc.set_property(self.read(p, n), self.read(vp, vn))

    def p_get_buffer_bytes(self, bt: int, start: int, size: int, out_p: int, out_n: int) -> None:
        self.out_bytes(self.hc.get_buffer_bytes(bt & 0xFFFFFFFF, start & 0xFFFFFFFF, size & 0xFFFFFFFF), out_p, out_n)

    def p_get_buffer_status(self, bt: int, out_size: int, out_flags: int) -> None:
        size, flags = self.hc.get_buffer_status(bt & 0xFFFFFFFF)
        self.write_u32(out_size, size)
        self.write_u32(out_flags, flags)

    def p_set_buffer_bytes(self, bt: int, start: int, size: int, p: int, n: int) -> None:
        self.hc.set_buffer_bytes(bt & 0xFFFFFFFF, start & 0xFFFFFFFF, size & 0xFFFFFFFF, self.read(p, n))

    def p_get_header_map_pairs(self, mt: int, out_p: int, out_n: int) -> None:
        self.out_bytes(self.hc.get_header_map_pairs(mt & 0xFFFFFFFF), out_p, out_n)

    def p_set_header_map_pairs(self, mt: int, p: int, n: int) -> None:
        self.hc.set_header_map_pairs(mt & 0xFFFFFFFF, self.read(p, n))

    def p_get_header_map_size(self, mt: int, out: int) -> None:
        self.write_u32(out, self.hc.get_header_map_size(mt & 0xFFFFFFFF))

    def p_get_header_map_value(self, mt: int, kp: int, kn: int, out_p: int, out_n: int) -> None:
        self.out_bytes(self.hc.get_header_map_value(mt & 0xFFFFFFFF, self.read(kp, kn)), out_p, out_n)

    def p_replace_header_map_value(self, mt: int, kp: int, kn: int, vp: int, vn: int) -> None:
        self.hc.replace_header_map_value(mt & 0xFFFFFFFF, self.read(kp, kn), self.read(vp, vn))

    def p_add_header_map_value(self, mt: int, kp: int, kn: int, vp: int, vn: int) -> None:
        self.hc.add_header_map_value(mt & 0xFFFFFFFF, self.read(kp, kn), self.read(vp, vn))

    def p_remove_header_map_value(self, mt: int, kp: int, kn: int) -> None:
        self.hc.remove_header_map_value(mt & 0xFFFFFFFF, self.read(kp, kn))

    def p_continue_stream(self, st: int) -> None:
        self.hc.continue_stream(st & 0xFFFFFFFF)

    def p_close_stream(self, st: int) -> None:
        self.hc.close_stream(st & 0xFFFFFFFF)

    def p_continue_request(self) -> None:
        self.hc.continue_stream(0)

    def p_continue_response(self) -> None:
        self.hc.continue_stream(1)

    def p_clear_route_cache(self) -> None:
        self.hc.abi01_clear_route_cache()

    def p_get_configuration(self, out_p: int, out_n: int) -> None:
        self.out_bytes(self.hc.abi01_get_configuration(), out_p, out_n)

    def p_send_local_response(self, status: int, dp: int, dn: int, bp: int, bn: int, hp: int, hn: int, grpc: int) -> None:
        details, body, headers = self.read(dp, dn), self.read(bp, bn), self.read(hp, hn)
        self.hc.send_local_response(status & 0xFFFFFFFF, details, body, headers, grpc)

    def p_http_call(self, up: int, un: int, hp: int, hn: int, bp: int, bn: int, tp: int, tn: int, timeout: int, out: int) -> None:
        upstream, headers, body, trailers = self.read(up, un), self.read(hp, hn), self.read(bp, bn), self.read(tp, tn)
        self.write_u32(out, 0)
        token = self.hc.http_call(upstream, headers, body, trailers, timeout)
        self.write_u32(out, token)

    def p_grpc_call(self, up: int, un: int, sp: int, sn: int, mp: int, mn: int, ip: int, in_: int, qp: int, qn: int, timeout: int, out: int) -> None:
        args = (self.read(up, un), self.read(sp, sn), self.read(mp, mn), self.read(ip, in_), self.read(qp, qn))
        token = self.hc.grpc_call(*args, timeout & 0xFFFFFFFF)
        self.write_u32(out, token)

    def p_grpc_stream(self, up: int, un: int, sp: int, sn: int, mp: int, mn: int, ip: int, in_: int, out: int) -> None:
        token = self.hc.grpc_stream(self.read(up, un), self.read(sp, sn), self.read(mp, mn), self.read(ip, in_))
        self.write_u32(out, token)

    def p_grpc_send(self, token: int, p: int, n: int, end: int) -> None:
        self.hc.grpc_send(token & 0xFFFFFFFF, self.read(p, n), end)

    def p_grpc_cancel(self, token: int) -> None:
        self.hc.grpc_cancel(token & 0xFFFFFFFF)

    def p_grpc_close(self, token: int) -> None:
        self.hc.grpc_close(token & 0xFFFFFFFF)

    def p_get_status(self, out_code: int, out_p: int, out_n: int) -> None:
        code, message = self.hc.get_status()
        self.write_u32(out_code, code)
        self.out_bytes(message, out_p, out_n)

    def p_get_shared_data(self, kp: int, kn: int, out_p: int, out_n: int, out_cas: int) -> None:
        value, cas = self.hc.get_shared_data(self.read(kp, kn))
        self.out_bytes(value, out_p, out_n)
        self.write_u32(out_cas, cas)

    def p_set_shared_data(self, kp: int, kn: int, vp: int, vn: int, cas: int) -> None:
        self.hc.set_shared_data(self.read(kp, kn), self.read(vp, vn), cas & 0xFFFFFFFF)

    def p_register_shared_queue(self, p: int, n: int, out: int) -> None:
        self.write_u32(out, self.hc.register_shared_queue(self.read(p, n)))

    def p_resolve_shared_queue(self, vp: int, vn: int, p: int, n: int, out: int) -> None:
        self.write_u32(out, self.hc.resolve_shared_queue(self.read(vp, vn), self.read(p, n)))

    def p_enqueue_shared_queue(self, qid: int, p: int, n: int) -> None:
        self.hc.enqueue_shared_queue(qid & 0xFFFFFFFF, self.read(p, n))

    def p_dequeue_shared_queue(self, qid: int, out_p: int, out_n: int) -> None:
        self.out_bytes(self.hc.dequeue_shared_queue(qid & 0xFFFFFFFF), out_p, out_n)

    def p_define_metric(self, mt: int, p: int, n: int, out: int) -> None:
        self.write_u32(out, self.hc.define_metric(mt & 0xFFFFFFFF, self.read(p, n)))

    def p_increment_metric(self, mid: int, offset: int) -> None:
        self.hc.increment_metric(mid & 0xFFFFFFFF, offset)

    def p_record_metric(self, mid: int, value: int) -> None:
        self.hc.record_metric(mid & 0xFFFFFFFF, value & 0xFFFFFFFFFFFFFFFF)

    def p_get_metric(self, mid: int, out: int) -> None:
        self.write_u64(out, self.hc.get_metric(mid & 0xFFFFFFFF))

    def p_set_effective_context(self, cid: int) -> None:
        self.hc.set_effective_context(cid & 0xFFFFFFFF)

    def p_done(self) -> None:
        self.hc.done()

    def p_call_foreign_function(self, np: int, nn: int, ap: int, an: int, out_p: int, out_n: int) -> None:
        result = self.hc.call_foreign_function(self.read(np, nn), self.read(ap, an))
        if out_p == 0 and out_n == 0:
            return
        self.out_bytes(result, out_p, out_n)

    # env extras Envoy registers
    def env_emscripten_notify_memory_growth(self, _index: int) -> None:
        return None

    def env_pthread_equal(self, a: int, b: int) -> int:
        return int(a == b)

    # WASI — errno results, as proxy-wasm-cpp-host
    def wasi_fd_write(self, fd: int, iovs: int, iovs_len: int, out: int) -> int:
        if fd not in (1, 2):
            return 8  # EBADF
        try:
            # Keep at most MAX_LOG_RECORD bytes on the host, however many iovecs there are.
            _, length = self._view()
            count = iovs_len & 0xFFFFFFFF
            if (iovs & 0xFFFFFFFF) + 8 * count > length:
                raise _OOB()
            iov_bytes = self.read(iovs, 8 * count)
            chunks = []
            kept = total = 0
            for buf, n in struct.iter_unpack("<II", iov_bytes):
                if buf + n > length:
                    raise _OOB()
                total += n
                take = min(n, MAX_LOG_RECORD - kept)
                if take > 0:
                    chunks.append(self.read(buf, take))
                    kept += take
            data = b"".join(chunks)
            dropped = total - kept
            if data:
                message = data[:-1] if data.endswith(b"\n") and not dropped else data
                self.vm.emulator._log(self.vm, 2 if fd == 1 else 4, message, dropped=dropped)
            self.write_u32(out, total)
        except _OOB:
            return 21  # EFAULT
        return 0

    def wasi_fd_read(self, fd: int, iovs: int, iovs_len: int, out: int) -> int:
        return 52  # ENOSYS

    def wasi_fd_seek(self, fd: int, offset: int, whence: int, out: int) -> int:
        return 0

    def wasi_fd_close(self, fd: int) -> int:
        return 0

    def wasi_fd_fdstat_get(self, fd: int, out: int) -> int:
        if fd not in (1, 2):
            return 8
        try:
            self.write(out, struct.pack("<QQQ", 0, 64, 0))
        except _OOB:
            return 21
        return 0

    def _env_strings(self) -> list[bytes]:
        return [f"{k}={v}".encode() + b"\0" for k, v in self.vm.emulator.env.items()]

    def wasi_environ_get(self, array: int, buf: int) -> int:
        try:
            for s in self._env_strings():
                self.write_u32(array, buf)
                self.write(buf, s)
                buf += len(s)
                array += 4
        except _OOB:
            return 21
        return 0

    def wasi_environ_sizes_get(self, count_ptr: int, size_ptr: int) -> int:
        strings = self._env_strings()
        try:
            self.write_u32(count_ptr, len(strings))
            self.write_u32(size_ptr, sum(len(s) for s in strings))
        except _OOB:
            return 21
        return 0

    def wasi_args_get(self, argv: int, buf: int) -> int:
        return 0

    def wasi_args_sizes_get(self, argc_ptr: int, size_ptr: int) -> int:
        try:
            self.write_u32(argc_ptr, 0)
            self.write_u32(size_ptr, 0)
        except _OOB:
            return 21
        return 0

    def wasi_clock_time_get(self, clock_id: int, precision: int, out: int) -> int:
        emu = self.vm.emulator
        if clock_id == 0:
            value = emu.now_ns
        elif clock_id == 1:
            value = emu.monotonic_ns
        else:
            return 58  # ENOTSUP
        try:
            self.write_u64(out, value)
        except _OOB:
            return 21
        return 0

    def wasi_random_get(self, ptr: int, size: int) -> int:
        size &= 0xFFFFFFFF
        if size > 64 * 1024:
            return 28  # EINVAL
        try:
            self.write(ptr, os.urandom(size))
        except _OOB:
            return 21
        return 0

    def wasi_proc_exit(self, code: int) -> None:
        raise _ProcExit(code)
