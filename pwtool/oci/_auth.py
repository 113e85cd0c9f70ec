"""Where registry credentials come from: flags, environment, docker config (read only)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_USERNAME = "PWTOOL_REGISTRY_USERNAME"
ENV_PASSWORD = "PWTOOL_REGISTRY_PASSWORD"


@dataclass(frozen=True)
class Credentials:
    """A username and password (or an identity token as the password)."""

    username: str
    password: str
    source: str = "flags"

    def basic(self) -> str:
        """The value of a ``Basic`` ``Authorization`` header."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def docker_config_path() -> Path:
    """``$DOCKER_CONFIG/config.json`` or ``~/.docker/config.json``."""
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _host_keys(registry: str) -> list[str]:
    keys = [registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/", f"https://{registry}/v2/"]
    if registry == "registry-1.docker.io":
        keys += ["https://index.docker.io/v1/", "index.docker.io", "docker.io"]
    return keys


def _from_helper(helper: str, registry: str) -> Credentials | None:
    try:
        proc = subprocess.run(
            [f"docker-credential-{helper}", "get"], input=registry.encode(),
            capture_output=True, timeout=30, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    try:
        data = json.loads(proc.stdout)
        return Credentials(data["Username"], data["Secret"], f"docker-credential-{helper}")
    except (ValueError, KeyError, TypeError):
        return None


class DockerConfigError(ValueError):
    """A docker config file the user named explicitly that cannot be read or is not a JSON object."""


def _read_docker_config(path: Path, strict: bool) -> dict[str, Any] | None:
    """The config's JSON object; None (or, when ``strict``, a DockerConfigError) if there is none."""
    fix = "Fix: pass --docker-config the config.json `docker login` writes, or drop the option"
    try:
        config = json.loads(path.read_text())
    except OSError as error:
        if not strict:
            return None
        raise DockerConfigError(f"docker config {path}: cannot read it: {error.strerror or error}. {fix}") from None
    except ValueError as error:
        if not strict:
            return None
        raise DockerConfigError(f"docker config {path} is not valid JSON ({error}). {fix}") from None
    if not isinstance(config, dict):
        if not strict:
            return None
        raise DockerConfigError(f"docker config {path} holds a JSON {type(config).__name__}, not the object "
                                f"docker writes. {fix}")
    return config


def from_docker_config(registry: str, path: Path | None = None, *, strict: bool = False) -> Credentials | None:
    """Credentials for ``registry`` from a docker config file, or None. Never writes.

    A missing or malformed file means no credentials, unless ``strict`` (the user named the
    file): then it is a DockerConfigError naming the file."""
    path = path or docker_config_path()
    config = _read_docker_config(path, strict)
    if config is None:
        return None
    helpers = config.get("credHelpers") or {}
    for key in _host_keys(registry):
        if isinstance(helpers, dict) and key in helpers:
            return _from_helper(str(helpers[key]), registry)
    auths = config.get("auths") or {}
    for key in _host_keys(registry):
        entry = auths.get(key) if isinstance(auths, dict) else None
        if not isinstance(entry, dict):
            continue
        if entry.get("identitytoken"):
            return Credentials("<token>", str(entry["identitytoken"]), str(path))
        if entry.get("auth"):
            try:
                user, _, pw = base64.b64decode(str(entry["auth"])).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            return Credentials(user, pw, str(path))
        if entry.get("username") and entry.get("password"):
            return Credentials(str(entry["username"]), str(entry["password"]), str(path))
    store = config.get("credsStore")
    if store:
        return _from_helper(str(store), registry)
    return None


def resolve_credentials(
    registry: str, username: str | None = None, password: str | None = None,
    docker_config: Path | None = None,
) -> Credentials | None:
    """Flags first, then ``PWTOOL_REGISTRY_USERNAME``/``_PASSWORD``, then the docker config
    (``docker_config`` if given: it must be readable, else the default one, if any)."""
    if username is not None or password is not None:
        if username is None or password is None:
            raise ValueError("pass both --username and --password (or neither)")
        return Credentials(username, password, "flags")
    env_user, env_pw = os.environ.get(ENV_USERNAME), os.environ.get(ENV_PASSWORD)
    if env_user and env_pw is not None:
        return Credentials(env_user, env_pw, "environment")
    return from_docker_config(registry, docker_config, strict=docker_config is not None)
