"""The built hello-world module in real Envoy (V8): it loads, and it changes traffic."""

from __future__ import annotations

import json
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
