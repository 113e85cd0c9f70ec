"""Read a plugin directory's ``plugin.toml`` and merge ``--set key=value`` overrides."""

from __future__ import annotations

import copy
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ManifestError(ValueError):
    """Inputs that cannot make a valid manifest; the message says what to fix."""


_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class PluginInfo:
    """What a manifest needs from a plugin directory."""

    name: str
    root_id: str
    config: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def load_plugin(path: Path) -> PluginInfo:
    """Load ``plugin.toml`` (``name``, ``root_id``, ``[config]``) from a plugin directory."""
    toml_path = path / "plugin.toml" if path.is_dir() else path
    if not toml_path.is_file():
        raise ManifestError(f"{toml_path} not found; a plugin directory holds plugin.toml with name, root_id "
                            "and a [config] table")
    try:
        data = tomllib.loads(toml_path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{toml_path}: invalid TOML: {exc}") from exc
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ManifestError(f"{toml_path}: missing `name = \"...\"`")
    root_id = data.get("root_id", name)
    if not isinstance(root_id, str):
        raise ManifestError(f"{toml_path}: root_id must be a string")
    config = data.get("config", {})
    if not isinstance(config, dict):
        raise ManifestError(f"{toml_path}: [config] must be a table")
    return PluginInfo(name, root_id, config, toml_path.parent)


def resource_name(name: str) -> str:
    """A Kubernetes object name derived from a plugin name (``request_buffer`` → ``request-buffer``)."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not out or not _NAME_RE.match(out):
        raise ManifestError(f"cannot derive a Kubernetes name from {name!r}; pass --name")
    return out


def parse_scalar(text: str) -> Any:
    """YAML-typed value of a ``--set`` flag: ``3`` is an int, ``true`` a bool, ``[a, b]`` a list."""
    if text == "":
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def merge_settings(config: dict[str, Any], settings: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Return ``config`` with ``a.b=value`` settings applied (dotted keys make nested tables)."""
    merged = copy.deepcopy(config)
    for item in settings:
        key, sep, raw = item.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise ManifestError(f"--set {item!r}: expected KEY=VALUE (KEY may be dotted, like limits.max_bytes)")
        parts = key.split(".")
        node = merged
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ManifestError(f"--set {item!r}: {'.'.join(parts[:i + 1])} is not a table")
            node = child
        node[parts[-1]] = parse_scalar(raw)
    return merged
