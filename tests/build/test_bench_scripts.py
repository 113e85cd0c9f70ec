"""The wasmtime benchmarks run end to end with small settings and print their tables."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _run(*arguments: str) -> str:
    result = subprocess.run([sys.executable, *arguments], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_vm_start_prints_the_snapshot_and_its_references() -> None:
    out = _run("bench/vm_start.py", "--runs", "20", "--cold-runs", "1")
    snapshot = re.search(r"VM start, snapshotted module\s+([\d.]+)", out)
    marshalled = re.search(r"import marshalled plugin\s+([\d.]+)", out)
    assert snapshot and marshalled, out
    assert float(snapshot.group(1)) < float(marshalled.group(1))  # the snapshot is what saves the start
    for phase in ("instantiate", "root context", "on_vm_start", "on_configure"):
        assert f"of which {phase}" in out


def test_instructions_per_request_counts_python_and_c() -> None:
    out = _run("bench/instructions_per_request.py", "--requests", "5")
    counts = {line.split()[0]: int(line.split()[3].replace(",", "")) for line in out.splitlines()[1:3]}
    assert set(counts) == {"python", "c"}, out
    assert 0 < counts["c"] < counts["python"]
    assert "Python/C instructions per request:" in out
