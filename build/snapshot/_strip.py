"""Remove code that a snapshotted interpreter can no longer reach.

After the snapshot, the interpreter has started and every plugin module is compiled:
the parser, the compiler and start-up code are dead weight (about a quarter of the code
section). Their bodies become a single `unreachable`, which keeps every function index
and signature valid. The interpreter's ``compile``/``exec``/``eval`` of source text
are replaced at build time by versions that raise a clear RuntimeError (see boot.py),
so Python code never reaches a stub; ``pwtool build --keep-compiler`` keeps them all.
"""

from __future__ import annotations

import re

from pwtool.build.wasm_binary import KIND_FUNC, SECTION_CODE, Module, Section, read_uleb, uleb

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


def strip_build_only_code(module_bytes: bytes) -> tuple[bytes, int]:
    """Stub out build-only functions; returns the new module and how many were stubbed."""
    module = Module.parse(module_bytes)
    names = module.function_names()
    if not names:
        return module_bytes, 0
    imported = sum(1 for item in module.imports() if item.kind == KIND_FUNC)
    exported = {e.index for e in module.exports() if e.kind == KIND_FUNC}
    section = module.section(SECTION_CODE)
    assert section is not None
    data = section.payload
    count, offset = read_uleb(data, 0)
    out = bytearray(uleb(count))
    stubbed = 0
    for position in range(count):
        size, start = read_uleb(data, offset)
        index = imported + position
        if index not in exported and is_build_only(names.get(index, "")):
            out += uleb(len(_UNREACHABLE_BODY)) + _UNREACHABLE_BODY
            stubbed += 1
        else:
            out += data[offset : start + size]
        offset = start + size
    module.replace_section(Section(SECTION_CODE, bytes(out)))
    return module.to_bytes(), stubbed
