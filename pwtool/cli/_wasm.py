"""The check ``pwtool push`` and ``pwtool manifest ... --wasm`` make on a module file before using it."""

from __future__ import annotations


def module_problem(module: bytes, label: str, fix: str) -> str | None:
    """Why Envoy would not load ``module``, as a message naming ``label`` (the file, as the
    user gave it) and ending with ``fix``; None for a well-formed core module Envoy loads."""
    from pwtool.build.inspect import inspect_module
    from pwtool.build.wasm_binary import WasmFormatError

    if not module.startswith(b"\0asm"):
        return f"{label} is not a WebAssembly module (no \\0asm magic). Fix: {fix}"
    try:
        report = inspect_module(module)
    except WasmFormatError as error:
        return f"{label} cannot be loaded by Envoy: {error}. Fix: {fix}"
    if not report.envoy_loadable:
        return f"{label} cannot be loaded by Envoy: {'; '.join(report.problems)}. Fix: {fix}"
    return None
