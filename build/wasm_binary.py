"""Just enough of the WebAssembly binary format to inspect and rewrite core modules.

Used by the snapshotter (replace data, globals, memory limits and exports), by
``pwtool inspect`` (imports, exports, custom sections) and by the runtime recipe (check
imports). Sections we do not touch are carried over byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")

MAGIC = b"\0asm\x01\0\0\0"

SECTION_CUSTOM = 0
SECTION_TYPE = 1
SECTION_IMPORT = 2
SECTION_FUNCTION = 3
SECTION_TABLE = 4
SECTION_MEMORY = 5
SECTION_GLOBAL = 6
SECTION_EXPORT = 7
SECTION_START = 8
SECTION_ELEMENT = 9
SECTION_CODE = 10
SECTION_DATA = 11
SECTION_DATA_COUNT = 12

KIND_FUNC, KIND_TABLE, KIND_MEMORY, KIND_GLOBAL, KIND_TAG = 0, 1, 2, 3, 4
KIND_NAMES = {KIND_FUNC: "func", KIND_TABLE: "table", KIND_MEMORY: "memory", KIND_GLOBAL: "global", KIND_TAG: "tag"}
VALUE_TYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128", 0x70: "funcref", 0x6F: "externref"}


class WasmFormatError(ValueError):
    """The bytes are not a well-formed WebAssembly core module."""


# --- LEB128 ------------------------------------------------------------------------


def read_uleb(data: bytes, offset: int) -> tuple[int, int]:
    """Decode an unsigned LEB128 at ``offset``; returns (value, next offset)."""
    result = shift = 0
    while True:
        if offset >= len(data):
            raise WasmFormatError("truncated LEB128 integer")
        byte = data[offset]
        offset += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, offset
        shift += 7
        if shift > 63:
            raise WasmFormatError("LEB128 integer too long")


def read_sleb(data: bytes, offset: int) -> tuple[int, int]:
    """Decode a signed LEB128 at ``offset``; returns (value, next offset)."""
    result = shift = 0
    while True:
        if offset >= len(data):
            raise WasmFormatError("truncated LEB128 integer")
        byte = data[offset]
        offset += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            if byte & 0x40:
                result -= 1 << shift
            return result, offset
        if shift > 70:
            raise WasmFormatError("LEB128 integer too long")


def uleb(value: int) -> bytes:
    """Encode an unsigned LEB128."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def sleb(value: int) -> bytes:
    """Encode a signed LEB128."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def read_name(data: bytes, offset: int) -> tuple[str, int]:
    size, offset = read_uleb(data, offset)
    if offset + size > len(data):
        raise WasmFormatError("name runs past the end of its section")
    return data[offset : offset + size].decode("utf-8", errors="replace"), offset + size


def encode_name(text: str) -> bytes:
    raw = text.encode()
    return uleb(len(raw)) + raw


# --- sections ------------------------------------------------------------------------


@dataclass
class Section:
    """One section: its id and raw payload (for custom sections the payload includes the name)."""

    id: int
    payload: bytes

    @property
    def custom_name(self) -> str | None:
        if self.id != SECTION_CUSTOM:
            return None
        return read_name(self.payload, 0)[0]


@dataclass
class Import:
    module: str
    name: str
    kind: int
    type_index: int | None = None  # for functions

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))


@dataclass
class Export:
    name: str
    kind: int
    index: int

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))


@dataclass
class FuncType:
    params: list[str]
    results: list[str]

    def __str__(self) -> str:
        return f"({', '.join(self.params)}) -> ({', '.join(self.results)})"


@dataclass
class Module:
    """A parsed module as an ordered list of sections."""

    sections: list[Section] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes) -> "Module":
        if len(data) < 8 or data[:4] != MAGIC[:4]:
            raise WasmFormatError("not a WebAssembly module (bad magic number)")
        if data[4:8] != MAGIC[4:]:
            raise WasmFormatError(
                "not a WebAssembly core module (version field is not 1: a component? "
                "Envoy loads only core modules)"
            )
        module = cls()
        offset = 8
        while offset < len(data):
            section_id = data[offset]
            size, start = read_uleb(data, offset + 1)
            end = start + size
            if end > len(data):
                raise WasmFormatError(f"section {section_id} runs past the end of the file")
            module.sections.append(Section(section_id, data[start:end]))
            offset = end
        return module

    def to_bytes(self) -> bytes:
        out = bytearray(MAGIC)
        for section in self.sections:
            out.append(section.id)
            out += uleb(len(section.payload))
            out += section.payload
        return bytes(out)

    def section(self, section_id: int) -> Section | None:
        return next((s for s in self.sections if s.id == section_id), None)

    def vector(self, section_id: int) -> tuple[bytes, int, int] | None:
        """A vector section as (payload, element count, offset of the first element)."""
        section = self.section(section_id)
        if section is None:
            return None
        count, offset = read_uleb(section.payload, 0)
        return section.payload, count, offset

    def entries(self, section_id: int, read_entry: Callable[[bytes, int], tuple[T, int]]) -> list[T]:
        """Every element of a vector section, each decoded by ``read_entry(payload, offset)
        -> (element, next offset)``; empty when the module has no such section."""
        vector = self.vector(section_id)
        if vector is None:
            return []
        data, count, offset = vector
        items = []
        for _ in range(count):
            item, offset = read_entry(data, offset)
            items.append(item)
        return items

    def replace_section(self, new: Section) -> None:
        """Replace the section with ``new.id``, or insert it in the canonical order."""
        for index, section in enumerate(self.sections):
            if section.id == new.id:
                self.sections[index] = new
                return
        order = [SECTION_TYPE, SECTION_IMPORT, SECTION_FUNCTION, SECTION_TABLE, SECTION_MEMORY, SECTION_GLOBAL,
                 SECTION_EXPORT, SECTION_START, SECTION_ELEMENT, SECTION_DATA_COUNT, SECTION_CODE, SECTION_DATA]
        rank = order.index(new.id)
        for index, section in enumerate(self.sections):
            if section.id != SECTION_CUSTOM and order.index(section.id) > rank:
                self.sections.insert(index, new)
                return
        self.sections.append(new)

    def custom_sections(self) -> dict[str, bytes]:
        """Custom sections by name, with the name prefix stripped from the payload."""
        found: dict[str, bytes] = {}
        for section in self.sections:
            if section.id == SECTION_CUSTOM:
                name, offset = read_name(section.payload, 0)
                found[name] = section.payload[offset:]
        return found

    def set_custom_section(self, name: str, content: bytes) -> None:
        self.sections = [s for s in self.sections if s.custom_name != name]
        self.sections.append(Section(SECTION_CUSTOM, encode_name(name) + content))

    def drop_custom_sections(self, keep: Iterable[str] = ()) -> None:
        keep_set = set(keep)
        self.sections = [s for s in self.sections if s.id != SECTION_CUSTOM or s.custom_name in keep_set]

    # typed views

    def types(self) -> list[FuncType]:
        return self.entries(SECTION_TYPE, _read_functype)

    def imports(self) -> list[Import]:
        return self.entries(SECTION_IMPORT, _read_import)

    def exports(self) -> list[Export]:
        return self.entries(SECTION_EXPORT, _read_export)

    def function_names(self) -> dict[int, str]:
        """Function index -> name, from the `name` custom section (empty if stripped)."""
        content = self.custom_sections().get("name")
        names: dict[int, str] = {}
        if content is None:
            return names
        offset = 0
        while offset < len(content):
            subsection = content[offset]
            size, offset = read_uleb(content, offset + 1)
            end = offset + size
            if subsection == 1:
                count, cursor = read_uleb(content, offset)
                for _ in range(count):
                    index, cursor = read_uleb(content, cursor)
                    names[index], cursor = read_name(content, cursor)
            offset = end
        return names

    def set_exports(self, exports: list[Export]) -> None:
        payload = bytearray(uleb(len(exports)))
        for export in exports:
            payload += encode_name(export.name) + bytes([export.kind]) + uleb(export.index)
        self.replace_section(Section(SECTION_EXPORT, bytes(payload)))


def _skip_limits(data: bytes, offset: int) -> int:
    flags = data[offset]
    _, offset = read_uleb(data, offset + 1)
    if flags & 1:
        _, offset = read_uleb(data, offset)
    return offset


def _read_functype(data: bytes, offset: int) -> tuple[FuncType, int]:
    if data[offset] != 0x60:
        raise WasmFormatError("unsupported type form in type section")
    offset += 1
    params: list[str] = []
    results: list[str] = []
    for bucket in (params, results):
        n, offset = read_uleb(data, offset)
        for _ in range(n):
            bucket.append(VALUE_TYPES.get(data[offset], hex(data[offset])))
            offset += 1
    return FuncType(params, results), offset


def _read_import(data: bytes, offset: int) -> tuple[Import, int]:
    module_name, offset = read_name(data, offset)
    name, offset = read_name(data, offset)
    kind = data[offset]
    offset += 1
    type_index = None
    if kind == KIND_FUNC:
        type_index, offset = read_uleb(data, offset)
    elif kind == KIND_TABLE:
        offset = _skip_limits(data, offset + 1)
    elif kind == KIND_MEMORY:
        offset = _skip_limits(data, offset)
    elif kind == KIND_GLOBAL:
        offset += 2
    elif kind == KIND_TAG:
        _, offset = read_uleb(data, offset + 1)
    else:
        raise WasmFormatError(f"unknown import kind {kind}")
    return Import(module_name, name, kind, type_index), offset


def _read_export(data: bytes, offset: int) -> tuple[Export, int]:
    name, offset = read_name(data, offset)
    kind = data[offset]
    index, offset = read_uleb(data, offset + 1)
    return Export(name, kind, index), offset
