"""``pwtool manifest istio``: WasmPlugin rendering, CRD schema validation and the CEL rules."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from pwtool.cli import main
from pwtool.manifests import (
    ManifestError, crd_path, merge_settings, render_wasmplugin, url_scheme_ok, validate_wasmplugin,
)
from pwtool.oci import build_image

SHA = "ab" * 32


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["manifest", "istio", *args], prog_name="pwtool")
    return result.exit_code, result.stdout, result.stderr


def test_packaged_crd_is_the_shared_one(shared_crd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PWTOOL_WASMPLUGIN_CRD")
    assert crd_path().read_bytes() == shared_crd.read_bytes()
    document = yaml.safe_load(crd_path().read_text())
    assert document["kind"] == "CustomResourceDefinition" and document["spec"]["names"]["kind"] == "WasmPlugin"


def test_full_render_from_plugin_dir(plugin_dir: Path, wasm_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "wp.yaml"
    code, _, err = run(str(plugin_dir), "--url", "oci://registry.example:5000/team/demo:v1", "--wasm", str(wasm_path),
                       "-n", "web", "--set", "limits.max_requests=25", "--set", "extra.enabled=true",
                       "--set", "greeting=hello there", "--phase", "AUTHZ", "--priority", "100",
                       "--fail-strategy", "FAIL_RELOAD", "--selector", "app=web", "--selector", "tier=front",
                       "--match-mode", "SERVER", "--match-port", "8080", "--match-port", "9090",
                       "--pull-policy", "Always", "--pull-secret", "regcred", "--env", "MODE=prod",
                       "--host-env", "POD_NAME", "--type", "HTTP", "-o", str(out))
    assert code == 0, err
    doc = yaml.safe_load(out.read_text())
    validate_wasmplugin(doc)
    assert doc["apiVersion"] == "extensions.istio.io/v1alpha1" and doc["kind"] == "WasmPlugin"
    assert doc["metadata"] == {"name": "demo-plugin", "namespace": "web"}
    spec = doc["spec"]
    # For oci:// URLs Istio compares sha256 with the image manifest digest: the one `pwtool push` produces.
    assert spec["sha256"] == build_image(wasm_path.read_bytes()).digest.removeprefix("sha256:")
    assert spec["pluginName"] == "demo_root"
    assert spec["pluginConfig"] == {"greeting": "hello there", "limits": {"max_requests": 25, "timeout_ms": 500},
                                    "hosts": ["a", "b"], "extra": {"enabled": True}}
    assert spec["selector"] == {"matchLabels": {"app": "web", "tier": "front"}}
    assert spec["match"] == [{"mode": "SERVER", "ports": [{"number": 8080}, {"number": 9090}]}]
    assert (spec["phase"], spec["priority"], spec["failStrategy"]) == ("AUTHZ", 100, "FAIL_RELOAD")
    assert (spec["imagePullPolicy"], spec["imagePullSecret"], spec["type"]) == ("Always", "regcred", "HTTP")
    assert spec["vmConfig"]["env"] == [{"name": "MODE", "value": "prod"}, {"name": "POD_NAME", "valueFrom": "HOST"}]


def test_http_url_uses_module_sha256_and_target_refs(plugin_dir: Path, wasm_path: Path) -> None:
    import hashlib

    code, out, err = run(str(plugin_dir), "--url", "https://files.example/demo.wasm", "--wasm", str(wasm_path),
                         "--target-ref", "Gateway/edge", "--target-ref", "Service/api", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["spec"]["sha256"] == hashlib.sha256(wasm_path.read_bytes()).hexdigest()
    assert doc["spec"]["targetRefs"] == [{"kind": "Gateway", "name": "edge", "group": "gateway.networking.k8s.io"},
                                         {"kind": "Service", "name": "api"}]


@pytest.mark.parametrize(("args", "message"), [
    (["--sha256", "xyz"], "is not 64 hex digits"),
    (["--sha256", "A" * 63], "is not 64 hex digits"),
    (["--selector", "app=web", "--target-ref", "Gateway/gw"], "not both"),
    (["--set", "novalue"], "expected KEY=VALUE"),
    (["--selector", "app=we*b"], "wildcard not allowed"),
    (["--name", "Bad_Name"], "metadata.name"),
    (["--target-ref", "a/b/c/d"], "KIND/NAME"),
    (["--selector", "app name=web"], "is not a Kubernetes label key"),
    (["--selector", "app=we b"], "is not a Kubernetes label value"),
    (["--selector", "k" * 64 + "=x"], "is not a Kubernetes label key"),
    (["--selector", "app=web", "--selector", "app=api"], "--selector app= is given twice ('web' and 'api')"),
    (["--env", "A=1", "--env", "A=2"], "--env A= is given twice"),
    (["--set", "when=2024-01-01T00:00:00", "--set", "n=1e999"], "--set) n is inf, which JSON cannot carry"),
    (["--url", "oci://r.example/x@sha256:" + "cd" * 32, "--sha256", SHA], "Istio would refuse the pulled image"),
])
def test_broken_inputs_are_refused(plugin_dir: Path, args: list[str], message: str) -> None:
    code, out, err = run(str(plugin_dir), "--url", "oci://r.example/x:v1", *args)
    assert code == 1 and message in err and out == ""


def test_unknown_phase_and_missing_plugin(plugin_dir: Path, tmp_path: Path) -> None:
    code, _, err = run(str(plugin_dir), "--url", "oci://r.example/x:v1", "--phase", "LATE")
    assert code == 2 and "'LATE' is not one of" in err
    with pytest.raises(ManifestError, match="phase"):
        render_wasmplugin(name="x", url="oci://r.example/x:v1", phase="LATE")
    code, _, err = run(str(tmp_path), "--url", "oci://r.example/x:v1")
    assert code == 1 and "plugin.toml: missing" in err


@pytest.mark.parametrize(("url", "ok"), [
    ("oci://ghcr.io/me/x:v1", True), ("https://h.example/a.wasm", True), ("http://h/a.wasm", True),
    ("file:///opt/a.wasm", True), ("ghcr.io/me/x:v1", True), ("ftp://h/a.wasm", False),
    ("gs://bucket/a.wasm", False), ("not a url", False),
])
def test_url_scheme_rule(url: str, ok: bool) -> None:
    assert url_scheme_ok(url) is ok
    if not ok:
        with pytest.raises(ManifestError, match="url must have schema"):
            render_wasmplugin(name="x", url=url)


def _valid() -> dict[str, Any]:
    return render_wasmplugin(name="demo", url="oci://r.example/x:v1", sha256=SHA, selector={"app": "web"},
                             plugin_config={"any": {"nested": ["thing"]}})


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d["spec"].update(unknownField=1), "Additional properties"),
    (lambda d: d["spec"]["selector"].update(matchExpressions=[]), "Additional properties"),
    (lambda d: d["metadata"].update(uid="x"), "Additional properties"),
    (lambda d: d.update(status2={}), "Additional properties"),
    (lambda d: d["spec"].update(targetRefs=[{"kind": "Gateway", "name": "g"}]), "only one of targetRefs or selector"),
    (lambda d: d["spec"].update(targetRef={"kind": "Gateway", "name": "g"}), "only one of targetRefs or selector"),
    (lambda d: d["spec"].update(sha256="XYZ"), "sha256"),
    (lambda d: d["spec"].update(phase="LATE"), "phase"),
    (lambda d: d["spec"].update(priority=2 ** 31), "int32"),
    (lambda d: d["spec"].pop("url"), "'url' is a required property"),
    (lambda d: d["spec"].update(vmConfig={"env": [{"name": "A", "valueFrom": "HOST", "value": "x"}]}),
     "value may only be set when valueFrom is INLINE"),
    (lambda d: d.update(kind="EnvoyFilter"), "kind"),
])
def test_schema_and_cel_violations(mutate: Any, message: str) -> None:
    doc = _valid()
    validate_wasmplugin(copy.deepcopy(doc))
    mutate(doc)
    with pytest.raises(ManifestError) as err:
        validate_wasmplugin(doc)
    assert message in str(err.value) and "WasmPlugin" in str(err.value)


def test_cross_namespace_target_ref_refused() -> None:
    with pytest.raises(ManifestError, match="cross namespace"):
        render_wasmplugin(name="x", url="oci://r.example/x:v1",
                          target_refs=[{"kind": "Gateway", "name": "g", "namespace": "other"}])


def test_merge_settings_types_and_errors() -> None:
    merged = merge_settings({"a": {"b": 1}, "c": "x"}, ["a.b=2", "a.d=[1, 2]", "e=false", "f=", "g=01x"])
    assert merged == {"a": {"b": 2, "d": [1, 2]}, "c": "x", "e": False, "f": "", "g": "01x"}
    with pytest.raises(ManifestError, match="is not a table"):
        merge_settings({"c": "x"}, ["c.d=1"])


def test_set_values_are_json_or_text_never_reinterpreted() -> None:
    merged = merge_settings({}, ["t=12:30", "flag=off", "country=no", "d=2024-01-01", "q=\"1.10\"", "n=NaN",
                                 "z=null", "o={\"a\": [1, true]}", "yaml=[a, b]", "x={1: a}", "i=-3", "v=1.5"])
    assert merged == {"t": "12:30", "flag": "off", "country": "no", "d": "2024-01-01", "q": "1.10", "n": "NaN",
                      "z": None, "o": {"a": [1, True]}, "yaml": "[a, b]", "x": "{1: a}", "i": -3, "v": 1.5}
    with pytest.raises(ManifestError, match=r"n is inf, which JSON cannot carry"):
        merge_settings({}, ["n=1e999"])
    with pytest.raises(ManifestError, match="nests deeper than 100 levels"):
        merge_settings({}, ["deep=" + "[" * 101 + "]" * 101])
    assert merge_settings({}, ["ok=" + "[" * 99 + "]" * 99])


@pytest.mark.parametrize(("config", "message"), [
    ("x = nan", "[config] x is nan, which JSON cannot carry"),
    ("a = { b = [1, 2, -inf] }", "[config] a.b[2] is -inf"),
    ("d = 2024-01-01", "[config] d is a date"),
    ("t = 12:30:00", "[config] t is a time"),
    ("a = " + "[" * 101 + "]" * 101, "[config] nests deeper than 100 levels"),
])
def test_plugin_toml_config_that_is_not_json_is_refused(plugin_dir: Path, config: str, message: str) -> None:
    (plugin_dir / "plugin.toml").write_text(f'name = "demo_plugin"\n\n[config]\n{config}\n')
    code, out, err = run(str(plugin_dir), "--url", "oci://r.example/x:v1")
    assert code == 1 and out == "" and err.startswith(f"Error: {plugin_dir / 'plugin.toml'}: {message}"), err


@pytest.mark.parametrize("url", ["OCI://r.example/demo:v1", "r.example/demo:v1"])
def test_an_url_istio_pulls_as_oci_gets_the_image_digest(plugin_dir: Path, wasm_path: Path, url: str) -> None:
    code, out, err = run(str(plugin_dir), "--url", url, "--wasm", str(wasm_path), "--json")
    assert code == 0, err
    assert json.loads(out)["spec"]["sha256"] == build_image(wasm_path.read_bytes(), "compat", "oci").digest[7:]


def test_wasm_that_is_not_the_pinned_image_is_refused(plugin_dir: Path, wasm_path: Path) -> None:
    digest = build_image(wasm_path.read_bytes(), "compat", "oci").digest
    code, out, err = run(str(plugin_dir), "--url", f"oci://r.example/x@{digest}", "--wasm", str(wasm_path), "--json")
    assert code == 0 and json.loads(out)["spec"]["sha256"] == digest[7:], err
    code, out, err = run(str(plugin_dir), "--url", f"oci://r.example/x@sha256:{SHA}", "--wasm", str(wasm_path))
    assert code == 1 and f"--url pins image sha256:{SHA}, but --wasm {wasm_path} packed as --format compat" in err


def test_a_config_kubernetes_would_refuse_is_warned_about(plugin_dir: Path) -> None:
    (plugin_dir / "plugin.toml").write_text(f'name = "demo_plugin"\n\n[config]\nbig = "{"x" * 1_200_000}"\n')
    code, out, err = run(str(plugin_dir), "--url", "oci://r.example/x:v1")
    assert code == 0 and "big" in out
    assert "warning: pluginConfig is 1.1 MiB; Kubernetes refuses objects over about 1.5 MiB" in err
    (plugin_dir / "plugin.toml").write_text('name = "demo_plugin"\n\n[config]\nsmall = 1\n')
    assert "warning" not in run(str(plugin_dir), "--url", "oci://r.example/x:v1")[2]


@pytest.mark.parametrize("victim", ["plugin.toml", "plugin.py", "helper.py"])
def test_output_never_overwrites_a_plugin_source(plugin_dir: Path, victim: str) -> None:
    target = plugin_dir / victim
    if not target.exists():
        target.write_text("# the plugin's own code\n")
    before = target.read_bytes()
    code, out, err = run(str(plugin_dir), "--url", "oci://r.example/x:v1", "--sha256", SHA, "-o", str(target), "--json")
    assert code == 1 and f"-o {target} is {victim}" in err and "Fix:" in err and "Traceback" not in err
    assert json.loads(out)["error"] and target.read_bytes() == before
    earlier = plugin_dir / "wasmplugin.yaml"  # an earlier output in the plugin directory may be rewritten
    earlier.write_text("# keep me\nold: true\n")
    code, _, err = run(str(plugin_dir), "--url", "oci://r.example/x:v1", "--sha256", SHA, "-o", str(earlier))
    assert code == 0, err
    assert earlier.read_text().startswith("# keep me\napiVersion:")


@pytest.mark.parametrize("output", ["/proc/x.yaml", "afile/x.yaml", "", "module.wasm"])
def test_output_to_an_impossible_path_is_a_message(plugin_dir: Path, tmp_path: Path, wasm_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, output: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a file")
    (tmp_path / "module.wasm").write_bytes(wasm_path.read_bytes())
    code, out, err = run(str(plugin_dir), "--url", "oci://r.example/x:v1", "--sha256", SHA, "-o", output)
    assert code == 1 and err.startswith("Error: ") and "Fix:" in err and "Traceback" not in err
    assert (output.split("/")[0] if output else "-o ''") in err
    assert (tmp_path / "module.wasm").read_bytes() == wasm_path.read_bytes()


def test_wasm_that_is_not_a_module_is_a_message(plugin_dir: Path, tmp_path: Path) -> None:
    text = tmp_path / "text.wasm"
    text.write_text("hello\n")
    for url in ("oci://r.example/x:v1", "https://files.example/x.wasm"):
        code, out, err = run(str(plugin_dir), "--url", url, "--wasm", str(text), "--json")
        assert code == 1 and f"--wasm {text} is not a WebAssembly module" in err and "Traceback" not in err
        assert "not a WebAssembly module" in json.loads(out)["error"]


@pytest.mark.parametrize("url", ["oci://", "oci:///demo", "oci://r.example/Bad_Name:v1"])
def test_an_oci_url_without_an_image_is_refused(plugin_dir: Path, url: str) -> None:
    code, out, err = run(str(plugin_dir), "--url", url, "--sha256", SHA)
    assert code == 1 and out == "" and err.startswith(f"Error: --url {url!r}: ") and "Fix:" in err


def test_a_digest_in_an_oci_url_is_the_sha256(plugin_dir: Path) -> None:
    code, out, err = run(str(plugin_dir), "--url", f"oci://r.example/x:v1@sha256:{SHA}", "--json")
    assert code == 0, err
    assert json.loads(out)["spec"]["sha256"] == SHA


@pytest.mark.parametrize(("module", "message"), [
    (b"\0asm\x0d\0\x01\0", "a component?"),
    (b"\0asm\x01\0\0\0", "no proxy_abi_version_* export"),
    (b"\0asm\x01\0\0\0\x01\x05\x01", "runs past the end of the file"),
], ids=["component", "empty-module", "truncated"])
def test_wasm_envoy_cannot_load_is_a_message(plugin_dir: Path, tmp_path: Path, module: bytes, message: str) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(module)
    code, out, err = run(str(plugin_dir), "--url", "oci://r.example/x:v1", "--wasm", str(bad))
    assert code == 1 and out == "" and err.startswith(f"Error: --wasm {bad} cannot be loaded by Envoy: ")
    assert message in err and "Fix:" in err
