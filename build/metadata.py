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


def read_plugin_file(path: Path) -> bytes:
    """The bytes of a file the build reads; an OSError becomes a PluginError naming the
    file, what the system said and the fix."""
    try:
        return path.read_bytes()
    except OSError as error:
        raise PluginError(f"{path}: cannot be read: {error.strerror or error}. Fix: make it a readable file "
                          "(check its permissions and, for a link, what it points to), or move it out of the "
                          "plugin directory") from None


MAX_CONFIG_DEPTH = 100
"""How deeply a configuration may nest: the protobuf parsers in Envoy and Istio stop at 100."""


def config_problem(config: Any) -> str | None:
    """Why ``config`` cannot be a plugin configuration, or None: it must be plain JSON (no
    dates, binary, sets, NaN or Infinity) nested at most :data:`MAX_CONFIG_DEPTH` deep.
    The answer names the offending value's place, like ``limits.paths[2]``."""
    pending: list[tuple[Any, int, str]] = [(config, 1, "")]
    while pending:
        value, depth, place = pending.pop()
        at = f"{place} " if place else ""
        children: list[tuple[Any, str]]
        if isinstance(value, dict):
            bad_key = next((key for key in value if not isinstance(key, str)), None)
            if bad_key is not None:
                return f"{at}has the key {bad_key!r}, which is not a string as JSON keys are. Fix: quote it"
            children = [(child, f"{place}.{key}" if place else str(key)) for key, child in value.items()]
        elif isinstance(value, list):
            children = [(child, f"{place}[{index}]") for index, child in enumerate(value)]
        elif value is None or isinstance(value, (str, bool, int)):
            continue
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                return f"{at}is {value!r}, which JSON cannot carry. Fix: use a number or a string"
            continue
        else:
            return (f"{at}is a {type(value).__name__} ({value!r:.60}), which is not JSON. "
                    "Fix: use a string, number, boolean, list or table")
        if depth > MAX_CONFIG_DEPTH:
            return f"nests deeper than {MAX_CONFIG_DEPTH} levels, more than Envoy and Istio accept. Fix: flatten it"
        pending.extend((child, depth + 1, child_place) for child, child_place in reversed(children))
    return None


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
        raw = tomllib.loads(read_plugin_file(path).decode("utf-8"))
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
    problem = config_problem(config)
    if problem is not None:
        raise PluginError(f"{path}: [config] {problem}")
    return PluginMetadata(
        name=name,
        root_id=raw.get("root_id", ""),
        version=raw.get("version", "0.0.0"),
        description=raw.get("description", ""),
        config=config,
    )
