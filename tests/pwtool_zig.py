"""Compile C proxy-wasm modules with zig (``python -m ziglang cc``), cached by source and flags.

Shared by tests/emulator (raw-ABI modules) and tests/conformance (the same modules in Envoy).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

ZIG_FLAGS = ["-target", "wasm32-wasi", "-mexec-model=reactor", "-O2", "-s"]


def compile_c(source: Path, out_dir: Path, defines: tuple[str, ...] = ()) -> Path:
    """Compile one C file to a reactor module with zig; cached by source and flags."""
    flags = ZIG_FLAGS + [f"-D{d}" for d in defines]
    key = hashlib.sha256(source.read_bytes() + " ".join(flags).encode()).hexdigest()[:16]
    out = out_dir / f"{source.stem}-{key}.wasm"
    if not out.exists():
        tmp = out.with_suffix(".tmp")
        cmd = [sys.executable, "-m", "ziglang", "cc", *flags, "-o", str(tmp), str(source)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"zig cc failed for {source.name}:\n{result.stderr}")
        tmp.replace(out)
    return out


# The smallest useful proxy-wasm module: raw ABI, no libc. Registries and Envoy's
# validate mode only need a real module, not a Python plugin.
TINY_MODULE_C = r"""
#include <stdint.h>
#define EXPORT(n) __attribute__((export_name(n)))
extern int32_t proxy_log(int32_t, const char*, int32_t) __attribute__((import_module("env"), import_name("proxy_log")));
static unsigned char heap[65536]; static uint32_t top;
EXPORT("proxy_abi_version_0_2_1") void abi(void) {}
EXPORT("proxy_on_memory_allocate") void* alloc(uint32_t n) { void* p = heap + top; top = (top + n + 7) & ~7u; if (top > sizeof heap) top = 0; return p; }
EXPORT("proxy_on_context_create") void ctx(uint32_t id, uint32_t parent) {}
EXPORT("proxy_on_vm_start") uint32_t vm_start(uint32_t id, uint32_t size) { proxy_log(2, "pwtool-test vm started", 22); return 1; }
EXPORT("proxy_on_configure") uint32_t configure(uint32_t id, uint32_t size) { return 1; }
EXPORT("proxy_on_request_headers") uint32_t req(uint32_t id, uint32_t n, uint32_t eos) { return 0; }
EXPORT("proxy_on_done") uint32_t done(uint32_t id) { return 1; }
EXPORT("proxy_on_delete") void del(uint32_t id) {}
"""


def compile_tiny_module(workdir: Path) -> Path:
    """TINY_MODULE_C compiled freestanding (no WASI imports at all)."""
    source = workdir / "tiny.c"
    source.write_text(TINY_MODULE_C)
    out = workdir / "tiny.wasm"
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "-target", "wasm32-freestanding", "-nostdlib", "-O2",
                    "-Wl,--no-entry", "-o", str(out), str(source)], check=True, capture_output=True, timeout=300)
    return out
