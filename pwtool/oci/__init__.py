"""An OCI distribution client for wasm modules: push and pull compat, oci and cncf images."""

from pwtool.oci._auth import (
    Credentials, DockerConfigError, docker_config_path, from_docker_config, resolve_credentials,
)
from pwtool.oci._client import DEFAULT_CHUNK, PullResult, PushResult, Registry, pull_wasm, push_wasm
from pwtool.oci._errors import AuthError, DigestMismatchError, FormatError, NotFoundError, RegistryError
from pwtool.oci._image import FLAVOURS, FORMATS, Blob, Image, build_image, detect_format, extract_plugin
from pwtool.oci._reference import Reference, ReferenceError, parse_reference
from pwtool.oci._transport import Notify, Progress

__all__ = [
    "AuthError", "Blob", "Credentials", "DEFAULT_CHUNK", "DigestMismatchError", "DockerConfigError", "FLAVOURS",
    "FORMATS", "FormatError", "Image", "NotFoundError", "Notify", "Progress", "PullResult", "PushResult", "Reference",
    "ReferenceError", "Registry", "RegistryError", "build_image", "detect_format", "docker_config_path",
    "extract_plugin", "from_docker_config", "parse_reference", "pull_wasm", "push_wasm", "resolve_credentials",
]
