"""The snapshotter against the module it started from."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st
from pwtool_zig import compile_c

from pwtool.build.snapshot import nonzero_runs, snapshot, write_snapshot
from pwtool.build.wasm_binary import Module, WasmFormatError

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def stateful(request: pytest.FixtureRequest) -> bytes:
    out = Path(request.config.cache.mkdir("pwtool-c-modules"))
    return compile_c(HERE / "c" / "stateful.c", out).read_bytes()


def _instantiate(module_bytes: bytes) -> tuple[wasmtime.Store, wasmtime.Instance]:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store.set_wasi(wasmtime.WasiConfig())
    return store, linker.instantiate(store, wasmtime.Module(engine, module_bytes))


def _define_wasi(linker: wasmtime.Linker, store: wasmtime.Store, module: wasmtime.Module) -> None:
    linker.define_wasi()
    store.set_wasi(wasmtime.WasiConfig())


def _run_init(store: wasmtime.Store, instance: wasmtime.Instance) -> None:
    exports = instance.exports(store)
    exports["_initialize"](store)  # type: ignore[operator]
    exports["init"](store)  # type: ignore[operator]


def _call(store: wasmtime.Store, instance: wasmtime.Instance, name: str) -> int:
    return int(instance.exports(store)[name](store))  # type: ignore[operator]


def test_snapshot_keeps_state_and_skips_initialisation(stateful: bytes) -> None:
    reference_store, reference = _instantiate(stateful)
    _run_init(reference_store, reference)
    snapshotted = snapshot(stateful, _define_wasi, _run_init, initialize_with="noop")

    store, instance = _instantiate(snapshotted)
    instance.exports(store)["_initialize"](store)  # type: ignore[operator]  # the no-op now
    assert _call(store, instance, "next") == _call(reference_store, reference, "next") == 42
    assert _call(store, instance, "heap_checksum") == _call(reference_store, reference, "heap_checksum") != 0
    assert _call(store, instance, "allocate_more") == 1

    memory = instance.exports(store)["memory"]
    reference_memory = reference.exports(reference_store)["memory"]
    assert isinstance(memory, wasmtime.Memory) and isinstance(reference_memory, wasmtime.Memory)
    assert memory.data_len(store) >= reference_memory.data_len(reference_store)
    exports = {e.name for e in Module.parse(snapshotted).exports()}
    assert "noop" not in exports and "_initialize" in exports
    assert not any(name.startswith("pwtool.snapshot.global.") for name in exports)


def test_snapshot_memory_matches_the_initialised_instance(stateful: bytes) -> None:
    reference_store, reference = _instantiate(stateful)
    _run_init(reference_store, reference)
    snapshotted = snapshot(stateful, _define_wasi, _run_init, initialize_with="noop")
    store, instance = _instantiate(snapshotted)
    mine, theirs = instance.exports(store)["memory"], reference.exports(reference_store)["memory"]
    assert isinstance(mine, wasmtime.Memory) and isinstance(theirs, wasmtime.Memory)
    size = theirs.data_len(reference_store)
    assert mine.read(store, 0, size) == theirs.read(reference_store, 0, size)


def test_unknown_initialiser_is_refused(stateful: bytes) -> None:
    with pytest.raises(WasmFormatError, match="does not export a function named 'missing'"):
        write_snapshot(stateful, b"\0" * 65536, {}, "missing")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4000))
def test_nonzero_runs_cover_every_nonzero_byte(memory: bytes) -> None:
    runs = nonzero_runs(memory, max_segments=50)
    assert len(runs) <= 50
    covered = bytearray(len(memory))
    previous_end = -1
    for start, end in runs:
        assert previous_end < start < end <= len(memory)
        covered[start:end] = memory[start:end]
        previous_end = end
    assert bytes(covered) == memory
