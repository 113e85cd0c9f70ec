#!/usr/bin/env python3
"""WebAssembly instructions per request: the Python ``http_headers`` example against the C module.

The same requests as ``bench/headers_vs_lua.py`` (its C module does the same header
work), sent through pwtool's emulator with instruction counting on
(``Emulator(count_instructions=True)``, wasmtime fuel). Unlike CPU time, the counts do
not depend on what else the machine is doing, so they show what an SDK change saves.
They count only the work inside the module: Envoy's own cost per callback and hostcall
is not in them (``bench/headers_vs_lua.py`` measures that).

    .venv/bin/python bench/instructions_per_request.py [--requests 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from headers_vs_lua import build_c, build_python  # noqa: E402

from pwtool.emulator import Emulator  # noqa: E402

REQUEST = [(":method", "GET"), (":path", "/bench"), (":authority", "example.com"), ("user-agent", "wrk/4"),
           ("accept", "*/*")]
RESPONSE = [(":status", "200"), ("content-type", "text/plain"), ("server", "envoy"), ("content-length", "2")]


def per_request(module: Path, root_id: str, requests: int) -> tuple[int, int]:
    """Median instructions of (request phase, response phase up to on_delete)."""
    with Emulator(log_level=3, count_instructions=True) as emulator:
        plugin = emulator.load(module, root_id=root_id)
        request_phase, response_phase = [], []
        for index in range(requests + 5):
            stream = plugin.http_stream()
            start = plugin.instructions or 0
            stream.send_request_headers(REQUEST, end_of_stream=True)
            middle = plugin.instructions or 0
            stream.send_response_headers(RESPONSE, end_of_stream=True)
            end = plugin.instructions or 0
            if index >= 5:  # the first requests also warm the interpreter's caches
                request_phase.append(middle - start)
                response_phase.append(end - middle)
        return int(statistics.median(request_phase)), int(statistics.median(response_phase))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50)
    options = parser.parse_args()
    cache = Path(tempfile.gettempdir()) / "pwtool-bench"
    modules = {"python": (build_python(cache), "http_headers")}
    c_module = build_c(cache / "c")
    if c_module is not None:
        modules["c"] = (c_module, "headers_c")
    print(f"{'module':8} {'request':>10} {'response':>10} {'total':>10}   wasm instructions per request")
    totals = {}
    for name, (module, root_id) in modules.items():
        request, response = per_request(module, root_id, options.requests)
        totals[name] = request + response
        print(f"{name:8} {request:>10,} {response:>10,} {totals[name]:>10,}")
    if "c" in totals:
        print(f"Python/C instructions per request: {totals['python'] / totals['c']:.0f}")


if __name__ == "__main__":
    main()
