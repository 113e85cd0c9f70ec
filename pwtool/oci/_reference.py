"""Parse image references such as ``host:5000/team/plugin:v1@sha256:...``."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

DOCKER_HUB = "registry-1.docker.io"
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")


class ReferenceError(ValueError):
    """An image reference that cannot be parsed."""


@dataclass(frozen=True)
class Reference:
    """A parsed image reference: registry host, repository, and tag and/or digest."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def with_digest(self, digest: str) -> "Reference":
        """The same repository pinned to ``digest``."""
        return Reference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def _check_registry(registry: str, text: str) -> None:
    """A registry that URLs can name: ``host``, ``host:port`` or ``[ipv6]:port``, port 1-65535."""
    try:
        parts = urllib.parse.urlsplit(f"https://{registry}/")
        port = parts.port
    except ValueError as exc:
        problem = str(exc)
    else:
        problem = ("no host" if not parts.hostname else f"port {port} is not between 1 and 65535" if port == 0
                   else "" if parts.netloc == registry and not any(c.isspace() for c in registry)
                   else "it holds characters a host name cannot")
        if not problem:
            return
    raise ReferenceError(f"invalid registry {registry!r} in {text!r}: {problem}; expected "
                         "HOST[:PORT]/REPO[:TAG][@sha256:DIGEST], with an IPv6 host in brackets: [::1]:5000/REPO")


def parse_reference(text: str) -> Reference:
    """Parse ``[oci://|docker://]host[:port]/repo[:tag][@digest]``.

    A name without a registry host (``plugin:v1``, ``team/plugin``) means Docker Hub,
    like ``docker pull`` does.
    """
    raw = text.strip()
    for prefix in ("oci://", "docker://"):
        if raw.startswith(prefix):
            raw = raw[len(prefix):]
    if not raw:
        raise ReferenceError("empty image reference; expected HOST[:PORT]/REPO[:TAG][@sha256:DIGEST]")
    digest: str | None = None
    if "@" in raw:
        raw, digest = raw.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise ReferenceError(f"invalid digest {digest!r} in {text!r}; expected sha256:<64 hex digits>")
        if digest.startswith("sha256:") and not re.fullmatch(r"sha256:[a-f0-9]{64}", digest):
            raise ReferenceError(f"invalid sha256 digest {digest!r} in {text!r}; expected 64 lowercase hex digits")
    first, sep, rest = raw.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        registry, remainder = first, rest
    else:
        registry, remainder = DOCKER_HUB, raw
    if registry in ("docker.io", "index.docker.io"):
        registry = DOCKER_HUB
    _check_registry(registry, text)
    tag: str | None = None
    last_slash = remainder.rfind("/")
    colon = remainder.rfind(":")
    if colon > last_slash:
        remainder, tag = remainder[:colon], remainder[colon + 1:]
        if not _TAG_RE.match(tag):
            raise ReferenceError(f"invalid tag {tag!r} in {text!r}")
    if registry == DOCKER_HUB and "/" not in remainder:
        remainder = f"library/{remainder}"
    if not _REPO_RE.match(remainder):
        raise ReferenceError(
            f"invalid repository name {remainder!r} in {text!r}; "
            "use lowercase letters, digits and . _ - separated by /"
        )
    if tag is None and digest is None:
        tag = "latest"
    return Reference(registry, remainder, tag, digest)
