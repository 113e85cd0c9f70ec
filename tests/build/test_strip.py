"""The code stripper: decoding calls, and what it keeps."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pwtool.build.snapshot import is_build_only, strip_build_only_code
from pwtool.build.snapshot._calls import direct_calls, function_bodies
from pwtool.build.wasm_binary import KIND_FUNC, Module

SOURCE = r"""
#define EXPORT(name) __attribute__((export_name(name)))
__attribute__((noinline)) int helper_only_the_compiler_uses(int x) { return x * 3 + 1; }
__attribute__((noinline)) int compiler_visit_thing(int x) { return helper_only_the_compiler_uses(x) + 2; }
__attribute__((noinline)) int shared_helper(int x) { return x + 40; }
__attribute__((noinline)) int compiler_also_uses_shared(int x) { return shared_helper(x) * 2; }
typedef int (*op)(int);
op table[] = {compiler_also_uses_shared};
EXPORT("run") int run(int x) { return shared_helper(x); }
EXPORT("compile_something") int compile_something(int x) { return compiler_visit_thing(x); }
"""


@pytest.fixture(scope="module")
def module_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    directory = tmp_path_factory.mktemp("strip")
    source = directory / "strip.c"
    source.write_text(SOURCE)
    # -g keeps the name section, which the stripper needs (the runtime is linked the same way)
    out = directory / "strip.wasm"
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "wasm32-freestanding", "-nostdlib", "-O1", "-g",
                    "-Wl,--no-entry", "-o", str(out), str(source)], check=True, capture_output=True, timeout=300)
    return out.read_bytes()


def _names_by_body(module: Module) -> dict[str, bytes]:
    names = module.function_names()
    imported = sum(1 for item in module.imports() if item.kind == KIND_FUNC)
    code = module.section(10)
    assert code is not None
    return {names[imported + i]: code.payload[start:end] for i, (start, end) in enumerate(function_bodies(module))}


def test_direct_calls_are_found(module_bytes: bytes) -> None:
    module = Module.parse(module_bytes)
    names = module.function_names()
    index = {name: i for i, name in names.items()}
    bodies = _names_by_body(module)
    assert index["shared_helper"] in direct_calls(bodies["run"])
    assert index["helper_only_the_compiler_uses"] in direct_calls(bodies["compiler_visit_thing"])


def test_build_only_code_and_what_only_it_calls_is_stubbed(module_bytes: bytes) -> None:
    stripped, count = strip_build_only_code(module_bytes)
    bodies = _names_by_body(Module.parse(stripped))
    unreachable = bytes([0x00, 0x00, 0x0B])
    assert bodies["compiler_visit_thing"] == unreachable  # by name
    assert bodies["helper_only_the_compiler_uses"] == unreachable  # only build-only code calls it
    assert bodies["shared_helper"] != unreachable  # run() calls it too
    assert bodies["run"] != unreachable
    assert count >= 2


def test_names_that_look_like_the_compiler_but_are_not() -> None:
    assert not is_build_only("compiler_rt.fastMemset")  # zig's compiler runtime
    assert not is_build_only("picklebuf_raw")
    assert is_build_only("compiler_visit_expr") and is_build_only("_PyPegen_parse")


def test_the_answer_is_cached_per_code_and_reused(module_bytes: bytes, tmp_path: Path) -> None:
    first, count = strip_build_only_code(module_bytes, tmp_path)
    cached = list(tmp_path.glob("strip-*.json"))
    assert len(cached) == 1
    # The cached answer is what is used: an edited one changes the output.
    kept = set(json.loads(cached[0].read_text()))
    names = {name: index for index, name in Module.parse(module_bytes).function_names().items()}
    cached[0].write_text(json.dumps(sorted(kept - {names["shared_helper"]})))
    edited, edited_count = strip_build_only_code(module_bytes, tmp_path)
    assert edited_count == count + 1
    assert _names_by_body(Module.parse(edited))["shared_helper"] == bytes([0x00, 0x00, 0x0B])
    # An unreadable cache entry is ignored and written again.
    cached[0].write_text("{not json")
    again, again_count = strip_build_only_code(module_bytes, tmp_path)
    assert (again, again_count) == (first, count) == strip_build_only_code(module_bytes)
    assert json.loads(cached[0].read_text()) == sorted(kept)
