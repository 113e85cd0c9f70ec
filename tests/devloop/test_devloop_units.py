"""Fast unit tests of the dev loop's pieces: file watcher, --config parsing, Envoy log parsing."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
from devtools import pwtool

from pwtool.cli.run import _stream_logs
from pwtool.devloop import DevLoopError, DevServer, Stopped, changed, parse_config, snapshot
from pwtool.envoy import LogRecord, error_summary, free_port, parse_log


def test_snapshot_sees_edits_adds_and_removes_but_not_caches(tmp_path: Path) -> None:
    (tmp_path / "plugin.py").write_text("a")
    (tmp_path / "__pycache__").mkdir()
    before = snapshot([tmp_path])
    (tmp_path / "__pycache__" / "plugin.cpython-311.pyc").write_bytes(b"x")
    (tmp_path / ".plugin.py.swp").write_text("x")
    assert snapshot([tmp_path]) == before
    (tmp_path / "helper.py").write_text("b")
    path = tmp_path / "plugin.py"
    path.write_text("a2")
    os.utime(path, ns=(1, 1))
    after = snapshot([tmp_path])
    assert changed(before, after) == sorted([str(tmp_path / "helper.py"), str(path)])
    (tmp_path / "helper.py").unlink()
    assert changed(after, snapshot([tmp_path])) == [str(tmp_path / "helper.py")]


def test_parse_config(tmp_path: Path) -> None:
    assert parse_config(None) == (None, None)
    assert parse_config('{"a": 1}') == ({"a": 1}, None)
    file = tmp_path / "cfg.json"
    file.write_text('{"b": [1]}')
    assert parse_config(f"@{file}") == ({"b": [1]}, file)
    with pytest.raises(DevLoopError, match="not valid JSON"):
        parse_config("{nope")
    with pytest.raises(DevLoopError, match="must be a JSON object"):
        parse_config("[1]")
    with pytest.raises(DevLoopError, match="cannot read"):
        parse_config(f"@{tmp_path / 'missing.json'}")


@pytest.mark.parametrize(("text", "message"), [
    ("wasm log hello hello: hello: VM started", "hello: VM started"),
    ("wasm log my_plugin : GET /x", "GET /x"),
    ("wasm log p r v: a: b", "a: b"),
    ("Base Wasm created 1 now active", None),
])
def test_plugin_log_text(text: str, message: str | None) -> None:
    assert DevServer.plugin_log_text("wasm", text) == message
    assert DevServer.plugin_log_text("config", text) is None


def test_start_refuses_a_directory_without_plugin(tmp_path: Path) -> None:
    with pytest.raises(DevLoopError, match="plugin.py"):
        DevServer(tmp_path, workdir=tmp_path).start()


# -- Envoy log records: continuation lines belong to the record before them ------------------------

_HEAD = "[2026-12-07 06:10:33.942][24616][{level}][wasm] [source/extensions/common/wasm/context.cc:1157] "
_TRACEBACK = [
    _HEAD.format(level="info") + "wasm log p p: a",
    "b",
    _HEAD.format(level="error") + "wasm log p p: exception in PStream.on_request_headers (context 3):",
    "Traceback (most recent call last):",
    '  File "p/plugin.py", line 19, in on_request_headers',
    "ValueError: boom",
]


def test_parse_log_groups_continuation_lines() -> None:
    records = parse_log(_TRACEBACK + [_HEAD.format(level="info") + "wasm log p p: next"])
    assert [(r.level, r.component, r.continued) for r in records] == [
        ("info", "wasm", False), ("error", "wasm", False), ("info", "wasm", False)]
    assert DevServer.plugin_log_text("wasm", records[0].text) == "a\nb"
    assert DevServer.plugin_log_text("wasm", records[1].text) == (
        "exception in PStream.on_request_headers (context 3):\nTraceback (most recent call last):\n"
        '  File "p/plugin.py", line 19, in on_request_headers\nValueError: boom')
    # Continuation lines read after their record: that record's level and component, marked continued.
    assert parse_log(["more", "lines"], records[1]) == [LogRecord("error", "wasm", "more\nlines", continued=True)]
    assert error_summary("\n".join(_TRACEBACK)).splitlines() == [
        "  wasm log p p: exception in PStream.on_request_headers (context 3):",
        "  Traceback (most recent call last):", '    File "p/plugin.py", line 19, in on_request_headers',
        "  ValueError: boom"]


class _FakeEnvoy:
    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path


def _dev_with_log(tmp_path: Path) -> tuple[DevServer, Path]:
    dev = DevServer(tmp_path, workdir=tmp_path / "work", watch_sdk=False)
    log = tmp_path / "envoy.log"
    log.write_text("")
    dev.envoy = _FakeEnvoy(log)  # type: ignore[assignment]
    return dev, log


def test_stream_logs_shows_tracebacks_and_multi_line_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev, log = _dev_with_log(tmp_path)
    # A record split across two reads: its late continuation lines still show under it.
    stop = threading.Event()
    streaming = threading.Thread(target=_stream_logs, args=(dev, stop, False))
    streaming.start()
    log.write_text("\n".join(_TRACEBACK[:4]) + "\n")
    time.sleep(0.4)
    with log.open("a") as out:
        out.write("\n".join(_TRACEBACK[4:]) + "\n" + "[2026-12-07 06:10:33.942][1][debug][wasm] [x:1] quiet\nhidden\n")
    time.sleep(0.4)
    stop.set()
    streaming.join(timeout=5)
    lines = capsys.readouterr().out.splitlines()
    assert [line[9:] for line in lines] == [
        "info     a", "         b",
        "error    exception in PStream.on_request_headers (context 3):",
        "         Traceback (most recent call last):",
        '           File "p/plugin.py", line 19, in on_request_headers',
        "         ValueError: boom",
    ]


def test_rejection_reason_keeps_the_traceback(tmp_path: Path) -> None:
    dev, log = _dev_with_log(tmp_path)
    log.write_text("[2026-12-07 06:10:30.754][1][info][main] [x:1] before the mark\n")
    mark = log.stat().st_size
    with log.open("a") as out:
        out.write("\n".join(_TRACEBACK) + "\n[2026-12-07 06:10:30.754][1][warning][config] [x:1] "
                  "gRPC config for type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig update rejected\n")
    reason = dev._rejection_reason(mark)
    assert "Traceback (most recent call last):" in reason and "ValueError: boom" in reason
    assert "update rejected" in reason and "before the mark" not in reason


# -- start: busy ports, an upstream that does not answer, Ctrl-C during a build ------------------

@pytest.mark.parametrize("flag", ["--port", "--admin-port"])
def test_busy_port_is_one_clear_line(tmp_path: Path, flag: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        kwargs = {"port": port} if flag == "--port" else {"admin_port": port}
        with pytest.raises(DevLoopError) as failure:
            DevServer(tmp_path, workdir=tmp_path, **kwargs).start()  # type: ignore[arg-type]
    assert str(failure.value) == f"127.0.0.1:{port} ({flag}) is already in use. Fix: choose another port or omit {flag}"


def test_warns_when_nothing_answers_at_the_upstream(tmp_path: Path) -> None:
    said: list[str] = []
    dev = DevServer(tmp_path, workdir=tmp_path, say=said.append)
    address = f"127.0.0.1:{free_port()}"
    dev._check_upstream(address)
    assert said == [f"warning: nothing answers at {address} yet; requests will get Envoy's 503 until it does"]
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        said.clear()
        dev._check_upstream(f"127.0.0.1:{listening.getsockname()[1]}")
    assert said == []


def test_stop_ends_a_build_that_never_finishes(tmp_path: Path) -> None:
    result = pwtool("new", "loops", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    plugin = tmp_path / "loops"
    (plugin / "plugin.py").write_text("while True:\n    pass\n" + (plugin / "plugin.py").read_text())
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Stopped):
        DevServer(plugin, workdir=tmp_path / "work", stop=stop, watch_sdk=False).start()
    assert time.monotonic() - started < 5


def test_full_swaps_without_watch_is_a_usage_error() -> None:
    from click.testing import CliRunner

    from pwtool.cli import main

    result = CliRunner().invoke(main, ["run", str(Path(__file__).resolve().parents[2] / "plugins" / "hello"), "--full-swaps"])
    assert result.exit_code == 2 and "--full-swaps only changes how --watch" in result.output
