"""Blank the C docstrings in ``libpython3.11.a`` before the runtime is linked.

CPython's C modules and types carry about 200 KB of docstrings (``PyDoc_STRVAR``
arrays) that a proxy never reads. They sit in static data, so every snapshot would carry
them. Each docstring is a named array in its own ``.rodata.<name>`` data segment of a
WebAssembly object file, so the archive's symbol tables locate it exactly. We overwrite
its bytes with zeros in place: sizes, offsets and relocations stay valid, every pointer
to it now reads an empty string (``__doc__`` becomes ``''`` or None), and the
snapshot skips the zero run.

Only plain (non-merged) read-only segments are touched: merged string sections may
share tails between strings (a keyword name can live at the end of a docstring), so
blanking them would corrupt unrelated strings. Arrays that do not look like text are
left alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from pwtool.build.wasm_binary import SECTION_CUSTOM, SECTION_DATA, WasmFormatError, read_name, read_uleb

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER_SIZE = 60
_WASM_MAGIC = b"\0asm\x01\0\0\0"

_LINKING_SEGMENT_INFO = 5
_LINKING_SYMBOL_TABLE = 8
_SYMBOL_KIND_DATA = 1
_SYMBOL_KIND_SECTION = 3
_SYMBOL_UNDEFINED = 0x10
_SYMBOL_EXPLICIT_NAME = 0x40
_SEGMENT_FLAG_STRINGS = 0x1
_OP_I32_CONST, _OP_END = 0x41, 0x0B


@dataclass(frozen=True)
class BlankedDocstrings:
    """What `blank_docstrings` did: how many arrays and bytes it zeroed."""

    count: int
    size: int


def blank_docstrings(archive: bytes) -> tuple[bytes, BlankedDocstrings]:
    """Return ``archive`` (a Unix ar of wasm objects) with every C docstring zeroed."""
    if not archive.startswith(_AR_MAGIC):
        raise WasmFormatError("not a Unix ar archive")
    patched = bytearray(archive)
    count = size = 0
    offset = len(_AR_MAGIC)
    while offset + _AR_HEADER_SIZE <= len(archive):
        header = archive[offset:offset + _AR_HEADER_SIZE]
        if header[58:60] != b"`\n":
            raise WasmFormatError(f"corrupt ar member header at byte {offset}")
        member_size = int(header[48:58].decode("ascii").strip())
        start = offset + _AR_HEADER_SIZE
        member = archive[start:start + member_size]
        if member.startswith(_WASM_MAGIC):
            for first, last in docstring_ranges(member):
                patched[start + first:start + last] = bytes(last - first)
                count += 1
                size += last - first
        offset = start + member_size + (member_size & 1)
    return bytes(patched), BlankedDocstrings(count, size)


def docstring_ranges(obj: bytes) -> list[tuple[int, int]]:
    """Byte ranges (within the object file) of the docstring arrays of one wasm object."""
    segments: list[tuple[int, int]] = []  # (file offset of the bytes, size)
    segment_info: list[tuple[str, int]] = []  # (name, flags)
    symbols: list[tuple[str, int, int, int]] = []  # (name, segment, offset, size)
    for section_id, start, end in _sections(obj):
        if section_id == SECTION_DATA:
            segments = _data_segments(obj, start)
        elif section_id == SECTION_CUSTOM:
            name_length, position = read_uleb(obj, start)
            if obj[position:position + name_length] == b"linking":
                _read_linking(obj, position + name_length, end, segment_info, symbols)
    ranges = []
    for name, segment, offset, size in symbols:
        if not (name.endswith("_doc") or name.endswith("__doc__")) or segment >= len(segment_info):
            continue
        segment_name, flags = segment_info[segment]
        if not segment_name.startswith(".rodata.") or flags & _SEGMENT_FLAG_STRINGS or segment >= len(segments):
            continue
        first = segments[segment][0] + offset
        text = obj[first:first + size]
        if _is_c_text(text):
            ranges.append((first, first + size - 1))  # keep the terminating NUL
    return ranges


def _is_c_text(data: bytes) -> bool:
    return len(data) > 1 and data.endswith(b"\0") and all(byte >= 0x09 for byte in data[:-1])


def _sections(obj: bytes) -> list[tuple[int, int, int]]:
    if not obj.startswith(_WASM_MAGIC):
        raise WasmFormatError("not a WebAssembly object file")
    sections = []
    offset = len(_WASM_MAGIC)
    while offset < len(obj):
        section_id = obj[offset]
        size, offset = read_uleb(obj, offset + 1)
        sections.append((section_id, offset, offset + size))
        offset += size
    return sections


def _data_segments(obj: bytes, offset: int) -> list[tuple[int, int]]:
    count, offset = read_uleb(obj, offset)
    segments = []
    for _ in range(count):
        flags, offset = read_uleb(obj, offset)
        if flags != 0 or obj[offset] != _OP_I32_CONST:
            raise WasmFormatError("unexpected data segment form in a relocatable object")
        _, offset = read_uleb(obj, offset + 1)
        if obj[offset] != _OP_END:
            raise WasmFormatError("unexpected data segment offset expression")
        size, offset = read_uleb(obj, offset + 1)
        segments.append((offset, size))
        offset += size
    return segments


def _read_linking(obj: bytes, offset: int, end: int, segment_info: list[tuple[str, int]],
                  symbols: list[tuple[str, int, int, int]]) -> None:
    _version, offset = read_uleb(obj, offset)
    while offset < end:
        kind = obj[offset]
        size, offset = read_uleb(obj, offset + 1)
        body_end = offset + size
        if kind == _LINKING_SEGMENT_INFO:
            count, position = read_uleb(obj, offset)
            for _ in range(count):
                name, position = read_name(obj, position)
                _alignment, position = read_uleb(obj, position)
                flags, position = read_uleb(obj, position)
                segment_info.append((name, flags))
        elif kind == _LINKING_SYMBOL_TABLE:
            _read_symbols(obj, offset, symbols)
        offset = body_end


def _read_symbols(obj: bytes, offset: int, symbols: list[tuple[str, int, int, int]]) -> None:
    count, offset = read_uleb(obj, offset)
    for _ in range(count):
        kind = obj[offset]
        flags, offset = read_uleb(obj, offset + 1)
        if kind == _SYMBOL_KIND_DATA:
            name, offset = read_name(obj, offset)
            if not flags & _SYMBOL_UNDEFINED:
                segment, offset = read_uleb(obj, offset)
                data_offset, offset = read_uleb(obj, offset)
                size, offset = read_uleb(obj, offset)
                symbols.append((name, segment, data_offset, size))
        elif kind == _SYMBOL_KIND_SECTION:
            _, offset = read_uleb(obj, offset)
        else:  # function, global, tag, table: an index, then a name if defined or explicit
            _, offset = read_uleb(obj, offset)
            if not flags & _SYMBOL_UNDEFINED or flags & _SYMBOL_EXPLICIT_NAME:
                _, offset = read_name(obj, offset)

