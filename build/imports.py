"""Find every module a plugin can import, before anything runs.

Starting from ``plugin.py``, follow ``import`` statements (at any depth, including
inside functions) through the plugin directory, the ``proxywasm`` SDK and the wasm
build of the Python 3.11 standard library. What the plugin's own files import must be
found, or the build stops naming the module, the file and the line; the stdlib's and
the SDK's own optional imports are allowed to be missing, as they are guarded.

In the plugin's files and the SDK, imports inside functions are followed too. In the
standard library only imports that run when a module is imported are followed: the
stdlib's many lazy imports would otherwise pull in most of the library. A plugin that
calls into such a lazy path imports the module itself, at the top of ``plugin.py``.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from pwtool.build.metadata import ENTRY_MODULE, PluginError, read_plugin_file

# Imported by the interpreter itself while it starts.
ALWAYS_BUNDLED = ("encodings", "encodings.aliases", "encodings.utf_8", "encodings.latin_1", "encodings.ascii")


@dataclass(frozen=True)
class ModuleSource:
    name: str
    path: Path
    is_package: bool
    origin: str  # "plugin", "sdk" or "stdlib"


@dataclass(frozen=True)
class ImportSite:
    """An import in the plugin's or the SDK's code, done again at build time.

    Importing at build time puts the module in the snapshot (no import cost in a VM)
    and turns a missing C extension into a build error. ``required`` is False for
    imports guarded by ``try/except ImportError``.
    """

    module: str
    file: Path
    line: int
    required: bool = True


@dataclass
class ImportClosure:
    """The modules to bundle and the plugin's own imports to load at build time."""

    modules: dict[str, ModuleSource] = field(default_factory=dict)
    preload: list[ImportSite] = field(default_factory=list)


def builtin_module_names(shim_dir: Path) -> frozenset[str]:
    """C modules compiled into the runtime, read from the shim's module table."""
    table = (shim_dir / "builtin_modules.c").read_text()
    return frozenset(re.findall(r'\{"([A-Za-z0-9_.]+)",', table))


class _Resolver:
    def __init__(self, plugin_dir: Path, sdk_dir: Path, stdlib_dir: Path, builtins: frozenset[str]):
        self.roots = [(plugin_dir, "plugin"), (sdk_dir, "sdk"), (stdlib_dir, "stdlib")]
        self.builtins = builtins

    def find(self, name: str) -> ModuleSource | str | None:
        """A ModuleSource, "builtin", or None when nothing provides ``name``."""
        if name in self.builtins:
            return "builtin"
        parts = name.split(".")
        for root, origin in self.roots:
            if origin == "sdk" and parts[0] != "proxywasm":
                continue
            if origin != "sdk" and parts[0] == "proxywasm":
                continue
            base = root.joinpath(*parts)
            if (base / "__init__.py").is_file():
                return ModuleSource(name, base / "__init__.py", True, origin)
            if base.with_suffix(".py").is_file() and (len(parts) > 1 or base.parent == root):
                return ModuleSource(name, base.with_suffix(".py"), False, origin)
        return None

    def c_extension(self, name: str) -> Path | None:
        """A compiled extension for ``name`` in the plugin directory, such as
        ``fastmod.cpython-311-x86_64-linux-gnu.so``, ``fastmod.abi3.so`` or ``fastmod.pyd``:
        importable by the host's Python, never inside the wasm module."""
        parts = name.split(".")
        root = self.roots[0][0]
        directory = root.joinpath(*parts[:-1])
        if not directory.is_dir():
            return None
        suffix = re.compile(re.escape(parts[-1]) + r"(\.[\w-]+)?\.(so|pyd)")
        found = sorted(path for path in directory.iterdir() if suffix.fullmatch(path.name) and path.is_file())
        return found[0] if found else None


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    text = ast.unparse(handler.type)
    return any(name in text for name in ("ImportError", "ModuleNotFoundError", "Exception"))


def syntax_error_message(path: Path, data: bytes, error: SyntaxError | ValueError) -> str:
    """``path:line: syntax error: ...`` for source `data` of `path`; for a NUL byte (which
    Python reports without a line), the line and column of the first one, and the fix.
    The emulator's native mode words its import failures with it too."""
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        column = nul - (data.rfind(b"\n", 0, nul) + 1) + 1
        return (f"{path}:{line}: syntax error: a NUL byte (\\0) at line {line}, column {column}; Python source "
                "cannot contain NUL bytes. Fix: remove it (the file may have been saved in UTF-16 or damaged)")
    lineno = getattr(error, "lineno", None)
    message = getattr(error, "msg", None) or str(error)
    return f"{path}:{lineno}: syntax error: {message}" if lineno else f"{path}: syntax error: {message}"


def _imports_of(source: ModuleSource) -> list[tuple[str, int, bool, list[str]]]:
    """(module, line, guarded, from-names) for each import statement of a module.

    One breadth-first pass over the tree. ``guarded``: inside a ``try`` whose handlers
    catch ImportError. Never followed: the body of ``if TYPE_CHECKING`` / ``if __name__
    == "__main__"`` (never run in a plugin) and, in the stdlib, function bodies (imports
    there run only when called).
    """
    data = read_plugin_file(source.path)
    try:
        tree = ast.parse(data, filename=str(source.path))
    except (SyntaxError, ValueError) as error:  # ValueError: null bytes, on some Python versions
        if source.origin == "plugin":
            raise PluginError(syntax_error_message(source.path, data, error)) from None
        return []  # stdlib syntax newer than the host's parser: the wasm interpreter compiles it
    skip_functions = source.origin == "stdlib"
    package = source.name if source.is_package else source.name.rpartition(".")[0]
    found: list[tuple[str, int, bool, list[str]]] = []
    pending: deque[tuple[ast.AST, bool]] = deque([(tree, False)])
    while pending:
        node, guarded = pending.popleft()
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, node.lineno, guarded, []))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".") if package else []
                if node.level - 1 > len(anchor):
                    continue
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base:
                found.append((base, node.lineno, guarded, [a.name for a in node.names if a.name != "*"]))
        elif skip_functions and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        body_guarded = guarded or (isinstance(node, ast.Try)
                                   and any(_catches_import_error(handler) for handler in node.handlers))
        skip_body = isinstance(node, ast.If) and any(
            marker in ast.unparse(node.test) for marker in ("TYPE_CHECKING", "__main__"))
        for field_name, value in ast.iter_fields(node):
            in_body = field_name == "body"
            if in_body and skip_body:
                continue
            flag = body_guarded if in_body else guarded
            if isinstance(value, ast.AST):
                pending.append((value, flag))
            elif isinstance(value, list):
                pending.extend((item, flag) for item in value if isinstance(item, ast.AST))
    return found


def collect_imports(plugin_dir: Path, sdk_dir: Path, stdlib_dir: Path, builtins: frozenset[str]) -> ImportClosure:
    """Walk the import graph from the plugin's entry module."""
    resolver = _Resolver(plugin_dir.resolve(), sdk_dir.resolve(), stdlib_dir, builtins)
    closure = ImportClosure()
    entry = resolver.find(ENTRY_MODULE)
    if not isinstance(entry, ModuleSource) or entry.origin != "plugin":
        raise PluginError(f"{plugin_dir}: no {ENTRY_MODULE}.py")
    pending: list[ModuleSource] = [entry]
    for name in ALWAYS_BUNDLED:
        found = resolver.find(name)
        if isinstance(found, ModuleSource):
            pending.append(found)

    def want(name: str, site: ModuleSource, line: int, strict: bool) -> bool:
        found = resolver.find(name)
        if isinstance(found, ModuleSource):
            if found.name not in closure.modules:
                closure.modules[found.name] = found
                pending.append(found)
            return True
        if found == "builtin":
            return True
        if strict and (extension := resolver.c_extension(name)) is not None:
            raise PluginError(
                f"{site.path}:{line}: `import {name}` finds only {extension}, a C extension compiled for the host: "
                f"C extensions cannot run inside the wasm module (only pure-Python code and the C modules built "
                f"into the pwtool runtime can). Fix: use a pure-Python alternative (many packages ship a "
                f"pure-Python fallback or wheel; copy it into {plugin_dir}), or remove the import"
            )
        if strict:
            raise PluginError(
                f"{site.path}:{line}: `import {name}` cannot be satisfied: no such module in the plugin "
                f"directory, the proxywasm SDK, or the Python 3.11 standard library and C modules built "
                f"into the pwtool runtime. Fix: copy the pure-Python package into {plugin_dir}, "
                f"or remove the import"
            )
        return False

    closure.modules[entry.name] = entry
    while pending:
        source = pending.pop()
        closure.modules.setdefault(source.name, source)
        strict_file = source.origin == "plugin"
        preloads = source.origin in ("plugin", "sdk")
        for name, line, guarded, from_names in _imports_of(source):
            strict = strict_file and not guarded
            parts = name.split(".")
            ok = True
            for depth in range(1, len(parts) + 1):
                ok = want(".".join(parts[:depth]), source, line, strict) and ok
            if preloads and ok:
                closure.preload.append(ImportSite(name, source.path, line, required=not guarded))
            for sub in from_names:
                candidate = f"{name}.{sub}"
                if isinstance(resolver.find(candidate), ModuleSource):
                    want(candidate, source, line, False)
                    if preloads:
                        closure.preload.append(ImportSite(candidate, source.path, line, required=not guarded))
    closure.preload = _one_site_per_module(closure.preload)
    return closure


def _one_site_per_module(sites: list[ImportSite]) -> list[ImportSite]:
    """The first required site of each module (else its first site), in first-seen order."""
    chosen: dict[str, ImportSite] = {}
    for site in sites:
        current = chosen.get(site.module)
        if current is None or (site.required and not current.required):
            chosen[site.module] = site
    return list(chosen.values())
