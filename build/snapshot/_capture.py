"""Run a module's initialisation under wasmtime and capture the result as a new module.

This is the Wizer idea in Python: instantiate, call an initialiser, then read linear
memory and mutable globals back and write them into a copy of the module.
"""

from __future__ import annotations

from typing import Callable

import wasmtime

from pwtool.build.snapshot._rewrite import expose_mutable_globals, write_snapshot

LinkerSetup = Callable[[wasmtime.Linker, wasmtime.Store], None]
Initializer = Callable[[wasmtime.Store, wasmtime.Instance], None]


def snapshot(
    module_bytes: bytes,
    define_imports: LinkerSetup,
    initialize: Initializer,
    *,
    initialize_with: str,
    drop_exports: tuple[str, ...] = (),
    engine: wasmtime.Engine | None = None,
) -> bytes:
    """Instantiate ``module_bytes``, run ``initialize`` and return the snapshotted module.

    ``define_imports`` fills the linker with the imports the initialiser needs;
    ``initialize_with`` is the exported no-op that replaces ``_initialize``.
    """
    instrumented, exposed = expose_mutable_globals(module_bytes)
    engine = engine or wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    define_imports(linker, store)
    instance = linker.instantiate(store, wasmtime.Module(engine, instrumented))
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
