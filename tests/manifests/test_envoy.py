"""``pwtool manifest envoy``: every rendered config passes ``envoy --mode validate``; ECDS and
WasmService configs also run in a real Envoy."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pwtool.cli import main
from pwtool.envoy import Envoy, free_port, validate
from pwtool.manifests import bootstrap, ecds_filter, fetch_cluster, http_filter, plugin_config


def render(*args: str) -> Any:
    result = CliRunner().invoke(main, ["manifest", "envoy", *args, "--json"], prog_name="pwtool")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def refused(*args: str) -> str:
    result = CliRunner().invoke(main, ["manifest", "envoy", *args], prog_name="pwtool")
    assert result.exit_code != 0
    return result.stderr


def assert_valid(cfg: dict[str, Any], tmp_path: Path) -> None:
    proc = validate(cfg, tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_local_filter_validates(plugin_dir: Path, wasm_path: Path, tmp_path: Path) -> None:
    filt = render(str(plugin_dir), "--wasm", str(wasm_path), "--set", "limits.max_requests=3",
                  "--failure-policy", "FAIL_RELOAD", "--env", "MODE=dev", "--host-env", "HOME")
    cfg = filt["typed_config"]["config"]
    assert cfg["root_id"] == "demo_root" and cfg["vm_config"]["code"]["local"]["filename"] == str(wasm_path)
    assert json.loads(cfg["configuration"]["value"])["limits"] == {"max_requests": 3, "timeout_ms": 500}
    assert_valid(bootstrap(http_filters=[filt]), tmp_path)


def test_validation_is_real(plugin_dir: Path, tmp_path: Path) -> None:
    """A module without the proxy-wasm ABI fails Envoy's validation, so passing means something.
    (`pwtool manifest envoy --wasm` refuses such a module itself, so the config is made here.)"""
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\0asm\x01\0\0\0")
    filt = http_filter(plugin_config(name="demo_plugin", root_id="demo_root", wasm_file=junk))
    proc = validate(bootstrap(http_filters=[filt]), tmp_path)
    assert proc.returncode != 0 and "ABI" in proc.stdout + proc.stderr
    assert "no proxy_abi_version_* export" in refused(str(plugin_dir), "--wasm", str(junk))


def test_remote_filter_validates(plugin_dir: Path, wasm_path: Path, tmp_path: Path) -> None:
    sha = hashlib.sha256(wasm_path.read_bytes()).hexdigest()
    url = "https://modules.example:8443/demo.wasm"
    filt = render(str(plugin_dir), "--url", url, "--sha256", f"sha256:{sha}", "--fetch-retries", "3")
    remote = filt["typed_config"]["config"]["vm_config"]["code"]["remote"]
    assert remote["sha256"] == sha and remote["http_uri"]["uri"] == url
    assert remote["retry_policy"]["num_retries"] == 3
    assert_valid(bootstrap(http_filters=[filt], clusters=[fetch_cluster(url)]), tmp_path)
    full = render(str(plugin_dir), "--url", url, "--sha256", sha, "--bootstrap", "--listen-port", "18080")
    assert_valid(full, tmp_path)


@pytest.mark.parametrize(("args", "message"), [
    (["--url", "https://h.example/a.wasm"], "needs --sha256"),
    (["--url", "https://h.example/a.wasm", "--sha256", "nothex"], "is not 64 hex digits"),
    (["--url", "oci://h.example/a:v1", "--sha256", "a" * 64], "http:// or https://"),
    ([], "exactly one of --wasm"),
    (["--wasm", "/nonexistent/x.wasm"], "does not exist"),
    (["--wasm", "X", "--failure-policy", "SOMETIMES"], "SOMETIMES"),
    (["--url", "https://h.example:99999/a.wasm", "--sha256", "a" * 64], "its port '99999' is not a number"),
    (["--url", "https://h.example:abc/a.wasm", "--sha256", "a" * 64], "its port 'abc' is not a number"),
    (["--url", "https://:8080/a.wasm", "--sha256", "a" * 64], "it names no host"),
    (["--wasm", "X", "--runtime", "null"], "'null' is not one of"),
    (["--url", "https://h.example/a.wasm", "--sha256", "a" * 64, "--set", "n=1e999"], "n is inf"),
])
def test_broken_inputs_are_refused(plugin_dir: Path, args: list[str], message: str) -> None:
    assert message in refused(str(plugin_dir), *args)


@pytest.mark.parametrize("module", [b"\0asm\x0d\0\x01\0", b"\0asm\x01\0\0\0\x01\x05\x01"],
                         ids=["component", "truncated"])
def test_a_module_envoy_cannot_load_is_refused(plugin_dir: Path, tmp_path: Path, module: bytes) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(module)
    message = refused(str(plugin_dir), "--wasm", str(bad))
    assert message.startswith(f"Error: --wasm {bad} cannot be loaded by Envoy: ") and "Fix:" in message


@pytest.mark.parametrize(("args", "needs"), [
    (["--upstream", "127.0.0.1:8080"], "--upstream is only used with --bootstrap"),
    (["--listen-port", "10000"], "--listen-port is only used with --bootstrap"),
    (["--kind", "ecds", "--ecds-path", "e.yaml"], "--ecds-path is only used with --kind ecds --bootstrap"),
    (["--bootstrap", "--ecds-path", "e.yaml"], "--ecds-path is only used with --kind ecds --bootstrap"),
    (["--version-info", "v1"], "--version-info is only used with --kind ecds"),
    (["--kind", "service", "--version-info", "v1"], "--version-info is only used with --kind ecds"),
    (["--no-singleton"], "--no-singleton is only used with --kind service"),
    (["--fetch-cluster", "wasm_fetch"], "--fetch-cluster is only used with --url"),
    (["--fetch-retries", "2"], "--fetch-retries is only used with --url"),
    (["--sha256", "a" * 64], "--sha256 is only used with --url"),
])
def test_an_option_that_would_be_ignored_is_a_usage_error(plugin_dir: Path, wasm_path: Path, args: list[str],
                                                          needs: str) -> None:
    result = CliRunner().invoke(main, ["manifest", "envoy", str(plugin_dir), "--wasm", str(wasm_path), *args],
                                prog_name="pwtool")
    assert result.exit_code == 2 and needs in result.stderr and "Fix:" in result.stderr, result.output


def test_options_in_their_context_are_accepted(plugin_dir: Path, wasm_path: Path) -> None:
    render(str(plugin_dir), "--wasm", str(wasm_path), "--bootstrap", "--listen-port", "10001", "--upstream", "h:1")
    assert render(str(plugin_dir), "--wasm", str(wasm_path), "--kind", "service",
                  "--no-singleton")["typed_config"]["singleton"] is False
    render(str(plugin_dir), "--wasm", str(wasm_path), "--kind", "ecds", "--version-info", "v2", "--bootstrap",
           "--ecds-path", "e.yaml")
    render(str(plugin_dir), "--url", "https://h.example/a.wasm", "--sha256", "a" * 64, "--fetch-cluster", "f",
           "--fetch-retries", "1")


@pytest.mark.parametrize(("upstream", "message"), [
    ("noport", "has no :PORT"), ("host:abc", "'abc' is not a number"), ("host:99999", "not between 1 and 65535"),
    ("host:0", "not between 1 and 65535"), (":80", "host is empty"), ("a b:80", "host 'a b' contains whitespace"),
])
def test_bootstrap_upstream_must_be_host_port(plugin_dir: Path, wasm_path: Path, upstream: str, message: str) -> None:
    result = CliRunner().invoke(main, ["manifest", "envoy", str(plugin_dir), "--wasm", str(wasm_path), "--bootstrap",
                                       "--upstream", upstream, "--json"], prog_name="pwtool")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"--upstream {upstream!r}: " in result.stderr and message in result.stderr and "Fix:" in result.stderr
    assert message in json.loads(result.stdout)["error"]


def test_bootstrap_upstream_may_be_ipv6(plugin_dir: Path, wasm_path: Path) -> None:
    cfg = render(str(plugin_dir), "--wasm", str(wasm_path), "--bootstrap", "--upstream", "[::1]:8080")
    endpoint = cfg["static_resources"]["clusters"][-1]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
    assert endpoint["endpoint"]["address"]["socket_address"] == {"address": "::1", "port_value": 8080}


@pytest.mark.parametrize("output", ["plugin.toml", "plugin.py", "/proc/x.yaml", "afile/x.yaml", ""])
def test_output_to_a_source_or_an_impossible_path_is_a_message(plugin_dir: Path, wasm_path: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch, output: str) -> None:
    (plugin_dir / "plugin.py").write_text("import proxywasm\n")
    sources = {path: path.read_bytes() for path in plugin_dir.iterdir()}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a file")
    target = str(plugin_dir / output) if output.startswith("plugin.") else output
    message = refused(str(plugin_dir), "--wasm", str(wasm_path), "-o", target)
    assert message.startswith("Error: ") and "Fix:" in message and "Traceback" not in message
    assert (output.split("/")[0] if output else "-o ''") in message
    assert {path: path.read_bytes() for path in plugin_dir.iterdir()} == sources


def test_ecds_and_service_validate(plugin_dir: Path, wasm_path: Path, tmp_path: Path) -> None:
    ecds = render(str(plugin_dir), "--kind", "ecds", "--wasm", str(wasm_path), "--version-info", "v1")
    resource = ecds["resources"][0]
    assert resource["@type"] == "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
    assert ecds["version_info"] == "v1" and resource["name"] == "demo_plugin"
    ecds_file = tmp_path / "ecds.yaml"
    ecds_file.write_text(yaml.safe_dump(ecds))
    assert_valid(bootstrap(http_filters=[ecds_filter("demo_plugin", ecds_file)]), tmp_path)
    # The resource's filter config is itself valid (validate mode does not read ECDS files).
    assert_valid(bootstrap(http_filters=[{"name": resource["name"], "typed_config": resource["typed_config"]}]),
                 tmp_path)
    service = render(str(plugin_dir), "--kind", "service", "--wasm", str(wasm_path))
    assert service["typed_config"]["singleton"] is True
    assert_valid(bootstrap(bootstrap_extensions=[service]), tmp_path)
    assert_valid(render(str(plugin_dir), "--kind", "service", "--wasm", str(wasm_path), "--bootstrap"), tmp_path)
    assert_valid(render(str(plugin_dir), "--kind", "ecds", "--wasm", str(wasm_path), "--bootstrap",
                        "--ecds-path", str(ecds_file)), tmp_path)


def _get(port: int, path: str = "/") -> tuple[int, bytes]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:  # noqa: S310
        return resp.status, resp.read()


def _wait_for_log(envoy: Envoy, needle: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = envoy.log_text()
        if needle in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not in envoy log:\n{envoy.log_tail()}")


def test_ecds_file_is_loaded_by_real_envoy(plugin_dir: Path, wasm_path: Path, tmp_path: Path) -> None:
    listen, admin = free_port(), free_port()
    ecds_file = tmp_path / "ecds.yaml"
    ecds_file.write_text(yaml.safe_dump(render(str(plugin_dir), "--kind", "ecds", "--wasm", str(wasm_path),
                                               "--version-info", "v7")))
    config = bootstrap(http_filters=[ecds_filter("demo_plugin", ecds_file)], listen_port=listen, admin_port=admin)
    with Envoy(config, admin_port=admin, workdir=tmp_path) as envoy:
        _wait_for_log(envoy, "pwtool-test vm started")
        dump = json.loads(envoy.admin_get("/config_dump?resource=ecds_filters"))
        names = [c["ecds_filter"]["name"] for c in dump["configs"]]
        versions = [c["version_info"] for c in dump["configs"]]
        assert names == ["demo_plugin"] and versions == ["v7"]
        assert _get(listen)[0] == 200


def test_singleton_service_runs_in_real_envoy(plugin_dir: Path, wasm_path: Path, tmp_path: Path) -> None:
    listen, admin = free_port(), free_port()
    service = render(str(plugin_dir), "--kind", "service", "--wasm", str(wasm_path))
    config = bootstrap(bootstrap_extensions=[service], listen_port=listen, admin_port=admin)
    with Envoy(config, admin_port=admin, workdir=tmp_path) as envoy:
        text = _wait_for_log(envoy, "pwtool-test vm started")
        assert "demo_root" in text  # the log line names the plugin's root id
        assert _get(listen)[0] == 200
