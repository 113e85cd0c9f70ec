"""Fixtures for manifest tests: a tiny proxy-wasm module, a plugin dir, the shared CRD."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mftools import REPO
from pwtool_zig import compile_tiny_module


def shared_schemas() -> Path:
    """``$PWTOOL_SHARED_SCHEMAS`` or ``../shared/schemas`` next to the repository."""
    return Path(os.environ.get("PWTOOL_SHARED_SCHEMAS") or REPO.parent / "shared" / "schemas")


@pytest.fixture(scope="session")
def shared_crd() -> Path:
    """The CRD from ../shared/schemas; the copy shipped in the package when the checkout
    has no ../shared next to it (test_packaged_crd_is_the_shared_one compares the two
    whenever both exist)."""
    path = shared_schemas() / "istio-wasmplugin-crd.yaml"
    if path.is_file():
        return path
    from pwtool.manifests._istio import _PACKAGED_CRD

    return _PACKAGED_CRD


@pytest.fixture(autouse=True)
def _use_shared_crd(shared_crd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PWTOOL_WASMPLUGIN_CRD", str(shared_crd))


@pytest.fixture(scope="session")
def wasm_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) proxy-wasm module compiled from C with zig: Envoy's validate mode loads it."""
    return compile_tiny_module(tmp_path_factory.mktemp("wasm"))


@pytest.fixture()
def plugin_dir(tmp_path: Path) -> Path:
    d = tmp_path / "demo_plugin"
    d.mkdir()
    (d / "plugin.toml").write_text(
        'name = "demo_plugin"\nroot_id = "demo_root"\n\n[config]\ngreeting = "hi"\n'
        'limits = { max_requests = 10, timeout_ms = 500 }\nhosts = ["a", "b"]\n')
    return d
