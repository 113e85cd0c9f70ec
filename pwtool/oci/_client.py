"""Push and pull wasm modules through the OCI distribution API."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from pwtool.oci._auth import Credentials
from pwtool.oci._errors import DigestMismatchError, FormatError, NotFoundError, RegistryError
from pwtool.oci._image import (
    DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, WASM_MAGIC, Blob, Image,
    build_image, detect_format, extract_plugin, sha256_digest,
)
from pwtool.oci._reference import Reference, parse_reference
from pwtool.oci._transport import Progress, Response, Transport

_ACCEPT = ", ".join([OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST])
DEFAULT_CHUNK = 4 * 1024 * 1024


@dataclass
class PushResult:
    """What ``push`` did: the pinned reference, digests, and how many blobs moved."""

    reference: str
    digest: str
    module_sha256: str
    format: str
    media_type: str
    size: int
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference, "digest": self.digest, "module_sha256": self.module_sha256,
            "format": self.format, "mediaType": self.media_type, "size": self.size,
            "uploaded": self.uploaded, "skipped": self.skipped,
        }


@dataclass
class PullResult:
    """A pulled module and where it came from."""

    reference: str
    digest: str
    format: str
    media_type: str
    module: bytes

    @property
    def module_sha256(self) -> str:
        return hashlib.sha256(self.module).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference, "digest": self.digest, "format": self.format,
            "mediaType": self.media_type, "module_sha256": self.module_sha256, "size": len(self.module),
        }


class Registry:
    """Distribution API operations on one repository."""

    def __init__(
        self, ref: Reference, *, push: bool = False, credentials: Credentials | None = None,
        ca_file: str | None = None, insecure: bool = False, retries: int = 4, backoff: float = 0.5,
        timeout: float = 60.0,
    ) -> None:
        self.ref = ref
        self.transport = Transport(
            ref.registry, ref.repository, ("pull", "push") if push else ("pull",), credentials,
            ca_file, insecure, retries, backoff, timeout, describe=str(ref),
        )

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _path(self, kind: str, ident: str = "") -> str:
        return f"/v2/{self.ref.repository}/{kind}/{ident}"

    def _fail(self, resp: Response, what: str) -> RegistryError:
        codes = resp.error_codes()
        detail = resp.errors() or f"HTTP {resp.status}"
        if resp.status == 404 or "NAME_UNKNOWN" in codes or "MANIFEST_UNKNOWN" in codes:
            if "NAME_UNKNOWN" in codes:
                msg = (f"repository {self.ref.repository!r} does not exist on {self.ref.registry} ({detail}); "
                       f"check the reference {self.ref} or push to it first")
            else:
                msg = (f"{what} not found for {self.ref} ({detail}); check the tag or digest, "
                       f"or push it first with `pwtool push FILE {self.ref}`")
            return NotFoundError(msg, status=resp.status, code=codes[0] if codes else None)
        if resp.status == 403 or "DENIED" in codes:
            return RegistryError(f"registry denied {what} for {self.ref} ({detail}); the account lacks permission",
                                 status=resp.status, code="DENIED")
        if "MANIFEST_INVALID" in codes or "MANIFEST_BLOB_UNKNOWN" in codes or "DIGEST_INVALID" in codes:
            return RegistryError(f"registry rejected {what} for {self.ref} ({detail}); "
                                 "the registry may not support this media type; try --format compat",
                                 status=resp.status, code=codes[0])
        return RegistryError(f"{what} failed for {self.ref}: HTTP {resp.status} {detail}", status=resp.status,
                             code=codes[0] if codes else None)

    # -- blobs --------------------------------------------------------------------
    def blob_exists(self, digest: str) -> bool:
        resp = self.transport.request("HEAD", self._path("blobs", digest))
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise self._fail(resp, f"checking blob {digest}")

    def upload_blob(self, blob: Blob, *, chunk_size: int = DEFAULT_CHUNK, progress: Progress | None = None) -> None:
        """Upload ``blob``: one PUT if small, PATCH chunks otherwise; the digest is verified by the registry."""
        label = f"{blob.digest[7:19]} {blob.media_type.rsplit('.', 1)[-1]}"
        resp = self.transport.request("POST", f"/v2/{self.ref.repository}/blobs/uploads/")
        if resp.status != 202:
            raise self._fail(resp, "starting a blob upload")
        location = self.transport.url(urllib.parse.urljoin(resp.url, resp.header("location")))
        data, total = blob.data, len(blob.data)
        if chunk_size > 0 and total > chunk_size:
            offset = 0
            while offset < total:
                piece = data[offset:offset + chunk_size]
                base = offset

                def report(lbl: str, done: int, _tot: int, base: int = base) -> None:
                    if progress is not None:
                        progress(lbl, base + done, total)

                resp = self.transport.request(
                    "PATCH", location, body=piece, progress=report, label=label,
                    headers={"Content-Type": "application/octet-stream",
                             "Content-Range": f"{offset}-{offset + len(piece) - 1}"},
                )
                if resp.status != 202:
                    raise self._fail(resp, f"uploading a chunk of blob {blob.digest}")
                location = self.transport.url(urllib.parse.urljoin(resp.url, resp.header("location")))
                offset += len(piece)
            body: bytes | None = b""
        else:
            body = data
        sep = "&" if "?" in location else "?"
        resp = self.transport.request(
            "PUT", f"{location}{sep}digest={urllib.parse.quote(blob.digest)}", body=body,
            headers={"Content-Type": "application/octet-stream"}, progress=progress, label=label,
        )
        if resp.status != 201:
            raise self._fail(resp, f"finishing upload of blob {blob.digest}")
        if progress is not None and body == b"":
            progress(label, total, total)

    def get_blob(self, digest: str, size: int | None = None) -> bytes:
        """Download a blob and verify its size and sha256."""
        resp = self.transport.request("GET", self._path("blobs", digest))
        if resp.status != 200:
            raise self._fail(resp, f"blob {digest}")
        if not digest.startswith("sha256:"):
            raise DigestMismatchError(f"unsupported digest algorithm in {digest} for {self.ref}")
        actual = sha256_digest(resp.body)
        if actual != digest or (size is not None and size != len(resp.body)):
            raise DigestMismatchError(
                f"blob {digest} of {self.ref} has digest {actual} and size {len(resp.body)} "
                f"(expected size {size}); the registry content is corrupt, push the image again")
        return resp.body

    # -- manifests -----------------------------------------------------------------
    def put_manifest(self, data: bytes, media_type: str, identifier: str) -> str:
        resp = self.transport.request(
            "PUT", self._path("manifests", identifier), body=data, headers={"Content-Type": media_type})
        if resp.status != 201:
            raise self._fail(resp, "pushing the manifest")
        expected = sha256_digest(data)
        got = resp.header("docker-content-digest")
        if got and got != expected:
            raise DigestMismatchError(f"registry stored the manifest of {self.ref} as {got}, expected {expected}")
        return expected

    def get_manifest(self, identifier: str | None = None) -> tuple[bytes, str, str]:
        """Fetch a manifest; returns ``(bytes, media_type, digest)`` after verifying the digest."""
        ident = identifier or self.ref.identifier
        resp = self.transport.request("GET", self._path("manifests", ident), headers={"Accept": _ACCEPT})
        if resp.status != 200:
            raise self._fail(resp, f"manifest {ident}")
        digest = sha256_digest(resp.body)
        if ident.startswith("sha256:") and ident != digest:
            raise DigestMismatchError(
                f"manifest of {self.ref} fetched by digest {ident} hashes to {digest}; the registry returned "
                "wrong content, do not trust it")
        header = resp.header("docker-content-digest")
        if header and header.startswith("sha256:") and header != digest:
            raise DigestMismatchError(
                f"manifest of {self.ref} hashes to {digest} but the registry announced {header}")
        media_type = resp.header("content-type").split(";")[0].strip()
        return resp.body, media_type, digest

    def push_image(self, image: Image, *, chunk_size: int = DEFAULT_CHUNK,
                   progress: Progress | None = None) -> tuple[str, list[str], list[str]]:
        """Push all blobs (skipping ones the registry has), then the manifest."""
        uploaded: list[str] = []
        skipped: list[str] = []
        for blob in image.blobs():
            if self.blob_exists(blob.digest):
                skipped.append(blob.digest)
                continue
            self.upload_blob(blob, chunk_size=chunk_size, progress=progress)
            uploaded.append(blob.digest)
        digest = self.put_manifest(image.manifest, image.media_type, self.ref.tag or image.digest)
        return digest, uploaded, skipped


def _resolve(ref: Reference | str) -> Reference:
    return parse_reference(ref) if isinstance(ref, str) else ref


def push_wasm(
    module: bytes, ref: Reference | str, *, format: str = "compat", manifest_type: str = "oci",
    credentials: Credentials | None = None, ca_file: str | None = None, insecure: bool = False,
    chunk_size: int = DEFAULT_CHUNK, progress: Progress | None = None, root_ids: tuple[str, ...] = (),
    annotations: dict[str, str] | None = None, retries: int = 4, backoff: float = 0.5,
) -> PushResult:
    """Push ``module`` to ``ref`` as ``format``; idempotent (existing blobs are skipped)."""
    reference = _resolve(ref)
    if reference.digest and not reference.tag:
        raise RegistryError(f"cannot push to a digest reference {reference}; push to a tag instead")
    image = build_image(module, format, manifest_type, root_ids=root_ids, annotations=annotations)
    with Registry(reference, push=True, credentials=credentials, ca_file=ca_file, insecure=insecure,
                  retries=retries, backoff=backoff) as reg:
        digest, uploaded, skipped = reg.push_image(image, chunk_size=chunk_size, progress=progress)
    pinned = Reference(reference.registry, reference.repository, reference.tag, digest)
    return PushResult(str(pinned), digest, hashlib.sha256(module).hexdigest(), format, image.media_type,
                      len(image.manifest), uploaded, skipped)


def _pick_from_index(index: dict[str, Any], ref: Reference) -> str:
    entries = [m for m in index.get("manifests", []) if isinstance(m, dict) and m.get("digest")]
    if not entries:
        raise FormatError(f"image index {ref} lists no manifests")
    for entry in entries:
        platform = entry.get("platform") or {}
        if platform.get("architecture") == "wasm" or str(platform.get("os", "")).startswith("wasi"):
            return str(entry["digest"])
    return str(entries[0]["digest"])


def pull_wasm(
    ref: Reference | str, *, credentials: Credentials | None = None, ca_file: str | None = None,
    insecure: bool = False, retries: int = 4, backoff: float = 0.5,
) -> PullResult:
    """Fetch ``ref`` (compat, oci or cncf format), verify every digest, return the module."""
    reference = _resolve(ref)
    with Registry(reference, credentials=credentials, ca_file=ca_file, insecure=insecure,
                  retries=retries, backoff=backoff) as reg:
        data, media_type, digest = reg.get_manifest()
        manifest = _parse_manifest(data, reference)
        if media_type in (OCI_INDEX, DOCKER_LIST) or manifest.get("mediaType") in (OCI_INDEX, DOCKER_LIST):
            data, media_type, digest = reg.get_manifest(_pick_from_index(manifest, reference))
            manifest = _parse_manifest(data, reference)
        try:
            fmt = detect_format(manifest)
        except ValueError as exc:
            raise FormatError(f"{reference} is not a wasm image: {exc}; push it with `pwtool push`") from exc
        layers = manifest["layers"]
        if fmt == "compat":
            layer = layers[-1]
        else:
            want = "application/vnd.module.wasm.content.layer.v1+wasm" if fmt == "oci" else "application/wasm"
            layer = next(item for item in layers if item.get("mediaType") == want)
        blob = reg.get_blob(str(layer.get("digest")), _int_or_none(layer.get("size")))
    if fmt == "compat":
        try:
            module = extract_plugin(blob)
        except ValueError as exc:
            raise FormatError(f"last layer of {reference}: {exc}") from exc
    else:
        module = blob
    if not module.startswith(WASM_MAGIC):
        raise FormatError(f"the module in {reference} is not WebAssembly (no \\0asm magic)")
    pinned = Reference(reference.registry, reference.repository, reference.tag, digest)
    return PullResult(str(pinned), digest, fmt, media_type or str(manifest.get("mediaType", "")), module)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _parse_manifest(data: bytes, ref: Reference) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise FormatError(f"manifest of {ref} is not valid JSON ({exc}); the image is broken, push it again") from exc
    if not isinstance(manifest, dict) or manifest.get("schemaVersion") != 2:
        raise FormatError(f"manifest of {ref} is not a schemaVersion 2 manifest; push it again with `pwtool push`")
    return manifest
