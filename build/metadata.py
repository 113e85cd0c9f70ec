"""A plugin directory's metadata file, ``plugin.toml``.

    name = "hello"          # required: letters, digits, '-', '_'
    root_id = "hello"       # optional: the root id Envoy passes (default: "")
    version = "0.1.0"       # optional
    description = "..."     # optional

    [config]                # optional: the default plugin configuration (JSON-able);
    greeting = "hi"         # used when Envoy / Istio pass no configuration
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

METADATA_FILE = "plugin.toml"
ENTRY_MODULE = "plugin"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class PluginError(ValueError):
    """A plugin directory is unusable; the message names the file and the fix."""


@dataclass(frozen=True)
class PluginMetadata:
    """What ``plugin.toml`` says about a plugin."""

    name: str
    root_id: str = ""
    version: str = "0.0.0"
    description: str = ""
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def config_json(self) -> bytes:
        """The default configuration as Envoy would pass it (JSON bytes, empty if none)."""
        return json.dumps(self.config, separators=(",", ":"), sort_keys=True).encode() if self.config else b""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "root_id": self.root_id,
            "version": self.version,
            "description": self.description,
            "config": self.config,
        }


def load_metadata(plugin_dir: Path, *, require_code: bool = True) -> PluginMetadata:
    """Read and check ``plugin_dir/plugin.toml`` (and, unless ``require_code`` is False,
    that ``plugin.py`` exists)."""
    plugin_dir = Path(plugin_dir)
    if not plugin_dir.is_dir():
        raise PluginError(f"{plugin_dir}: not a directory. Fix: pass a plugin directory holding plugin.py and plugin.toml")
    if require_code and not (plugin_dir / f"{ENTRY_MODULE}.py").is_file():
        raise PluginError(f"{plugin_dir}: no {ENTRY_MODULE}.py. Fix: put the plugin's code in {plugin_dir / 'plugin.py'}")
    path = plugin_dir / METADATA_FILE
    if not path.is_file():
        raise PluginError(
            f"{path}: missing. Fix: create it with at least `name = \"{plugin_dir.resolve().name}\"`"
        )
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise PluginError(f"{path}: not valid TOML: {error}") from None
    known = {"name", "root_id", "version", "description", "config"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise PluginError(f"{path}: unknown key(s) {', '.join(unknown)}. Fix: use only {', '.join(sorted(known))}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(
            f"{path}: `name` must be a string of letters, digits, '.', '-' or '_' (got {name!r}). "
            f"Fix: name = \"{plugin_dir.resolve().name}\""
        )
    for key in ("root_id", "version", "description"):
        if key in raw and not isinstance(raw[key], str):
            raise PluginError(f"{path}: `{key}` must be a string (got {raw[key]!r})")
    config = raw.get("config", {})
    if not isinstance(config, dict):
        raise PluginError(f"{path}: `config` must be a table ([config]), got {type(config).__name__}")
    try:
        json.dumps(config)
    except TypeError as error:
        raise PluginError(f"{path}: [config] must be JSON-compatible (no dates or times): {error}") from None
    return PluginMetadata(
        name=name,
        root_id=raw.get("root_id", ""),
        version=raw.get("version", "0.0.0"),
        description=raw.get("description", ""),
        config=config,
    )
