"""The built hello-world module in real Envoy (V8): it loads, and it changes traffic."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pwtool.envoy import EchoServer, Envoy, free_port, validate
from pwtool.manifests import bootstrap, http_filter, plugin_config

pytestmark = pytest.mark.envoy


def _config(wasm: Path, listen: int, admin: int, upstream: str, config: dict[str, str] | None = None) -> dict:
    plugin = plugin_config(name="hello", root_id="hello", wasm_file=wasm, config=config)
    return bootstrap(http_filters=[http_filter(plugin)], listen_port=listen, admin_port=admin, upstream=upstream)


def test_envoy_validate_accepts_the_module(built_plugin, tmp_path: Path) -> None:
    wasm = built_plugin("hello")
    result = validate(_config(wasm, free_port(), free_port(), "127.0.0.1:9"), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_envoy_validate_refuses_a_broken_module(tmp_path: Path) -> None:
    broken = tmp_path / "broken.wasm"
    broken.write_bytes(b"\0asm\x01\0\0\0" + b"\x01\x05garbage")
    result = validate(_config(broken, free_port(), free_port(), "127.0.0.1:9"), tmp_path)
    assert result.returncode != 0


def test_hello_changes_request_and_response_in_live_envoy(built_plugin) -> None:
    wasm = built_plugin("hello")
    listen, admin = free_port(), free_port()
    with EchoServer() as echo, Envoy(_config(wasm, listen, admin, echo.address), admin_port=admin) as envoy:
        for _ in range(3):
            with urllib.request.urlopen(f"http://127.0.0.1:{listen}/greet?x=1", timeout=10) as response:
                seen_upstream = json.loads(response.read())
                assert response.status == 200
                assert response.headers["x-hello"] == "hello"  # the default config from plugin.toml
            assert seen_upstream["headers"]["x-hello-request"] == "1"
            assert seen_upstream["path"] == "/greet?x=1"
        assert "hello: VM started" in envoy.log_text()
        assert envoy.process is not None and envoy.process.poll() is None


def test_plugin_configuration_from_envoy_overrides_defaults(built_plugin) -> None:
    wasm = built_plugin("hello")
    listen, admin = free_port(), free_port()
    config = _config(wasm, listen, admin, "127.0.0.1:9", config={"greeting": "bonjour"})
    config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"] = {
        "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}]}]}
    with Envoy(config, admin_port=admin):
        with urllib.request.urlopen(f"http://127.0.0.1:{listen}/", timeout=10) as response:
            assert response.headers["x-hello"] == "bonjour"


@pytest.fixture(scope="module")
def failing_wasm(request: pytest.FixtureRequest) -> Path:
    from pwtool.emulator import build_plugin_cached

    cache = Path(request.config.cache.mkdir("pwtool-builds"))
    return build_plugin_cached(Path(__file__).parent / "plugins" / "failing", cache)


def _failing_config(wasm: Path, listen: int, admin: int, config: str | None = None) -> dict:
    plugin = plugin_config(name="failing", root_id="", wasm_file=wasm)
    if config is not None:
        plugin["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": config}
    return bootstrap(http_filters=[http_filter(plugin)], listen_port=listen, admin_port=admin)


def test_exception_in_envoy_logs_traceback_and_answers_500(failing_wasm: Path) -> None:
    listen, admin = free_port(), free_port()
    with Envoy(_failing_config(failing_wasm, listen, admin), admin_port=admin) as envoy:
        request = urllib.request.Request(f"http://127.0.0.1:{listen}/", headers={"x-fail": "raise"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 500
        with urllib.request.urlopen(f"http://127.0.0.1:{listen}/", timeout=10) as response:
            assert response.status == 200  # the VM is still serving
        log = envoy.log_text()
        assert "Traceback (most recent call last)" in log
        assert 'failing/plugin.py", line 18, in explode' in log
        assert "ValueError: boom from the plugin" in log
        assert envoy.process is not None and envoy.process.poll() is None


def test_failing_configure_is_reported_by_envoy_not_a_crash(failing_wasm: Path, tmp_path: Path) -> None:
    result = validate(_failing_config(failing_wasm, free_port(), free_port(), config="refuse"), tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "configuration refused by the plugin" in output
    assert "Unable to create Wasm plugin failing" in output
    assert "Segmentation fault" not in output and "Caught" not in output
