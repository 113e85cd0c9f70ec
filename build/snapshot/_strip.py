"""Remove code that a snapshotted interpreter can no longer reach.

After the snapshot, the interpreter has started and every plugin module is compiled:
the parser, the compiler and start-up code are dead weight (about a quarter of the code
section). Their bodies become a single `unreachable`, which keeps every function index
and signature valid. Then every function that nothing else can reach any more (not
exported, not in the indirect-call table, and called directly only from stubbed code)
is stubbed too. The interpreter's ``compile``/``exec``/``eval`` of source text
are replaced at build time by versions that raise a clear RuntimeError (see boot.py),
so Python code never reaches a stub; ``pwtool build --keep-compiler`` keeps them all.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from pwtool.build._files import write_atomically
from pwtool.build.snapshot._calls import direct_calls, function_bodies, table_functions
from pwtool.build.wasm_binary import (
    KIND_FUNC,
    SECTION_CODE,
    SECTION_ELEMENT,
    Module,
    Section,
    WasmFormatError,
    uleb,
)

# Functions only the parser, the compiler or interpreter start-up/shut-down call.
_BUILD_ONLY = re.compile(
    r"(_rule|_raw)$|^_loop[01]_\d+$|^_gather_\d+$|^_tmp_\d+$|^invalid_"  # the PEG parser
    r"|^_PyPegen_|^_PyParser_|^_PyTokenizer_|^tok_"  # parser support, tokenizer
    r"|^_PyAST_|^obj2ast_|^ast2obj_|^validate_|^astfold_|^fold_|^append_ast_"  # AST, optimizer
    r"|^compiler_(?!rt\.)|^assemble|^symtable_|^_PySymtable_|^_PyFuture"  # compiler, symbol table
    r"|^_Py_Deepfreeze_"  # start-up / shut-down of the frozen modules
)
# Matched by the patterns above but reachable at run time.
_KEEP = frozenset({"picklebuf_raw", "validate_and_copy_tuple", "_PyTokenizer_FindEncodingFilename"})
_UNREACHABLE_BODY = bytes([0x00, 0x00, 0x0B])  # no locals; unreachable; end


def is_build_only(name: str) -> bool:
    return name not in _KEEP and _BUILD_ONLY.search(name) is not None


def strip_build_only_code(module_bytes: bytes, cache_dir: Path | None = None) -> tuple[bytes, int]:
    """Stub out build-only functions and what only they reach; returns the new module
    and how many functions were stubbed.

    Which functions go depends only on the code, the table, the names and the exports,
    which a snapshot leaves as the runtime had them; with ``cache_dir`` the answer is
    kept there, so only the first build with a runtime decodes its code.
    """
    module = Module.parse(module_bytes)
    names = module.function_names()
    if not names:
        return module_bytes, 0
    imported = sum(1 for item in module.imports() if item.kind == KIND_FUNC)
    bodies = function_bodies(module)
    code = module.section(SECTION_CODE)
    assert code is not None
    cache = cache_dir / f"strip-{_analysis_key(module, names)}.json" if cache_dir is not None else None
    keep = _cached_keep(cache)
    if keep is None:
        build_only = {imported + position for position in range(len(bodies))
                      if is_build_only(names.get(imported + position, ""))}
        try:
            keep = _reachable(module, code.payload, bodies, imported, build_only)
        except WasmFormatError:
            keep = {imported + position for position in range(len(bodies))} - build_only
        if cache is not None:
            write_atomically(cache, json.dumps(sorted(keep)))
    out = bytearray(uleb(len(bodies)))
    stubbed = 0
    for position, (start, end) in enumerate(bodies):
        if imported + position in keep:
            out += uleb(end - start) + code.payload[start:end]
        else:
            out += uleb(len(_UNREACHABLE_BODY)) + _UNREACHABLE_BODY
            stubbed += 1
    module.replace_section(Section(SECTION_CODE, bytes(out)))
    return module.to_bytes(), stubbed


def _analysis_key(module: Module, names: dict[int, str]) -> str:
    """A digest of everything `_reachable` and `is_build_only` read."""
    digest = hashlib.sha256(_BUILD_ONLY.pattern.encode() + repr(sorted(_KEEP)).encode())
    for section_id in (SECTION_CODE, SECTION_ELEMENT):
        section = module.section(section_id)
        digest.update(section.payload if section is not None else b"-")
    digest.update(repr(sorted(e.index for e in module.exports() if e.kind == KIND_FUNC)).encode())
    digest.update(repr(sorted(names.items())).encode())
    return digest.hexdigest()[:24]


def _cached_keep(cache: Path | None) -> set[int] | None:
    if cache is None or not cache.is_file():
        return None
    try:
        return set(json.loads(cache.read_text()))
    except (OSError, ValueError, TypeError):
        return None  # unreadable: decode the code again


def _reachable(module: Module, code: bytes, bodies: list[tuple[int, int]], imported: int,
               build_only: set[int]) -> set[int]:
    """Functions reachable from the exports and the table, never through build-only ones."""
    roots = {e.index for e in module.exports() if e.kind == KIND_FUNC} | table_functions(module)
    pending = [index for index in roots if index >= imported and index not in build_only]
    seen = set(pending)
    while pending:
        index = pending.pop()
        start, end = bodies[index - imported]
        for callee in direct_calls(code[start:end]):
            if callee >= imported and callee not in seen and callee not in build_only:
                seen.add(callee)
                pending.append(callee)
    return seen
