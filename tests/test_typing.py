"""mypy --strict on the SDK and on the toolkit, with pyproject.toml's settings."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Runs inside the module's interpreter and replaces builtins on purpose; not host code.
_BOOT_CODE = "pwtool/build/runtime/boot/"


def _mypy(arguments: list[str], cwd: Path, cache: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(cache),
         *arguments],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"mypy {' '.join(arguments)} in {cwd}:\n{result.stdout}{result.stderr}"


def test_the_sdk_is_strictly_typed(tmp_path: Path) -> None:
    _mypy([], REPO, tmp_path / "cache")  # pyproject's `files`: sdk/proxywasm


def test_the_toolkit_is_strictly_typed(tmp_path: Path) -> None:
    # The toolkit imports `pwtool.build`, which lives in build/ (pyproject's package-dir):
    # mypy sees that only in the installed layout, so the test lays it out.
    tree = tmp_path / "tree"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "shim")  # shim: the runtime's C sources
    shutil.copytree(REPO / "pwtool", tree / "pwtool", ignore=skip)
    shutil.copytree(REPO / "build", tree / "pwtool" / "build", ignore=skip)
    _mypy(["--exclude", _BOOT_CODE, "-p", "pwtool"], tree, tmp_path / "cache")
