"""Per-VM start of a built plugin in wasmtime: snapshotted vs starting the interpreter.

A "VM start" is what Envoy does for each worker: instantiate the module, run
``_initialize``, create the root context, then ``proxy_on_vm_start`` and
``proxy_on_configure``. The references, measured in the same run, are what a VM would
do without a snapshot (the build's own two boot steps): start the interpreter and import
the plugin from marshalled code, or compile it from source first.

The host is wasmtime driven from Python the way a C host drives it: imports resolved
once per module (InstancePre), exports looked up by name and called through wasmtime's
unchecked entry point. The host functions the plugin calls (``proxy_log``,
``proxy_get_property``) are Python and their cost is included.

    python bench/vm_start.py [plugins/hello] [--runs 200]
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from pathlib import Path

import wasmtime

REPO = Path(__file__).resolve().parents[1]


def _minimal_host(linker: wasmtime.Linker, store: wasmtime.Store, module: wasmtime.Module, root_id: bytes) -> None:
    """A quiet Envoy: logs accepted, the plugin_root_id property answered, nothing else found."""
    linker.allow_shadowing = True
    linker.define_wasi()
    store.set_wasi(wasmtime.WasiConfig())

    def get_property(caller: wasmtime.Caller, path: int, path_size: int, out_data: int, out_size: int) -> int:
        memory = caller["memory"]
        assert isinstance(memory, wasmtime.Memory)
        if bytes(memory.read(caller, path, path + path_size)) != b"plugin_root_id":
            return 1
        pointer = caller["proxy_on_memory_allocate"](caller, len(root_id))  # type: ignore[operator]
        memory.write(caller, root_id, pointer)
        memory.write(caller, pointer.to_bytes(4, "little"), out_data)
        memory.write(caller, len(root_id).to_bytes(4, "little"), out_size)
        return 0

    for item in module.imports:
        if item.module == "env" and isinstance(item.type, wasmtime.FuncType):
            if item.name == "proxy_get_property":
                linker.define_func("env", item.name, item.type, get_property, access_caller=True)
                continue
            status = 0 if item.name in ("proxy_log", "proxy_set_tick_period_milliseconds") else 1
            results = len(item.type.results)

            def hostcall(*args: object, _status: int = status, _results: int = results) -> int | None:
                return _status if _results else None

            linker.define_func("env", item.name, item.type, hostcall)


_PHASES = ("instantiate", "root context", "on_vm_start", "on_configure")


def _call(store: wasmtime.Store, instance: wasmtime.Instance, name: str, *args: int) -> int:
    """Look export `name` up and call it the way a C host does: one name lookup and
    wasmtime's unchecked entry point. (The binding's ``Func.__call__`` re-reads the
    function type and converts every value: about 45 µs per call in Python, more than
    most callbacks cost.)"""
    from wasmtime import _ffi as ffi

    context = store._context()
    item = ffi.wasmtime_extern_t()
    encoded = name.encode()
    if not ffi.wasmtime_instance_export_get(context, ctypes.byref(instance._instance), encoded, len(encoded),
                                            ctypes.byref(item)):
        raise KeyError(name)
    values = (ffi.wasmtime_val_raw_t * max(1, len(args)))()
    for index, value in enumerate(args):
        values[index].i32 = value
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    error = ffi.wasmtime_func_call_unchecked(context, ctypes.byref(item.of.func), values, len(values),
                                             ctypes.byref(trap))
    if error or trap:
        raise RuntimeError(f"{name} trapped or failed")
    return int(values[0].i32)


def _time_vm_starts(wasm: Path, runs: int, root_id: str) -> list[list[float]]:
    """Per VM: seconds spent in each of `_PHASES` (``_initialize`` is counted in instantiate)."""
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, wasm.read_bytes())
    linker = wasmtime.Linker(engine)  # one host for all VMs, as in Envoy
    _minimal_host(linker, wasmtime.Store(engine), module, root_id.encode())
    linked = linker.instantiate_pre(module)  # imports resolved once per module, as a host does
    timings = []
    for _ in range(runs):
        store = wasmtime.Store(engine)
        store.set_wasi(wasmtime.WasiConfig())
        clock = [time.perf_counter()]
        instance = linked.instantiate(store)
        _call(store, instance, "_initialize")
        clock.append(time.perf_counter())
        _call(store, instance, "proxy_on_context_create", 1, 0)
        clock.append(time.perf_counter())
        started = _call(store, instance, "proxy_on_vm_start", 1, 0)
        clock.append(time.perf_counter())
        configured = _call(store, instance, "proxy_on_configure", 1, 0)
        clock.append(time.perf_counter())
        assert started == 1 and configured == 1
        timings.append([end - start for start, end in zip(clock, clock[1:])])
    return timings


def _time_cold_boots(plugin_dir: Path, runs: int) -> tuple[list[float], list[float]]:
    """The work a snapshot saves, timed inside the build: (import from marshalled code,
    compile from source) for each run."""
    import marshal
    import tempfile

    from pwtool.build import plugin as build

    loads: list[float] = []
    compiles: list[float] = []
    original_boot, original_compile = build._boot, build._compile_sources

    def timed_boot(store, instance, bundle):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        status = original_boot(store, instance, bundle)
        timings = compiles if marshal.loads(bundle)["mode"] == "compile" else loads
        timings.append(time.perf_counter() - started)
        return status

    build._boot = timed_boot
    try:
        for index in range(runs):
            with tempfile.TemporaryDirectory() as empty:
                # An empty code cache: the build compiles every module, as a VM without a snapshot would.
                build._compile_sources = lambda *args: original_compile(*args, cache=Path(empty))
                build.build_plugin(plugin_dir, Path("/tmp") / f"pwtool-bench-cold-{index}.wasm")
    finally:
        build._boot, build._compile_sources = original_boot, original_compile
    return loads, compiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plugin", nargs="?", default=str(REPO / "plugins" / "hello"))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=3)
    options = parser.parse_args()

    from pwtool.build import build_plugin

    result = build_plugin(options.plugin, Path("/tmp/pwtool-bench-vm-start.wasm"))
    phases = _time_vm_starts(result.path, options.runs, result.metadata.root_id)
    warm = [sum(vm) for vm in phases]
    loads, compiles = _time_cold_boots(Path(options.plugin), options.cold_runs)
    snap_ms = statistics.median(warm) * 1000
    load_ms = statistics.median(loads) * 1000
    compile_ms = statistics.median(compiles) * 1000
    print(f"plugin: {result.metadata.name}  module: {result.size / 1e6:.2f} MB  (wasmtime {len(warm)} VMs)")
    print(f"{'what':52} {'median ms':>10} {'p90 ms':>8}")
    print(f"{'VM start, snapshotted module':52} {snap_ms:10.3f} {sorted(warm)[int(len(warm) * 0.9)] * 1000:8.3f}")
    for index, phase in enumerate(_PHASES):
        print(f"{'  of which ' + phase:52} {statistics.median(vm[index] for vm in phases) * 1000:10.3f}")
    print(f"{'no snapshot: start Python, import marshalled plugin':52} {load_ms:10.1f} {max(loads) * 1000:8.1f}")
    print(f"{'no snapshot: start Python, compile + import plugin':52} {compile_ms:10.1f} {max(compiles) * 1000:8.1f}")
    print(f"ratios: the snapshot starts a VM {load_ms / snap_ms:.0f}x faster than the marshalled-code "
          f"start, {compile_ms / snap_ms:.0f}x faster than compiling")


if __name__ == "__main__":
    main()
