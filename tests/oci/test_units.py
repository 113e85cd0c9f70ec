"""Reference parsing, reproducible image layout and docker-config credentials (no registry)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from pwtool.oci import (
    Credentials, ReferenceError, build_image, detect_format, extract_plugin, from_docker_config, parse_reference,
    resolve_credentials,
)
from pwtool.oci._image import CNCF_CONFIG, CNCF_LAYER, OCI_LAYER_TGZ, WASME_CONFIG, WASME_LAYER

WASM = b"\0asm\x01\0\0\0"


@pytest.mark.parametrize(("text", "registry", "repo", "tag", "digest"), [
    ("127.0.0.1:5000/team/hello:v1", "127.0.0.1:5000", "team/hello", "v1", None),
    ("oci://ghcr.io/me/hello", "ghcr.io", "me/hello", "latest", None),
    ("localhost/hello@sha256:" + "a" * 64, "localhost", "hello", None, "sha256:" + "a" * 64),
    ("hello:1.0", "registry-1.docker.io", "library/hello", "1.0", None),
    ("docker.io/me/x:v2", "registry-1.docker.io", "me/x", "v2", None),
])
def test_parse_reference(text: str, registry: str, repo: str, tag: str | None, digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repo, tag, digest)


@pytest.mark.parametrize("text", ["", "host:5000/Bad_Repo:v1", "h.io/x@sha256:abc", "h.io/x:bad tag"])
def test_parse_reference_rejects(text: str) -> None:
    with pytest.raises(ReferenceError):
        parse_reference(text)


def test_images_are_reproducible_and_laid_out_as_specified() -> None:
    for fmt, flavour in [("compat", "oci"), ("compat", "docker"), ("oci", "oci"), ("cncf", "oci")]:
        a, b = build_image(WASM, fmt, flavour), build_image(WASM, fmt, flavour)
        assert a.manifest == b.manifest and a.digest == b.digest
    compat = json.loads(build_image(WASM).manifest)
    assert compat["layers"][-1]["mediaType"] == OCI_LAYER_TGZ
    assert extract_plugin(build_image(WASM).layers[-1].data) == WASM
    oci = json.loads(build_image(WASM, "oci").manifest)
    assert len(oci["layers"]) == 2 and oci["config"]["mediaType"] == WASME_CONFIG
    assert [layer["mediaType"] for layer in oci["layers"]] == [WASME_CONFIG, WASME_LAYER]
    cncf = json.loads(build_image(WASM, "cncf").manifest)
    assert cncf["config"]["mediaType"] == CNCF_CONFIG and cncf["layers"][0]["mediaType"] == CNCF_LAYER
    assert [detect_format(m) for m in (compat, oci, cncf)] == ["compat", "oci", "cncf"]


def test_build_image_refuses_non_wasm_and_docker_artifacts() -> None:
    with pytest.raises(ValueError, match="not a WebAssembly module"):
        build_image(b"hello")
    with pytest.raises(ValueError, match="only for the compat format"):
        build_image(WASM, "oci", "docker")


def test_detect_format_rejects_one_layer_wasme_artifact() -> None:
    bad = {"layers": [{"mediaType": WASME_LAYER, "digest": "sha256:0", "size": 1}]}
    with pytest.raises(ValueError, match="exactly 2 layers"):
        detect_format(bad)


def test_docker_config_auth_field_and_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {
        "reg.example:5000": {"auth": base64.b64encode(b"bob:pa:ss").decode()},
        "https://other.example": {"username": "u", "password": "p"},
    }}))
    before = cfg.read_bytes()
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("PWTOOL_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("PWTOOL_REGISTRY_PASSWORD", raising=False)
    creds = from_docker_config("reg.example:5000")
    assert creds is not None and (creds.username, creds.password) == ("bob", "pa:ss")
    other = from_docker_config("other.example")
    assert other is not None and (other.username, other.password) == ("u", "p")
    assert from_docker_config("unknown.example") is None
    monkeypatch.setenv("PWTOOL_REGISTRY_USERNAME", "env-user")
    monkeypatch.setenv("PWTOOL_REGISTRY_PASSWORD", "env-pw")
    assert resolve_credentials("reg.example:5000") == Credentials("env-user", "env-pw", "environment")
    assert resolve_credentials("reg.example:5000", "flag", "pw") == Credentials("flag", "pw", "flags")
    assert cfg.read_bytes() == before  # read only
