"""Fixtures for the emulator's own tests: C modules compiled with zig, cached per source."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

C_DIR = Path(__file__).parent / "c_modules"
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


@pytest.fixture(scope="session")
def c_module(request: pytest.FixtureRequest) -> Callable[..., Path]:
    """``c_module("filter", "ABI_VERSION=10")`` -> path of the compiled .wasm."""
    out_dir = Path(request.config.cache.mkdir("pwtool-c-modules"))

    def build(name: str, *defines: str) -> Path:
        return compile_c(C_DIR / f"{name}.c", out_dir, tuple(defines))

    return build


@pytest.fixture(scope="session")
def filter_wasm(c_module: Callable[..., Path]) -> Path:
    return c_module("filter")
