"""The dev loop's module: one module for every edit, the plugin in the VM configuration."""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from pwtool.build import build_plugin
from pwtool.build.devmodule import DevModule, ensure_dev_module, plugin_vm_configuration
from pwtool.emulator import Emulator, LogLevel, PluginStartError

PLUGIN = '''
    import textwrap  # a stdlib module the SDK does not import: it travels with the plugin

    import proxywasm
    from proxywasm import Action, HttpContext, RootContext

    GREETING = textwrap.dedent("  {greeting}").strip()


    class Stream(HttpContext):
        def on_request_headers(self, headers, end_of_stream):
            headers["x-greeting"] = GREETING
            headers["x-config"] = self.root.config["word"]
            try:
                headers["x-eval"] = str(eval("1 + 1"))
            except RuntimeError:  # as in the built module: no compiler at run time
                headers["x-eval"] = "refused"
            return Action.CONTINUE


    class Root(RootContext):
        http_context = Stream
        default_config = {{"word": "from plugin.toml"}}

        def on_vm_start(self, vm_configuration):
            proxywasm.log_info(f"vm configuration: {{vm_configuration!r}}")
            return True


    proxywasm.register(Root)
'''


@pytest.fixture(scope="module")
def dev_module() -> DevModule:
    return ensure_dev_module()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_dev_module_runs_each_edit_from_its_vm_configuration(
    dev_module: DevModule, plugin_source: Callable[[str, str], Path], tmp_path: Path
) -> None:
    module_sha = _sha(dev_module.path)
    directory = plugin_source("greeter", PLUGIN.format(greeting="hello"))
    (directory / "plugin.toml").write_text('name = "greeter"\n[config]\nword = "from plugin.toml"\n')
    for greeting in ("hello", "edited"):
        (directory / "plugin.py").write_text(textwrap.dedent(PLUGIN.format(greeting=greeting)))
        result = build_plugin(directory, tmp_path / f"{greeting}.wasm")
        vm_configuration = plugin_vm_configuration(result, dev_module, b"meant for the plugin")
        assert ensure_dev_module().path == dev_module.path and _sha(dev_module.path) == module_sha
        with Emulator() as emulator:
            plugin = emulator.load(dev_module.path, vm_config=vm_configuration)
            assert plugin.logs.info == ["vm configuration: b'meant for the plugin'"]
            stream = plugin.http_stream()
            assert stream.send_request_headers({":path": "/", ":method": "GET", ":authority": "a"}) == 0
            sent = stream.upstream_request.headers
            assert (sent["x-greeting"], sent["x-config"], sent["x-eval"]) == (greeting, "from plugin.toml", "refused")


def test_an_import_error_at_vm_start_is_logged_and_the_vm_refuses_to_start(
    dev_module: DevModule, plugin_source: Callable[[str, str], Path], tmp_path: Path
) -> None:
    # Hostcalls fail while building (there is no proxy) and work in a VM: only the VM fails.
    directory = plugin_source("late_failure", '''
        import proxywasm
        from proxywasm import HttpContext, HostcallError

        try:
            proxywasm.get_property(["plugin_name"])
        except HostcallError:
            pass
        else:
            raise RuntimeError("failing at VM start")
        proxywasm.register(HttpContext)
    ''')
    result = build_plugin(directory, tmp_path / "late.wasm")
    with Emulator() as emulator:
        with pytest.raises(PluginStartError):
            emulator.load(dev_module.path, vm_config=plugin_vm_configuration(result, dev_module))
        errors = "\n".join(emulator.logs.at_least(LogLevel.ERROR))
    assert "importing the plugin" in errors and "Traceback" in errors
    assert 'late_failure/plugin.py", line 10' in errors and "RuntimeError: failing at VM start" in errors


def test_the_dev_module_without_its_vm_configuration_says_what_it_is(dev_module: DevModule) -> None:
    with Emulator() as emulator:
        with pytest.raises(PluginStartError):
            emulator.load(dev_module.path)
        errors = "\n".join(emulator.logs.at_least(LogLevel.ERROR))
    assert "pwtool run --watch" in errors and "pwtool build" in errors
