"""Errors raised by the OCI client."""

from __future__ import annotations


class RegistryError(Exception):
    """A registry operation failed; the message names the reference and the fix."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class AuthError(RegistryError):
    """The registry (or its token server) refused us."""


class NotFoundError(RegistryError):
    """Unknown repository, tag, manifest or blob."""


class DigestMismatchError(RegistryError):
    """Content whose sha256 is not the digest it was fetched by."""


class FormatError(RegistryError):
    """A manifest or layer that is not one of the wasm image formats we know."""
