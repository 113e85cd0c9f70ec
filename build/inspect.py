"""What a proxy-wasm module is: ABI version, imports, exports, and whether Envoy loads it.

Works on any core module, ours or one built with another SDK.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pwtool.abi import ABI_VERSION_EXPORTS, ENVOY_WASI_FUNCTIONS, export_signature_problem, hostcalls_for
from pwtool.build.wasm_binary import (
    KIND_FUNC, SECTION_CODE, SECTION_DATA, SECTION_DATA_COUNT, SECTION_FUNCTION, FuncType, Module, WasmFormatError,
    read_uleb,
)

METADATA_SECTION = "pwtool.plugin"


@dataclass
class ModuleReport:
    """The facts ``pwtool inspect`` prints."""

    size: int
    sha256: str
    abi_versions: list[str]
    imports: list[dict[str, str]]
    exports: list[dict[str, str]]
    refused_imports: list[str]
    problems: list[str] = field(default_factory=list)
    plugin: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    """What is wrong but does not stop Envoy (damaged pwtool metadata)."""

    @property
    def envoy_loadable(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "sha256": self.sha256,
            "abi_versions": self.abi_versions,
            "envoy_loadable": self.envoy_loadable,
            "problems": self.problems,
            "refused_imports": self.refused_imports,
            "imports": self.imports,
            "exports": self.exports,
            "plugin": self.plugin,
            "warnings": self.warnings,
        }


def _check_complete(module: Module) -> None:
    """Raise WasmFormatError for a module cut short at a section boundary: it still parses,
    but holds fewer function bodies (or data segments) than it declares."""
    functions, code = module.vector(SECTION_FUNCTION), module.vector(SECTION_CODE)
    declared, held = (functions[1] if functions else 0), (code[1] if code else 0)
    if declared == held:
        data_count, data = module.section(SECTION_DATA_COUNT), module.vector(SECTION_DATA)
        if data_count is None:
            return
        declared, held = read_uleb(data_count.payload, 0)[0], (data[1] if data else 0)
        if declared == held:
            return
        what = "data segments"
    else:
        what = "function bodies"
    raise WasmFormatError(f"it declares {declared} {what} but holds {held}: the file is truncated or damaged")


def _function_types(module: Module, types: list[FuncType]) -> dict[int, FuncType]:
    """{function index: its type}, imported functions first, as export indices count them."""
    indices: list[int | None] = [item.type_index for item in module.imports() if item.kind == KIND_FUNC]
    indices += module.entries(SECTION_FUNCTION, read_uleb)
    return {n: types[t] for n, t in enumerate(indices) if t is not None and t < len(types)}


def inspect_module(data: bytes) -> ModuleReport:
    """Analyse a module given as bytes (raises WasmFormatError if it is not one)."""
    module = Module.parse(data)
    _check_complete(module)
    types = module.types()
    exports = module.exports()
    export_names = {e.name for e in exports}
    versions = [version for marker, version in ABI_VERSION_EXPORTS.items() if marker in export_names]
    known = hostcalls_for(versions[-1] if len(versions) == 1 else None)
    imports, refused = [], []
    for item in module.imports():
        signature = str(types[item.type_index]) if item.type_index is not None and item.type_index < len(types) else ""
        imports.append({"module": item.module, "name": item.name, "kind": item.kind_name, "type": signature})
        allowed = (item.module == "env" and item.name in known) or (
            item.module == "wasi_snapshot_preview1" and item.name in ENVOY_WASI_FUNCTIONS
        )
        if not allowed:
            refused.append(f"{item.module}.{item.name}")
    problems = []
    if not versions:
        problems.append("no proxy_abi_version_* export: Envoy reports 'Missing or unknown Proxy-Wasm ABI version'")
    if refused:
        problems.append("imports Envoy does not provide: " + ", ".join(refused))
    function_types = _function_types(module, types)
    functions = {e.name for e in exports if e.kind == KIND_FUNC}
    if "proxy_on_memory_allocate" not in functions and "malloc" not in functions:
        problems.append("exports neither proxy_on_memory_allocate nor malloc as a function: the host cannot pass data in")
    for export in exports:
        export_type = function_types.get(export.index) if export.kind == KIND_FUNC else None
        if export_type is not None:
            problem = export_signature_problem(export.name, export_type.params, export_type.results,
                                               versions[-1] if len(versions) == 1 else None)
            if problem is not None:
                problems.append(problem)
    metadata = module.custom_sections().get(METADATA_SECTION)
    plugin, warnings = None, []
    if metadata is not None:
        try:
            plugin = json.loads(metadata)
        except ValueError:
            warnings.append(f"custom section {METADATA_SECTION!r} is not valid JSON")
        if plugin is not None and not isinstance(plugin, dict):
            warnings.append(f"custom section {METADATA_SECTION!r} is not the JSON object `pwtool build` writes there")
            plugin = None
        if warnings:
            warnings[-1] += ": the module's pwtool metadata is damaged (Envoy ignores it). Fix: rebuild the module with `pwtool build`"
    return ModuleReport(
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        abi_versions=versions,
        imports=imports,
        exports=[{"name": e.name, "kind": e.kind_name} for e in exports],
        refused_imports=refused,
        problems=problems,
        plugin=plugin,
        warnings=warnings,
    )
