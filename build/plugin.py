"""``pwtool build``: a plugin directory in, one snapshotted proxy-wasm module out.

1. read ``plugin.toml`` and collect every module the plugin can import;
2. make sure the runtime (CPython + C shim) is built and cached;
3. instantiate the runtime under wasmtime with a build-time host, hand it the sources,
   and let the embedded interpreter compile and import the plugin;
4. snapshot memory into a new module and embed the plugin's metadata.

Builds are reproducible: the build-time host gives the interpreter a fixed clock and
fixed "random" bytes, so the same inputs give the same module.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import wasmtime

from pwtool import __version__
from pwtool.build._files import OutputPathError, check_output_path, prune_oldest, shown_output, write_atomically
from pwtool.build.imports import ModuleSource, builtin_module_names, collect_imports
from pwtool.build.metadata import ENTRY_MODULE, PluginError, PluginMetadata, load_metadata, read_plugin_file
from pwtool.build.runtime.recipe import SHIM_DIR, Progress, Runtime, ensure_runtime
from pwtool.build.snapshot import instantiate, snapshot, strip_build_only_code
from pwtool.build.wasm_binary import KIND_FUNC, Module

METADATA_SECTION = "pwtool.plugin"
BOOT_SOURCE = Path(__file__).resolve().parent / "runtime" / "boot" / "boot.py"
_STATUS_UNIMPLEMENTED = 12
_PRECOMPILED = -1  # the `optimize` of a bundled module whose payload is marshalled code
_BUILD_TIME_NS = 1_700_000_000 * 10**9  # the clock the interpreter sees while building
IMPORT_TIMEOUT_ENV = "PWTOOL_IMPORT_TIMEOUT"
_DEFAULT_IMPORT_TIMEOUT_S = 60.0  # importing a plugin takes well under a second; 60 s is a loop that never ends
_NOT_REGISTERED = "PWTOOL-NOT-REGISTERED"  # build/runtime/boot/boot.py: the SDK was imported, nothing registered

BundleModules = dict[str, tuple[bool, str, bytes, int]]
Preload = list[tuple[str, str, int, bool]]
"""The imports done after the plugin's: (module, importer file, line, required)."""


class BuildError(RuntimeError):
    """The plugin could not be built; the message names the file, the plugin and the fix."""


@dataclass(frozen=True)
class BuildResult:
    """What ``build_plugin`` produced."""

    path: Path
    size: int
    sha256: str
    seconds: float
    metadata: PluginMetadata
    runtime_key: str
    module_count: int
    code: BundleModules = field(default_factory=dict, repr=False, compare=False)
    """{module: (is_package, file name, marshalled code, -1)}: what the module imported."""
    preload: Preload = field(default_factory=list, repr=False, compare=False)

    def to_json(self) -> dict[str, object]:
        return {
            "path": str(self.path),
            "size": self.size,
            "sha256": self.sha256,
            "seconds": round(self.seconds, 3),
            "plugin": self.metadata.to_json(),
            "runtime": self.runtime_key,
            "modules": self.module_count,
        }


def build_inputs_digest(plugin_dir: Path | str, *, keep_compiler: bool = False) -> str:
    """A digest of everything a build reads: the plugin's files, the SDK, the build code
    and the runtime recipe. Equal digests give byte-identical modules (builds are
    reproducible), so callers may cache modules under this key."""
    digest = hashlib.sha256(f"{__version__}:{keep_compiler}".encode())
    roots = [Path(plugin_dir), sdk_directory() / "proxywasm", Path(__file__).resolve().parent]
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".c", ".h", ".toml"):
                digest.update(str(path.relative_to(root)).encode() + b"\0" + read_plugin_file(path))
    return digest.hexdigest()[:24]


def default_output(metadata: PluginMetadata) -> Path:
    return Path("dist") / f"{metadata.name}.wasm"


def check_output(target: Path, plugin_dir: Path, metadata: PluginMetadata) -> None:
    """Refuse, before building, an output path the module cannot or must not be written to:
    one that names no file, a directory, a path under a file, or a source file of the plugin
    (anything in the plugin directory but a ``.wasm``, such as an earlier build's output)."""
    try:
        check_output_path(target, example=f"dist/{metadata.name}.wasm", protected_dir=plugin_dir,
                          allowed_suffixes=(".wasm",))
    except OutputPathError as error:
        raise BuildError(f"plugin {metadata.name!r}: output {shown_output(target)} {error}") from None


def _write_module(target: Path, module: bytes, metadata: PluginMetadata) -> None:
    try:
        write_atomically(target, module)
    except OSError as error:
        raise BuildError(f"plugin {metadata.name!r}: cannot write the module to {target}: "
                         f"{error.strerror or error}. Fix: pass -o a path in a directory you can write to, "
                         f"such as dist/{metadata.name}.wasm") from None


def sdk_directory() -> Path:
    """The directory that holds the ``proxywasm`` package bundled into plugins.

    Found as the import system finds it, except that a directory named ``proxywasm``
    without ``__init__.py`` (a namespace package, for example a plugin directory in the
    current directory) does not count: it would shadow an editable install of the SDK.
    """
    shadows: list[str] = []
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        # find_spec locates the package without running it: it imports _proxywasm, which
        # only exists inside a module (or under the emulator).
        try:
            spec = find_spec("proxywasm", None)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.origin is None or spec.loader is None:  # a namespace package: a directory, not the SDK
            shadows += [str(location) for location in spec.submodule_search_locations or ()]
            continue
        return Path(spec.origin).resolve().parent.parent
    if shadows:
        raise BuildError(f"the proxywasm SDK is not installed; only {', '.join(shadows)}, a directory that is "
                         "not the SDK, has its name. Fix: pip install -e . in the pwtool checkout")
    raise BuildError("the proxywasm SDK is not installed. Fix: pip install -e . in the pwtool checkout")


def build_plugin(
    plugin_dir: Path | str,
    output: Path | str | None = None,
    progress: Progress | None = None,
    *,
    keep_compiler: bool = False,
    defer_plugin: bool = False,
) -> BuildResult:
    """Build ``plugin_dir`` into a proxy-wasm module and return where it went.

    ``keep_compiler`` keeps CPython's parser and compiler in the module (about 0.6 MB)
    for plugins that compile source text at run time (exec/eval of strings, runtime
    namedtuple or dataclass creation). ``defer_plugin`` is for the dev loop's module
    (pwtool.build.devmodule): the entry module's imports are snapshotted, and the
    module imports the real plugin from its VM configuration.
    """
    say = progress or (lambda message: None)
    started = time.monotonic()
    plugin_dir = Path(plugin_dir)
    metadata = load_metadata(plugin_dir)
    target = Path(output) if output is not None else default_output(metadata)
    check_output(target, plugin_dir, metadata)
    import_timeout = _import_timeout()
    runtime = ensure_runtime(say)
    closure = collect_imports(plugin_dir, sdk_directory(), runtime.stdlib, builtin_module_names(SHIM_DIR))
    say(f"Compiling {metadata.name}: {len(closure.modules)} modules inside the wasm interpreter")
    sources = {
        name: (source.is_package, _display_path(source, metadata.name), read_plugin_file(source.path),
               0 if source.origin == "plugin" else 2)
        for name, source in closure.modules.items()
    }
    engine = _engine()
    compiled = _compile_sources(runtime, engine, sources, metadata, plugin_dir)
    code = {name: (entry[0], entry[1], compiled[name], _PRECOMPILED) for name, entry in sources.items()}
    preload = [(site.module, str(site.file), site.line, site.required) for site in closure.preload]
    bundle = _make_bundle("load", metadata, code, preload, keep_compiler, defer_plugin)
    module = _snapshot_plugin(runtime, engine, bundle, metadata, plugin_dir, keep_compiler, import_timeout)
    _write_module(target, module, metadata)
    return BuildResult(
        path=target,
        size=len(module),
        sha256=hashlib.sha256(module).hexdigest(),
        seconds=time.monotonic() - started,
        metadata=metadata,
        runtime_key=runtime.key,
        module_count=len(closure.modules),
        code=code,
        preload=preload,
    )


def _engine() -> wasmtime.Engine:
    """The build's engine: with epoch interruption, so that an import that never ends can be stopped."""
    config = wasmtime.Config()
    config.epoch_interruption = True
    return wasmtime.Engine(config)


def _import_timeout() -> float:
    """How long the plugin's import may run at build time: $PWTOOL_IMPORT_TIMEOUT seconds, else 60."""
    raw = os.environ.get(IMPORT_TIMEOUT_ENV, "").strip()
    if not raw:
        return _DEFAULT_IMPORT_TIMEOUT_S
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise BuildError(f"${IMPORT_TIMEOUT_ENV} is {raw!r}. Fix: set it to a number of seconds greater than 0, "
                         "or unset it for the default of 60")
    return seconds


class _Watchdog:
    """Interrupts the engine's running wasm once ``seconds`` have passed (epoch interruption:
    a store set to a deadline of one epoch traps when the timer moves the engine's epoch on)."""

    def __init__(self, engine: wasmtime.Engine, seconds: float) -> None:
        self.fired = threading.Event()

        def expire() -> None:
            self.fired.set()
            engine.increment_epoch()

        self._timer = threading.Timer(seconds, expire)
        self._timer.daemon = True

    def __enter__(self) -> "_Watchdog":
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _compile_sources(runtime: Runtime, engine: wasmtime.Engine, sources: BundleModules, metadata: PluginMetadata,
                     plugin_dir: Path, cache: Path | None = None) -> dict[str, bytes]:
    """{module: marshalled code}, compiled by the runtime's own interpreter.

    Code compiled before with the same runtime is read from the runtime's cache
    directory, so a rebuild compiles only the files that changed (the SDK and the
    stdlib modules rarely do). Each module compiles on its own, so a cached module's
    code is the bytes a fresh compile gives, and builds stay reproducible.
    """
    cache = cache or runtime.wasm.parent / "code"
    keys = {name: hashlib.sha256(repr((runtime.key, filename, optimize)).encode() + source).hexdigest()[:32]
            for name, (_, filename, source, optimize) in sources.items()}
    compiled: dict[str, bytes] = {}
    for name, key in keys.items():
        try:
            compiled[name] = (cache / key).read_bytes()
        except OSError:
            pass
    missing = {name: entry for name, entry in sources.items() if name not in compiled}
    if missing:
        # The interpreter needs some modules (encodings) to start: cached ones go in compiled.
        modules = missing | {name: (sources[name][0], sources[name][1], code, _PRECOMPILED)
                             for name, code in compiled.items()}
        bundle = _make_bundle("compile", metadata, modules, preload=[], keep_compiler=False)
        fresh: dict[str, bytes] = marshal.loads(_run_boot(runtime, engine, bundle, metadata, plugin_dir))
        for name, code in fresh.items():
            write_atomically(cache / keys[name], code)
        compiled.update(fresh)
        prune_oldest(cache, keep=_CODE_CACHE_ENTRIES)
    return compiled


_CODE_CACHE_ENTRIES = 2048  # a few KB each; every edit of a plugin file adds one


def _make_bundle(
    mode: str, metadata: PluginMetadata, modules: BundleModules, preload: Preload, keep_compiler: bool,
    defer_plugin: bool = False,
) -> bytes:
    """The marshalled input of the runtime's boot code (build/runtime/boot/boot.py)."""
    return marshal.dumps(
        {
            "boot": BOOT_SOURCE.read_text(encoding="utf-8"),
            "mode": mode,
            "modules": modules,
            "plugin": ENTRY_MODULE,
            "keep_compiler": keep_compiler,
            "defer_plugin": defer_plugin,
            "preload": preload,
            "metadata": bundle_metadata(metadata),
        }
    )


def bundle_metadata(metadata: PluginMetadata) -> dict[str, object]:
    """The plugin's metadata as the runtime exposes it (module ``_pwtool_plugin``)."""
    return {
        "name": metadata.name,
        "root_id": metadata.root_id,
        "version": metadata.version,
        "config_json": metadata.config_json,
    }


def _display_path(source: ModuleSource, plugin_name: str) -> str:
    """The file name tracebacks show: short, stable and free of the builder's paths."""
    parts = source.name.split(".")
    relative = "/".join(parts) + ("/__init__.py" if source.is_package else ".py")
    prefix = {"plugin": plugin_name, "sdk": "<sdk>", "stdlib": "<stdlib>"}[source.origin]
    return f"{prefix}/{relative}"


@dataclass
class _BuildHost:
    """The host the runtime sees at build time: logs captured, no real proxy."""

    logs: list[tuple[int, str]] = field(default_factory=list)
    early_hostcalls: list[str] = field(default_factory=list)
    capture_stdout: bool = False
    stdout: bytearray = field(default_factory=bytearray)

    def define(self, linker: wasmtime.Linker, store: wasmtime.Store, module: wasmtime.Module) -> None:
        linker.define_wasi()
        config = wasmtime.WasiConfig()
        store.set_wasi(config)
        linker.allow_shadowing = True
        for item in module.imports:
            functype = item.type
            if not isinstance(functype, wasmtime.FuncType) or item.name is None:
                continue
            if item.module == "env":
                linker.define_func("env", item.name, functype, self._hostcall(item.name), access_caller=True)
            elif item.module == "wasi_snapshot_preview1" and item.name in ("random_get", "clock_time_get", "fd_write"):
                linker.define_func(item.module, item.name, functype, getattr(self, "_wasi_" + item.name), access_caller=True)

    def _hostcall(self, name: str) -> Callable[..., int]:
        def call(caller: wasmtime.Caller, *args: int) -> int:
            if name == "proxy_log":
                level, pointer, size = args
                self.logs.append((level, _read(caller, pointer, size).decode("utf-8", "replace")))
                return 0
            self.early_hostcalls.append(name)
            return _STATUS_UNIMPLEMENTED

        return call

    def _wasi_random_get(self, caller: wasmtime.Caller, pointer: int, size: int) -> int:
        memory = caller["memory"]
        assert isinstance(memory, wasmtime.Memory)
        memory.write(caller, bytes(size), pointer)  # deterministic builds: real randomness comes at run time
        return 0

    def _wasi_clock_time_get(self, caller: wasmtime.Caller, clock: int, precision: int, out: int) -> int:
        memory = caller["memory"]
        assert isinstance(memory, wasmtime.Memory)
        memory.write(caller, _BUILD_TIME_NS.to_bytes(8, "little"), out)
        return 0

    def _wasi_fd_write(self, caller: wasmtime.Caller, fd: int, iovs: int, count: int, written_out: int) -> int:
        memory = caller["memory"]
        assert isinstance(memory, wasmtime.Memory)
        chunks = []
        for index in range(count):
            entry = _read(caller, iovs + 8 * index, 8)
            pointer, length = int.from_bytes(entry[:4], "little"), int.from_bytes(entry[4:], "little")
            chunks.append(_read(caller, pointer, length))
        text = b"".join(chunks)
        if fd == 1 and self.capture_stdout:
            self.stdout += text
        else:
            self.logs.append((2 if fd == 1 else 4, text.decode("utf-8", "replace")))
        memory.write(caller, len(text).to_bytes(4, "little"), written_out)
        return 0


def _read(caller: wasmtime.Caller, pointer: int, size: int) -> bytes:
    memory = caller["memory"]
    assert isinstance(memory, wasmtime.Memory)
    return bytes(memory.read(caller, pointer, pointer + size))


def _boot(store: wasmtime.Store, instance: wasmtime.Instance, bundle: bytes) -> int:
    """Run the runtime's C start-up, then pwtool_boot(bundle); returns its status."""
    exports = instance.exports(store)
    _exported_func(exports, "_initialize")(store)
    pointer = _exported_func(exports, "malloc")(store, len(bundle))
    memory = exports["memory"]
    assert isinstance(memory, wasmtime.Memory)
    memory.write(store, bundle, pointer)
    return int(_exported_func(exports, "pwtool_boot")(store, pointer, len(bundle)))


def _exported_func(exports: Mapping[str, object], name: str) -> wasmtime.Func:
    func = exports[name]
    assert isinstance(func, wasmtime.Func)
    return func


def _run_boot(runtime: Runtime, engine: wasmtime.Engine, bundle: bytes, metadata: PluginMetadata,
              plugin_dir: Path) -> bytes:
    """Boot a throwaway instance (compile mode) and return what it wrote to stdout."""
    host = _BuildHost(capture_stdout=True)
    try:
        store, instance, _ = instantiate(runtime.wasm.read_bytes(), host.define, engine,
                                         runtime.wasm.parent / "compiled", epoch_deadline=1)
        status = _boot(store, instance, bundle)
    except (wasmtime.WasmtimeError, wasmtime.Trap) as error:
        raise BuildError(f"{plugin_dir}: the runtime trapped while compiling plugin {metadata.name!r}: {error}") from None
    if status != 0:
        raise BuildError(_explain_failure(plugin_dir, metadata, host))
    return bytes(host.stdout)


def _snapshot_plugin(
    runtime: Runtime, engine: wasmtime.Engine, bundle: bytes, metadata: PluginMetadata, plugin_dir: Path,
    keep_compiler: bool, import_timeout: float = _DEFAULT_IMPORT_TIMEOUT_S,
) -> bytes:
    runtime_bytes = runtime.wasm.read_bytes()
    host = _BuildHost(capture_stdout=True)

    def initialize(store: wasmtime.Store, instance: wasmtime.Instance) -> None:
        if _boot(store, instance, bundle) != 0:
            raise BuildError(_explain_failure(plugin_dir, metadata, host))

    watchdog = _Watchdog(engine, import_timeout)
    try:
        with watchdog:
            module = snapshot(
                runtime_bytes,
                host.define,
                initialize,
                initialize_with="pwtool_snapshot_initialize",
                drop_exports=("pwtool_boot",),
                engine=engine,
                compile_cache=runtime.wasm.parent / "compiled",
                epoch_deadline=1,
            )
    except (wasmtime.WasmtimeError, wasmtime.Trap) as error:
        if watchdog.fired.is_set():
            raise BuildError(
                f"{plugin_dir / (ENTRY_MODULE + '.py')}: plugin {metadata.name!r}: importing plugin.py (with what it "
                f"imports) did not finish within {import_timeout:g} s: does module-level code loop forever? Fix: "
                "move long-running work out of module-level code into a callback such as on_configure; if "
                f"the import really needs longer, set ${IMPORT_TIMEOUT_ENV} to more seconds") from None
        raise BuildError(f"{plugin_dir}: the runtime trapped while importing plugin {metadata.name!r}: {error}") from None
    if not keep_compiler:
        module, _ = strip_build_only_code(module, runtime.wasm.parent)
    parsed_out = Module.parse(module)
    unexported = _unused_callbacks(bytes(host.stdout), plugin_dir, metadata)
    parsed_out.set_exports([export for export in parsed_out.exports() if export.name not in unexported])
    parsed_out.drop_custom_sections()
    info = metadata.to_json() | {
        "pwtool": __version__, "runtime": runtime.key, "python": "3.11", "compiler": keep_compiler,
    }
    parsed_out.set_custom_section(METADATA_SECTION, json.dumps(info, sort_keys=True).encode())
    assert any(e.name == "_initialize" and e.kind == KIND_FUNC for e in parsed_out.exports())
    return parsed_out.to_bytes()


_UNEXPORTED_MARKER = "PWTOOL-UNEXPORTED "
_MAY_LEAVE_OUT = frozenset({
    "on_log", "on_done", "on_request_headers", "on_response_headers",
    "on_request_body", "on_response_body", "on_request_trailers", "on_response_trailers",
    "on_downstream_data", "on_upstream_data",
})


def _unused_callbacks(stdout: bytes, plugin_dir: Path, metadata: PluginMetadata) -> set[str]:
    """The ``proxy_on_*`` exports to drop, from the runtime's ``PWTOOL-UNEXPORTED`` line
    (build/runtime/boot/boot.py): callbacks no context class of the plugin overrides."""
    lines = [line for line in stdout.decode("utf-8", "replace").splitlines() if line.startswith(_UNEXPORTED_MARKER)]
    if len(lines) != 1:
        raise BuildError(f"{plugin_dir}: building plugin {metadata.name!r}: the runtime did not report which "
                         "callbacks the module uses; rebuild the runtime (remove the pwtool cache directory)")
    names = {name for name in lines[0][len(_UNEXPORTED_MARKER):].split(",") if name}
    if not names <= _MAY_LEAVE_OUT:
        raise BuildError(f"{plugin_dir}: building plugin {metadata.name!r}: the runtime asked to leave out "
                         f"{sorted(names - _MAY_LEAVE_OUT)}, which a module must export")
    return {"proxy_" + name for name in names}


def _real_paths(text: str, plugin_dir: Path, metadata: PluginMetadata) -> str:
    """``text`` with the file names the interpreter knows the plugin's own modules by
    (``NAME/plugin.py``, see `_display_path`) replaced by their paths in ``plugin_dir``:
    the directory need not be named after the plugin."""
    prefix = re.compile(r"(?<![\w<>./-])" + re.escape(metadata.name + "/") + r"((?:\w+/)*\w+\.py)\b")

    def real(match: re.Match[str]) -> str:
        path = plugin_dir / match.group(1)
        return str(path) if path.is_file() else match.group(0)

    return prefix.sub(real, text)


def _explain_failure(plugin_dir: Path, metadata: PluginMetadata, host: _BuildHost) -> str:
    text = "".join(message if message.endswith("\n") else message + "\n" for _, message in host.logs)
    text = _real_paths(text, plugin_dir, metadata)
    if _NOT_REGISTERED in text:
        return (f"{plugin_dir / (ENTRY_MODULE + '.py')}: plugin {metadata.name!r} never calls "
                "proxywasm.register(...), so Envoy would refuse to start the module (on_vm_start fails). Fix: call "
                "proxywasm.register(YourRootContext) at the end of plugin.py.")
    marker = "PWTOOL-BUILD-ERROR "
    if marker in text:
        detail = text[text.index(marker) + len(marker):]
        where, _, trace = detail.partition("\n")
        last = trace.strip().splitlines()[-1] if trace.strip() else "unknown error"
        fix = "Fix the error above"
        if host.early_hostcalls:
            fix = (f"Fix: {', '.join(sorted(set(host.early_hostcalls)))} ran while the plugin was being "
                   "imported; hostcalls are only available from callbacks such as on_vm_start or "
                   "on_configure, so move the call there")
        elif "ModuleNotFoundError" in last or "ImportError" in last:
            fix = ("Fix: the module (or a C extension it needs) is not available in the wasm runtime; "
                   "use another module, or vendor a pure-Python one into the plugin directory")
        return (f"{plugin_dir}: plugin {metadata.name!r} failed during `{where}`: {last}\n"
                f"{trace.rstrip()}\n{fix}.")
    return f"{plugin_dir}: plugin {metadata.name!r} could not be loaded by the runtime:\n{text.rstrip()}"
