"""bench/headers_vs_lua.py runs end to end (one short round) and prints its table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.envoy, pytest.mark.slow]


@pytest.mark.parametrize("workload", ["http_headers", "one-header"])
def test_bench_script_prints_the_table(tmp_path: Path, workload: str) -> None:
    """Every variant serves its load with the filter at work (the bench checks each
    answer's x-powered-by before measuring) and the table lists them all."""
    assert shutil.which("wrk"), "wrk is not installed: run ./setup.sh (it runs apt-get install -y wrk)"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "headers_vs_lua.py"), "--duration", "1", "--warmup", "1",
         "--rounds", "1", "--variants", "lua,c,c-floor,python,python-floor", "--workload", workload,
         "--cache", str(tmp_path), "--json", str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"workload {workload};"), result.stdout
    assert [line.split()[0] for line in lines[2:8]] == ["none", "lua", "c", "c-floor", "python", "python-floor"], \
        result.stdout
    for summary in ("Python/Lua CPU added per request:", "The work's hostcalls (c minus c-floor)",
                    "The Python plugin's own code"):
        assert summary in result.stdout
    assert (tmp_path / "out.json").stat().st_size > 0


def test_bench_counts_instructions_under_callgrind(tmp_path: Path) -> None:
    """``--measure instructions --cache-sim``: Envoy under callgrind, instructions and
    simulated L1 cache misses per request for each variant."""
    assert shutil.which("valgrind"), "valgrind is not installed: run ./setup.sh (it runs apt-get install -y valgrind)"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "headers_vs_lua.py"), "--measure", "instructions", "--rounds", "1",
         "--requests", "200", "--warmup-requests", "20", "--variants", "lua,c", "--cache-sim", "--cache", str(tmp_path),
         "--json", str(tmp_path / "out.json")],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr
    table = json.loads((tmp_path / "out.json").read_text())["table"]
    assert list(table) == ["none", "lua", "c"], result.stdout
    # Envoy alone runs tens of thousands of instructions per request; each filter adds
    # thousands more (Lua's coroutine and header calls, the C module's calls into V8).
    assert table["none"]["instructions_per_request"] > 10_000, result.stdout
    for variant in ("lua", "c"):
        assert table[variant]["instructions_added"] > 1_000, result.stdout
    assert "C/Lua instructions added per request:" in result.stdout
    # Envoy's own request path misses the L1 instruction cache thousands of times in
    # callgrind's model; a filter's extra code adds hundreds more.
    assert table["none"]["i1_misses_per_request"] > 500, result.stdout
    for variant in ("lua", "c"):
        assert table[variant]["i1_misses_added"] > 50, result.stdout
        assert table[variant]["d1_misses_per_request"] > 0, result.stdout
    assert "C/Lua instruction-cache (I1) misses added per request:" in result.stdout


def test_bench_refuses_cache_sim_without_callgrind() -> None:
    result = subprocess.run([sys.executable, str(REPO / "bench" / "headers_vs_lua.py"), "--cache-sim"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Fix: add --measure instructions" in result.stderr
