"""Push and pull wasm modules through the OCI distribution API."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from pwtool.oci._auth import Credentials
from pwtool.oci._errors import DigestMismatchError, FormatError, NotFoundError, RegistryError
from pwtool.oci._image import (
    DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, WASM_MAGIC, Blob, Image,
    build_image, descriptor_problem, detect_format, extract_plugin, json_type, manifest_problem,
    sha256_digest,
)
from pwtool.oci._reference import Reference, parse_reference
from pwtool.oci._transport import MAX_RESPONSE, Notify, Progress, Response, Transport

_ACCEPT = ", ".join([OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST])
DEFAULT_CHUNK = 4 * 1024 * 1024
DEFAULT_TIMEOUT = 60.0
MAX_BLOB = 1024 * 1024 * 1024
"""The most ``get_blob`` reads when the caller does not know the blob's size."""
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")
_CONFIG_TYPES = ("application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json",
                 "application/vnd.module.wasm.config.v1+json", "application/vnd.wasm.config.v0+json")


def _blob_kind(blob: Blob) -> str:
    return "config" if blob.media_type in _CONFIG_TYPES else "layer"


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
    warnings: list[str] = field(default_factory=list)

    @property
    def module_sha256(self) -> str:
        return hashlib.sha256(self.module).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "reference": self.reference, "digest": self.digest, "format": self.format,
            "mediaType": self.media_type, "module_sha256": self.module_sha256, "size": len(self.module),
        }
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


class Registry:
    """Distribution API operations on one repository."""

    def __init__(
        self, ref: Reference, *, push: bool = False, credentials: Credentials | None = None,
        ca_file: str | None = None, insecure: bool = False, retries: int = 4, backoff: float = 0.5,
        timeout: float = DEFAULT_TIMEOUT, notify: Notify | None = None,
    ) -> None:
        self.ref = ref
        self.transport = Transport(
            ref.registry, ref.repository, ("pull", "push") if push else ("pull",), credentials,
            ca_file, insecure, retries, backoff, timeout, describe=str(ref), notify=notify,
        )

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "Registry":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _path(self, kind: str, ident: str = "") -> str:
        return f"/v2/{self.ref.repository}/{kind}/{ident}"

    def _fail(self, resp: Response, what: str, prep: str = "from") -> RegistryError:
        """The error for an unexpected answer to ``what`` (``prep`` joins it to the registry's name)."""
        codes = resp.error_codes()
        said = resp.errors()
        detail = said or f"HTTP {resp.status}"
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
        said = f": {said}" if said and said != f"HTTP {resp.status}" else ""
        if resp.status >= 500:
            fix = ("the registry failed on its side: retry later, and if it keeps failing check the registry's "
                   "logs (a full disk or a broken storage backend are common causes)")
        elif resp.status == 429:
            fix = "the registry is rate-limiting us: wait a while and retry"
        else:
            fix = "check the reference and the registry's logs"
        return RegistryError(f"{what} {prep} {self.ref.registry} failed for {self.ref}: HTTP {resp.status}{said}; "
                             f"{fix}",
                             status=resp.status, code=codes[0] if codes else None)

    def _location(self, resp: Response, what: str) -> str:
        """The upload URL the registry named in its Location header."""
        location = resp.header("location")
        if not location:
            raise RegistryError(
                f"the registry did not say where to upload: {self.ref.registry} answered {what} for {self.ref} "
                f"with HTTP {resp.status} but no Location header; the registry (or a proxy in front of it "
                "that drops headers) is not a working distribution API", status=resp.status)
        return self.transport.url(urllib.parse.urljoin(resp.url, location))

    # -- blobs --------------------------------------------------------------------
    def blob_exists(self, digest: str) -> bool:
        resp = self.transport.request("HEAD", self._path("blobs", digest), what=f"checking blob {digest}")
        if resp.status == 200:
            return True
        if resp.status == 404:
            return False
        raise self._fail(resp, f"checking blob {digest}", "on")

    def upload_blob(self, blob: Blob, *, chunk_size: int = DEFAULT_CHUNK, progress: Progress | None = None) -> None:
        """Upload ``blob``: one PUT if small, PATCH chunks otherwise; the digest is verified by the registry."""
        label = f"{blob.digest[7:19]} {blob.media_type.rsplit('.', 1)[-1]}"
        name = f"{_blob_kind(blob)} {blob.digest}"
        resp = self.transport.request("POST", f"/v2/{self.ref.repository}/blobs/uploads/",
                                      what=f"starting the upload of {name}")
        if resp.status != 202:
            raise self._fail(resp, f"starting the upload of {name}", "to")
        location = self._location(resp, f"the start of the upload of {name}")
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
                    what=f"uploading a chunk of {name}",
                )
                if resp.status != 202:
                    raise self._fail(resp, f"upload of a chunk of {name}", "to")
                location = self._location(resp, f"a chunk of the upload of {name}")
                offset += len(piece)
            body: bytes | None = b""
        else:
            body = data
        sep = "&" if "?" in location else "?"
        resp = self.transport.request(
            "PUT", f"{location}{sep}digest={urllib.parse.quote(blob.digest)}", body=body,
            headers={"Content-Type": "application/octet-stream"}, progress=progress, label=label,
            what=f"upload of {name}",
        )
        if resp.status != 201:
            raise self._fail(resp, f"upload of {name}", "to")
        if progress is not None and body == b"":
            progress(label, total, total)

    def get_blob(self, digest: str, size: int | None = None) -> bytes:
        """Download a blob and verify its size and sha256.

        At most ``size`` + 1 bytes are read (``MAX_BLOB`` + 1 without a size): a registry that announces or
        sends more is refused without holding the excess in memory.
        """
        if not _SHA256.fullmatch(digest):
            raise DigestMismatchError(
                f"unsupported digest {digest[:80]!r} in the manifest of {self.ref}: pwtool verifies sha256 digests "
                "only; push the image with a tool that uses sha256, such as `pwtool push`")
        limit = MAX_BLOB if size is None else size
        resp = self.transport.request("GET", self._path("blobs", digest), limit=limit, what=f"blob {digest}",
                                      expect=limit if size is not None else 0)
        if resp.status != 200:
            raise self._fail(resp, f"blob {digest}")
        if resp.oversize:
            sent = (f"announced {resp.length} bytes" if resp.length is not None and resp.length > limit
                    else "kept sending past that")
            if size is None:
                raise DigestMismatchError(
                    f"blob {digest} of {self.ref} is larger than {MAX_BLOB} bytes (the registry {sent}); refusing it")
            raise DigestMismatchError(
                f"registry sent more than the manifest's size for blob {digest} of {self.ref}: the manifest says "
                f"{size} bytes, the registry {sent}; the registry content is corrupt, push the image again")
        actual = sha256_digest(resp.body)
        if actual != digest or (size is not None and size != len(resp.body)):
            raise DigestMismatchError(
                f"blob {digest} of {self.ref} has digest {actual} and size {len(resp.body)} "
                f"(expected size {size}); the registry content is corrupt, push the image again")
        return resp.body

    # -- manifests -----------------------------------------------------------------
    def put_manifest(self, data: bytes, media_type: str, identifier: str) -> str:
        resp = self.transport.request(
            "PUT", self._path("manifests", identifier), body=data, headers={"Content-Type": media_type},
            what="pushing the manifest")
        if resp.status != 201:
            raise self._fail(resp, "pushing the manifest", "to")
        expected = sha256_digest(data)
        got = resp.header("docker-content-digest")
        if got and got != expected:
            raise DigestMismatchError(f"registry stored the manifest of {self.ref} as {got}, expected {expected}")
        return expected

    def get_manifest(self, identifier: str | None = None) -> tuple[bytes, str, str]:
        """Fetch a manifest; returns ``(bytes, media_type, digest)`` after verifying the digest."""
        ident = identifier or self.ref.identifier
        resp = self.transport.request("GET", self._path("manifests", ident), headers={"Accept": _ACCEPT},
                                      limit=MAX_RESPONSE, what=f"manifest {ident}")
        if resp.status != 200:
            raise self._fail(resp, f"manifest {ident}")
        if resp.oversize:
            raise FormatError(
                f"manifest {ident} of {self.ref} is larger than {MAX_RESPONSE // (1024 * 1024)} MiB, the most "
                "registries accept; this is not a wasm image, or the registry is sending garbage")
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
    timeout: float = DEFAULT_TIMEOUT, notify: Notify | None = None,
) -> PushResult:
    """Push ``module`` to ``ref`` as ``format``; idempotent (existing blobs are skipped)."""
    reference = _resolve(ref)
    if reference.digest and not reference.tag:
        raise RegistryError(f"cannot push to a digest reference {reference}; push to a tag instead")
    image = build_image(module, format, manifest_type, root_ids=root_ids, annotations=annotations)
    with Registry(reference, push=True, credentials=credentials, ca_file=ca_file, insecure=insecure,
                  retries=retries, backoff=backoff, timeout=timeout, notify=notify) as reg:
        digest, uploaded, skipped = reg.push_image(image, chunk_size=chunk_size, progress=progress)
    pinned = Reference(reference.registry, reference.repository, reference.tag, digest)
    return PushResult(str(pinned), digest, hashlib.sha256(module).hexdigest(), format, image.media_type,
                      len(image.manifest), uploaded, skipped)


def _platform_text(platform: dict[str, Any] | None) -> str:
    if not platform:
        return "no platform"
    text = "/".join(str(platform.get(k)) for k in ("os", "architecture", "variant") if platform.get(k))
    return text or "no platform"


def _is_wasm_platform(platform: dict[str, Any]) -> bool:
    return platform.get("architecture") == "wasm" or str(platform.get("os", "")).startswith("wasi")


def _is_attestation(entry: dict[str, Any]) -> bool:
    """buildx's provenance/SBOM entries (platform unknown/unknown): never an image to run."""
    notes = entry.get("annotations")
    platform = entry.get("platform") or {}
    return (isinstance(notes, dict) and "vnd.docker.reference.type" in notes) or (
        platform.get("os") == "unknown" and platform.get("architecture") == "unknown")


def _index_entries(index: dict[str, Any], ref: Reference) -> list[dict[str, Any]]:
    """The index's ``manifests``, each checked to be a descriptor; a malformed index is a FormatError."""
    def bad(what: str) -> FormatError:
        return FormatError(f"image index of {ref} is malformed: {what}; the image is broken, push it again")

    manifests = index.get("manifests")
    if manifests is None and "manifests" not in index:
        raise FormatError(f"image index {ref} lists no manifests")
    if not isinstance(manifests, list):
        raise bad(f"manifests is {json_type(manifests)}, not a list")
    for i, entry in enumerate(manifests):
        problem = descriptor_problem(entry, f"manifests[{i}]")
        if problem is not None:
            raise bad(problem)
        if not _SHA256.fullmatch(entry["digest"]):
            raise bad(f"manifests[{i}].digest is {json.dumps(entry['digest'])[:80]}, not a sha256 digest")
        platform = entry.get("platform")
        if platform is not None and not isinstance(platform, dict):
            raise bad(f"manifests[{i}].platform is {json_type(platform)} {json.dumps(platform)[:80]}, not an object")
    if not manifests:
        raise FormatError(f"image index {ref} lists no manifests")
    return manifests


def _pick_from_index(index: dict[str, Any], ref: Reference, warn: Notify | None = None) -> str:
    """The digest of the index entry to pull: a wasm one (wasm architecture or wasi os) if any; else the
    first non-attestation entry, with a warning naming its platform."""
    entries = _index_entries(index, ref)
    for entry in entries:
        if _is_wasm_platform(entry.get("platform") or {}):
            return str(entry["digest"])
    candidates = [e for e in entries if not _is_attestation(e)] or entries
    chosen = candidates[0]
    if warn is not None and (len(entries) > 1 or chosen.get("platform")):
        platforms = ", ".join(_platform_text(e.get("platform")) for e in candidates)
        warn(f"warning: image index {ref} has no wasm entry (platform wasm or wasi*; it lists {platforms}); "
             f"using the first, {_platform_text(chosen.get('platform'))} ({chosen['digest']})")
    return str(chosen["digest"])


def pull_wasm(
    ref: Reference | str, *, credentials: Credentials | None = None, ca_file: str | None = None,
    insecure: bool = False, retries: int = 4, backoff: float = 0.5, timeout: float = DEFAULT_TIMEOUT,
    notify: Notify | None = None,
) -> PullResult:
    """Fetch ``ref`` (compat, oci or cncf format), verify every digest, return the module.

    ``notify`` receives retry notices and warnings (such as an index without a wasm entry) as they happen.
    """
    reference = _resolve(ref)
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        if notify is not None:
            notify(message)

    with Registry(reference, credentials=credentials, ca_file=ca_file, insecure=insecure,
                  retries=retries, backoff=backoff, timeout=timeout, notify=notify) as reg:
        data, media_type, digest = reg.get_manifest()
        manifest = _parse_manifest(data, reference)
        if _is_index(manifest, media_type):
            data, media_type, digest = reg.get_manifest(_pick_from_index(manifest, reference, warn))
            manifest = _parse_manifest(data, reference)
            if _is_index(manifest, media_type):
                raise FormatError(f"image index {reference} points to another index ({digest}); nested indexes are "
                                  "not wasm images, push the module with `pwtool push`")
        problem = manifest_problem(manifest)
        if problem is not None:
            raise FormatError(f"manifest of {reference} is malformed: {problem}; the image is broken, push it again")
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
        blob = reg.get_blob(str(layer["digest"]), int(layer["size"]))
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
    return PullResult(str(pinned), digest, fmt, media_type or str(manifest.get("mediaType", "")), module, warnings)


def _is_index(manifest: dict[str, Any], media_type: str) -> bool:
    return media_type in (OCI_INDEX, DOCKER_LIST) or manifest.get("mediaType") in (OCI_INDEX, DOCKER_LIST)


def _parse_manifest(data: bytes, ref: Reference) -> dict[str, Any]:
    try:
        manifest = json.loads(data)
    except ValueError as exc:
        raise FormatError(f"manifest of {ref} is not valid JSON ({exc}); the image is broken, push it again") from exc
    if not isinstance(manifest, dict) or manifest.get("schemaVersion") != 2:
        raise FormatError(f"manifest of {ref} is not a schemaVersion 2 manifest; push it again with `pwtool push`")
    return manifest
