"""Fixtures: real registries (plain HTTP, basic auth, TLS, bearer token) and a tiny proxy-wasm module."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from regtools import CA, PASSWORD, USER, RegistryProcess, TokenServer, compile_test_module


@pytest.fixture(scope="session")
def module(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real (tiny) proxy-wasm module compiled from C with zig."""
    return compile_test_module(tmp_path_factory.mktemp("wasm"), sys.executable)


@pytest.fixture(scope="session")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CA:
    return CA.create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    reg = RegistryProcess(tmp_path_factory.mktemp("reg-plain")).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    reg = RegistryProcess(tmp_path_factory.mktemp("reg-auth"), htpasswd=(USER, PASSWORD)).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def tls_registry(tmp_path_factory: pytest.TempPathFactory, ca: CA) -> Iterator[RegistryProcess]:
    reg = RegistryProcess(tmp_path_factory.mktemp("reg-tls"), tls=ca, htpasswd=(USER, PASSWORD)).start()
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(tmp_path_factory.mktemp("token"), users={
        USER: (PASSWORD, ("pull", "push")), "reader": ("read-only", ("pull",)),
    }).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer) -> Iterator[RegistryProcess]:
    reg = RegistryProcess(tmp_path_factory.mktemp("reg-token"), token=token_server.registry_auth()).start()
    yield reg
    reg.stop()


@pytest.fixture()
def no_docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point DOCKER_CONFIG at an empty directory and clear credential env vars."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.delenv("PWTOOL_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("PWTOOL_REGISTRY_PASSWORD", raising=False)
    return tmp_path / "docker"
