"""The runtime recipe blanks C docstrings in libpython3.11.a, and nothing else."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import wasmtime

from pwtool.build.runtime.docstrings import blank_docstrings
from pwtool.build.runtime.recipe import _cpython_dir, ensure_runtime

SOURCE = r"""
#define EXPORT(n) __attribute__((export_name(n)))
static const char widget_frob__doc__[] = "frob($self, /, name)\n--\n\nFrob the widget by name.";
static const char not_text_doc[] = {1, 2, 3, 0};
struct method { const char *name; const char *doc; const char *raw; };
struct method methods[] = {{"name", widget_frob__doc__, not_text_doc}};  /* extern: not folded */
EXPORT("doc_first") int doc_first(void) { return methods[0].doc[0]; }
EXPORT("doc_length") int doc_length(void) { int n = 0; while (methods[0].doc[n]) n++; return n; }
EXPORT("keyword_first") int keyword_first(void) { return methods[0].name[0]; }
EXPORT("binary_second") int binary_second(void) { return methods[0].raw[1]; }
"""


def _zig(*arguments: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "ziglang", *arguments], cwd=cwd, check=True, capture_output=True, timeout=300)


def _run(module: Path) -> dict[str, int]:
    store = wasmtime.Store()
    instance = wasmtime.Instance(store, wasmtime.Module.from_file(store.engine, str(module)), [])
    exports = instance.exports(store)
    return {name: exports[name](store) for name in ("doc_first", "doc_length", "keyword_first", "binary_second")}


def test_blanks_docstring_arrays_and_keeps_other_data(tmp_path: Path) -> None:
    (tmp_path / "widget.c").write_text(SOURCE)
    _zig("cc", "-target", "wasm32-freestanding", "-O2", "-c", "widget.c", "-o", "widget.o", cwd=tmp_path)
    _zig("ar", "rcs", "libwidget.a", "widget.o", cwd=tmp_path)
    original = (tmp_path / "libwidget.a").read_bytes()

    blanked, report = blank_docstrings(original)

    assert report.count == 1
    assert report.size == len("frob($self, /, name)\n--\n\nFrob the widget by name.")
    assert len(blanked) == len(original)
    assert b"Frob the widget" in original and b"Frob the widget" not in blanked
    (tmp_path / "libwidget.a").write_bytes(blanked)
    (tmp_path / "widget.o").unlink()
    _zig("ar", "x", "libwidget.a", "widget.o", cwd=tmp_path)  # still a valid archive and object
    link = ("cc", "-target", "wasm32-freestanding", "-nostdlib", "-Wl,--no-entry", "-O2")
    _zig(*link, "-o", "widget.wasm", "widget.o", cwd=tmp_path)
    assert _run(tmp_path / "widget.wasm") == {
        "doc_first": 0, "doc_length": 0, "keyword_first": ord("n"), "binary_second": 2,
    }


def test_the_cpython_archive_loses_its_docstrings() -> None:
    ensure_runtime()
    _, report = blank_docstrings((_cpython_dir() / "lib" / "libpython3.11.a").read_bytes())
    assert report.count > 1000
    assert report.size > 150_000
