"""Helpers for the end-to-end tests: small scripted HTTP services and polling."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pwtool.envoy import LocalHttpServer, Request

# A scripted service: ``Service(handler)`` where ``handler(Seen) -> (status, headers, body)``.
Service = LocalHttpServer
Seen = Request


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes


def fetch(url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> Answer:
    """GET (or POST with ``data``) ``url``; error statuses are returned, not raised."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def cluster(name: str, address: str) -> dict[str, Any]:
    """A static cluster ``name`` with the one endpoint ``host:port``."""
    host, _, port = address.rpartition(":")
    return {
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {
            "address": {"socket_address": {"address": host, "port_value": int(port)}}}}]}]},
    }


def hcm(config: dict[str, Any]) -> dict[str, Any]:
    """The HttpConnectionManager typed_config of a `bootstrap()` config (to tweak it)."""
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]  # type: ignore[no-any-return]
