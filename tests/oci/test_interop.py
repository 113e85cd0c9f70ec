"""Cross-checks with skopeo (a client we did not write) and fault injection in front of the registry."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from regtools import CA, PASSWORD, USER, FaultProxy, RegistryProcess, skopeo

from pwtool.oci import Credentials, DigestMismatchError, RegistryError, build_image, pull_wasm, push_wasm
from pwtool.oci._image import DOCKER_LAYER_TGZ, OCI_LAYER_TGZ, WASME_CONFIG, WASME_LAYER


def _plugin_from_layer(layer: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(layer), mode="r:gz") as tar:
        member = tar.getmember("plugin.wasm")
        handle = tar.extractfile(member)
        assert handle is not None
        return handle.read()


@pytest.mark.parametrize(("fmt", "flavour"), [("compat", "oci"), ("compat", "docker"), ("oci", "oci"),
                                              ("cncf", "oci")])
def test_skopeo_inspect_raw_matches(plain_registry: RegistryProcess, module: bytes, fmt: str, flavour: str) -> None:
    ref = f"{plain_registry.host}/skopeo/{fmt}-{flavour}:v1"
    pushed = push_wasm(module, ref, format=fmt, manifest_type=flavour, insecure=True)
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout.encode()
    assert raw == build_image(module, fmt, flavour).manifest
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == pushed.digest
    manifest = json.loads(raw)
    if fmt == "oci":
        assert len(manifest["layers"]) == 2 and manifest["config"]["mediaType"] == WASME_CONFIG
        assert manifest["layers"][1]["mediaType"] == WASME_LAYER
        assert manifest["layers"][1]["digest"] == "sha256:" + hashlib.sha256(module).hexdigest()


@pytest.mark.parametrize("flavour", ["oci", "docker"])
def test_skopeo_copy_of_compat_image_over_tls_yields_identical_plugin(
    tls_registry: RegistryProcess, ca: CA, module: bytes, tmp_path: Path, flavour: str,
) -> None:
    ref = f"{tls_registry.host}/skopeo/compat-{flavour}:v1"
    push_wasm(module, ref, manifest_type=flavour, credentials=Credentials(USER, PASSWORD), ca_file=str(ca.ca_pem))
    certs = tmp_path / "certs"
    certs.mkdir()
    shutil.copy(ca.ca_pem, certs / "ca.crt")
    out = tmp_path / "image"
    skopeo("copy", "--src-cert-dir", str(certs), "--src-creds", f"{USER}:{PASSWORD}", f"docker://{ref}", f"dir:{out}")
    manifest = json.loads((out / "manifest.json").read_text())
    last = manifest["layers"][-1]
    assert last["mediaType"] == (OCI_LAYER_TGZ if flavour == "oci" else DOCKER_LAYER_TGZ)
    layer = (out / last["digest"].split(":", 1)[1]).read_bytes()
    assert _plugin_from_layer(layer) == module


def test_pull_an_image_written_by_skopeo(plain_registry: RegistryProcess, module: bytes, tmp_path: Path) -> None:
    """A compat image laid out by hand (plugin.wasm in a subdirectory, two layers), pushed by skopeo."""
    src = tmp_path / "src"
    src.mkdir()

    def tgz(files: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return gzip.compress(buf.getvalue())

    blobs = [tgz({"README": b"first layer\n"}), tgz({"app/plugin.wasm": module})]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [
        "sha256:" + hashlib.sha256(gzip.decompress(b)).hexdigest() for b in blobs]}}).encode()
    for data in [*blobs, config]:
        (src / hashlib.sha256(data).hexdigest()).write_bytes(data)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER_TGZ, "digest": "sha256:" + hashlib.sha256(b).hexdigest(),
                            "size": len(b)} for b in blobs]}
    (src / "manifest.json").write_text(json.dumps(manifest))
    (src / "version").write_text("Directory Transport Version: 1.1\n")
    ref = f"{plain_registry.host}/skopeo/written-by-skopeo:v1"
    skopeo("copy", "--dest-tls-verify=false", f"dir:{src}", f"docker://{ref}")
    pulled = pull_wasm(ref, insecure=True)
    assert pulled.module == module and pulled.format == "compat"


# -- fault injection ------------------------------------------------------------------------------------
def test_transient_errors_are_retried(plain_registry: RegistryProcess, module: bytes) -> None:
    plan = {("HEAD", "blobs", 1): "reset", ("POST", "uploads", 1): "503", ("PUT", "manifests", 1): "503",
            ("GET", "manifests", 1): "reset", ("GET", "blobs", 1): "503"}
    proxy = FaultProxy(plain_registry.port, fault=lambda m, k, n: plan.get((m, k, n))).start()
    try:
        ref = f"127.0.0.1:{proxy.port}/faults/hello:v1"
        result = push_wasm(module, ref, insecure=True, backoff=0.01)
        assert pull_wasm(ref, insecure=True, backoff=0.01).module == module
    finally:
        proxy.stop()
    assert sorted(proxy.injected) == sorted((m, k, a) for (m, k, _), a in plan.items())
    assert result.digest == build_image(module).digest


def test_persistent_5xx_gives_up_with_clear_error(plain_registry: RegistryProcess, module: bytes) -> None:
    proxy = FaultProxy(plain_registry.port, fault=lambda m, k, n: "503" if k == "manifests" else None).start()
    try:
        ref = f"127.0.0.1:{proxy.port}/faults/down:v1"
        with pytest.raises(RegistryError) as err:
            push_wasm(module, ref, insecure=True, retries=2, backoff=0.01)
    finally:
        proxy.stop()
    assert "HTTP 503" in str(err.value) and ref in str(err.value)
    assert len([i for i in proxy.injected if i[1] == "manifests"]) == 3  # first try + 2 retries


@pytest.mark.parametrize("kind", ["blobs", "manifests"])
def test_corrupted_content_is_detected(plain_registry: RegistryProcess, module: bytes, kind: str) -> None:
    ref = f"{plain_registry.host}/faults/corrupt:v1"
    push_wasm(module, ref, insecure=True)
    proxy = FaultProxy(plain_registry.port,
                       fault=lambda m, k, n: "corrupt" if (m, k) == ("GET", kind) else None).start()
    try:
        with pytest.raises(DigestMismatchError) as err:
            pull_wasm(f"127.0.0.1:{proxy.port}/faults/corrupt:v1", insecure=True)
    finally:
        proxy.stop()
    assert "faults/corrupt" in str(err.value)


def test_requests_are_not_repeated_without_faults(plain_registry: RegistryProcess, module: bytes) -> None:
    """No hidden retries: a clean push is HEAD+POST+PUT per blob plus one manifest PUT."""
    proxy = FaultProxy(plain_registry.port).start()
    try:
        push_wasm(module, f"127.0.0.1:{proxy.port}/faults/clean:v1", insecure=True, backoff=5)
    finally:
        proxy.stop()
    methods = [m for m, _, _ in proxy.log]
    assert methods.count("HEAD") == 2 and methods.count("POST") == 2 and methods.count("PUT") == 3
