"""Run a module's initialisation under wasmtime and capture the result as a new module.

This is the Wizer idea in Python: instantiate, call an initialiser, then read linear
memory and mutable globals back and write them into a copy of the module.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import wasmtime

from pwtool.build._files import write_atomically
from pwtool.build.snapshot._rewrite import expose_mutable_globals, write_snapshot

LinkerSetup = Callable[[wasmtime.Linker, wasmtime.Store, wasmtime.Module], None]
Initializer = Callable[[wasmtime.Store, wasmtime.Instance], None]


def snapshot(
    module_bytes: bytes,
    define_imports: LinkerSetup,
    initialize: Initializer,
    *,
    initialize_with: str,
    drop_exports: tuple[str, ...] = (),
    engine: wasmtime.Engine | None = None,
    compile_cache: Path | None = None,
    epoch_deadline: int | None = None,
) -> bytes:
    """Instantiate ``module_bytes``, run ``initialize`` and return the snapshotted module.

    ``define_imports`` fills the linker with the imports the initialiser needs;
    ``initialize_with`` is the exported no-op that replaces ``_initialize``. With
    ``compile_cache``, wasmtime's compiled code is kept there between runs. An ``engine``
    with epoch interruption needs ``epoch_deadline`` (in epochs from now).
    """
    engine = engine or wasmtime.Engine()
    store, instance, exposed = instantiate(module_bytes, define_imports, engine, compile_cache, epoch_deadline)
    initialize(store, instance)

    exports = instance.exports(store)
    memory = exports["memory"]
    assert isinstance(memory, wasmtime.Memory)
    contents = memory.read(store, 0, memory.data_len(store))
    values = {}
    for name, index in exposed.items():
        global_ = exports[name]
        assert isinstance(global_, wasmtime.Global)
        values[index] = int(global_.value(store))
    return write_snapshot(module_bytes, bytes(contents), values, initialize_with, drop_exports)


def instantiate(
    module_bytes: bytes, define_imports: LinkerSetup, engine: wasmtime.Engine, compile_cache: Path | None = None,
    epoch_deadline: int | None = None,
) -> tuple[wasmtime.Store, wasmtime.Instance, dict[str, int]]:
    """Instantiate ``module_bytes`` with its mutable globals exported (as `snapshot` runs
    it); returns the store, the instance and {export name: global index}. With
    ``epoch_deadline``, the store traps once the engine's epoch has moved on that many times."""
    instrumented, exposed = expose_mutable_globals(module_bytes)
    module = _compile(engine, instrumented, compile_cache)
    store = wasmtime.Store(engine)
    if epoch_deadline is not None:
        store.set_epoch_deadline(epoch_deadline)
    linker = wasmtime.Linker(engine)
    define_imports(linker, store, module)
    return store, linker.instantiate(store, module), exposed


def _compile(engine: wasmtime.Engine, module_bytes: bytes, cache: Path | None) -> wasmtime.Module:
    """Compile with Cranelift, or load the code compiled last time for the same bytes."""
    if cache is None:
        return wasmtime.Module(engine, module_bytes)
    from importlib.metadata import version

    key = hashlib.sha256(module_bytes + version("wasmtime").encode()).hexdigest()[:24]
    path = cache / f"{key}.cwasm"
    if path.is_file():
        try:
            return wasmtime.Module.deserialize_file(engine, str(path))
        except wasmtime.WasmtimeError:
            path.unlink(missing_ok=True)  # written by another wasmtime: compile again
    module = wasmtime.Module(engine, module_bytes)
    write_atomically(path, module.serialize())
    return module
