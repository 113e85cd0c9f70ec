"""Lay out a wasm module as one of the image formats that Istio and other tools read."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import re
import tarfile
import zlib
from dataclasses import dataclass, field
from typing import Any

# Manifest media types.
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
# Layer and config media types.
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TGZ = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_TGZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"
WASME_CONFIG = "application/vnd.module.wasm.config.v1+json"
WASME_LAYER = "application/vnd.module.wasm.content.layer.v1+wasm"
CNCF_CONFIG = "application/vnd.wasm.config.v0+json"
CNCF_LAYER = "application/wasm"

FORMATS = ("compat", "oci", "cncf")
FLAVOURS = ("oci", "docker")
PLUGIN_FILE = "plugin.wasm"
WASM_MAGIC = b"\0asm"
MAX_UNPACKED = 256 * 1024 * 1024
"""The most ``extract_plugin`` decompresses from a compat layer (Envoy modules are a few MB)."""
_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Blob:
    """Content addressed by its sha256 digest."""

    media_type: str
    data: bytes
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    def descriptor(self) -> dict[str, Any]:
        desc: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)}
        if self.annotations:
            desc["annotations"] = dict(self.annotations)
        return desc


@dataclass(frozen=True)
class Image:
    """A manifest and the blobs it references, ready to push."""

    format: str
    media_type: str
    config: Blob
    layers: tuple[Blob, ...]
    manifest: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    def blobs(self) -> list[Blob]:
        """Layers then config, without duplicates (the oci format repeats its config)."""
        seen: dict[str, Blob] = {}
        for blob in (*self.layers, self.config):
            seen.setdefault(blob.digest, blob)
        return list(seen.values())


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def compat_layer(module: bytes) -> tuple[bytes, bytes]:
    """A reproducible tar+gzip holding ``plugin.wasm``; returns ``(tar, tar_gz)``."""
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(PLUGIN_FILE)
        info.size, info.mode, info.mtime = len(module), 0o644, 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(module))
    raw = tar_buf.getvalue()
    gz_buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz_buf, mtime=0, compresslevel=9) as gz:
        gz.write(raw)
    return raw, gz_buf.getvalue()


def build_image(
    module: bytes, format: str = "compat", flavour: str = "oci", *,
    root_ids: tuple[str, ...] = (), annotations: dict[str, str] | None = None,
) -> Image:
    """Build the manifest and blobs for ``module`` in ``format`` (compat, oci or cncf).

    ``flavour`` picks the manifest type of the compat format: ``oci`` or ``docker``.
    The result is byte-for-byte reproducible, so re-pushing yields the same digest.
    """
    if not module.startswith(WASM_MAGIC):
        raise ValueError("not a WebAssembly module (missing \\0asm magic)")
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown manifest flavour {flavour!r}; choose oci or docker")
    if flavour == "docker" and format != "compat":
        raise ValueError("Docker v2 manifests exist only for the compat format; use --manifest-type oci")
    module_digest = sha256_digest(module)
    title = {"org.opencontainers.image.title": PLUGIN_FILE}
    media_type = OCI_MANIFEST
    if format == "compat":
        tar, tgz = compat_layer(module)
        config_obj = {
            "architecture": "wasm", "os": "wasip1", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar)]},
        }
        if flavour == "docker":
            media_type = DOCKER_MANIFEST
            config = Blob(DOCKER_CONFIG, _canonical(config_obj))
            layers: tuple[Blob, ...] = (Blob(DOCKER_LAYER_TGZ, tgz),)
        else:
            config = Blob(OCI_CONFIG, _canonical(config_obj))
            layers = (Blob(OCI_LAYER_TGZ, tgz),)
    elif format == "oci":
        config_obj = {"type": "envoy_proxy", "abiVersions": ["v0.2.1"],
                      "rootIds": list(root_ids)}
        config = Blob(WASME_CONFIG, _canonical(config_obj))
        # solo.io's wasme layout: the config again as layer 0, the raw module as layer 1.
        layers = (config, Blob(WASME_LAYER, module, title))
    else:
        config_obj = {"architecture": "wasm", "os": "wasip1", "layerDigests": [module_digest]}
        config = Blob(CNCF_CONFIG, _canonical(config_obj))
        layers = (Blob(CNCF_LAYER, module, title),)
    manifest: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": media_type,
        "config": config.descriptor(), "layers": [layer.descriptor() for layer in layers],
    }
    if flavour == "docker":
        for desc in [manifest["config"], *manifest["layers"]]:
            desc.pop("annotations", None)
    elif annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    return Image(format, media_type, config, layers, json.dumps(manifest, indent=2).encode())


class _Bounded(io.RawIOBase):
    """A read-only stream that raises once more than ``limit`` bytes were read from ``inner``."""

    def __init__(self, inner: io.BufferedIOBase | gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile, limit: int) -> None:
        self.inner, self.limit, self.count = inner, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view):
            return 0
        data = self.inner.read(min(len(view), self.limit + 1 - self.count))
        self.count += len(data)
        if self.count > self.limit:
            raise _TooBig()
        view[:len(data)] = data
        return len(data)


class _TooBig(Exception):
    pass


def _decompressor(data: bytes) -> io.BufferedIOBase | gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile:
    raw = io.BytesIO(data)
    if data.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if data.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    if data.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)
    return raw


def extract_plugin(layer_tgz: bytes, *, limit: int = MAX_UNPACKED) -> bytes:
    """Return ``plugin.wasm`` from a tar+gzip layer (any directory, like Istio).

    The layer may also be a plain, bzip2 or xz tar. At most ``limit`` bytes are decompressed: a layer that
    unpacks to more (a compression bomb, or a whole container image) is refused with a ValueError.
    """
    mib = f"{limit / (1024 * 1024):g} MiB"
    try:
        stream = _Bounded(_decompressor(layer_tgz), limit)
        with tarfile.open(fileobj=io.BufferedReader(stream), mode="r|") as tar:
            for member in tar:
                if member.isfile() and member.name.rsplit("/", 1)[-1] == PLUGIN_FILE:
                    if member.size > limit:
                        raise _TooBig()
                    handle = tar.extractfile(member)
                    if handle is not None:
                        return handle.read()
    except _TooBig:
        raise ValueError(f"the layer unpacks to more than {mib} (a compression bomb, or not a wasm image); "
                         "refusing to decompress it") from None
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise ValueError(f"layer is not a valid tar+gzip archive: {exc}") from exc
    raise ValueError(f"no {PLUGIN_FILE} in the last layer")


def json_type(value: Any) -> str:
    """What kind of JSON value `value` is, with its article, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def descriptor_problem(desc: Any, where: str) -> str | None:
    """What is malformed in the descriptor ``desc`` (found at ``where``, such as ``layers[0]``), or None."""
    if not isinstance(desc, dict):
        return f"{where} is {json_type(desc)} {json.dumps(desc)[:60]}, not a descriptor object"
    media_type, digest, size = desc.get("mediaType"), desc.get("digest"), desc.get("size")
    if not isinstance(media_type, str):
        return f"{where}.mediaType is {json_type(media_type)}, not a string"
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        shown = f" {json.dumps(digest)[:80]}" if digest is not None else ""
        return f"{where}.digest is {json_type(digest)}{shown}, not a digest such as sha256:<64 hex digits>"
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        return f"{where}.size is {json_type(size)} {json.dumps(size)[:40]}, not a byte count"
    return None


def manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What is malformed in an image manifest's descriptors (``layers``, ``config``), or None.

    A missing or empty ``layers`` is not malformed here (``detect_format`` says the image has no layers).
    """
    layers = manifest.get("layers")
    if layers is not None and not isinstance(layers, list):
        return f"layers is {json_type(layers)}, not a list"
    for i, layer in enumerate(layers or []):
        problem = descriptor_problem(layer, f"layers[{i}]")
        if problem is not None:
            return problem
    if "config" in manifest:
        return descriptor_problem(manifest["config"], "config")
    return None


def detect_format(manifest: dict[str, Any]) -> str:
    """Which of our formats a parsed manifest is: ``compat``, ``oci`` or ``cncf``.

    Raises ValueError for a manifest that is none of them. Check the manifest with ``manifest_problem``
    first: its descriptors must be well formed.
    """
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ValueError("manifest has no layers")
    types = [str(layer["mediaType"]) for layer in layers]
    if WASME_LAYER in types:
        if len(layers) != 2:
            raise ValueError(f"oci wasm image must have exactly 2 layers, found {len(layers)}")
        return "oci"
    if CNCF_LAYER in types:
        return "cncf"
    if types[-1] in (OCI_LAYER_TGZ, DOCKER_LAYER_TGZ, "application/vnd.oci.image.layer.v1.tar"):
        return "compat"
    raise ValueError(
        "no wasm layer: expected a last tar+gzip layer holding plugin.wasm, a "
        f"{WASME_LAYER} layer, or an {CNCF_LAYER} layer; found {', '.join(types)}"
    )
