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
