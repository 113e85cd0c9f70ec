#!/usr/bin/env python3
"""Envoy CPU per request: the Python ``http_headers`` example against Lua (and C), in one run.

Each variant is one Envoy ``--concurrency 1`` with a direct_response route and one
HTTP filter doing the header work of ``plugins/http_headers``:

* request: read ``:method``, count the request by method, add ``x-request-id`` if absent;
* response: set ``x-powered-by``, remove ``server``.

Variants: ``none`` (no filter, the baseline), ``lua`` (an Envoy Lua filter; it counts
in a Lua table, since Envoy's Lua API has no stats), ``c`` (a minimal C proxy-wasm
module compiled with zig; skipped when zig is missing) and ``python`` (the built
``plugins/http_headers`` module).

``python-floor`` and ``c-floor`` are references, not the same work: the Python plugin
and the C module with header callbacks that do nothing. The first is what the SDK and
the interpreter cost per request before a plugin does anything. ``c`` minus
``c-floor`` is what the work's hostcalls cost in any language: one
get_header_map_pairs (which calls back into the VM to allocate), one increment_metric,
and a replace and a remove (plus a replace when the request has no x-request-id).

``--workload one-header`` measures the load test of DESIGN.md section 2 instead, whose
figures (Python +10.9 µs, Lua +10.1 µs per request) the issue's target was set from:
each filter only adds ``x-powered-by`` to the response (Lua ``envoy_on_response`` alone;
the C module and the Python plugin export no request-headers callback). Its floors are
the same modules with a response callback that does nothing.

``wrk -t1 -c10`` loads each Envoy for ``--duration`` seconds after a warm-up. Envoy's
CPU time is read from ``/proc/<pid>/stat`` (utime + stime, all threads) around the
measured run and divided by the requests wrk completed; the baseline's CPU per
request is subtracted to give the CPU each filter adds. With ``--rounds N`` the
variants run N times, interleaved, and the median is reported (for the CPU added,
the median over rounds of the difference to the same round's baseline).

    .venv/bin/python bench/headers_vs_lua.py                      # 3 rounds of 10 s, every variant
    .venv/bin/python bench/headers_vs_lua.py --duration 1 --rounds 1 --json out.json

With ``--measure instructions`` each Envoy runs under ``valgrind --tool=callgrind`` and
the bench counts the x86 instructions Envoy executes (every thread: Envoy itself, V8's
compiled wasm, LuaJIT) while it serves exactly ``--requests`` requests, sent one after
another on one keep-alive connection after ``--warmup-requests`` unmeasured ones. The
counts do not depend on what else the machine is doing: the same module gives the same
count to within about 0.1% from one run to the next, where CPU time per request drifts by
half between rounds on a shared machine. They are instructions, not time (a cache miss
costs nothing in them), so they complement the CPU figures rather than replace them.
This mode needs valgrind (``apt-get install -y valgrind``, which ``setup.sh`` does) and
takes about a minute per variant.

    .venv/bin/python bench/headers_vs_lua.py --measure instructions --rounds 1

``--cache-sim`` adds callgrind's cache simulation: the L1 instruction-cache (I1) and
data-cache (D1) misses per request, in a model of this machine's caches. Instructions
alone understate what an interpreter costs next to Envoy: the Python filter touches far
more distinct machine code per request than Lua or C, and the CPU time it adds grows
with those misses, not only with its instruction count.

    .venv/bin/python bench/headers_vs_lua.py --measure instructions --cache-sim --rounds 1

Exit status 0 even if Python is slower than Lua: this prints ratios, it is not a test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from pwtool.envoy import Envoy, free_port  # noqa: E402
from pwtool.manifests import bootstrap, http_filter, plugin_config  # noqa: E402

LUA_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"

LUA_SOURCE = """\
local requests = {}
local next_id = 0

function envoy_on_request(handle)
  local headers = handle:headers()
  local method = headers:get(":method") or "UNKNOWN"
  requests[method] = (requests[method] or 0) + 1
  if headers:get("x-request-id") == nil then
    next_id = next_id + 1
    headers:add("x-request-id", "lua-" .. next_id)
  end
end

function envoy_on_response(handle)
  local headers = handle:headers()
  headers:replace("x-powered-by", "lua")
  headers:remove("server")
end
"""

LUA_ONE_HEADER = """\
function envoy_on_response(handle)
  handle:headers():add("x-powered-by", "lua")
end
"""

EXPECTED_POWERED_BY = {"lua": "lua", "c": "c", "python": "pwtool"}

ONE_HEADER_PLUGIN = """\
import proxywasm
from proxywasm import Action, HttpContext


class PoweredBy(HttpContext):
    def on_response_headers(self, headers, end_of_stream):
        headers.add("x-powered-by", "pwtool")
        return Action.CONTINUE


proxywasm.register(PoweredBy)
"""


def floor_plugin(callbacks: tuple[str, ...]) -> str:
    """A Python plugin whose header `callbacks` only return CONTINUE."""
    methods = "\n".join(f"    def {name}(self, headers, end_of_stream):\n        return Action.CONTINUE\n"
                         for name in callbacks)
    return ("import proxywasm\nfrom proxywasm import Action, HttpContext\n\n\n"
            f"class Floor(HttpContext):\n{methods}\n\nproxywasm.register(Floor)\n")


@dataclass(frozen=True)
class Workload:
    """What each variant runs for one workload."""

    lua: str
    """The Lua filter's source."""
    python: str
    """Name (and root id) of the Python plugin: a directory of plugins/, or a plugin
    built from `python_source`."""
    python_source: str | None
    python_floor: str
    """Name of the Python floor plugin, built from `floor_plugin(header_callbacks)`."""
    header_callbacks: tuple[str, ...]
    c_defines: tuple[str, ...]
    """Preprocessor symbols for bench/c/headers.c."""


WORKLOADS = {
    "http_headers": Workload(LUA_SOURCE, "http_headers", None, "python_floor",
                             ("on_request_headers", "on_response_headers"), ()),
    "one-header": Workload(LUA_ONE_HEADER, "python_one_header", ONE_HEADER_PLUGIN, "python_one_header_floor",
                           ("on_response_headers",), ("ONE_HEADER",)),
}


@dataclass
class Sample:
    variant: str
    requests: int
    seconds: float
    rps: float
    p50_us: float
    rss_mb: float
    cpu_s: float
    cpu_us_per_request: float


@dataclass
class InstructionSample:
    variant: str
    requests: int
    instructions: int
    per_request: float
    i1_misses_per_request: float | None = None
    """With ``--cache-sim``: callgrind's simulated L1 instruction-cache misses per request."""
    d1_misses_per_request: float | None = None
    """With ``--cache-sim``: simulated L1 data-cache misses (reads and writes) per request."""


# -- the variants ------------------------------------------------------------------------


VARIANTS = ("none", "lua", "c", "c-floor", "python", "python-floor")

def lua_filter(workload: Workload) -> dict[str, Any]:
    return {"name": "envoy.filters.http.lua",
            "typed_config": {"@type": LUA_TYPE, "default_source_code": {"inline_string": workload.lua}}}


def wasm_filter(name: str, root_id: str, wasm: Path) -> dict[str, Any]:
    return http_filter(plugin_config(name=name, root_id=root_id, wasm_file=wasm))


def build_python(cache: Path, workload: Workload = WORKLOADS["http_headers"]) -> Path:
    """The Python plugin doing the workload: the ``http_headers`` example, or the one-header plugin."""
    from pwtool.emulator import build_plugin_cached

    if workload.python_source is not None:
        return build_source_plugin(cache, workload.python, workload.python_source)
    return build_plugin_cached(REPO / "plugins" / workload.python, cache)


def build_python_floor(cache: Path, workload: Workload = WORKLOADS["http_headers"]) -> Path:
    """The Python plugin with the workload's header callbacks doing nothing."""
    return build_source_plugin(cache, workload.python_floor, floor_plugin(workload.header_callbacks))


def build_source_plugin(cache: Path, name: str, source: str) -> Path:
    """Build a one-file plugin written here (cached by its source)."""
    from pwtool.emulator import build_plugin_cached

    directory = cache / name
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "plugin.py").write_text(source)
    (directory / "plugin.toml").write_text(f'name = "{name}"\n')
    return build_plugin_cached(directory, cache)


def build_c(cache: Path, floor: bool = False, workload: Workload = WORKLOADS["http_headers"]) -> Path | None:
    """The C module (``floor``: its header callbacks return at once); None without zig."""
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return None
    from pwtool_zig import compile_c

    cache.mkdir(parents=True, exist_ok=True)
    defines = (("HEADERS_FLOOR",) if floor else ()) + workload.c_defines
    return compile_c(REPO / "bench" / "c" / "headers.c", cache, defines)


def filters_for(variant: str, modules: dict[str, Path], workload: Workload) -> list[dict[str, Any]]:
    if variant == "none":
        return []
    if variant == "lua":
        return [lua_filter(workload)]
    if variant in ("c", "c-floor"):
        return [wasm_filter("headers_c", "headers_c", modules[variant])]
    if variant in ("python", "python-floor"):
        name = workload.python if variant == "python" else workload.python_floor
        return [wasm_filter(name, name, modules[variant])]
    raise ValueError(variant)


# -- measuring ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` (from /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


_UNITS = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def parse_wrk(output: str) -> tuple[int, float, float]:
    """(requests, seconds, p50 µs) from ``wrk --latency`` output."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", output)
    p50 = re.search(r"^\s*50%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    if done is None or p50 is None:
        raise RuntimeError(f"cannot parse wrk output:\n{output}")
    seconds = float(done.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[done.group(3)]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        raise RuntimeError(f"wrk saw {non_2xx.group(1)} error responses:\n{output}")
    return int(done.group(1)), seconds, float(p50.group(1)) * _UNITS[p50.group(2)]


def wrk(url: str, seconds: float, threads: int, connections: int) -> str:
    duration = f"{max(1, round(seconds))}s"
    result = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}", "--latency", url],
        capture_output=True, text=True, timeout=seconds + 60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed: {result.stderr}")
    return result.stdout


def check_behaviour(variant: str, url: str) -> None:
    """One request through the filter: it must have done its work (or the run is void)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200, response.status
        powered = response.headers.get("x-powered-by")
    if variant in ("none", "python-floor", "c-floor"):
        if powered is not None:
            raise RuntimeError(f"{variant} answered x-powered-by={powered!r}")
        return
    # (Envoy sets ``server`` again after the filters, so its removal is not visible.)
    if powered != EXPECTED_POWERED_BY[variant]:
        raise RuntimeError(f"{variant}: filter did not run (x-powered-by={powered!r})")


def envoy_config(variant: str, modules: dict[str, Path], args: argparse.Namespace) -> tuple[dict[str, Any], int, int]:
    """The bootstrap for one variant of the workload: (config, listener port, admin port)."""
    listen, admin = free_port(), free_port()
    filters = filters_for(variant, modules, WORKLOADS[args.workload])
    return bootstrap(http_filters=filters, listen_port=listen, admin_port=admin), listen, admin


def measure(variant: str, modules: dict[str, Path], args: argparse.Namespace) -> Sample:
    config, listen, admin = envoy_config(variant, modules, args)
    url = f"http://127.0.0.1:{listen}/bench"
    with Envoy(config, admin_port=admin, concurrency=1, log_level="warn", component_log_level="wasm:warn") as envoy:
        check_behaviour(variant, url)
        wrk(url, args.warmup, args.threads, args.connections)
        before = cpu_seconds(envoy.pid)
        output = wrk(url, args.duration, args.threads, args.connections)
        after = cpu_seconds(envoy.pid)
        rss = rss_mb(envoy.pid)
        if envoy.process is None or envoy.process.poll() is not None:
            raise RuntimeError(f"{variant}: Envoy died under load:\n{envoy.log_tail()}")
    time.sleep(0.2)  # let the stopped Envoy's port and CPU settle before the next variant
    requests, seconds, p50 = parse_wrk(output)
    cpu = after - before
    return Sample(variant, requests, seconds, requests / seconds, p50, rss, cpu, cpu / requests * 1e6)


def send_requests(port: int, count: int) -> None:
    """``count`` GET requests, one after another, on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(count):
            connection.request("GET", "/bench")
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"request answered {response.status}")
    finally:
        connection.close()


def callgrind_control(command: str, pid: int) -> None:
    """Send one command to the callgrind running as ``pid``; returns once it is done."""
    subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True, timeout=120)


def callgrind_totals(path: Path) -> dict[str, int]:
    """The ``totals:`` line of a callgrind output file, by the names of its ``events:``
    line: ``Ir`` (instructions executed), and with ``--cache-sim=yes`` the simulated cache
    misses (``I1mr``, ``D1mr``, ``D1mw``, ...)."""
    events: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("totals:"):
            return dict(zip(events or ["Ir"], map(int, line.split()[1:])))
    raise RuntimeError(f"{path}: no totals line; is it a callgrind output file?")


def measure_instructions(variant: str, modules: dict[str, Path], args: argparse.Namespace) -> InstructionSample:
    """Instructions Envoy executes per request, counted by callgrind around exactly ``--requests`` requests."""
    print(f"{variant}: starting Envoy under callgrind ...", file=sys.stderr, flush=True)
    config, listen, admin = envoy_config(variant, modules, args)
    with tempfile.TemporaryDirectory(prefix="pwtool-bench-callgrind-") as scratch:
        out = Path(scratch) / "callgrind.out"
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
                    "--smc-check=all-non-file", *(["--cache-sim=yes"] if args.cache_sim else [])]
        envoy = Envoy(config, admin_port=admin, concurrency=1, log_level="warn", component_log_level="wasm:warn",
                      command_prefix=valgrind, workdir=Path(scratch))
        try:
            envoy.start(timeout=900)  # V8 compiles the module under valgrind first
            check_behaviour(variant, f"http://127.0.0.1:{listen}/bench")
            send_requests(listen, args.warmup_requests)
            callgrind_control("--instr=on", envoy.pid)
            send_requests(listen, args.requests)
            callgrind_control("--instr=off", envoy.pid)
            callgrind_control("--dump", envoy.pid)
            dumps = sorted(Path(scratch).glob("callgrind.out.*"), key=lambda p: p.stat().st_mtime)
            if not dumps:
                raise RuntimeError(f"{variant}: callgrind wrote no dump:\n{envoy.log_tail()}")
            totals = callgrind_totals(dumps[-1])
            if envoy.process is None or envoy.process.poll() is not None:
                raise RuntimeError(f"{variant}: Envoy died under valgrind:\n{envoy.log_tail()}")
        finally:
            envoy.close()
    sample = InstructionSample(variant, args.requests, totals["Ir"], totals["Ir"] / args.requests)
    if args.cache_sim:
        sample.i1_misses_per_request = totals["I1mr"] / args.requests
        sample.d1_misses_per_request = (totals["D1mr"] + totals["D1mw"]) / args.requests
    return sample


# -- report -------------------------------------------------------------------------------


def summarize(samples: list[Sample], variants: list[str]) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for variant in variants:
        mine = [s for s in samples if s.variant == variant]
        table[variant] = {
            "rps": statistics.median(s.rps for s in mine),
            "p50_us": statistics.median(s.p50_us for s in mine),
            "rss_mb": statistics.median(s.rss_mb for s in mine),
            "cpu_us_per_request": statistics.median(s.cpu_us_per_request for s in mine),
        }
    # What a filter adds is measured against the baseline of the same round (the
    # variants of a round run back to back), then the median over rounds is taken:
    # on a shared machine the load drifts between rounds far more than within one.
    baselines = [s.cpu_us_per_request for s in samples if s.variant == "none"]
    for variant in variants:
        cpu_per_request = [s.cpu_us_per_request for s in samples if s.variant == variant]
        table[variant]["cpu_us_added"] = statistics.median(
            cpu - base for cpu, base in zip(cpu_per_request, baselines)
        )
    return table


def render(table: dict[str, dict[str, float]]) -> str:
    lines = [
        f"{'filter':<12} {'req/s':>9} {'p50 µs':>8} {'RSS MB':>7} {'CPU µs/req':>11} {'added µs/req':>13}",
    ]
    for name, row in table.items():
        lines.append(f"{name:<12} {row['rps']:>9,.0f} {row['p50_us']:>8.0f} {row['rss_mb']:>7.0f} "
                     f"{row['cpu_us_per_request']:>11.2f} {added_text(name, row['cpu_us_added'], 13, '+.2f')}")
    added_cpu = {name: row["cpu_us_added"] for name, row in table.items()}
    return "\n".join(lines + comparisons(added_cpu, "CPU added per request", lambda v: f"{v:+.2f} µs"))


def summarize_instructions(samples: list[InstructionSample], variants: list[str]) -> dict[str, dict[str, float]]:
    """Median instructions per request of each variant, and what it adds to the baseline's;
    the same for the simulated L1 misses when they were counted."""
    counts = {"instructions": "per_request"}
    if all(s.i1_misses_per_request is not None for s in samples):
        counts.update(i1_misses="i1_misses_per_request", d1_misses="d1_misses_per_request")
    table: dict[str, dict[str, float]] = {v: {} for v in variants}
    for name, field in counts.items():
        median = {v: statistics.median(getattr(s, field) for s in samples if s.variant == v) for v in variants}
        for v in variants:
            table[v][f"{name}_per_request"] = median[v]
            table[v][f"{name}_added"] = median[v] - median["none"]
    return table


def render_instructions(table: dict[str, dict[str, float]]) -> str:
    misses = "i1_misses_per_request" in table["none"]
    header = f"{'filter':<12} {'instructions/req':>17} {'added/req':>10}"
    lines = [header + (f" {'I1 misses/req':>14} {'added':>7} {'D1 misses/req':>14} {'added':>7}" if misses else "")]
    for name, row in table.items():
        line = f"{name:<12} {row['instructions_per_request']:>17,.0f} {added_text(name, row['instructions_added'])}"
        if misses:
            line += (f" {row['i1_misses_per_request']:>14,.0f} {added_text(name, row['i1_misses_added'], 7)}"
                     f" {row['d1_misses_per_request']:>14,.0f} {added_text(name, row['d1_misses_added'], 7)}")
        lines.append(line)
    lines += comparisons({name: row["instructions_added"] for name, row in table.items()},
                         "instructions added per request", lambda v: f"{v:+,.0f} instructions")
    if misses:
        lines += comparisons({name: row["i1_misses_added"] for name, row in table.items()},
                             "instruction-cache (I1) misses added per request", lambda v: f"{v:+,.0f} misses")
    return "\n".join(lines)


def added_text(variant: str, added: float, width: int = 10, spec: str = "+,.0f") -> str:
    """What a variant adds to the baseline, right-aligned; a dash for the baseline itself."""
    return f"{'-' if variant == 'none' else format(added, spec):>{width}}"


def comparisons(added: dict[str, float], measure: str, show: Callable[[float], str]) -> list[str]:
    """The ratios and differences between variants of what each adds per request."""
    lines = []
    if "lua" in added and "python" in added:
        lua, python = added["lua"], added["python"]
        ratio = python / lua if lua > 0 else float("inf")
        lines.append(f"Python/Lua {measure}: {ratio:.2f}"
                     f" ({'Python at or below Lua' if python <= lua else 'Python above Lua'})")
    if "c" in added and "lua" in added and added["lua"] > 0:
        lines.append(f"C/Lua {measure}: {added['c'] / added['lua']:.2f}")
    if "c" in added and "python" in added and added["c"] > 0:
        lines.append(f"Python/C {measure}: {added['python'] / added['c']:.2f}")
    if "c-floor" in added and "python-floor" in added:
        lines.append(f"Python floor (empty callbacks) minus C floor, {measure}: "
                     f"{show(added['python-floor'] - added['c-floor'])}")
    if {"c", "c-floor"} <= added.keys():
        hostcalls = added["c"] - added["c-floor"]
        lines.append(f"The work's hostcalls (c minus c-floor), {measure}: {show(hostcalls)}")
        if {"python", "python-floor"} <= added.keys():
            own = added["python"] - added["python-floor"] - hostcalls
            lines.append(f"The Python plugin's own code (python minus python-floor minus hostcalls): {show(own)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of measured load per variant and round")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of unmeasured load first")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is reported")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=10, help="wrk connections")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated subset of {','.join(VARIANTS)} (none is always run)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "pwtool-bench-builds",
                        help="where built modules are cached")
    parser.add_argument("--json", type=Path, help="also write the samples and the table here")
    parser.add_argument("--workload", choices=list(WORKLOADS), default="http_headers",
                        help="http_headers: the example's request and response work; one-header: DESIGN.md's load "
                             "test, x-powered-by added to the response")
    parser.add_argument("--measure", choices=("cpu", "instructions"), default="cpu",
                        help="cpu: Envoy's CPU time under wrk load; instructions: instructions counted by callgrind")
    parser.add_argument("--requests", type=int, default=3000,
                        help="with --measure instructions: measured requests per variant and round")
    parser.add_argument("--warmup-requests", type=int, default=500,
                        help="with --measure instructions: unmeasured requests first")
    parser.add_argument("--cache-sim", action="store_true",
                        help="with --measure instructions: also count callgrind's simulated L1 instruction- and "
                             "data-cache misses per request (slower)")
    args = parser.parse_args(argv)

    needed = {"cpu": {"wrk": "wrk"}, "instructions": {"valgrind": "valgrind", "callgrind_control": "valgrind"}}
    for tool, package in needed[args.measure].items():
        if shutil.which(tool) is None:
            print(f"{tool} is not installed. Fix: apt-get install -y {package}", file=sys.stderr)
            return 2
    if args.cache_sim and args.measure != "instructions":
        print("--cache-sim counts cache misses under callgrind. Fix: add --measure instructions", file=sys.stderr)
        return 2
    variants = ["none"] + [v for v in args.variants.split(",") if v and v != "none"]
    modules: dict[str, Path] = {}
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        print(f"unknown variant(s) {', '.join(sorted(unknown))}: choose from {','.join(VARIANTS)}", file=sys.stderr)
        return 2
    if "python" in variants:
        modules["python"] = build_python(args.cache, WORKLOADS[args.workload])
    if "python-floor" in variants:
        modules["python-floor"] = build_python_floor(args.cache, WORKLOADS[args.workload])
    for variant in ("c", "c-floor"):
        if variant in variants:
            c_module = build_c(args.cache, floor=variant == "c-floor", workload=WORKLOADS[args.workload])
            if c_module is None:
                print(f"zig (ziglang) is not installed: skipping the {variant} variant", file=sys.stderr)
                variants.remove(variant)
            else:
                modules[variant] = c_module

    if args.measure == "instructions":
        samples: list[Any] = run_rounds(
            variants, args.rounds, lambda variant: measure_instructions(variant, modules, args),
            lambda sample: f"{sample.per_request:>12,.0f} instructions/req")
        table = summarize_instructions(samples, variants)
        print(f"workload {args.workload}; callgrind, {args.requests} sequential keep-alive requests after "
              f"{args.warmup_requests}, Envoy --concurrency 1, direct_response, median of {args.rounds} round(s)")
        print(render_instructions(table))
    else:
        samples = run_rounds(
            variants, args.rounds, lambda variant: measure(variant, modules, args),
            lambda sample: f"{sample.rps:>9,.0f} req/s  {sample.p50_us:>6.0f} µs p50  "
                           f"{sample.cpu_us_per_request:6.2f} CPU µs/req")
        table = summarize(samples, variants)
        print(f"workload {args.workload}; wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s, "
              f"Envoy --concurrency 1, direct_response, median of {args.rounds} round(s)")
        print(render(table))
    if args.json:
        args.json.write_text(json.dumps({"samples": [asdict(s) for s in samples], "table": table}, indent=2))
    return 0


def run_rounds(variants: list[str], rounds: int, measure_one: Callable[[str], Any],
               describe: Callable[[Any], str]) -> list[Any]:
    """Every variant once per round, rounds interleaved; a progress line on stderr for each."""
    samples = []
    for round_number in range(1, rounds + 1):
        for variant in variants:
            sample = measure_one(variant)
            samples.append(sample)
            print(f"round {round_number} {variant:<12} {describe(sample)}", file=sys.stderr, flush=True)
    return samples


if __name__ == "__main__":
    sys.exit(main())
