"""The `pwtool build` and `pwtool inspect` commands, and --help everywhere."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from pwtool_zig import compile_c

from pwtool.cli import main

REPO = Path(__file__).resolve().parents[2]
C_MODULES = REPO / "tests" / "emulator" / "c_modules"


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path, asked the way click asks (the top group imports commands lazily)."""
    context = click.Context(group)
    found = []
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, f"`pwtool {' '.join(prefix + (name,))}` is listed but cannot be loaded"
        found.append(prefix + (name,))
        if isinstance(command, click.Group):
            found += _commands(command, prefix + (name,))
    return found


def test_the_command_list_is_complete() -> None:
    # Lazy loading must not hide a command: each module under pwtool/cli defines one.
    modules = {path.stem for path in (REPO / "pwtool" / "cli").glob("*.py") if not path.stem.startswith("_")}
    assert {command[0] for command in _commands(main)} == modules
    assert len(_commands(main)) >= 9  # manifest has subcommands


@pytest.mark.parametrize("command", [()] + _commands(main), ids=lambda c: " ".join(c) or "pwtool")
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and len(result.output.splitlines()) > 3


def test_build_json_and_inspect(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "hello.wasm"
    built = runner.invoke(main, ["build", str(REPO / "plugins" / "hello"), "-o", str(out), "--json"])
    assert built.exit_code == 0, built.output
    report = json.loads(built.stdout)
    assert report["path"] == str(out) and report["size"] == out.stat().st_size
    assert report["plugin"]["name"] == "hello" and len(report["sha256"]) == 64

    inspected = runner.invoke(main, ["inspect", str(out)])
    assert inspected.exit_code == 0, inspected.output
    assert "abi          0.2.1" in inspected.output and "envoy        loads it" in inspected.output
    assert report["sha256"] in inspected.output


def test_build_error_exits_1_with_the_file_and_fix() -> None:
    result = CliRunner().invoke(main, ["build", str(REPO / "tests" / "build" / "plugins" / "bad_import")])
    assert result.exit_code == 1
    assert "plugin.py:3" in result.output and "Fix:" in result.output


def test_build_of_a_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["build", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "not a directory" in result.output


def test_inspect_a_module_from_another_toolchain(request: pytest.FixtureRequest) -> None:
    wasm = compile_c(C_MODULES / "filter.c", Path(request.config.cache.mkdir("pwtool-c-modules")))
    result = CliRunner().invoke(main, ["inspect", str(wasm), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["abi_versions"] == ["0.2.1"] and report["envoy_loadable"] and report["plugin"] is None
    assert {"module": "env", "name": "proxy_log", "kind": "func", "type": "(i32, i32, i32) -> (i32)"} in report["imports"]


def test_inspect_refuses_what_envoy_refuses(tmp_path: Path) -> None:
    source = tmp_path / "fs.c"
    source.write_text(
        '#include <stdio.h>\n'
        '__attribute__((export_name("proxy_abi_version_0_2_1"))) void abi(void) {}\n'
        '__attribute__((export_name("read_file"))) int read_file(void) { FILE *f = fopen("/etc/hosts", "r"); return f != 0; }\n'
    )
    wasm = compile_c(source, tmp_path)
    result = CliRunner().invoke(main, ["inspect", str(wasm), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert "wasi_snapshot_preview1.path_open" in report["refused_imports"]
    assert not report["envoy_loadable"]


def test_inspect_rejects_files_that_are_not_core_modules(tmp_path: Path) -> None:
    component = tmp_path / "component.wasm"
    component.write_bytes(b"\0asm\x0d\0\x01\0")  # a component's header
    result = CliRunner().invoke(main, ["inspect", str(component)])
    assert result.exit_code == 1 and "component" in result.output


def test_inspect_rejects_a_module_cut_short_at_a_section(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from pwtool.build.wasm_binary import SECTION_CODE, Module

    wasm = compile_c(C_MODULES / "filter.c", Path(request.config.cache.mkdir("pwtool-c-modules")))
    sections = Module.parse(wasm.read_bytes()).sections
    cut = tmp_path / "cut.wasm"  # what a download that stopped between two sections leaves
    cut.write_bytes(Module(sections[:[s.id for s in sections].index(SECTION_CODE)]).to_bytes())
    result = CliRunner().invoke(main, ["inspect", str(cut)])
    _assert_clean_error(result, str(cut), "function bodies but holds 0: the file is truncated")


def _copy_hello(tmp_path: Path) -> Path:
    plugin = tmp_path / "hello"
    plugin.mkdir()
    for name in ("plugin.py", "plugin.toml"):
        (plugin / name).write_bytes((REPO / "plugins" / "hello" / name).read_bytes())
    return plugin


def _assert_clean_error(result: Any, *fragments: str, exit_code: int = 1) -> None:
    """Exit status, `Error: ...` and no traceback."""
    assert result.exit_code == exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Error: " in result.stderr and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize("victim", ["plugin.py", "plugin.toml", "test_plugin.py", "helpers/util.py"])
def test_build_refuses_to_overwrite_a_plugin_source(tmp_path: Path, victim: str) -> None:
    plugin = _copy_hello(tmp_path)
    target = plugin / victim
    if not target.exists():
        target.parent.mkdir(exist_ok=True)
        target.write_text("# mine\n")
    before = target.read_bytes()
    result = CliRunner().invoke(main, ["build", str(plugin), "-o", str(target)])
    _assert_clean_error(result, victim.split("/")[-1], "plugin 'hello'", "Fix:")
    assert target.read_bytes() == before


def test_build_overwrites_its_previous_output_in_the_plugin_directory(tmp_path: Path) -> None:
    plugin = _copy_hello(tmp_path)
    out = plugin / "dist" / "hello.wasm"
    for _ in range(2):  # the second build overwrites the first one's module
        result = CliRunner().invoke(main, ["build", str(plugin), "-o", str(out)])
        assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\0asm")


@pytest.mark.parametrize("output", ["/proc/x.wasm", "/sys/x.wasm", "afile/x.wasm", ""])
def test_build_to_an_impossible_output_is_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     output: str) -> None:
    plugin = _copy_hello(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a file, not a directory")
    result = CliRunner().invoke(main, ["build", str(plugin), "-o", output])
    _assert_clean_error(result, "plugin 'hello'", "Fix:", output.split("/")[0] if output else "''")


def test_build_when_dist_is_a_file_is_a_message_also_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = _copy_hello(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dist").write_text("not a directory")
    result = CliRunner().invoke(main, ["build", str(plugin), "--json"])
    _assert_clean_error(result, "dist is a file", "Fix:")
    assert "dist is a file" in json.loads(result.stdout)["error"]


def test_a_plugin_that_registers_nothing_fails_the_build(tmp_path: Path) -> None:
    plugin = tmp_path / "unregistered"
    plugin.mkdir()
    (plugin / "plugin.toml").write_text('name = "unregistered"\n')
    (plugin / "plugin.py").write_text(
        "import proxywasm\nfrom proxywasm import RootContext\n\n\nclass Forgotten(RootContext):\n    pass\n")
    result = CliRunner().invoke(main, ["build", str(plugin), "-o", str(tmp_path / "u.wasm")])
    _assert_clean_error(result, "plugin.py", "proxywasm.register(YourRootContext) at the end of plugin.py")
    assert not (tmp_path / "u.wasm").exists()


@pytest.mark.parametrize("unreadable", ["plugin.toml", "helper.py"])
def test_an_unreadable_plugin_file_is_a_message(tmp_path: Path, unreadable: str) -> None:
    plugin = _copy_hello(tmp_path)
    (plugin / "plugin.py").write_text("import helper\n" + (plugin / "plugin.py").read_text())
    if unreadable != "helper.py":
        (plugin / "helper.py").write_text("")
    (plugin / unreadable).unlink(missing_ok=True)
    (plugin / unreadable).symlink_to("/proc/self/mem")  # exists, and reading it fails even for root
    for command in (["build", str(plugin), "-o", str(tmp_path / "h.wasm")],
                    ["manifest", "envoy", str(plugin), "--wasm", str(tmp_path / "h.wasm")]):
        if command[0] == "manifest" and unreadable == "helper.py":
            continue  # manifests read plugin.toml only
        result = CliRunner().invoke(main, command)
        _assert_clean_error(result, f"{plugin / unreadable}: cannot be read: ", "Fix: make it a readable file")
    assert not (tmp_path / "h.wasm").exists()


def test_an_import_that_never_finishes_fails_the_build(tmp_path: Path) -> None:
    plugin = tmp_path / "spins"
    plugin.mkdir()
    (plugin / "plugin.toml").write_text('name = "spins"\n')
    (plugin / "plugin.py").write_text("import proxywasm\n\nwhile True:\n    pass\n")
    result = CliRunner(env={"PWTOOL_IMPORT_TIMEOUT": "1"}).invoke(
        main, ["build", str(plugin), "-o", str(tmp_path / "s.wasm")])
    _assert_clean_error(result, "plugin.py", "did not finish within 1 s", "PWTOOL_IMPORT_TIMEOUT")


def test_a_proxywasm_directory_on_sys_path_does_not_hide_the_sdk(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from pwtool.build.plugin import sdk_directory

    sdk = sdk_directory()
    (tmp_path / "proxywasm").mkdir()  # e.g. a plugin directory: a namespace package where Python runs
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert sdk_directory() == sdk
    plugin = _copy_hello(tmp_path)
    result = CliRunner().invoke(main, ["build", str(plugin), "-o", str(tmp_path / "h.wasm")])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("metadata", [b"[1, 2]", b"{not json"])
def test_inspect_of_damaged_metadata_is_a_warning_not_a_refusal(tmp_path: Path, metadata: bytes) -> None:
    """Envoy ignores custom sections: damaged pwtool metadata is a warning with the fix,
    the module still counts as loadable, and push accepts it."""
    from pwtool.build.wasm_binary import Module
    from pwtool.cli._wasm import module_problem

    built = CliRunner().invoke(main, ["build", str(REPO / "plugins" / "hello"), "-o", str(tmp_path / "h.wasm")])
    assert built.exit_code == 0, built.output
    module = Module.parse((tmp_path / "h.wasm").read_bytes())
    module.set_custom_section("pwtool.plugin", metadata)
    damaged = tmp_path / "damaged.wasm"
    damaged.write_bytes(module.to_bytes())
    result = CliRunner().invoke(main, ["inspect", str(damaged)])
    assert result.exit_code == 0, result.output
    assert "envoy        loads it" in result.output and "warning" in result.output and "Fix:" in result.output
    report = json.loads(CliRunner().invoke(main, ["inspect", str(damaged), "--json"]).stdout)
    assert report["envoy_loadable"] and report["plugin"] is None and "damaged" in report["warnings"][0]
    assert module_problem(damaged.read_bytes(), str(damaged), "rebuild") is None


def test_inspect_and_the_emulator_refuse_the_same_export_signature(tmp_path: Path) -> None:
    """One table of the signatures Envoy's host expects (pwtool.abi) serves both."""
    import wasmtime

    from pwtool.emulator import Emulator, ModuleLoadError

    wat = """(module (memory (export "memory") 1)
      (func (export "proxy_abi_version_0_2_1"))
      (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 0))
      (func (export "proxy_on_tick") (param i32) (result i32) (i32.const 0)))"""
    wasm = tmp_path / "bad_tick.wasm"
    wasm.write_bytes(wasmtime.wat2wasm(wat))
    expected = "Bad function signature for: proxy_on_tick: the module exports (i32) -> i32, Envoy expects (i32) -> ()"
    result = CliRunner().invoke(main, ["inspect", str(wasm), "--json"])
    assert result.exit_code == 1 and expected in json.loads(result.stdout)["problems"]
    with Emulator() as emulator, pytest.raises(ModuleLoadError, match=re.escape(expected)):
        emulator.load(wasm)


def test_build_to_standard_output_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["build", str(REPO / "plugins" / "hello"), "-o", "-"])
    assert result.exit_code == 2 and "not to standard output" in result.output and "Fix:" in result.output
    assert not Path("-").exists()
