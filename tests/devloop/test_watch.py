"""``pwtool run --watch`` on a real Envoy: edits are hot-swapped through file-based ECDS.

The swap must show within the budget (10 s, ``PWTOOL_SWAP_BUDGET_S`` on a loaded
machine) with the same Envoy PID and no failed request under light load; a broken edit
keeps the old module serving and is reported.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from devtools import Background, Load, edit, pid_alive, pwtool

from pwtool.devloop import DevServer
from pwtool.envoy import EchoServer

pytestmark = [pytest.mark.envoy, pytest.mark.slow]

BUDGET_S = float(os.environ.get("PWTOOL_SWAP_BUDGET_S", "10"))
OLD = 'self.root.config["greeting"]'


@pytest.fixture
def plugin(tmp_path: Path) -> Path:
    result = pwtool("new", "live", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    return tmp_path / "live"


@pytest.fixture
def running(plugin: Path) -> Iterator[Background]:
    run = Background("run", str(plugin), "--watch")
    try:
        yield run
    finally:
        run.interrupt()


def _get(url: str) -> tuple[int, str | None, dict[str, object]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["x-live"], json.loads(response.read())


def test_edit_is_swapped_in_without_restart_or_failed_requests(plugin: Path, running: Background) -> None:
    url = running.value("URL")
    admin = running.value("admin")
    assert running.wait_for(lambda line: line.startswith("module "), 10).split(None, 1)[1].startswith("the dev loop's")
    pid = int(running.wait_for(lambda line: line.startswith("envoy "), 10).split()[2].rstrip(","))
    status, header, echoed = _get(url + "/first")
    assert (status, header, echoed["path"]) == (200, "hello", "/first")  # built-in echo upstream
    running.wait_for(lambda line: "live: GET /first" in line, 10)  # the plugin's log line is streamed

    port = int(url.rsplit(":", 1)[1])
    with Load(port, "x-live") as load:
        time.sleep(0.5)
        mark = len(running.lines)
        edited_at = time.monotonic()
        edit(plugin / "plugin.py", OLD, '"edited"')
        deadline = edited_at + max(BUDGET_S, 60)
        while time.monotonic() < deadline and load.first_with("edited", edited_at) is None:
            time.sleep(0.05)
        seen = load.first_with("edited", edited_at)
        time.sleep(0.5)  # keep the load on after the swap too
    assert seen is not None, running.output
    swap_seconds = seen.at - edited_at
    print(f"\nedit -> new behaviour: {swap_seconds:.2f} s; {len(load.samples)} requests, "
          f"max latency {max(s.seconds for s in load.samples) * 1000:.0f} ms")
    assert load.failures() == [], load.failures()[:5]
    # Every response came from either module, in order: old ones, then new ones only.
    values = [s.header for s in load.samples]
    first_new = values.index("edited")
    assert set(values[:first_new]) == {"hello"} and set(values[first_new:]) == {"edited"}
    assert len(load.samples) > 20
    line = running.wait_for(lambda line: "swapped in v2-" in line, 30, mark)
    assert f"Envoy {pid} kept running" in line
    assert pid_alive(pid)
    with urllib.request.urlopen(admin + "/config_dump?resource=ecds_filters", timeout=10) as response:
        dump = json.loads(response.read())
    assert dump["configs"][0]["version_info"].startswith("v2-")
    assert swap_seconds <= BUDGET_S, f"swap took {swap_seconds:.1f} s (budget {BUDGET_S} s)\n{running.output}"

    # A broken edit: reported, and the previous module keeps serving.
    mark = len(running.lines)
    with Load(port, "x-live") as load:
        edit(plugin / "plugin.py", '"edited"', '"broken" +')
        error = running.wait_for(lambda line: "error:" in line, 30, mark)
        running.wait_for(lambda line: line.startswith("still serving v2-"), 5, mark)
        time.sleep(0.5)
    assert "plugin.py" in error and "syntax" in error
    assert load.failures() == [] and {s.header for s in load.samples} == {"edited"}
    assert pid_alive(pid)

    # Fixing it swaps again (v3), still the same Envoy.
    mark = len(running.lines)
    edit(plugin / "plugin.py", '"broken" +', '"fixed"')
    running.wait_for(lambda line: "swapped in v3-" in line, 60, mark)
    assert _get(url + "/again")[1] == "fixed"

    assert running.interrupt() == 0
    assert "stopped" in running.output
    assert not pid_alive(pid)


@pytest.mark.parametrize("fast_swaps", [True, False], ids=["dev-module", "built-module"])
def test_in_flight_request_survives_swap_and_rejected_module_keeps_old(
    plugin: Path, tmp_path: Path, fast_swaps: bool
) -> None:
    """Through the Python API, serving the dev loop's module or the built one: a request in
    flight across a swap completes on the old module; a module that builds but fails to
    start in Envoy (on_vm_start returns False) is rejected."""
    with EchoServer() as echo, DevServer(plugin, upstream=echo.address, workdir=tmp_path / "work",
                                         config='{"greeting": "configured"}', fast_swaps=fast_swaps) as dev:
        pid = dev.pid
        assert _get(dev.url + "/")[1] == "configured"  # --config overrides plugin.toml
        # Start a request (headers and half the body), swap, then finish it.
        conn = http.client.HTTPConnection("127.0.0.1", dev.port, timeout=30)
        conn.putrequest("POST", "/in-flight")
        conn.putheader("content-length", "10")
        conn.endheaders()
        conn.send(b"01234")
        edit(plugin / "plugin.py", OLD, '"swapped"')
        swap = dev.reload()
        assert swap.ok and swap.version.startswith("v2-"), swap
        assert _get(dev.url + "/")[1] == "swapped"
        conn.send(b"56789")
        response = conn.getresponse()
        body = json.loads(response.read())
        conn.close()
        assert response.status == 200 and body["body"] == "0123456789"
        assert response.headers["x-live"] == "configured"  # the stream kept the module it started with

        edit(plugin / "plugin.py", "    default_config =",
             "    def on_vm_start(self, vm_configuration):\n        return False\n\n    default_config =")
        swap = dev.reload()
        assert not swap.ok and swap.version.startswith("v2-")
        assert "rejected" in swap.error and "Failed to start base Wasm" in swap.error, swap.error
        assert _get(dev.url + "/")[1] == "swapped"
        edit(plugin / "plugin.py", "        return False\n", "        return True\n")
        swap = dev.reload()
        assert swap.ok and swap.version.startswith("v4-"), swap
        assert dev.pid == pid and pid_alive(pid)
        assert len(list(dev.module_dir.glob("*.wasm"))) <= 3  # old modules are pruned
    assert not pid_alive(pid)


# -- robustness: a plugin stuck in a loop, Ctrl-C, a killed pwtool, a first build that fails ------

def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_envoy_dies_with_a_killed_parent(tmp_path: Path) -> None:
    script = (
        "import sys, time\n"
        "from pwtool.envoy import Envoy, free_port\n"
        "from pwtool.manifests import bootstrap\n"
        "admin = free_port()\n"
        "envoy = Envoy(bootstrap(listen_port=free_port(), admin_port=admin, upstream='127.0.0.1:9'),\n"
        f"              admin_port=admin, workdir=__import__('pathlib').Path({str(tmp_path)!r}))\n"
        "envoy.start()\n"
        "print(envoy.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    assert pid_alive(pid)
    parent.kill()  # SIGKILL: no chance to stop Envoy itself
    parent.wait(timeout=10)
    assert _wait_gone(pid, 5), f"Envoy {pid} outlived its killed parent"


def test_worker_stuck_in_a_callback_is_detected_and_envoy_restarted(plugin: Path, tmp_path: Path) -> None:
    edit(plugin / "plugin.py", "        return Action.CONTINUE\n",
         "        while headers.get(':path') == '/loop':\n            pass\n        return Action.CONTINUE\n")
    said: list[str] = []
    with DevServer(plugin, workdir=tmp_path / "work", fast_swaps=True, say=said.append) as dev:
        dev.stuck_after, dev.stuck_every, dev.probe_timeout = 1.0, 0.5, 1.0
        pid = dev.pid
        stuck = threading.Thread(target=lambda: _get_quietly(dev.url + "/loop"), daemon=True)
        stuck.start()
        time.sleep(0.5)
        edit(plugin / "plugin.py", "while headers.get(':path') == '/loop'", "while headers.get(':path') == '/never'")
        edit(plugin / "plugin.py", OLD, '"after restart"')
        started = time.monotonic()
        swap = dev.reload()
        assert swap.ok and swap.restarted and swap.version.startswith("v2-"), (swap, said)
        assert time.monotonic() - started < 20
        assert ("Envoy seems stuck in the plugin (an endless loop in a callback?): "
                "restarting Envoy with the new version") in said
        assert not pid_alive(pid) and dev.pid != pid
        assert _get(dev.url + "/")[1] == "after restart"
        assert _get(dev.url + "/loop")[1] == "after restart"


def _get_quietly(url: str) -> None:
    try:
        urllib.request.urlopen(url, timeout=30).read()
    except OSError:
        pass


def test_watch_waits_for_a_first_build_that_fails(plugin: Path) -> None:
    edit(plugin / "plugin.py", OLD, '"broken" +')
    run = Background("run", str(plugin), "--watch")
    try:
        run.wait_for(lambda line: "waiting for a fix..." in line, 60)
        assert run.process.poll() is None
        edit(plugin / "plugin.py", '"broken" +', '"fixed"')
        url = run.value("URL", 60)
        assert _get(url + "/")[1] == "fixed"
    finally:
        assert run.interrupt() == 0
    assert "stopped" in run.output


def test_ctrl_c_stops_a_stuck_build_and_a_second_one_a_stuck_envoy(plugin: Path) -> None:
    source = (plugin / "plugin.py").read_text()
    (plugin / "plugin.py").write_text("while True:\n    pass\n" + source)
    run = Background("run", str(plugin), "--watch")
    time.sleep(3)  # the build's import is looping now
    started = time.monotonic()
    run.process.send_signal(signal.SIGINT)
    run.process.wait(timeout=10)
    assert time.monotonic() - started < 3, run.output
    run.wait_for(lambda line: "stopping…" in line, 5)

    # on_configure loops: Envoy's main thread never gets ready. Two Ctrl-C: out at once, Envoy killed.
    (plugin / "plugin.py").write_text(source.replace(
        "    default_config =", "    def on_configure(self, size):\n        while True:\n            pass\n\n"
        "    default_config ="))
    run = Background("run", str(plugin))
    run.wait_for(lambda line: "built live" in line, 60)
    deadline = time.monotonic() + 10
    while not (envoys := _children(run.process.pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert envoys, run.output
    time.sleep(2)
    started = time.monotonic()
    run.process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    run.process.send_signal(signal.SIGINT)
    run.process.wait(timeout=10)
    assert time.monotonic() - started < 1.5, run.output
    assert all(_wait_gone(pid, 2) for pid in envoys), run.output
