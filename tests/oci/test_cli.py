"""``pwtool push`` / ``pwtool pull`` end to end through the click entry point."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from regtools import PASSWORD, USER, RegistryProcess

from pwtool.cli import main


@pytest.fixture()
def wasm_file(tmp_path: Path, module: bytes) -> Path:
    path = tmp_path / "hello.wasm"
    path.write_bytes(module)
    return path


def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), prog_name="pwtool", env=env, input=input, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("cmd", [["push"], ["pull"], ["manifest"], ["manifest", "istio"], ["manifest", "envoy"]])
def test_help(cmd: list[str]) -> None:
    code, out, _ = run(*cmd, "--help")
    assert code == 0 and "Usage: pwtool" in out


def test_push_json_then_pull(plain_registry: RegistryProcess, wasm_file: Path, module: bytes, tmp_path: Path,
                             no_docker_config: Path) -> None:
    ref = f"{plain_registry.host}/cli/hello:v1"
    code, out, err = run("push", str(wasm_file), ref, "--insecure", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["module_sha256"] == hashlib.sha256(module).hexdigest() and data["format"] == "compat"
    code, out, err = run("push", str(wasm_file), ref, "--insecure")
    assert code == 0 and f"digest: {data['digest']}" in out and "2 already present" in out
    assert f"module sha256: {data['module_sha256']}" in out
    target = tmp_path / "out" / "plugin.wasm"
    code, out, err = run("pull", data["reference"], "--insecure", "-o", str(target), "--json")
    assert code == 0, err
    assert target.read_bytes() == module and json.loads(out)["digest"] == data["digest"]
    code, out, err = run("pull", ref, "--insecure", "-o", str(target), "--expect-sha256", "0" * 64)
    assert code == 1 and "expected " + "0" * 64 in err


@pytest.mark.parametrize("fmt", ["oci", "cncf"])
def test_push_formats(plain_registry: RegistryProcess, wasm_file: Path, module: bytes, fmt: str,
                      no_docker_config: Path) -> None:
    ref = f"{plain_registry.host}/cli/{fmt}:v1"
    code, out, err = run("push", "-f", fmt, str(wasm_file), ref, "--insecure", "--json")
    assert code == 0, err
    assert json.loads(out)["format"] == fmt
    result = CliRunner().invoke(main, ["pull", ref, "--insecure", "-o", "-"], prog_name="pwtool")
    assert result.exit_code == 0 and result.stdout_bytes == module


def test_progress_on_large_upload(plain_registry: RegistryProcess, tmp_path: Path, module: bytes,
                                  no_docker_config: Path) -> None:
    from pwtool.build.wasm_binary import Module

    padded = Module.parse(module)  # a module Envoy loads (push checks), 2.5 MB of it incompressible
    padded.set_custom_section("padding", random.Random(3).randbytes(2_500_000))
    big = tmp_path / "big.wasm"
    big.write_bytes(padded.to_bytes())
    code, out, err = run("push", str(big), f"{plain_registry.host}/cli/big:v1", "--insecure", "--progress",
                         "--chunk-size", "1000000")
    assert code == 0, err
    lines = [line for line in err.splitlines() if "tar+gzip" in line]
    assert lines and lines[-1].endswith("100%") and len(lines) >= 3


def test_credentials_from_docker_config(auth_registry: RegistryProcess, wasm_file: Path, no_docker_config: Path) -> None:
    ref = f"{auth_registry.host}/cli/auth:v1"
    code, out, err = run("push", str(wasm_file), ref, "--insecure")
    assert code == 1 and "requires authentication" in err and ref in err and "docker login" in err
    no_docker_config.mkdir(parents=True)
    cfg = no_docker_config / "config.json"
    cfg.write_text(json.dumps({"auths": {auth_registry.host: {
        "auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}))
    before = cfg.read_bytes()
    code, out, err = run("push", str(wasm_file), ref, "--insecure")
    assert code == 0, err
    assert cfg.read_bytes() == before


def test_credentials_from_flags_env_and_stdin(auth_registry: RegistryProcess, wasm_file: Path,
                                              no_docker_config: Path) -> None:
    ref = f"{auth_registry.host}/cli/auth:v2"
    code, _, err = run("push", str(wasm_file), ref, "--insecure", "-u", USER, "-p", "nope")
    assert code == 1 and "refused" in err and USER in err
    code, _, err = run("push", str(wasm_file), ref, "--insecure", "-u", USER, "-p", PASSWORD)
    assert code == 0, err
    code, _, err = run("pull", ref, "--insecure", "-o", "-", env={"PWTOOL_REGISTRY_USERNAME": USER,
                                                                  "PWTOOL_REGISTRY_PASSWORD": PASSWORD})
    assert code == 0, err
    code, _, err = run("pull", ref, "--insecure", "-o", "-", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
    assert code == 0, err


@pytest.mark.slow
def test_push_plugin_directory_builds_it(plain_registry: RegistryProcess, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, no_docker_config: Path) -> None:
    """A plugin directory is built through pwtool.build.build_plugin, then pushed (oci format: rootIds set)."""
    hello = Path(__file__).resolve().parents[2] / "plugins" / "hello"
    monkeypatch.chdir(tmp_path)
    ref = f"{plain_registry.host}/cli/hello-dir:v1"
    code, out, err = run("push", "-f", "oci", str(hello), ref, "--insecure", "--json")
    assert code == 0, err
    built = (tmp_path / "dist" / "hello.wasm").read_bytes()
    assert json.loads(out)["module_sha256"] == hashlib.sha256(built).hexdigest()
    from pwtool.oci import Registry, parse_reference

    with Registry(parse_reference(ref), insecure=True) as reg:
        manifest = json.loads(reg.get_manifest()[0])
        config = json.loads(reg.get_blob(manifest["config"]["digest"]))
    assert config["rootIds"] == ["hello"]
    result = CliRunner().invoke(main, ["pull", ref, "--insecure", "-o", "-"], prog_name="pwtool")
    assert result.exit_code == 0 and result.stdout_bytes == built


def test_bad_inputs(tmp_path: Path, wasm_file: Path) -> None:
    notwasm = tmp_path / "x.wasm"
    notwasm.write_bytes(b"hello")
    code, out, err = run("push", str(notwasm), "127.0.0.1:1/x/y:v1", "--json")
    assert code == 1 and "not a WebAssembly module" in err and json.loads(out)["error"]
    code, _, err = run("push", str(wasm_file), "127.0.0.1:1/Bad_Name:v1")
    assert code == 1 and "invalid repository name" in err


@pytest.mark.parametrize("ref", ["[::1:1/base", "host:abc/base", "host:99999/base", ":80/base"])
def test_unusable_registry_in_the_reference_is_a_message(wasm_file: Path, ref: str) -> None:
    for args in (("pull", ref), ("push", str(wasm_file), ref)):
        result = CliRunner().invoke(main, [*args, "--json"], prog_name="pwtool")
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        assert result.stderr.startswith("Error: invalid registry") and repr(ref) in result.stderr
        assert "expected HOST[:PORT]/REPO" in result.stderr and "Traceback" not in result.output
        assert repr(ref) in json.loads(result.stdout)["error"]


def _cut_before_code(module: bytes) -> bytes:
    """The module cut short where its code section starts: it still parses section by section."""
    from pwtool.build.wasm_binary import SECTION_CODE, Module

    sections = Module.parse(module).sections
    return Module(sections[:[s.id for s in sections].index(SECTION_CODE)]).to_bytes()


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail a test whose command reaches the registry client."""
    from pwtool.oci import RegistryError

    def refuse(*args: object, **kwargs: object) -> None:
        raise RegistryError("test: the command went to the network")

    monkeypatch.setattr("pwtool.cli.push.push_wasm", refuse)
    monkeypatch.setattr("pwtool.cli.pull.pull_wasm", refuse)


@pytest.mark.parametrize(("damage", "message"), [
    (lambda m: m[: len(m) // 2], "runs past the end of the file"),
    (_cut_before_code, "function bodies but holds 0: the file is truncated"),
    (lambda m: b"\0asm\x0d\0\x01\0", "a component?"),
    (lambda m: b"\0asm\x01\0\0\0", "no proxy_abi_version_* export"),
], ids=["truncated", "cut-at-a-section", "component", "empty-module"])
def test_push_refuses_a_module_envoy_cannot_load(tmp_path: Path, module: bytes, damage: Any, message: str,
                                                 no_network: None) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(damage(module))
    result = CliRunner().invoke(main, ["push", str(bad), "127.0.0.1:1/x/y:v1", "--json"], prog_name="pwtool")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert result.stderr.startswith(f"Error: {bad} cannot be loaded by Envoy") and message in result.stderr
    assert "Fix:" in result.stderr and f"pwtool inspect {bad}" in result.stderr
    assert message in json.loads(result.stdout)["error"]


def test_pull_checks_expect_sha256_before_the_network(no_network: None) -> None:
    code, out, err = run("pull", "127.0.0.1:1/x/y:v1", "--expect-sha256", "xyz", "--json")
    assert code == 1 and "--expect-sha256: sha256 'xyz' is not 64 hex digits" in err
    assert "is not 64 hex digits" in json.loads(out)["error"]
    code, _, err = run("pull", "127.0.0.1:1/x/y:v1", "-o", "")
    assert code == 1 and "cannot write the module to -o ''" in err and "Fix:" in err


def test_pull_write_errors_are_messages_and_leave_no_temporary_file(
        plain_registry: RegistryProcess, wasm_file: Path, module: bytes, tmp_path: Path,
        no_docker_config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ref = f"{plain_registry.host}/cli/write:v1"
    code, _, err = run("push", str(wasm_file), ref, "--insecure")
    assert code == 0, err
    sha = hashlib.sha256(module).hexdigest()
    (tmp_path / "afile").write_text("a file, not a directory")
    code, out, err = run("pull", ref, "--insecure", "-o", str(tmp_path / "afile" / "x.wasm"),
                         "--expect-sha256", f"sha256:{sha.upper()}", "--json")
    assert code == 1 and err.startswith(f"Error: cannot write the module to {tmp_path / 'afile' / 'x.wasm'}: ")
    assert "Fix:" in err and "Traceback" not in err and json.loads(out)["error"]

    def refuse(source: object, target: object) -> None:
        raise PermissionError(13, "Permission denied")

    target = tmp_path / "out" / "plugin.wasm"
    monkeypatch.setattr("os.replace", refuse)
    code, _, err = run("pull", ref, "--insecure", "-o", str(target))
    monkeypatch.undo()
    assert code == 1 and f"cannot write the module to {target}: Permission denied. Fix:" in err
    assert list((tmp_path / "out").iterdir()) == []  # no .partial file left behind


def test_password_stdin_must_give_a_password_and_not_with_password(wasm_file: Path, no_network: None) -> None:
    for stdin in ("", "\n"):
        code, _, err = run("push", str(wasm_file), "127.0.0.1:1/x/y:v1", "-u", "me", "--password-stdin", input=stdin)
        assert code == 2 and "--password-stdin read an empty password" in err and "Fix:" in err
    code, _, err = run("pull", "127.0.0.1:1/x/y:v1", "-u", "me", "-p", "pw", "--password-stdin", input="pw\n")
    assert code == 2 and "pass --password or --password-stdin, not both" in err


@pytest.mark.parametrize(("content", "message"), [
    (None, "cannot read it: No such file or directory"),
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "holds a JSON list, not the object docker writes"),
])
def test_an_explicit_docker_config_must_be_readable(tmp_path: Path, wasm_file: Path, no_network: None,
                                                    no_docker_config: Path, content: str | None,
                                                    message: str) -> None:
    config = tmp_path / "docker.json"
    if content is not None:
        config.write_text(content)
    for args in (("push", str(wasm_file)), ("pull",)):
        code, out, err = run(*args, "127.0.0.1:1/x/y:v1", "--docker-config", str(config), "--json")
        assert code == 1 and err.startswith(f"Error: docker config {config}") and message in err, err
        assert "Fix:" in err and message in json.loads(out)["error"]
    # The default docker config stays optional: a malformed one means no credentials.
    no_docker_config.mkdir()
    (no_docker_config / "config.json").write_text(content or "")
    code, _, err = run("push", str(wasm_file), "127.0.0.1:1/x/y:v1")
    assert code == 1 and "went to the network" in err
