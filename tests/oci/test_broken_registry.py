"""Registries that misbehave: huge or endless bodies, silence, malformed manifests, redirect loops, 5xx,
uploads without a Location. Each runs against a ``FakeRegistry`` on 127.0.0.1 and finishes in seconds."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from regtools import FakeHandler, FakeRegistry

from pwtool.cli import main
from pwtool.oci import (
    DigestMismatchError, FormatError, RegistryError, build_image, extract_plugin, pull_wasm, push_wasm,
)
from pwtool.oci._image import OCI_INDEX, OCI_MANIFEST, PLUGIN_FILE

WASM = b"\0asm\x01\0\0\0" + bytes(98)  # 106 bytes, like the auditor's module


@pytest.fixture()
def fake() -> Iterator[FakeRegistry]:
    with FakeRegistry() as registry:
        yield registry


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), prog_name="pwtool")
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.stdout, result.stderr


# -- 1. bounded reads ------------------------------------------------------------------------------------
def test_blob_announced_larger_than_the_manifest_says_is_refused_at_once(fake: FakeRegistry) -> None:
    sent = [0]

    def answer(h: FakeHandler) -> bool | None:
        if "/blobs/" not in h.route or h.command != "GET":
            return None
        h.send_response(200)
        h.send_header("Content-Length", str(3 * 1024 ** 3))
        h.end_headers()
        try:
            for _ in range(64):  # 64 MiB, then give up (the client should have left long before)
                h.wfile.write(bytes(1 << 20))
                sent[0] += 1 << 20
        except OSError:
            pass
        h.close_connection = True
        return True

    fake.answer = answer
    fake.add_cncf_image("v1", WASM)
    started = time.monotonic()
    with pytest.raises(DigestMismatchError) as err:
        pull_wasm(f"{fake.host}/huge/blob:v1", insecure=True, retries=0)
    message = str(err.value)
    assert "registry sent more than the manifest's size" in message and "announced 3221225472 bytes" in message
    assert "the manifest says 106 bytes" in message and f"{fake.host}/huge/blob:v1" in message
    assert time.monotonic() - started < 10
    assert sent[0] < 48 << 20  # the client hung up instead of reading


def test_blob_streamed_past_the_manifest_size_is_cut_off(fake: FakeRegistry) -> None:
    """No Content-Length (chunked): the client reads size + 1 bytes and stops."""
    sent = [0]

    def answer(h: FakeHandler) -> bool | None:
        if "/blobs/" not in h.route or h.command != "GET":
            return None
        h.send_response(200)
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        chunk = bytes(1 << 20)
        try:
            for _ in range(256):
                h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent[0] += len(chunk)
            h.wfile.write(b"0\r\n\r\n")
        except OSError:
            pass
        h.close_connection = True
        return True

    fake.answer = answer
    fake.add_cncf_image("v1", WASM)
    with pytest.raises(DigestMismatchError, match="registry sent more than the manifest's size") as err:
        pull_wasm(f"{fake.host}/endless/blob:v1", insecure=True, retries=0)
    assert "kept sending past that" in str(err.value)
    assert sent[0] < 128 << 20


def test_manifest_larger_than_4_mib_is_refused(fake: FakeRegistry) -> None:
    fake.add_cncf_image("small", WASM)
    manifest = json.loads(fake.manifests["small"][1])
    manifest["annotations"] = {"padding": "x" * (5 << 20)}
    fake.add_manifest("v1", manifest)
    with pytest.raises(FormatError, match="larger than 4 MiB") as err:
        pull_wasm(f"{fake.host}/big/manifest:v1", insecure=True, retries=0)
    assert f"{fake.host}/big/manifest:v1" in str(err.value)


def _gzip_bomb(size: int) -> bytes:
    """A tar+gzip whose plugin.wasm is ``size`` zero bytes, compressed in a streaming way."""
    info = tarfile.TarInfo(PLUGIN_FILE)
    info.size = size
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1, mtime=0) as gz:
        gz.write(info.tobuf(tarfile.PAX_FORMAT))
        zeros = bytes(8 << 20)
        for start in range(0, size, len(zeros)):
            gz.write(zeros[:min(len(zeros), size - start)])
        gz.write(bytes(-size % 512 + 1024))
    return out.getvalue()


def test_a_compression_bomb_in_a_compat_layer_is_refused() -> None:
    bomb = _gzip_bomb(300 << 20)
    assert len(bomb) < 2 << 20
    with pytest.raises(ValueError, match=r"unpacks to more than 256 MiB \(a compression bomb"):
        extract_plugin(bomb)
    with pytest.raises(ValueError, match="more than 0.5 MiB"):
        extract_plugin(build_image(WASM + bytes(1 << 20)).layers[-1].data, limit=1 << 19)
    assert extract_plugin(build_image(WASM).layers[-1].data) == WASM
    with pytest.raises(ValueError, match="not a valid tar"):
        extract_plugin(b"\x1f\x8b garbage")
    with pytest.raises(ValueError, match="not a valid tar"):
        extract_plugin(gzip.compress(b"not a tar")[:-12] + zlib.compress(b"x"))


# -- 2. deadlines and retry notices -------------------------------------------------------------------------
def _drip(h: FakeHandler) -> bool | None:
    """Headers, then one byte every 0.1 s (for at most 8 s)."""
    if "/manifests/" not in h.route:
        return None
    h.send_response(200)
    h.send_header("Content-Type", OCI_MANIFEST)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    try:
        for _ in range(80):
            h.wfile.write(b" ")
            h.wfile.flush()
            if h.registry.stopping.wait(0.1):
                break
    except OSError:
        pass
    h.close_connection = True
    return True


def _silent(h: FakeHandler) -> bool | None:
    if "/manifests/" not in h.route:
        return None
    h.registry.stopping.wait(30)
    h.close_connection = True
    return True


def test_a_dripping_registry_hits_the_overall_deadline(fake: FakeRegistry) -> None:
    fake.answer = _drip
    started = time.monotonic()
    with pytest.raises(RegistryError) as err:
        pull_wasm(f"{fake.host}/drip/x:v1", insecure=True, retries=0, timeout=0.4)
    elapsed = time.monotonic() - started
    assert 1.5 < elapsed < 5, elapsed  # 5 x 0.4 s
    assert f"registry {fake.host} did not finish manifest v1 for {fake.host}/drip/x:v1 within 2 s" in str(err.value)
    assert "raise --timeout" in str(err.value)


def test_a_silent_registry_is_retried_with_notices_then_given_up(fake: FakeRegistry) -> None:
    fake.answer = _silent
    notices: list[str] = []
    started = time.monotonic()
    with pytest.raises(RegistryError) as err:
        pull_wasm(f"{fake.host}/silent/x:v1", insecure=True, retries=2, backoff=0.01, timeout=0.3,
                  notify=notices.append)
    assert time.monotonic() - started < 1.5 + 1
    assert notices == [f"registry {fake.host} (manifest v1): did not answer within 0.3 s; retrying (1 of 2)",
                       f"registry {fake.host} (manifest v1): did not answer within 0.3 s; retrying (2 of 2)"]
    assert f"registry {fake.host} did not answer within 0.3 s for {fake.host}/silent/x:v1 (manifest v1); " \
           "tried 3 times" in str(err.value)


def test_cli_timeout_option_and_notices_on_stderr(fake: FakeRegistry, tmp_path: Path) -> None:
    fake.answer = _silent
    ref = f"{fake.host}/silent/x:v1"
    code, out, err = cli("pull", ref, "--insecure", "--timeout", "0.3", "--retries", "1", "--json",
                         "-o", str(tmp_path / "x.wasm"))
    assert code == 1 and "did not answer within 0.3 s; retrying (1 of 1)" in err
    assert "did not answer within 0.3 s" in json.loads(out)["error"] and "Traceback" not in err
    wasm = tmp_path / "m.wasm"
    wasm.write_bytes(WASM)
    code, out, _ = cli("push", "--help")
    assert "--timeout SECONDS" in out
    code, _, err = cli("pull", ref, "--timeout", "0")
    assert code == 2 and "--timeout" in err


# -- 3. malformed manifests and indexes ---------------------------------------------------------------------
def _index(*entries: Any) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(entries)}


MALFORMED = {
    "layers-of-strings": ({"layers": ["application/wasm"]}, "layers[0] is a string"),
    "layers-of-numbers": ({"layers": [1, 2]}, "layers[0] is a number 1, not a descriptor object"),
    "layers-not-a-list": ({"layers": "application/wasm"}, "layers is a string, not a list"),
    "size-as-string": ({"layers": [{"mediaType": "application/wasm", "digest": "sha256:" + "a" * 64,
                                    "size": "106"}]}, "layers[0].size is a string"),
    "no-digest": ({"layers": [{"mediaType": "application/wasm", "size": 106}]}, "layers[0].digest is null"),
    "digest-path": ({"layers": [{"mediaType": "application/wasm", "digest": "../../x", "size": 1}]},
                    "layers[0].digest is a string \"../../x\""),
    "config-string": ({"config": "x"}, "config is a string"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_manifests_are_format_errors(fake: FakeRegistry, case: str) -> None:
    fields, message = MALFORMED[case]
    fake.add_cncf_image("v1", WASM, **fields)
    ref = f"{fake.host}/bad/manifest:v1"
    with pytest.raises(FormatError) as err:
        pull_wasm(ref, insecure=True, retries=0)
    assert str(err.value).startswith(f"manifest of {ref} is malformed: ") and message in str(err.value)


INDEXES = {
    "manifests-null": ({"manifests": None}, "manifests is null, not a list"),
    "manifests-number": ({"manifests": 5}, "manifests is a number, not a list"),
    "entry-string": ({"manifests": ["sha256:" + "a" * 64]}, "manifests[0] is a string \"sha256:"),
    "platform-string": ({"manifests": [{"mediaType": OCI_MANIFEST, "digest": "sha256:" + "a" * 64, "size": 1,
                                        "platform": "wasm"}]}, "manifests[0].platform is a string \"wasm\""),
    "no-digest": ({"manifests": [{"mediaType": OCI_MANIFEST}]}, "manifests[0].digest is null"),
}


@pytest.mark.parametrize("case", INDEXES, ids=list(INDEXES))
def test_malformed_indexes_are_format_errors(fake: FakeRegistry, case: str, tmp_path: Path) -> None:
    fields, message = INDEXES[case]
    fake.add_manifest("v1", {**_index(), **fields}, OCI_INDEX)
    ref = f"{fake.host}/bad/index:v1"
    with pytest.raises(FormatError) as err:
        pull_wasm(ref, insecure=True, retries=0)
    assert str(err.value).startswith(f"image index of {ref} is malformed: ") and message in str(err.value)
    code, out, err_text = cli("pull", ref, "--insecure", "--json", "-o", str(tmp_path / "x.wasm"))
    assert code == 1 and message in json.loads(out)["error"] and "Traceback" not in err_text


def test_an_index_pointing_to_an_index_is_refused(fake: FakeRegistry) -> None:
    inner = fake.add_manifest("inner", _index(), OCI_INDEX)
    fake.add_manifest("v1", _index({"mediaType": OCI_INDEX, "digest": inner, "size": 1}), OCI_INDEX)
    with pytest.raises(FormatError, match="points to another index"):
        pull_wasm(f"{fake.host}/nested/index:v1", insecure=True, retries=0)


# -- 4. redirects, 5xx on upload, uploads without a Location --------------------------------------------------
def test_redirect_loop_and_redirect_without_location(fake: FakeRegistry) -> None:
    def answer(h: FakeHandler) -> bool | None:
        if "/loop/" in h.route:
            h.send(302, headers={"Location": h.path})
            return True
        if "/noloc/" in h.route:
            h.send(302)
            return True
        return None

    fake.answer = answer
    with pytest.raises(RegistryError) as err:
        pull_wasm(f"{fake.host}/loop/x:v1", insecure=True, retries=0)
    assert f"too many redirects (6) from {fake.host}" in str(err.value) and "HTTP 302 HTTP 302" not in str(err.value)
    with pytest.raises(RegistryError) as err:
        pull_wasm(f"{fake.host}/noloc/x:v1", insecure=True, retries=0)
    assert "redirect without a Location header" in str(err.value) and f"{fake.host}/noloc/x:v1" in str(err.value)


def test_a_500_on_the_final_blob_put_says_what_failed_and_what_to_do(fake: FakeRegistry) -> None:
    def answer(h: FakeHandler) -> bool | None:
        if h.command == "PUT" and "/blobs/uploads/" in h.route:
            h.drain()
            h.send(500)
            return True
        return None

    fake.answer = answer
    layer = build_image(WASM).layers[0]
    with pytest.raises(RegistryError) as err:
        push_wasm(WASM, f"{fake.host}/push/fail:v1", insecure=True, retries=1, backoff=0.01)
    message = str(err.value)
    assert f"upload of layer {layer.digest} to {fake.host} failed for {fake.host}/push/fail:v1: HTTP 500;" in message
    assert "retry later" in message and "registry's logs" in message and "HTTP 500 HTTP 500" not in message


def test_an_upload_started_without_a_location_is_an_error(fake: FakeRegistry) -> None:
    def answer(h: FakeHandler) -> bool | None:
        if h.command == "POST":
            h.drain()
            h.send(202)
            return True
        return None

    fake.answer = answer
    with pytest.raises(RegistryError, match="the registry did not say where to upload") as err:
        push_wasm(WASM, f"{fake.host}/push/noloc:v1", insecure=True, retries=0)
    assert "no Location header" in str(err.value)
    assert [m for m, _ in fake.requests if m in ("PUT", "PATCH")] == []


def test_a_body_cut_short_is_a_retried_network_error(fake: FakeRegistry) -> None:
    def answer(h: FakeHandler) -> bool | None:
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        h.wfile.write(b'{"sche')
        h.close_connection = True
        return True

    fake.answer = answer
    notices: list[str] = []
    with pytest.raises(RegistryError, match="network error talking to .*IncompleteRead.*; tried 2 times"):
        pull_wasm(f"{fake.host}/cut/x:v1", insecure=True, retries=1, backoff=0.01, notify=notices.append)
    assert len(notices) == 1 and "IncompleteRead" in notices[0] and "retrying (1 of 1)" in notices[0]


def test_an_html_error_page_is_named_not_quoted() -> None:
    from pwtool.oci._transport import Response

    page = b"<html><head><title>502 Bad Gateway</title></head><body>" + b"x" * 5000 + b"</body></html>"
    assert Response(502, {}, page, "http://x").errors() == "an HTML page titled '502 Bad Gateway'"
    assert Response(500, {}, b"<html>" + b"x" * 5000, "http://x").errors() == "an HTML page"


# -- 5. indexes without a wasm entry ----------------------------------------------------------------------------
def test_an_index_without_a_wasm_entry_warns_naming_the_platform(fake: FakeRegistry, tmp_path: Path) -> None:
    digest = fake.add_cncf_image("amd", WASM)
    attestation = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "b" * 64, "size": 1,
                   "platform": {"os": "unknown", "architecture": "unknown"},
                   "annotations": {"vnd.docker.reference.type": "attestation-manifest"}}
    fake.add_manifest("v1", _index(attestation, {"mediaType": OCI_MANIFEST, "digest": digest, "size": 1,
                                                 "platform": {"os": "linux", "architecture": "amd64"}}), OCI_INDEX)
    notices: list[str] = []
    result = pull_wasm(f"{fake.host}/idx/x:v1", insecure=True, retries=0, notify=notices.append)
    assert result.module == WASM and result.digest == digest
    assert len(notices) == 1 and notices == result.warnings
    assert notices[0].startswith(f"warning: image index {fake.host}/idx/x:v1 has no wasm entry")
    assert f"using the first, linux/amd64 ({digest})" in notices[0]
    code, out, err = cli("pull", f"{fake.host}/idx/x:v1", "--insecure", "--json", "-o", str(tmp_path / "x.wasm"))
    assert code == 0 and "warning: image index" in err and json.loads(out)["warnings"] == notices

    # A wasm entry is preferred, silently.
    fake.add_manifest("v2", _index({"mediaType": OCI_MANIFEST, "digest": "sha256:" + "c" * 64, "size": 1,
                                    "platform": {"os": "linux", "architecture": "amd64"}},
                                   {"mediaType": OCI_MANIFEST, "digest": digest, "size": 1,
                                    "platform": {"os": "wasip1", "architecture": "wasm"}}), OCI_INDEX)
    notices.clear()
    assert pull_wasm(f"{fake.host}/idx/x:v2", insecure=True, retries=0, notify=notices.append).digest == digest
    assert notices == []
