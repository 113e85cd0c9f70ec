"""Fast unit tests of the dev loop's pieces: file watcher, --config parsing, Envoy log parsing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pwtool.devloop import DevLoopError, DevServer, changed, parse_config, snapshot


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
