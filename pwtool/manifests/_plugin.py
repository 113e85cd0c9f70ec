"""Read a plugin directory's ``plugin.toml`` and merge ``--set key=value`` overrides."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
    """Load ``plugin.toml`` (``name``, ``root_id``, ``[config]``) from a plugin directory.

    The root id defaults to the plugin's name: Istio passes ``pluginName`` as the root id.
    """
    from pwtool.build import PluginError, load_metadata

    plugin_dir = path.parent if path.name == "plugin.toml" else path
    try:
        metadata = load_metadata(plugin_dir, require_code=False)
    except PluginError as error:
        raise ManifestError(str(error)) from None
    return PluginInfo(metadata.name, metadata.root_id or metadata.name, dict(metadata.config), plugin_dir)


def resource_name(name: str) -> str:
    """A Kubernetes object name derived from a plugin name (``request_buffer`` → ``request-buffer``)."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    if not out or not _NAME_RE.match(out):
        raise ManifestError(f"cannot derive a Kubernetes name from {name!r}; pass --name")
    return out


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def parse_scalar(text: str) -> Any:
    """The value of a ``--set`` flag: JSON when the text is JSON (``3``, ``true``, ``null``,
    ``[1, 2]``, ``{"a": 1}``, ``"1.10"``), otherwise the text itself (``12:30``, ``off``).

    JSON, not YAML, so that nothing is silently reinterpreted: YAML 1.1 reads ``off`` and
    ``no`` as false and ``12:30`` as 750."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise ManifestError(f"the value {text[:40]!r}... nests too deeply. Fix: flatten it") from None
    except ValueError:
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
    from pwtool.build.metadata import config_problem

    problem = config_problem(merged)
    if problem is not None:
        raise ManifestError(f"the configuration (plugin.toml's [config] with --set) {problem}")
    return merged
