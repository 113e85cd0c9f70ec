"""The README's five-minute tutorial, command by command (except the interactive `run`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from regtools import RegistryProcess

from pwtool.envoy import validate
from pwtool.manifests import validate_wasmplugin

REPO = Path(__file__).resolve().parents[2]
PWTOOL = str(Path(sys.executable).parent / "pwtool")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_readme_shows_what_pwtool_new_writes(tmp_path: Path) -> None:
    _run(PWTOOL, "new", "greeter", cwd=tmp_path)
    readme = (REPO / "README.md").read_text()
    plugin_block = re.search(r"writes this `plugin.py`:\n\n```python\n(.*?)```", readme, re.S)
    assert plugin_block is not None
    generated = (tmp_path / "greeter" / "plugin.py").read_text()
    assert plugin_block.group(1).strip() in generated
    test_block = re.search(r"and as the built module:\n\n```python\n(.*?)```", readme, re.S)
    assert test_block is not None
    assert test_block.group(1).strip() in (tmp_path / "greeter" / "test_greeter.py").read_text()


def test_tutorial_commands(tmp_path: Path, plain_registry: RegistryProcess) -> None:
    _run(PWTOOL, "new", "greeter", cwd=tmp_path)
    tests = _run(sys.executable, "-m", "pytest", "-q", "greeter", cwd=tmp_path)
    assert re.search(r"\b4 passed\b", tests.stdout), tests.stdout

    built = _run(PWTOOL, "build", "greeter", cwd=tmp_path)
    wasm = tmp_path / "dist" / "greeter.wasm"
    assert wasm.is_file() and "sha256" in built.stdout

    inspected = json.loads(_run(PWTOOL, "inspect", str(wasm), "--json", cwd=tmp_path).stdout)
    assert inspected["envoy_loadable"] and inspected["abi_versions"] == ["0.2.1"]
    assert inspected["plugin"]["name"] == "greeter"

    reference = f"{plain_registry.host}/plugins/greeter:v1"
    pushed = json.loads(_run(PWTOOL, "push", str(wasm), reference, "--insecure", "--json", cwd=tmp_path).stdout)
    digest = pushed["digest"]

    istio = _run(PWTOOL, "manifest", "istio", "greeter", "--url", f"oci://{reference}", "--sha256", digest,
                 "--selector", "app=web", cwd=tmp_path)
    document = yaml.safe_load(istio.stdout)
    validate_wasmplugin(document)
    assert document["spec"]["url"] == f"oci://{reference}"
    assert document["spec"]["selector"] == {"matchLabels": {"app": "web"}}

    envoy_yaml = _run(PWTOOL, "manifest", "envoy", "greeter", "--wasm", str(wasm), "--bootstrap", cwd=tmp_path)
    result = validate(yaml.safe_load(envoy_yaml.stdout), tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
