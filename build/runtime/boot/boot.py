"""Boot code run by the embedded interpreter at plugin build time (never on the host).

The shim's ``pwtool_boot`` executes this source with ``BUNDLE`` bound to the marshalled
build bundle, after the interpreter's core start-up and before its main start-up:
only builtins, ``sys``, ``marshal`` and the frozen import machinery exist yet, so
this file imports nothing else at module level.

A build runs it twice, in two fresh instances (see pwtool.build.plugin):
  mode "compile": compile every module's source and write {name: marshalled code} to
            stdout; the compiler's garbage dies with that instance;
  mode "load":    import the plugin from that marshalled code, so the instance that is
            snapshotted allocates little besides what stays alive: a denser heap, a
            smaller module, fewer pages touched in each VM; then write to stdout the
            line ``PWTOOL-UNEXPORTED name,...``: the callbacks the module need not
            export (the SDK's `leave_out_unused_callbacks`).

BUNDLE keys:
  mode:     "compile" or "load"
  modules:  {name: (is_package, filename, payload, optimize)} for every importable
            module; the payload is source (compiled with `optimize`: 2, no docstrings or
            asserts, for the stdlib and the SDK; 0 for the plugin's own code) or, with
            optimize -1, marshalled code
  plugin:   the module to import (the plugin's ``plugin.py``)
  preload:  [(module, importer file, line, required)]: what the plugin and the SDK
            import anywhere (functions included), imported now so that it is in the
            snapshot and a missing C extension fails the build instead of a request
  metadata: the plugin's metadata, exposed to the SDK as module ``_pwtool_plugin``
  keep_compiler: False when the snapshot's parser and compiler are stripped: source
            compilation at run time then raises a RuntimeError instead of trapping

Annotations use builtin types only: `typing` cannot be imported this early.
"""

import sys

_bundle: dict = BUNDLE  # type: ignore[name-defined]  # noqa: F821 - injected by the shim
_modules: dict = _bundle["modules"]
_spec_type = sys.modules["_frozen_importlib"].ModuleSpec
_PRECOMPILED = -1  # in place of `optimize`: the payload is marshalled code


class _BundleImporter:
    """Finds and loads modules from the bundle: sources compiled by this interpreter."""

    @classmethod
    def find_spec(cls, name: str, path: object = None, target: object = None) -> object:
        entry = _modules.get(name)
        if entry is None:
            return None
        is_package, filename = entry[0], entry[1]
        spec = _spec_type(name, cls, origin=filename, is_package=is_package)
        spec.has_location = True
        if is_package:
            spec.submodule_search_locations = []
        return spec

    @staticmethod
    def create_module(spec: object) -> None:
        return None

    @staticmethod
    def exec_module(module: object) -> None:
        is_package, filename, payload, optimize = _modules[module.__spec__.name]
        if optimize == _PRECOMPILED:
            code = __import__("marshal").loads(payload)
        else:
            code = compile(payload, filename, "exec", dont_inherit=True, optimize=optimize)
        exec(code, module.__dict__)

    @staticmethod
    def get_source(name: str) -> "str | None":
        entry = _modules.get(name)
        if entry is None or entry[3] == _PRECOMPILED:
            return None
        return entry[2].decode("utf-8", errors="replace")


def install_importer() -> bool:
    """Make bundled modules importable; runs before `encodings` is first needed."""
    sys.meta_path.append(_BundleImporter)
    return True


class _LogStream:
    """stdout/stderr of the plugin: whole lines go to proxy_log."""

    def __init__(self, level: int) -> None:
        self._level = level
        self._pending = ""

    def write(self, text: str) -> int:
        text = self._pending + str(text)
        *lines, self._pending = text.split("\n")
        for line in lines:
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            self._emit(self._pending)
            self._pending = ""

    def _emit(self, line: str) -> None:
        import _proxywasm

        try:
            _proxywasm.log(self._level, line)
        except Exception:
            pass

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return "utf-8"


def _install_metadata(metadata: dict) -> None:
    module = type(sys)("_pwtool_plugin")
    module.METADATA = metadata
    module.NAME = metadata.get("name", "")
    module.ROOT_ID = metadata.get("root_id", "")
    module.DEFAULT_CONFIG = metadata.get("config_json", b"")
    sys.modules["_pwtool_plugin"] = module


def _format(error: BaseException) -> str:
    """The SDK's traceback formatter (the `traceback` module is not bundled)."""
    try:
        from proxywasm._log import format_exception

        return format_exception(error)
    except Exception:  # noqa: BLE001 - the plugin may not have imported the SDK
        lines = ["Traceback (most recent call last):"]
        tb = error.__traceback__
        while tb is not None:
            code = tb.tb_frame.f_code
            lines.append(f'  File "{code.co_filename}", line {tb.tb_lineno}, in {code.co_name}')
            tb = tb.tb_next
        lines.append(f"{type(error).__name__}: {error}")
        return "\n".join(lines)


def _report(error: BaseException, context: str) -> None:
    sys.__stderr__.write(f"PWTOOL-BUILD-ERROR {context}\n{_format(error)}\n")


def _report_unused_callbacks(keep_all: bool) -> None:
    """Tell the build which callbacks the module need not export (one stdout line)."""
    import os

    dispatcher = sys.modules.get("proxywasm._dispatcher")  # absent if the plugin skips the SDK
    unused = dispatcher.leave_out_unused_callbacks() if dispatcher is not None and not keep_all else []
    os.write(1, f"PWTOOL-UNEXPORTED {','.join(unused)}\n".encode())


DEV_MAGIC = b"pwtool-dev-plugin:"


def _defer_plugin_import() -> None:
    """A dev-loop module (``pwtool run --watch``): the entry module imported only the SDK
    and stands aside; the plugin comes in the VM configuration and is imported when
    Envoy creates the VM's first root context (`proxywasm.defer_plugin_import`)."""
    from proxywasm._dispatcher import defer_plugin_import

    sys.modules.pop(_bundle["plugin"], None)
    defer_plugin_import(_import_plugin_from_vm)


def _import_plugin_from_vm() -> bytes:
    """Import the plugin whose code the VM configuration carries (DEV_MAGIC, then the
    base64 of a marshalled dict: modules, plugin, preload, metadata, keep_compiler,
    vm_configuration); return the VM configuration meant for the plugin."""
    import binascii
    import marshal

    from proxywasm import _hostcalls
    from proxywasm._types import BufferType

    try:
        size = _hostcalls.get_buffer_status(BufferType.VM_CONFIGURATION)[0]
        raw = _hostcalls.get_buffer_bytes(BufferType.VM_CONFIGURATION, 0, size) if size else b""
    except Exception:  # noqa: BLE001 - no VM configuration at all
        raw = b""
    if not raw.startswith(DEV_MAGIC):
        raise RuntimeError("this module is the pwtool dev loop's: it holds no plugin and loads one from "
                           "its VM configuration, which is missing. Serve it with `pwtool run --watch`, "
                           "or deploy the module `pwtool build` makes")
    bundle = marshal.loads(binascii.a2b_base64(raw[len(DEV_MAGIC):]))
    _modules.update(bundle["modules"])
    _install_metadata(bundle["metadata"])
    plugin = bundle["plugin"]
    sys.modules.pop(plugin, None)
    __import__(plugin)
    failure = _preload(bundle["preload"])
    if failure is not None:
        error, where = failure
        raise ImportError(f"{where}: {error}") from error
    if not bundle["keep_compiler"]:
        _forbid_runtime_compilation()  # as in the module `pwtool build` makes
    return bundle["vm_configuration"]


def _preload(entries: list) -> "tuple[BaseException, str] | None":
    """Import what the plugin and the SDK import anywhere (functions included), after
    the plugin; the first failure of a required one, with where it is imported, or None."""
    for module, importer, line, required in entries:
        if module in sys.modules:
            continue
        try:
            __import__(module)
        except BaseException as error:  # noqa: BLE001 - reported by the caller
            if required:
                return error, f"import {module} at {importer}:{line}"
    return None


def _forget_imported_modules() -> None:
    """Drop the code of modules already imported; the rest stays importable (marshalled)."""
    for name in list(_modules):
        if name in sys.modules:
            del _modules[name]


def _forbid_runtime_compilation() -> None:
    """compile/exec/eval of source text raise instead of reaching stripped code."""
    import builtins

    original_exec, original_eval = builtins.exec, builtins.eval
    message = (
        "compiling Python source at run time is not available: the module was built without "
        "the Python compiler to keep it small. Do it at import time (module level), or rebuild "
        "with `pwtool build --keep-compiler`"
    )

    def compile(source: object, filename: object, mode: str, flags: int = 0, dont_inherit: bool = False,
                optimize: int = -1, **kwargs: object) -> object:
        raise RuntimeError(message)

    def exec(source: object, globals: "dict | None" = None, locals: object = None, **kwargs: object) -> None:
        if isinstance(source, (str, bytes, bytearray)):
            raise RuntimeError(message)
        if globals is None:
            frame = sys._getframe(1)
            globals, locals = frame.f_globals, frame.f_locals if locals is None else locals
        return original_exec(source, globals, locals, **kwargs)

    def eval(source: object, globals: "dict | None" = None, locals: object = None) -> object:
        if isinstance(source, (str, bytes, bytearray)):
            raise RuntimeError(message)
        if globals is None:
            frame = sys._getframe(1)
            globals, locals = frame.f_globals, frame.f_locals if locals is None else locals
        return original_eval(source, globals, locals)

    builtins.compile, builtins.exec, builtins.eval = compile, exec, eval


def _cap_recursion_limit() -> None:
    """`sys.setrecursionlimit` refuses to go above the default (600 in CPython's WASI
    build). A Python call costs no native stack in 3.11, but recursion through C
    (``__getattr__``, ``__eq__``, ``__init__``...) does, and V8 stops a VM whose native
    stack overflows: from then on Envoy answers every request 503 (fail closed), or
    reloads the VM (FAIL_RELOAD). A limit of 1200 already lets that happen."""
    original = sys.setrecursionlimit
    default = sys.getrecursionlimit()

    def setrecursionlimit(limit: int) -> None:
        if limit > default:
            raise ValueError(
                f"sys.setrecursionlimit({limit}): a proxy-wasm plugin cannot raise the recursion limit above "
                f"{default}; deeper recursion through C code overflows V8's stack, which stops the VM"
            )
        original(limit)

    sys.setrecursionlimit = setrecursionlimit


def main() -> bool:
    """The step the shim calls once the interpreter has started."""
    return compile_modules() if _bundle["mode"] == "compile" else load_plugin()


def compile_modules() -> bool:
    """Compile every bundled module given as source; write {name: marshalled code} to stdout.

    Modules given already compiled (from the build's cache) are there for start-up only."""
    import marshal
    import os

    compiled = {}
    for name, (is_package, filename, source, optimize) in _modules.items():
        if optimize == _PRECOMPILED:
            continue
        try:
            compiled[name] = marshal.dumps(compile(source, filename, "exec", dont_inherit=True, optimize=optimize))
        except SyntaxError as error:
            _report(error, f"compile {filename}")
            return False
    payload = memoryview(marshal.dumps(compiled))
    while payload:
        payload = payload[os.write(1, payload):]
    return True


def load_plugin() -> bool:
    """Import the plugin and what it imports; report failures with their traceback."""
    sys.stdout = _LogStream(2)
    _cap_recursion_limit()
    _install_metadata(_bundle["metadata"])
    plugin = _bundle["plugin"]
    try:
        __import__(plugin)
    except BaseException as error:  # noqa: BLE001 - reported to the build host verbatim
        _report(error, f"import {plugin}")
        return False
    failure = _preload(_bundle["preload"])
    if failure is not None:
        _report(*failure)
        return False
    defer = _bundle.get("defer_plugin", False)
    dispatcher = sys.modules.get("proxywasm._dispatcher")  # absent if the plugin skips the SDK
    if not defer and dispatcher is not None and not dispatcher.registrations():
        sys.__stderr__.write("PWTOOL-NOT-REGISTERED\n")  # Envoy could not start the module
        return False
    if defer:
        _defer_plugin_import()
    _report_unused_callbacks(keep_all=defer)
    _forget_imported_modules()
    if not _bundle["keep_compiler"]:
        _forbid_runtime_compilation()
    sys.stderr = _LogStream(4)
    _bundle.clear()
    # What only the build needed stays out of the snapshot (its code would be kept alive
    # by this module's namespace).
    needed_later = ("_install_metadata", "_import_plugin_from_vm", "_preload", "_forbid_runtime_compilation")
    for name in ("install_importer", "main", "compile_modules", "load_plugin", "_report", "_format",
                 "_forget_imported_modules", "_report_unused_callbacks", "_defer_plugin_import",
                 "_cap_recursion_limit",
                 *(() if defer else needed_later)):
        globals().pop(name, None)
    import gc

    gc.collect()
    # Everything alive now lives for the VM's lifetime: keep the collector from walking
    # it (and from touching, so copying, every page of the snapshot in each VM).
    gc.freeze()
    return True
