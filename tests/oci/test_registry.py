"""Push and pull against a real docker-registry: plain HTTP, basic auth, TLS and bearer tokens."""

from __future__ import annotations

import hashlib
import json
import random
import urllib.request

import pytest
from regtools import CA, PASSWORD, USER, RegistryProcess, TokenServer

from pwtool.oci import (
    AuthError, Credentials, DigestMismatchError, FormatError, NotFoundError, Registry, RegistryError,
    build_image, parse_reference, pull_wasm, push_wasm,
)
from pwtool.oci._image import OCI_LAYER_TGZ, OCI_MANIFEST, Blob, Image

CREDS = Credentials(USER, PASSWORD)


def _manifest(host: str, repo: str, ident: str, accept: str) -> tuple[bytes, dict[str, str]]:
    req = urllib.request.Request(f"http://{host}/v2/{repo}/manifests/{ident}", headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - local test registry
        return resp.read(), {k.lower(): v for k, v in resp.headers.items()}


@pytest.mark.parametrize(("fmt", "flavour"), [("compat", "oci"), ("compat", "docker"), ("oci", "oci"),
                                              ("cncf", "oci")])
def test_push_then_pull_every_format(plain_registry: RegistryProcess, module: bytes, fmt: str, flavour: str) -> None:
    ref = f"{plain_registry.host}/formats/{fmt}-{flavour}:v1"
    pushed = push_wasm(module, ref, format=fmt, manifest_type=flavour, insecure=True)
    expected = build_image(module, fmt, flavour)
    assert pushed.digest == expected.digest
    assert pushed.module_sha256 == hashlib.sha256(module).hexdigest()
    raw, headers = _manifest(plain_registry.host, f"formats/{fmt}-{flavour}", "v1", expected.media_type)
    assert raw == expected.manifest
    assert headers["docker-content-digest"] == pushed.digest
    pulled = pull_wasm(ref, insecure=True)
    assert pulled.module == module and pulled.format == fmt and pulled.digest == pushed.digest
    by_digest = pull_wasm(f"{plain_registry.host}/formats/{fmt}-{flavour}@{pushed.digest}", insecure=True)
    assert by_digest.module == module


def test_repush_is_idempotent(plain_registry: RegistryProcess, module: bytes) -> None:
    ref = f"{plain_registry.host}/idem/hello:v1"
    first = push_wasm(module, ref, insecure=True)
    second = push_wasm(module, ref, insecure=True)
    assert len(first.uploaded) == 2 and first.skipped == []
    assert second.uploaded == [] and sorted(second.skipped) == sorted(first.uploaded)
    assert first.digest == second.digest


def test_chunked_upload_reports_progress(plain_registry: RegistryProcess, module: bytes) -> None:
    big = module + random.Random(7).randbytes(3_000_000)  # incompressible, so the layer stays big
    seen: list[tuple[str, int, int]] = []
    result = push_wasm(big, f"{plain_registry.host}/big/hello:v1", insecure=True, chunk_size=512 * 1024,
                       progress=lambda label, done, total: seen.append((label, done, total)))
    layer_total = max(total for _, _, total in seen)
    dones = [done for _, done, total in seen if total == layer_total]
    assert dones == sorted(dones) and dones[-1] == layer_total and len(dones) > 4
    assert pull_wasm(result.reference, insecure=True).module == big


def test_missing_tag_and_repository_errors_name_the_reference(plain_registry: RegistryProcess, module: bytes) -> None:
    push_wasm(module, f"{plain_registry.host}/errs/hello:v1", insecure=True)
    with pytest.raises(NotFoundError) as err:
        pull_wasm(f"{plain_registry.host}/errs/hello:nope", insecure=True)
    assert f"{plain_registry.host}/errs/hello:nope" in str(err.value) and "push it first" in str(err.value)
    with pytest.raises(NotFoundError):
        pull_wasm(f"{plain_registry.host}/never/pushed:v1", insecure=True)


def test_plain_http_needs_insecure(plain_registry: RegistryProcess, module: bytes) -> None:
    with pytest.raises(RegistryError, match="--insecure"):
        push_wasm(module, f"{plain_registry.host}/x/y:v1")


def test_connection_refused_is_clear(module: bytes) -> None:
    from regtools import free_port

    with pytest.raises(RegistryError, match="connection refused"):
        pull_wasm(f"127.0.0.1:{free_port()}/x/y:v1", insecure=True, retries=0)


def test_not_a_wasm_image_is_refused(plain_registry: RegistryProcess) -> None:
    # A regular container-like image: the last layer is a tar+gzip without plugin.wasm.
    import gzip
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("etc/hostname")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"box\n"))
    layer = Blob(OCI_LAYER_TGZ, gzip.compress(buf.getvalue()))
    config = Blob("application/vnd.oci.image.config.v1+json", b"{}")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.descriptor(),
                           "layers": [layer.descriptor()]}).encode()
    ref = parse_reference(f"{plain_registry.host}/notwasm/box:v1")
    with Registry(ref, push=True, insecure=True) as reg:
        reg.push_image(Image("compat", OCI_MANIFEST, config, (layer,), manifest))
    with pytest.raises(FormatError, match="no plugin.wasm") as err:
        pull_wasm(ref, insecure=True)
    assert str(ref) in str(err.value)


# -- basic auth ------------------------------------------------------------------------------------
def test_basic_auth_push_pull(auth_registry: RegistryProcess, module: bytes, no_docker_config: object) -> None:
    ref = f"{auth_registry.host}/auth/hello:v1"
    result = push_wasm(module, ref, insecure=True, credentials=CREDS)
    assert pull_wasm(ref, insecure=True, credentials=CREDS).digest == result.digest


def test_basic_auth_refused_and_missing(auth_registry: RegistryProcess, module: bytes) -> None:
    ref = f"{auth_registry.host}/auth/hello:v2"
    with pytest.raises(AuthError) as err:
        push_wasm(module, ref, insecure=True, credentials=Credentials(USER, "wrong"))
    assert ref in str(err.value) and "check the username and password" in str(err.value)
    with pytest.raises(AuthError) as err:
        push_wasm(module, ref, insecure=True)
    assert "requires authentication" in str(err.value) and "docker login" in str(err.value)


# -- TLS --------------------------------------------------------------------------------------------
def test_tls_verified_with_ca_file(tls_registry: RegistryProcess, ca: CA, module: bytes) -> None:
    ref = f"{tls_registry.host}/tls/hello:v1"
    with pytest.raises(RegistryError, match="--ca-file") as err:
        push_wasm(module, ref, credentials=CREDS, retries=0)
    assert tls_registry.host in str(err.value)
    result = push_wasm(module, ref, credentials=CREDS, ca_file=str(ca.ca_pem))
    assert pull_wasm(ref, credentials=CREDS, ca_file=str(ca.ca_pem)).module == module
    # --insecure skips verification (and must not fall back to plain HTTP on a TLS server).
    assert pull_wasm(ref, credentials=CREDS, insecure=True).digest == result.digest


# -- bearer tokens ------------------------------------------------------------------------------------
def test_bearer_token_push_pull(token_registry: RegistryProcess, token_server: TokenServer, module: bytes) -> None:
    ref = f"{token_registry.host}/token/hello:v1"
    token_server.requests.clear()
    result = push_wasm(module, ref, insecure=True, credentials=CREDS)
    assert any(f"repository:token/hello:pull,push" in r["scope"] and r["user"] == USER
               and r["service"] == token_server.service for r in token_server.requests)
    pulled = pull_wasm(ref, insecure=True, credentials=Credentials("reader", "read-only"))
    assert pulled.digest == result.digest and pulled.module == module


def test_bearer_token_refusals(token_registry: RegistryProcess, module: bytes) -> None:
    ref = f"{token_registry.host}/token/hello:v2"
    with pytest.raises(AuthError, match="token server"):
        push_wasm(module, ref, insecure=True, credentials=Credentials(USER, "wrong"))
    with pytest.raises(AuthError) as err:  # valid user without push rights
        push_wasm(module, ref, insecure=True, credentials=Credentials("reader", "read-only"))
    assert "reader" in str(err.value) and ref in str(err.value)
    with pytest.raises(AuthError, match="requires authentication"):  # anonymous gets no rights
        pull_wasm(ref, insecure=True)


def test_digest_mismatch_type_exists() -> None:
    assert issubclass(DigestMismatchError, RegistryError)
