"""Keep natively imported plugins apart in the one interpreter they share.

Native mode imports every plugin into the test's interpreter, where ``sys.modules`` and
``sys.path`` are shared. Each load gets a `PluginScope`: the modules its import added
from the plugin directory (``plugin`` and its sibling modules) and the ``_pwtool_plugin``
module that a built module gets from plugin.toml. One scope is installed at a time;
installing one takes the previous scope's modules and directory out of ``sys.modules``
and ``sys.path`` and puts its own in. The native backend installs a load's scope before
importing the plugin and before each callback of its VMs (nothing to do while it is
already installed), so

* every load imports its sibling modules afresh, never another plugin's module of the
  same name (nor one left by an earlier load of the same directory);
* an import run inside a callback finds the modules of the plugin whose callback runs;
* ``sys.path`` holds at most one plugin directory that native mode put there.

The SDK, the stdlib and any module that is not a plugin directory's own are left alone.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from pwtool.build.metadata import PluginMetadata

__all__ = ["METADATA_MODULE", "PluginScope", "installed_scope", "metadata_module"]

METADATA_MODULE = "_pwtool_plugin"
"""The module through which the SDK reads plugin.toml's ``[config]`` (``packaged_config``)."""

_NEVER_SIBLINGS = frozenset({"proxywasm", "_proxywasm", METADATA_MODULE, "pwtool", "conftest", "__pycache__"})
"""Names a plugin directory may hold that are never treated as the plugin's modules: the
SDK and its seam (which ``pwtool new`` refuses as plugin names), pwtool, pytest's files."""

_installed: Optional["PluginScope"] = None


def installed_scope() -> Optional["PluginScope"]:
    """The scope whose modules are in ``sys.modules`` now, if any."""
    return _installed


def metadata_module(metadata: "PluginMetadata") -> types.ModuleType:
    """The ``_pwtool_plugin`` module a built plugin gets (build/runtime/boot/boot.py)."""
    from pwtool.build.plugin import bundle_metadata

    data = bundle_metadata(metadata)
    module = types.ModuleType(METADATA_MODULE, "plugin.toml of a natively loaded plugin (pwtool emulator).")
    module.METADATA = data  # type: ignore[attr-defined]
    module.NAME = data.get("name", "")  # type: ignore[attr-defined]
    module.ROOT_ID = data.get("root_id", "")  # type: ignore[attr-defined]
    module.DEFAULT_CONFIG = data.get("config_json", b"")  # type: ignore[attr-defined]
    return module


def _reset_sdk_config_cache() -> None:
    """Forget the SDK's parsed copy of the packaged configuration (another plugin's)."""
    context = sys.modules.get("proxywasm._context")
    if context is not None and hasattr(context, "_packaged_cache"):
        context._packaged_cache = None  # type: ignore[attr-defined]


def _is_pytest_file(name: str) -> bool:
    """Test modules pytest imports from the plugin directory (``pwtool new`` puts one there)."""
    return name in _NEVER_SIBLINGS or name.startswith("test_") or name.endswith("_test")


def _home(name: str, module: types.ModuleType) -> Optional[str]:
    """The directory ``name``'s top-level module was imported from, if it came from a file:
    ``D`` for ``D/helper.py``, ``D/pkg/__init__.py``, ``D/pkg/sub.py`` or a namespace ``D/pkg``."""
    depth = name.count(".")
    top = name.partition(".")[0]
    locations: list[str] = []
    file = getattr(module, "__file__", None)
    if isinstance(file, str):
        # A package's __init__ file sits one level below the package directory.
        locations.append(os.path.dirname(file) if hasattr(module, "__path__") else file)
    else:
        path = getattr(module, "__path__", None)
        try:
            locations.extend(entry for entry in (path or ()) if isinstance(entry, str))
        except TypeError:
            return None
    for location in locations:
        for _ in range(depth):
            location = os.path.dirname(location)
        base = os.path.basename(location)
        if base == top or base.startswith(top + "."):
            return os.path.dirname(location)
    return None


class PluginScope:
    """What one native load of a plugin owns in ``sys.modules`` and ``sys.path``."""

    def __init__(self, directory: Path, metadata: Optional[types.ModuleType]) -> None:
        self.directory = directory.resolve()
        self.path_entry = str(self.directory)
        self.metadata = metadata
        """The ``_pwtool_plugin`` module (None without plugin.toml: then it is left alone)."""
        self.modules: dict[str, types.ModuleType] = {}
        """The modules this load imported from its directory, by name."""
        self.closed = False
        self._inserted_path = False
        self._users = 0

    # -- installing
    def install(self) -> Optional["PluginScope"]:
        """Make this the installed scope; return the scope it replaced (or this one)."""
        global _installed
        previous = _installed
        if previous is self:
            return self
        if previous is not None:
            previous._take_out()
        self._put_in()
        _installed = self
        return previous

    def restore(self, previous: Optional["PluginScope"]) -> None:
        """Undo `install` for a nested call: reinstall ``previous`` if it is still open."""
        if previous is not None and previous is not self and not previous.closed and _installed is self:
            previous.install()

    def uninstall(self) -> None:
        """Take this scope's modules and directory out, if it is installed."""
        global _installed
        if _installed is self:
            self._take_out()
            _installed = None

    def _put_in(self) -> None:
        sys.modules.update(self.modules)
        if self.metadata is not None:
            sys.modules[METADATA_MODULE] = self.metadata
        _reset_sdk_config_cache()
        if not sys.path or sys.path[0] != self.path_entry:
            sys.path.insert(0, self.path_entry)
            self._inserted_path = True

    def _take_out(self) -> None:
        for name, module in self.modules.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
        if self.metadata is not None and sys.modules.get(METADATA_MODULE) is self.metadata:
            del sys.modules[METADATA_MODULE]
        _reset_sdk_config_cache()
        if self._inserted_path:
            self._inserted_path = False
            try:
                sys.path.remove(self.path_entry)
            except ValueError:
                pass

    # -- importing
    def begin_import(self) -> dict[str, types.ModuleType]:
        """Prepare a fresh import of the plugin (this scope installed); return ``sys.modules``
        as it is, for `end_import`.

        Modules named like one of this directory's modules that another plugin directory
        supplied (imported by a test, say) are dropped, so the import finds this one's.
        """
        siblings = self._sibling_names()
        for name in [n for n in sys.modules if n.partition(".")[0] in siblings]:
            module = sys.modules[name]
            home = _home(name, module)
            if home is not None and home != self.path_entry and os.path.isfile(os.path.join(home, "plugin.py")):
                del sys.modules[name]
        invalidate = getattr(sys.path_importer_cache.get(self.path_entry), "invalidate_caches", None)
        if invalidate is not None:
            invalidate()  # files written since the last import from here
        return dict(sys.modules)

    def end_import(self, before: dict[str, types.ModuleType]) -> None:
        """Record the modules the import added from the plugin directory."""
        for name, module in list(sys.modules.items()):
            if before.get(name) is not module and self._owns(name, module):
                self.modules[name] = module

    def _owns(self, name: str, module: types.ModuleType) -> bool:
        if name.partition(".")[0] in _NEVER_SIBLINGS:
            return False
        home = _home(name, module)
        return home is not None and (home == self.path_entry or os.path.realpath(home) == self.path_entry)

    def _sibling_names(self) -> set[str]:
        """Top-level module names this directory offers (files and package directories)."""
        names: set[str] = set()
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return names
        for entry in entries:
            name = entry.name.partition(".")[0]
            if name.isidentifier() and not _is_pytest_file(name):
                names.add(name)
        return names

    # -- lifetime
    def acquire(self) -> None:
        """One more VM uses this scope."""
        self._users += 1

    def release(self) -> None:
        """A VM using this scope closed; the last one takes the scope out."""
        self._users -= 1
        if self._users <= 0 and not self.closed:
            self.discard()

    def discard(self) -> None:
        """Close the scope (its load failed or its VMs closed) and take it out."""
        self.closed = True
        self.uninstall()
