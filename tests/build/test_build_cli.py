"""The `pwtool build` and `pwtool inspect` commands, and --help everywhere."""

from __future__ import annotations

import json
from pathlib import Path

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
