"""The dev loop's module: one module for every edit, the plugin in the VM configuration.

Envoy's V8 compiles a module of this size in 4-8 s, and a module whose bytes it has
compiled before (still loaded) in well under a second. A built plugin's bytes change
with every edit (the snapshot holds the plugin), so ``pwtool run --watch`` serves
instead a module built once per runtime and SDK: the interpreter and the SDK already
imported, the plugin left out. Each edit's compiled plugin code travels in the VM
configuration (`plugin_vm_configuration`) and the module imports it when Envoy creates
the VM's first root context (build/runtime/boot/boot.py, `_import_plugin_from_vm`).
Only the VM configuration changes, so a swap reuses the compiled module.

What the plugin runs is what ``pwtool build`` ships (the same interpreter, SDK and
compiled code), except that its module-level code runs in each VM at start instead of
once at build time, and the module exports every callback. The dev loop still builds the
real module first, so build errors are reported the same way.
"""

from __future__ import annotations

import base64
import json
import marshal
from dataclasses import dataclass
from pathlib import Path

from pwtool.build._files import prune_oldest, write_atomically
from pwtool.build.metadata import ENTRY_MODULE
from pwtool.build.plugin import BuildResult, build_inputs_digest, build_plugin, bundle_metadata
from pwtool.build.runtime.recipe import Progress, cache_root

DEV_MAGIC = b"pwtool-dev-plugin:"  # build/runtime/boot/boot.py checks it
_STAND_IN_PLUGIN = "import proxywasm  # the dev loop's module: the plugin comes in the VM configuration\n"
_STAND_IN_TOML = 'name = "pwtool-dev"\n'
_KEPT_DEV_MODULES = 3  # one per SDK version: about 4 MB each


@dataclass(frozen=True)
class DevModule:
    """The dev loop's module and the modules it holds: {name: file name}."""

    path: Path
    modules: dict[str, str]


def ensure_dev_module(progress: Progress | None = None) -> DevModule:
    """Build (once per runtime, SDK and toolkit version) and return the dev loop's module."""
    home = cache_root() / "dev-module"
    stand_in = home / "stand-in"
    for name, text in (("plugin.py", _STAND_IN_PLUGIN), ("plugin.toml", _STAND_IN_TOML)):
        write_atomically(stand_in / name, text)
    # With the compiler: module-level code run at VM start may create namedtuples and
    # dataclasses, as it may at build time. A plugin built without it gets the same
    # RuntimeError from compile/exec/eval of source text once it is imported.
    directory = home / "modules" / build_inputs_digest(stand_in, keep_compiler=True)
    module, listing = directory / "dev.wasm", directory / "modules.json"
    if module.is_file() and listing.is_file():
        return DevModule(module, json.loads(listing.read_text()))
    if progress is not None:
        progress("Building the dev loop's module (once per SDK version)")
    result = build_plugin(stand_in, module, progress, keep_compiler=True, defer_plugin=True)
    modules = {name: entry[1] for name, entry in result.code.items()}
    write_atomically(listing, json.dumps(modules, sort_keys=True))  # written last: the pair is complete
    prune_oldest(home / "modules", keep=_KEPT_DEV_MODULES)
    return DevModule(module, modules)


def plugin_vm_configuration(result: BuildResult, dev_module: DevModule, vm_configuration: bytes = b"", *,
                            keep_compiler: bool = False) -> str:
    """The VM configuration that makes ``dev_module`` run the plugin ``result`` was built
    from: the compiled modules the dev module does not hold as the same file (the
    plugin's own, stdlib modules only it imports), its imports and metadata, whether it
    was built with ``keep_compiler``, and the ``vm_configuration`` the plugin itself gets
    in ``on_vm_start``."""
    bundle = {
        "modules": {name: entry for name, entry in result.code.items()
                    if name == ENTRY_MODULE or dev_module.modules.get(name) != entry[1]},
        "plugin": ENTRY_MODULE,
        "preload": result.preload,
        "metadata": bundle_metadata(result.metadata),
        "keep_compiler": keep_compiler,
        "vm_configuration": vm_configuration,
    }
    return (DEV_MAGIC + base64.b64encode(marshal.dumps(bundle))).decode("ascii")
