"""Emulated HTTP requests per second in wasm mode (prints numbers; not a test).

One request = open a stream (on_context_create), request headers with end_of_stream,
response headers with end_of_stream (on_log, on_done, on_delete): the full life of a
stream through the plugin. Runs the C test module (raw ABI) and a Python plugin built
with ``pwtool build``.

    .venv/bin/python bench/emulator_throughput.py [--seconds 3] [--plugin DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pwtool.emulator import Action, Emulator, build_plugin_cached  # noqa: E402


def measure(label: str, module: Path, seconds: float, config: bytes = b"") -> float:
    emu = Emulator(log_level=3)  # like a production Envoy: warnings and up
    plugin = emu.load(module, config=config)
    request = [(":method", "GET"), (":path", "/bench"), (":authority", "example.com"), ("user-agent", "bench")]
    response = [(":status", "200"), ("content-type", "text/plain")]
    for _ in range(50):  # warm-up
        s = plugin.http_stream()
        s.send_request_headers(request, end_of_stream=True)
        s.send_response_headers(response, end_of_stream=True)
    n = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            s = plugin.http_stream()
            assert s.send_request_headers(request, end_of_stream=True) == Action.CONTINUE
            s.send_response_headers(response, end_of_stream=True)
        n += 100
    elapsed = time.perf_counter() - started
    assert s.done
    rate = n / elapsed
    print(f"{label:<40} {rate:>10,.0f} req/s   ({n} requests in {elapsed:.2f} s, {1e6 / rate:.0f} us/request)")
    emu.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--plugin", type=Path, default=ROOT / "tests" / "emulator" / "plugins" / "pyfilter")
    args = parser.parse_args()
    from pwtool_zig import compile_c

    C_DIR = ROOT / "tests" / "emulator" / "c_modules"

    cache = Path(tempfile.gettempdir()) / "pwtool-bench"
    cache.mkdir(exist_ok=True)
    measure("C module (raw ABI), wasm", compile_c(C_DIR / "filter.c", cache), args.seconds)
    print(f"building {args.plugin} ...", flush=True)
    built = build_plugin_cached(args.plugin, cache)
    rate = measure(f"Python plugin {args.plugin.name}, wasm", built, args.seconds)
    print(f"target >= 2,000 req/s through a built Python plugin: {'met' if rate >= 2000 else 'NOT met'}")


if __name__ == "__main__":
    main()
