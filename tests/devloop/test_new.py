"""``pwtool new``: the scaffold builds, its own test passes, bad names and used directories are refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from devtools import pwtool

from pwtool.build import build_plugin, load_metadata
from pwtool.cli import main


def test_scaffold_builds_and_its_test_passes(tmp_path: Path) -> None:
    result = pwtool("new", "edge-auth", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    plugin = tmp_path / "edge-auth"
    assert sorted(p.name for p in plugin.iterdir()) == ["plugin.py", "plugin.toml", "test_edge_auth.py"]
    assert load_metadata(plugin).name == "edge-auth"
    assert load_metadata(plugin).config == {"greeting": "hello"}
    built = build_plugin(plugin, tmp_path / "out" / "edge-auth.wasm")
    assert built.size > 0 and built.path.is_file()
    # The generated test, run the way a user would: pytest in the plugin directory.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly"], cwd=plugin, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout  # two tests, native and wasm


def test_refuses_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(main, ["new", "taken", "--dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "already exists and is not empty" in result.output
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "taken" / "plugin.py").exists()


def test_empty_directory_is_fine(tmp_path: Path) -> None:
    (tmp_path / "fresh").mkdir()
    result = CliRunner().invoke(main, ["new", "fresh", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fresh" / "plugin.py").is_file()


@pytest.mark.parametrize("name", ["9lives", "has space", "dot.ted", "../escape", "", "a" * 64, "-dash"])
def test_refuses_invalid_names(tmp_path: Path, name: str) -> None:
    result = CliRunner().invoke(main, ["new", "--dir", str(tmp_path), "--", name])
    assert result.exit_code == 2
    assert "not a valid plugin name" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["proxywasm", "pwtool"])
def test_refuses_names_that_shadow_what_the_build_imports(tmp_path: Path, name: str) -> None:
    result = CliRunner().invoke(main, ["new", "--dir", str(tmp_path), name])
    assert result.exit_code == 2
    assert f"{name!r} is the name of a module" in result.output and f"{name}_plugin" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["new", "run"])
def test_help(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Usage: " in result.output
    if command == "run":
        for option in ("--watch", "--upstream", "--port", "--admin-port", "--config", "--concurrency"):
            assert option in result.output


def test_run_refuses_bad_upstream(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", str(tmp_path), "--upstream", "nohostport"])
    assert result.exit_code == 2 and "HOST:PORT" in result.output
    result = CliRunner().invoke(main, ["run", str(tmp_path), "--upstream", "a b:80"])
    assert result.exit_code == 2 and "its host 'a b' contains whitespace" in result.output


def test_scaffolds_with_awkward_names_test_together(tmp_path: Path) -> None:
    """Names that would shadow an import of plugin.py (Action), make a keyword class
    (None), or repeat another scaffold's test file name all give working plugins, and
    their tests pass together in one pytest run."""
    names = ["action", "none", "http-context", "root_context"]
    for name in names:
        result = CliRunner().invoke(main, ["new", "--dir", str(tmp_path), name])
        assert result.exit_code == 0, result.output
    assert "class ActionPlugin(RootContext)" in (tmp_path / "action" / "plugin.py").read_text()
    assert "class NonePlugin(RootContext)" in (tmp_path / "none" / "plugin.py").read_text()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-k", "native", *names],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{2 * len(names)} passed" in run.stdout
