"""A built module leaves out ``proxy_on_log`` / ``proxy_on_done`` when no context class
overrides them, so Envoy makes two calls fewer into the VM per request; a class that
overrides one of them keeps its export, and one made after the build is reported."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from pwtool.build.wasm_binary import Module
from pwtool.emulator import Emulator

pytestmark = pytest.mark.slow

REQUEST = [(":method", "GET"), (":path", "/"), (":authority", "example.com")]

PLAIN = """
import proxywasm
from proxywasm import Action, HttpContext


class Plain(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        headers["x-seen"] = "1"
        return Action.CONTINUE


proxywasm.register(Plain)
"""

LOGS_REQUESTS = """
import proxywasm
from proxywasm import HttpContext


class Logging(HttpContext):
    def on_log(self):
        proxywasm.log_warn(f"on_log {self.id}")


proxywasm.register(Logging)
"""

ROOT_ON_DONE = """
import proxywasm


class Plugin(proxywasm.RootContext):
    def on_done(self):
        proxywasm.log_warn("root on_done")
        return True


proxywasm.register(Plugin)
"""

UNREGISTERED_OVERRIDE = """
import proxywasm
from proxywasm import HttpContext


class NotRegistered(HttpContext):  # may still be returned by a factory at run time
    def on_log(self):
        proxywasm.log_warn("on_log")


proxywasm.register(HttpContext)
"""

LATE_CLASS = """
import proxywasm
from proxywasm import HttpContext


class Plugin(proxywasm.RootContext):
    def on_configure(self, configuration):
        class Late(HttpContext):
            def on_log(self):
                proxywasm.log_warn("late on_log")

        self.http_context = Late
        return True


proxywasm.register(Plugin)
"""


def plugin_dir(tmp_path: Path, name: str, source: str) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "plugin.py").write_text(textwrap.dedent(source))
    (directory / "plugin.toml").write_text(f'name = "{name}"\n')
    return directory


def callback_exports(module: Path) -> set[str]:
    return {e.name for e in Module.parse(module.read_bytes()).exports() if e.name in ("proxy_on_log", "proxy_on_done")}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (PLAIN, set()),
        (LOGS_REQUESTS, {"proxy_on_log"}),
        (ROOT_ON_DONE, {"proxy_on_done"}),
        (UNREGISTERED_OVERRIDE, {"proxy_on_log"}),
    ],
    ids=["plain", "stream-on_log", "root-on_done", "unregistered-class"],
)
def test_exports_only_the_callbacks_some_class_overrides(
    tmp_path: Path, built_plugin: Callable[[Path], Path], source: str, expected: set[str]
) -> None:
    module = built_plugin(plugin_dir(tmp_path, "exports", source))
    assert callback_exports(module) == expected
    assert {"proxy_on_context_create", "proxy_on_request_headers", "proxy_on_delete"} <= {
        e.name for e in Module.parse(module.read_bytes()).exports()
    }


def test_module_without_on_log_serves_streams(tmp_path: Path, built_plugin: Callable[[Path], Path]) -> None:
    module = built_plugin(plugin_dir(tmp_path, "plain", PLAIN))
    with Emulator() as emulator:
        plugin = emulator.load(module, root_id="plain")
        for _ in range(3):
            stream = plugin.http_stream()
            stream.send_request_headers(REQUEST, end_of_stream=True)
            assert stream.request_headers.get("x-seen") == "1"
            stream.send_response_headers([(":status", "200")], end_of_stream=True)
        assert not plugin.logs.error


def test_kept_on_log_still_runs(tmp_path: Path, built_plugin: Callable[[Path], Path]) -> None:
    module = built_plugin(plugin_dir(tmp_path, "logging", LOGS_REQUESTS))
    with Emulator() as emulator:
        plugin = emulator.load(module, root_id="logging")
        stream = plugin.http_stream()
        stream.send_request_headers(REQUEST, end_of_stream=True)
        stream.send_response_headers([(":status", "200")], end_of_stream=True)
        assert any(line.startswith("on_log ") for line in plugin.logs.warn)


def test_class_made_after_the_build_is_reported(tmp_path: Path, built_plugin: Callable[[Path], Path]) -> None:
    directory = plugin_dir(tmp_path, "late", LATE_CLASS)
    module = built_plugin(directory)
    assert callback_exports(module) == set()
    with Emulator() as emulator:
        plugin = emulator.load(module, root_id="late")
        errors = "\n".join(plugin.logs.error)
        assert "Late.on_log will never be called" in errors
        assert "without proxy_on_log" in errors and "module level" in errors
    with Emulator() as emulator:  # native mode exports everything: nothing to report
        plugin = emulator.load(directory, mode="native", root_id="late")
        stream = plugin.http_stream()
        stream.send_request_headers(REQUEST, end_of_stream=True)
        stream.send_response_headers([(":status", "200")], end_of_stream=True)
        assert not plugin.logs.error
        assert "late on_log" in plugin.logs.warn
