"""`pwtool build`: import checks, build-time errors, failure behaviour, compiler stripping."""

from __future__ import annotations

import json
import marshal
import re
import shutil
import uuid
from pathlib import Path

import pytest

from pwtool.build import BuildError, PluginError, build_plugin, load_metadata
from pwtool.build import plugin as plugin_build
from pwtool.build.inspect import inspect_module
from pwtool.build.runtime.recipe import Runtime, ensure_runtime
from pwtool.emulator import Action, Emulator, LogLevel, PluginStartError

PLUGINS = Path(__file__).parent / "plugins"


def _build(name: str, tmp_path: Path, **options: object) -> Path:
    return build_plugin(PLUGINS / name, tmp_path / f"{name}.wasm", **options).path  # type: ignore[arg-type]


def test_unsatisfied_import_names_module_file_and_line(tmp_path: Path) -> None:
    with pytest.raises(PluginError) as error:
        _build("bad_import", tmp_path)
    message = str(error.value)
    assert "bad_import/plugin.py:3" in message and "import requests" in message and "Fix:" in message


def test_import_inside_a_function_is_checked_too(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match=r"lazy_bad_import/plugin.py:6: `import yaml`"):
        _build("lazy_bad_import", tmp_path)


def test_missing_c_extension_fails_the_build_not_a_request(tmp_path: Path) -> None:
    with pytest.raises(BuildError) as error:
        _build("missing_c_extension", tmp_path)
    message = str(error.value)
    assert "missing_c_extension" in message and "_socket" in message and "Fix:" in message


def test_exception_at_import_time_reports_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(BuildError) as error:
        _build("raises_at_import", tmp_path)
    message = str(error.value)
    assert "KeyError: 'missing'" in message
    assert 'raises_at_import/plugin.py", line 7' in message


def _plugin(tmp_path: Path, directory: str, name: str, files: dict[str, str | bytes]) -> Path:
    plugin = tmp_path / directory
    plugin.mkdir()
    (plugin / "plugin.toml").write_text(f'name = "{name}"\n')
    for file, content in files.items():
        (plugin / file).write_bytes(content.encode() if isinstance(content, str) else content)
    return plugin


def test_an_import_failure_names_the_real_files_not_the_plugin_name(tmp_path: Path) -> None:
    # The interpreter knows the plugin's files as NAME/...; the directory here is raise/, the name base.
    plugin = _plugin(tmp_path, "raise", "base", {
        "plugin.py": "import proxywasm\n\nimport helper\n",
        "helper.py": "def explode():\n    raise ValueError('boom')\n\n\nexplode()\n",
    })
    with pytest.raises(BuildError) as error:
        build_plugin(plugin, tmp_path / "raise.wasm")
    message = str(error.value)
    assert f'File "{plugin / "plugin.py"}", line 3, in <module>' in message
    assert f'File "{plugin / "helper.py"}", line 2, in explode' in message
    assert "base/" not in message and "ValueError: boom" in message


def test_a_nul_byte_in_plugin_py_says_where(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path, "nul", "nul", {"plugin.py": b"import proxywasm\nx = 1\ny = 'a\0b'\n"})
    with pytest.raises(PluginError) as error:
        build_plugin(plugin, tmp_path / "nul.wasm")
    message = str(error.value)
    assert message.startswith(f"{plugin / 'plugin.py'}:3: syntax error: a NUL byte") and "column 7" in message
    assert "None" not in message and "Fix:" in message


def test_recursion_at_import_collapses_repeated_frames(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path, "deep", "deep", {
        "plugin.py": "import proxywasm\n\n\ndef down(n):\n    return down(n + 1)\n\n\ndown(0)\n"})
    with pytest.raises(BuildError) as error:
        build_plugin(plugin, tmp_path / "deep.wasm")
    message = str(error.value)
    frame = f'  File "{plugin / "plugin.py"}", line 5, in down'
    assert message.count(frame) == 3 and "RecursionError" in message
    assert re.search(r"\n  \[Previous line repeated \d{2,} more times\]\n", message)
    assert len(message.splitlines()) < 40


def test_a_c_extension_in_the_plugin_directory_is_explained(tmp_path: Path) -> None:
    plugin = _plugin(tmp_path, "cext", "cext", {"plugin.py": "import proxywasm\nimport fastmod\n",
                                                "fastmod.cpython-311-x86_64-linux-gnu.so": b"\x7fELF"})
    with pytest.raises(PluginError) as error:
        build_plugin(plugin, tmp_path / "cext.wasm")
    message = str(error.value)
    assert f"plugin.py:2: `import fastmod` finds only {plugin / 'fastmod.cpython-311-x86_64-linux-gnu.so'}" in message
    assert "C extensions cannot run inside the wasm module" in message and "pure-Python alternative" in message


def test_hostcall_at_import_time_is_explained(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="only available from callbacks"):
        _build("hostcall_at_import", tmp_path)


def test_metadata_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    plugin = tmp_path / "p"
    plugin.mkdir()
    (plugin / "plugin.py").write_text("import proxywasm\n")
    with pytest.raises(PluginError, match=r"plugin.toml: missing. Fix: create it"):
        load_metadata(plugin)
    (plugin / "plugin.toml").write_text('name = "bad name!"\n')
    with pytest.raises(PluginError, match="`name` must be"):
        load_metadata(plugin)
    (plugin / "plugin.toml").write_text('name = "p"\ncolour = "red"\n')
    with pytest.raises(PluginError, match="unknown key"):
        load_metadata(plugin)
    (plugin / "plugin.toml").write_text('name = "p"\nconfig = 3\n')
    with pytest.raises(PluginError, match="must be a table"):
        load_metadata(plugin)
    (plugin / "plugin.toml").write_text("name = \n")
    with pytest.raises(PluginError, match="not valid TOML"):
        load_metadata(plugin)


def test_local_package_guarded_import_and_stdlib_work_in_wasm(tmp_path: Path) -> None:
    wasm = _build("local_package", tmp_path)
    report = inspect_module(wasm.read_bytes())
    assert report.envoy_loadable and report.abi_versions == ["0.2.1"]
    assert report.plugin is not None and report.plugin["config"] == {"suffix": "!"}
    with Emulator() as emulator:
        plugin = emulator.load(wasm, root_id="lp")
        stream = plugin.http_stream()
        action = stream.send_request_headers({":path": "/", ":method": "GET", ":authority": "example.com", "x-word": "quiet"})
        assert action == Action.CONTINUE
        sent = stream.upstream_request.headers
        assert sent["x-shout"] == "QUIET!" and sent["x-b64"] == "cXVpZXQ=" and sent["x-numpy"] == "no"


def test_builds_are_reproducible(tmp_path: Path) -> None:
    first = build_plugin(PLUGINS / "local_package", tmp_path / "a.wasm")
    second = build_plugin(PLUGINS / "local_package", tmp_path / "b.wasm")
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()



def test_a_rebuild_compiles_only_what_changed_and_gives_the_same_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = tmp_path / "local_package"
    shutil.copytree(PLUGINS / "local_package", plugin)
    build_plugin(plugin, tmp_path / "first.wasm")
    with (plugin / "plugin.py").open("a") as source:
        source.write(f"\nEDITED = {uuid.uuid4().hex!r}  # new to the cache\n")
    compiled: list[list[str]] = []
    real_run_boot = plugin_build._run_boot

    def recording_run_boot(runtime: Runtime, engine: object, bundle: bytes, *args: object) -> bytes:
        modules = marshal.loads(bundle)["modules"]
        compiled.append(sorted(name for name, entry in modules.items() if entry[3] != plugin_build._PRECOMPILED))
        return real_run_boot(runtime, engine, bundle, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(plugin_build, "_run_boot", recording_run_boot)
    warm = build_plugin(plugin, tmp_path / "warm.wasm")
    assert compiled == [["plugin"]]  # the SDK and stdlib modules came from the cache
    # The cached code is what a fresh compile of everything in one instance gives.
    code_cache = ensure_runtime().wasm.parent / "code"
    shutil.rmtree(code_cache)
    cold = build_plugin(plugin, tmp_path / "cold.wasm")
    assert len(compiled) == 2 and len(compiled[1]) == cold.module_count
    assert cold.path.read_bytes() == warm.path.read_bytes()
    assert len(list(code_cache.iterdir())) == cold.module_count

@pytest.fixture(scope="module")
def failing_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build("failing", tmp_path_factory.mktemp("failing"))


def test_exception_in_callback_logs_traceback_and_fails_closed(failing_wasm: Path) -> None:
    with Emulator() as emulator:
        plugin = emulator.load(failing_wasm)
        stream = plugin.http_stream()
        stream.send_request_headers({":path": "/", ":method": "GET", ":authority": "example.com", "x-fail": "raise"})
        assert stream.local_response is not None and stream.local_response.status == 500
        errors = "\n".join(plugin.logs.error)
        assert "Traceback (most recent call last)" in errors
        assert 'failing/plugin.py", line 18, in explode' in errors
        assert "ValueError: boom from the plugin" in errors
        # the VM survives: the next request goes through
        ok = plugin.http_stream()
        assert ok.send_request_headers({":path": "/", ":method": "GET", ":authority": "example.com"}) == Action.CONTINUE


def test_configure_failure_returns_false_with_the_error_logged(failing_wasm: Path) -> None:
    with Emulator() as emulator:
        with pytest.raises(PluginStartError):
            emulator.load(failing_wasm, config=b"refuse")
        assert emulator.logs.contains("RuntimeError: configuration refused by the plugin", LogLevel.ERROR)
        assert emulator.logs.contains("Traceback (most recent call last)", LogLevel.ERROR)


def test_runtime_compilation_is_a_clear_error_without_the_compiler(failing_wasm: Path) -> None:
    with Emulator() as emulator:
        plugin = emulator.load(failing_wasm)
        stream = plugin.http_stream()
        stream.send_request_headers({":path": "/", ":method": "GET", ":authority": "example.com", "x-fail": "exec"})
        assert stream.local_response is not None and stream.local_response.status == 500
        assert plugin.logs.contains("--keep-compiler", LogLevel.ERROR)


def test_keep_compiler_keeps_exec_working(tmp_path: Path) -> None:
    wasm = _build("failing", tmp_path, keep_compiler=True)
    with Emulator() as emulator:
        plugin = emulator.load(wasm)
        stream = plugin.http_stream()
        stream.send_request_headers({":path": "/", ":method": "GET", ":authority": "example.com", "x-fail": "exec"})
        assert stream.local_response is None
        assert stream.upstream_request.headers["x-exec"] == "42"
    stripped = _build("failing", tmp_path / "stripped")
    assert wasm.stat().st_size > stripped.stat().st_size + 300_000


def test_the_module_imports_only_what_envoy_offers(failing_wasm: Path) -> None:
    report = inspect_module(failing_wasm.read_bytes())
    assert report.refused_imports == []
    modules = {item["module"] for item in report.imports}
    assert modules == {"env", "wasi_snapshot_preview1"}
    assert all(item["name"].startswith("proxy_") for item in report.imports if item["module"] == "env")
    exports = {item["name"] for item in report.exports}
    assert {"proxy_abi_version_0_2_1", "proxy_on_memory_allocate", "malloc", "_initialize"} <= exports
    assert "pwtool_boot" not in exports
    assert json.loads(json.dumps(report.to_json()))["envoy_loadable"] is True


def test_each_vm_gets_its_own_random_sequence(tmp_path: Path) -> None:
    wasm = _build("randomness", tmp_path)
    seen = set()
    with Emulator() as emulator:
        plugin = emulator.load(wasm, workers=3)
        for worker in range(3):
            stream = plugin.http_stream(worker=worker)
            stream.send_request_headers({":path": "/", ":method": "GET", ":authority": "example.com"})
            assert stream.local_response is not None
            seen.add(stream.local_response.headers["x-random"])
    assert len(seen) == 3
