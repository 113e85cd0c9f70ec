"""Direct calls between functions: just enough instruction decoding to find them.

Used to stub out, after the snapshot, functions that only build-time code calls. The
decoder knows the instructions a C compiler emits for wasm32 (MVP, sign extension,
saturating conversions, bulk memory, reference types); an unknown opcode raises
`WasmFormatError` and the caller then leaves the module as it is.
"""

from __future__ import annotations

from pwtool.build.wasm_binary import (
    SECTION_CODE,
    SECTION_ELEMENT,
    Module,
    WasmFormatError,
    read_sleb,
    read_uleb,
)

_NO_IMMEDIATE = frozenset(
    [0x00, 0x01, 0x05, 0x0B, 0x0F, 0x1A, 0x1B, 0xD1]  # unreachable nop else end return drop select ref.is_null
    + list(range(0x45, 0xC5))  # numeric instructions
)
_ONE_INDEX = frozenset([0x0C, 0x0D, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0xD2])  # br br_if locals globals tables ref.func
_MEMARG = frozenset(range(0x28, 0x3F))  # loads and stores
_CALL, _CALL_INDIRECT, _BR_TABLE = 0x10, 0x11, 0x0E


def _skip_blocktype(body: bytes, offset: int) -> int:
    if body[offset] == 0x40 or body[offset] in (0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F):
        return offset + 1
    _, offset = read_sleb(body, offset)  # a type index
    return offset


def direct_calls(body: bytes) -> set[int]:
    """Indices of the functions a function body calls directly (``call``)."""
    offset = 0
    groups, offset = read_uleb(body, offset)
    for _ in range(groups):
        _, offset = read_uleb(body, offset)
        offset += 1  # the value type
    calls: set[int] = set()
    end = len(body)
    while offset < end:
        opcode = body[offset]
        offset += 1
        if opcode in _NO_IMMEDIATE:
            continue
        if opcode in (0x02, 0x03, 0x04):  # block loop if
            offset = _skip_blocktype(body, offset)
        elif opcode in _ONE_INDEX:
            _, offset = read_uleb(body, offset)
        elif opcode == _CALL:
            target, offset = read_uleb(body, offset)
            calls.add(target)
        elif opcode == _CALL_INDIRECT:
            _, offset = read_uleb(body, offset)
            _, offset = read_uleb(body, offset)
        elif opcode == _BR_TABLE:
            count, offset = read_uleb(body, offset)
            for _ in range(count + 1):
                _, offset = read_uleb(body, offset)
        elif opcode in _MEMARG:
            _, offset = read_uleb(body, offset)
            _, offset = read_uleb(body, offset)
        elif opcode in (0x3F, 0x40):  # memory.size memory.grow
            offset += 1
        elif opcode == 0x41 or opcode == 0x42:  # i32.const i64.const
            _, offset = read_sleb(body, offset)
        elif opcode == 0x43:
            offset += 4
        elif opcode == 0x44:
            offset += 8
        elif opcode == 0x1C:  # select with types
            count, offset = read_uleb(body, offset)
            offset += count
        elif opcode == 0xD0:  # ref.null
            offset += 1
        elif opcode == 0xFC:
            sub, offset = read_uleb(body, offset)
            if sub <= 7:  # saturating truncations
                continue
            if sub in (8, 12, 14):  # memory.init data, mem / table.init elem, table / table.copy
                _, offset = read_uleb(body, offset)
                _, offset = read_uleb(body, offset)
            elif sub in (9, 10, 13, 15, 16, 17):  # data.drop / memory.copy(2 bytes) / elem.drop / table.*
                if sub == 10:
                    offset += 2
                else:
                    _, offset = read_uleb(body, offset)
            elif sub == 11:  # memory.fill
                offset += 1
            else:
                raise WasmFormatError(f"unknown 0xFC instruction {sub}")
        else:
            raise WasmFormatError(f"unknown instruction 0x{opcode:02x}")
    return calls


def function_bodies(module: Module) -> list[tuple[int, int]]:
    """(start, end) of each function body inside the code section's payload."""
    return module.entries(SECTION_CODE, _read_body)


def _read_body(data: bytes, offset: int) -> tuple[tuple[int, int], int]:
    size, start = read_uleb(data, offset)
    return (start, start + size), start + size


def table_functions(module: Module) -> set[int]:
    """Every function index an element segment puts in a table (indirect-call targets).

    Only the encodings C toolchains emit are decoded (flags 0 and 1: function indices);
    anything else raises WasmFormatError.
    """
    return {index for segment in module.entries(SECTION_ELEMENT, _read_element_segment) for index in segment}


def _read_element_segment(data: bytes, offset: int) -> tuple[list[int], int]:
    flags, offset = read_uleb(data, offset)
    if flags == 0:
        while data[offset] != 0x0B:  # the offset expression: i32.const N
            offset += 1
        offset += 1
    elif flags == 1:
        offset += 1  # elemkind funcref
    else:
        raise WasmFormatError(f"unsupported element segment flags {flags}")
    count, offset = read_uleb(data, offset)
    indices = []
    for _ in range(count):
        index, offset = read_uleb(data, offset)
        indices.append(index)
    return indices, offset
