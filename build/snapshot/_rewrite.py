"""Binary rewriting for snapshots: expose globals, then bake memory and globals in.

A snapshot of a module is (DESIGN.md §2) the contents of linear memory written as
data segments that skip long zero runs, the memory's new minimum size, the current
values of mutable globals as their initialisers, and ``_initialize`` pointed at a
no-op so that constructors do not run a second time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pwtool.build.wasm_binary import (
    KIND_FUNC,
    KIND_GLOBAL,
    SECTION_DATA,
    SECTION_DATA_COUNT,
    SECTION_GLOBAL,
    SECTION_MEMORY,
    Export,
    Module,
    Section,
    WasmFormatError,
    read_sleb,
    read_uleb,
    sleb,
    uleb,
)

GLOBAL_EXPORT_PREFIX = "pwtool.snapshot.global."
WASM_PAGE = 65536
# V8 refuses modules with more than 100,000 data segments; stay below.
MAX_DATA_SEGMENTS = 60_000
# A segment costs about 7 bytes of header, so bridging zero gaps up to 8 bytes is cheaper
# than splitting there.
MIN_GAP = 8

_I32, _I64 = 0x7F, 0x7E
_OP_I32_CONST, _OP_I64_CONST, _OP_END = 0x41, 0x42, 0x0B


@dataclass
class GlobalEntry:
    value_type: int
    mutable: bool
    init: bytes  # the raw constant expression, `end` included


def read_globals(module: Module) -> list[GlobalEntry]:
    return module.entries(SECTION_GLOBAL, _read_global)


def _read_global(data: bytes, offset: int) -> tuple[GlobalEntry, int]:
    value_type, mutable = data[offset], data[offset + 1] == 1
    start = offset = offset + 2
    while data[offset] != _OP_END:  # constant expressions: one instruction, then `end`
        opcode = data[offset]
        offset += 1
        if opcode in (_OP_I32_CONST, _OP_I64_CONST):
            _, offset = read_sleb(data, offset)
        elif opcode == 0x23:  # global.get
            _, offset = read_uleb(data, offset)
        elif opcode == 0x43:  # f32.const
            offset += 4
        elif opcode == 0x44:  # f64.const
            offset += 8
        else:
            raise WasmFormatError(f"unsupported instruction 0x{opcode:02x} in a global initialiser")
    offset += 1
    return GlobalEntry(value_type, mutable, data[start:offset]), offset


def _imported_global_count(module: Module) -> int:
    return sum(1 for imp in module.imports() if imp.kind == KIND_GLOBAL)


def expose_mutable_globals(module_bytes: bytes) -> tuple[bytes, dict[str, int]]:
    """Export every mutable i32/i64 global so that the host can read it after init.

    Returns the instrumented module and {export name: global index}.
    """
    module = Module.parse(module_bytes)
    base = _imported_global_count(module)
    exposed = {}
    for position, entry in enumerate(read_globals(module)):
        if entry.mutable:
            if entry.value_type not in (_I32, _I64):
                raise WasmFormatError("snapshots support only i32 and i64 mutable globals")
            exposed[f"{GLOBAL_EXPORT_PREFIX}{base + position}"] = base + position
    exports = module.exports() + [Export(name, KIND_GLOBAL, index) for name, index in exposed.items()]
    module.set_exports(exports)
    return module.to_bytes(), exposed


def _set_globals(module: Module, values: dict[int, int]) -> None:
    base = _imported_global_count(module)
    entries = read_globals(module)
    payload = bytearray(uleb(len(entries)))
    for position, entry in enumerate(entries):
        index = base + position
        payload += bytes([entry.value_type, 1 if entry.mutable else 0])
        if index in values:
            opcode = _OP_I32_CONST if entry.value_type == _I32 else _OP_I64_CONST
            value = values[index]
            if entry.value_type == _I32 and value >= 1 << 31:
                value -= 1 << 32
            payload += bytes([opcode]) + sleb(value) + bytes([_OP_END])
        else:
            payload += entry.init
    module.replace_section(Section(SECTION_GLOBAL, bytes(payload)))


def _set_memory_minimum(module: Module, pages: int) -> None:
    vector = module.vector(SECTION_MEMORY)
    if vector is None:
        raise WasmFormatError("the module defines no memory (an imported memory cannot be snapshotted)")
    data, count, offset = vector
    if count != 1:
        raise WasmFormatError("snapshots support exactly one memory")
    flags = data[offset]
    minimum, offset = read_uleb(data, offset + 1)
    maximum = None
    if flags & 1:
        maximum, offset = read_uleb(data, offset)
        if pages > maximum:
            raise WasmFormatError("memory grew past its declared maximum")
    payload = uleb(1) + bytes([flags]) + uleb(max(minimum, pages))
    if maximum is not None:
        payload += uleb(maximum)
    module.replace_section(Section(SECTION_MEMORY, payload))


def nonzero_runs(memory: bytes, max_segments: int = MAX_DATA_SEGMENTS) -> list[tuple[int, int]]:
    """(start, end) ranges covering every non-zero byte, merging runs split by short gaps.

    The gap worth bridging grows until the segment count fits ``max_segments``. The
    ranges are what lies between the zero runs longer than the gap (found by the regex
    engine: a snapshot has far fewer of those than non-zero runs).
    """
    gap = MIN_GAP
    while True:
        runs: list[tuple[int, int]] = []
        start = 0
        for zeros in re.finditer(rb"\x00{%d,}" % (gap + 1), memory):
            if zeros.start() > start:
                runs.append((start, zeros.start()))
            start = zeros.end()
        if start < len(memory):
            runs.append((start, len(memory)))
        # Only the first range can start with (a few) zeros, only the last end with them.
        if runs:
            first_start, first_end = runs[0]
            runs[0] = (first_end - len(memory[first_start:first_end].lstrip(b"\x00")), first_end)
            last_start, last_end = runs[-1]
            runs[-1] = (last_start, last_start + len(memory[last_start:last_end].rstrip(b"\x00")))
            if runs[-1][0] >= runs[-1][1]:
                runs.pop()
        if len(runs) <= max_segments:
            return runs
        gap *= 2


def write_snapshot(
    module_bytes: bytes,
    memory: bytes,
    global_values: dict[int, int],
    initialize_with: str,
    drop_exports: tuple[str, ...] = (),
) -> bytes:
    """Bake ``memory`` and ``global_values`` into ``module_bytes``.

    ``initialize_with`` names an exported no-op function that becomes ``_initialize``;
    it and ``drop_exports`` (plus the helper global exports) leave the export list.
    """
    module = Module.parse(module_bytes)
    exports = module.exports()
    by_name = {export.name: export for export in exports}
    replacement = by_name.get(initialize_with)
    if replacement is None or replacement.kind != KIND_FUNC:
        raise WasmFormatError(f"the module does not export a function named {initialize_with!r}")
    removed = set(drop_exports) | {initialize_with}
    kept = []
    for export in exports:
        if export.name in removed or export.name.startswith(GLOBAL_EXPORT_PREFIX):
            continue
        if export.name == "_initialize":
            export = Export("_initialize", KIND_FUNC, replacement.index)
        kept.append(export)
    module.set_exports(kept)
    _set_globals(module, global_values)
    _set_memory_minimum(module, (len(memory) + WASM_PAGE - 1) // WASM_PAGE)

    runs = nonzero_runs(memory)
    data = bytearray(uleb(len(runs)))
    for start, end in runs:
        data += b"\x00" + bytes([_OP_I32_CONST]) + sleb(start) + bytes([_OP_END]) + uleb(end - start)
        data += memory[start:end]
    module.replace_section(Section(SECTION_DATA, bytes(data)))
    if module.section(SECTION_DATA_COUNT) is not None:
        module.replace_section(Section(SECTION_DATA_COUNT, uleb(len(runs))))
    return module.to_bytes()
