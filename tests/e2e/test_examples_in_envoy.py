"""The SDK's examples running in real Envoy 1.40 (V8): hello, headers, body, auth, config,
shared data and shared queue (tcp_filter runs in tests/conformance/test_tcp_conformance.py).

Each test builds the example (cached), starts Envoy on free ports with the module as
an HTTP filter, and checks what a client, the upstream and Envoy's log and stats see.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from e2etools import Seen, Service, cluster, fetch, hcm, wait_for

from pwtool.build.wasm_binary import Module
from pwtool.envoy import EchoServer, Envoy, free_port, validate
from pwtool.manifests import bootstrap, http_filter, plugin_config, wasm_service

pytestmark = pytest.mark.envoy


def filter_config(name: str, wasm: Path, listen: int, admin: int, *, upstream: str | None = None,
                  config: dict[str, Any] | None = None, clusters: list[dict[str, Any]] | None = None,
                  root_id: str | None = None) -> dict[str, Any]:
    plugin = plugin_config(name=name, root_id=root_id or name, wasm_file=wasm, config=config)
    return bootstrap(http_filters=[http_filter(plugin)], listen_port=listen, admin_port=admin,
                     upstream=upstream, clusters=clusters)


# -- hello ------------------------------------------------------------------------------


def test_hello_greets_log_request_and_response(built_plugin) -> None:
    listen, admin = free_port(), free_port()
    with EchoServer() as echo, Envoy(filter_config("hello", built_plugin("hello"), listen, admin,
                                                   upstream=echo.address, config={"greeting": "hej"}),
                                     admin_port=admin) as envoy:
        answer = fetch(f"http://127.0.0.1:{listen}/hello?n=1")
        assert answer.status == 200
        assert answer.headers["x-hello"] == "hej"
        upstream_saw = json.loads(answer.body)
        assert upstream_saw["headers"]["x-hello-request"] == "1"
        assert upstream_saw["path"] == "/hello?n=1"
        assert "hello: VM started" in envoy.log_text()


# -- http_headers -----------------------------------------------------------------------


def headers_config(wasm: Path, listen: int, admin: int, upstream: str, **plugin: Any) -> dict[str, Any]:
    config = filter_config("http_headers", wasm, listen, admin, upstream=upstream, config=plugin or None)
    manager = hcm(config)
    manager["generate_request_id"] = False  # let the plugin add x-request-id itself
    manager["server_header_transformation"] = "PASS_THROUGH"  # so that removing `server` shows
    return config


def test_http_headers_adds_request_id_and_rewrites_response(built_plugin) -> None:
    listen, admin = free_port(), free_port()
    with EchoServer() as echo, Envoy(headers_config(built_plugin("http_headers"), listen, admin, echo.address,
                                                    powered_by="e2e-test"), admin_port=admin) as envoy:
        first = fetch(f"http://127.0.0.1:{listen}/a")
        assert first.status == 200
        assert first.headers["x-powered-by"] == "e2e-test"
        assert first.headers.get("server") is None, "the upstream's server header was not removed"
        added = json.loads(first.body)["headers"]["x-request-id"]
        assert added.startswith("pw-") and added[3:].isdigit()

        kept = fetch(f"http://127.0.0.1:{listen}/b", headers={"x-request-id": "mine"})
        assert json.loads(kept.body)["headers"]["x-request-id"] == "mine"

        posted = fetch(f"http://127.0.0.1:{listen}/c", data=b"x")
        assert posted.status == 200

        stats = envoy.stats("wasmcustom.http_headers.requests")
        assert stats.get("wasmcustom.http_headers.requests.method=GET") == 2, stats
        assert stats.get("wasmcustom.http_headers.requests.method=POST") == 1, stats


def test_http_headers_logs_every_header_when_configured(built_plugin) -> None:
    listen, admin = free_port(), free_port()
    with EchoServer() as echo, Envoy(headers_config(built_plugin("http_headers"), listen, admin, echo.address,
                                                    log_headers=True), admin_port=admin) as envoy:
        assert fetch(f"http://127.0.0.1:{listen}/logged", headers={"x-probe": "42"}).status == 200
        wait_for(lambda: "request header x-probe: 42" in envoy.log_text(), what="the header log line")
        assert "request header :path: /logged" in envoy.log_text()


# -- http_body --------------------------------------------------------------------------


def body_service(seen: Seen) -> tuple[int, dict[str, str], bytes]:
    kind = "text/plain" if seen.path.startswith("/text") else "application/octet-stream"
    return 200, {"content-type": kind}, b"hello world, hello again\n" * 3


def test_http_body_rewrites_text_bodies_only(built_plugin) -> None:
    listen, admin = free_port(), free_port()
    with Service(body_service) as upstream, Envoy(filter_config(
            "http_body", built_plugin("http_body"), listen, admin, upstream=upstream.address,
            config={"find": "hello", "replace": "bye"}), admin_port=admin):
        text = fetch(f"http://127.0.0.1:{listen}/text")
        assert text.status == 200
        assert text.body == b"bye world, bye again\n" * 3
        assert text.headers.get("content-length") in (None, str(len(text.body)))

        binary = fetch(f"http://127.0.0.1:{listen}/binary")
        assert binary.status == 200
        assert binary.body == b"hello world, hello again\n" * 3
        assert binary.headers["content-length"] == str(len(binary.body))


# -- http_auth --------------------------------------------------------------------------


def auth_decision(seen: Seen) -> tuple[int, dict[str, str], bytes]:
    if seen.headers.get("authorization") == "Bearer good":
        return 200, {"x-user": "alice"}, b""
    if seen.headers.get("authorization") == "Bearer patient":  # answers while the request body arrives
        time.sleep(0.3)
        return 200, {"x-user": "patience"}, b""
    if seen.headers.get("authorization") == "Bearer slow":
        time.sleep(2)
        return 200, {"x-user": "sloth"}, b""
    return 401, {}, b"no\n"


def auth_config(wasm: Path, listen: int, admin: int, upstream: str, auth_address: str,
                timeout_ms: int = 1000) -> dict[str, Any]:
    return filter_config("http_auth", wasm, listen, admin, upstream=upstream,
                         config={"auth_cluster": "auth", "auth_authority": "auth.local", "check_path": "/check",
                                 "timeout_ms": timeout_ms},
                         clusters=[cluster("auth", auth_address)])


def test_http_auth_allows_and_denies_through_the_auth_service(built_plugin) -> None:
    listen, admin = free_port(), free_port()
    with EchoServer() as echo, Service(auth_decision) as auth, Envoy(auth_config(
            built_plugin("http_auth"), listen, admin, echo.address, auth.address), admin_port=admin) as envoy:
        allowed = fetch(f"http://127.0.0.1:{listen}/private", headers={"authorization": "Bearer good"})
        assert allowed.status == 200
        upstream_saw = json.loads(allowed.body)
        assert upstream_saw["headers"]["x-user"] == "alice"
        assert upstream_saw["path"] == "/private"

        denied = fetch(f"http://127.0.0.1:{listen}/private", headers={"authorization": "Bearer bad"})
        assert denied.status == 403
        assert denied.body == b"forbidden\n"
        anonymous = fetch(f"http://127.0.0.1:{listen}/private")
        assert anonymous.status == 403

        # The module has no body callbacks: while the callout is out, Envoy holds the body
        # back (a header PAUSE stops the whole request), then passes all of it upstream.
        assert not {e.name for e in Module.parse(built_plugin("http_auth").read_bytes()).exports()} & {
            "proxy_on_request_body", "proxy_on_request_trailers"}
        body = bytes(range(256)) * 1200
        posted = fetch(f"http://127.0.0.1:{listen}/upload", headers={"authorization": "Bearer patient"}, data=body)
        assert posted.status == 200
        upstream_saw = json.loads(posted.body)
        assert upstream_saw["headers"]["x-user"] == "patience"
        assert upstream_saw["body"] == body.decode("utf-8", "replace")

        checks = [(r.method, r.path, r.headers.get("authorization"), r.headers.get("host")) for r in auth.requests]
        assert checks == [("GET", "/check", "Bearer good", "auth.local"),
                          ("GET", "/check", "Bearer bad", "auth.local"),
                          ("GET", "/check", "", "auth.local"),  # the example forwards an empty one
                          ("GET", "/check", "Bearer patient", "auth.local")]
        assert envoy.stats("wasmcustom.http_auth.denied") == {"wasmcustom.http_auth.denied": 2}


def test_http_auth_answers_503_when_the_service_is_down(built_plugin) -> None:
    listen, admin = free_port(), free_port()
    nothing_there = f"127.0.0.1:{free_port()}"
    with EchoServer() as echo, Envoy(auth_config(built_plugin("http_auth"), listen, admin, echo.address,
                                                 nothing_there), admin_port=admin) as envoy:
        answer = fetch(f"http://127.0.0.1:{listen}/private", headers={"authorization": "Bearer good"})
        assert answer.status == 503
        assert answer.body == b"auth service unavailable\n"
        assert "auth service unavailable" in envoy.log_text()
        assert envoy.process is not None and envoy.process.poll() is None


def test_http_auth_answers_503_when_the_service_is_too_slow(built_plugin) -> None:
    listen, admin = free_port(), free_port()
    with EchoServer() as echo, Service(auth_decision) as auth, Envoy(auth_config(
            built_plugin("http_auth"), listen, admin, echo.address, auth.address, timeout_ms=300),
            admin_port=admin):
        started = time.monotonic()
        answer = fetch(f"http://127.0.0.1:{listen}/private", headers={"authorization": "Bearer slow"})
        assert answer.status == 503
        assert answer.body == b"auth service unavailable\n"
        assert time.monotonic() - started < 1.8  # answered at the callout timeout, not the service's pace


# -- http_config ------------------------------------------------------------------------


def test_http_config_applies_its_configuration(built_plugin) -> None:
    listen, admin = free_port(), free_port()
    with EchoServer() as echo:
        config = filter_config("http_config", built_plugin("http_config"), listen, admin, upstream=echo.address,
                               config={"header_value": "from-envoy", "blocked_prefixes": ["/admin"]})
        with Envoy(config, admin_port=admin):
            allowed = fetch(f"http://127.0.0.1:{listen}/public")
            assert allowed.status == 200
            assert json.loads(allowed.body)["headers"]["x-configured"] == "from-envoy"
            blocked = fetch(f"http://127.0.0.1:{listen}/admin/users")
            assert blocked.status == 403 and blocked.body == b"blocked by configuration\n"


@pytest.mark.parametrize(("config", "reason"), [
    ({"blocked_prefixes": "/admin"}, "configuration key 'blocked_prefixes' must be an array like its default"),
    ({"blocked_prefixes": ["admin"]}, "blocked_prefixes[0] must be a path starting with '/', got 'admin'"),
], ids=["sdk-type-check", "plugin-check"])
def test_http_config_makes_envoy_refuse_a_bad_configuration(built_plugin, tmp_path: Path, config, reason) -> None:
    result = validate(filter_config("http_config", built_plugin("http_config"), free_port(), free_port(),
                                    config=config), tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert reason in output
    assert "Unable to create Wasm plugin http_config" in output


# -- shared_data ------------------------------------------------------------------------


def test_shared_data_counts_requests_across_workers(built_plugin) -> None:
    listen, admin = free_port(), free_port()
    with EchoServer() as echo, Envoy(filter_config("shared_data", built_plugin("shared_data"), listen, admin,
                                                   upstream=echo.address), admin_port=admin, concurrency=2) as envoy:

        def connections_per_worker() -> list[int]:
            return [value for name, value in envoy.stats("listener.").items()
                    if f"_{listen}.worker_" in name and name.endswith(".downstream_cx_total")]

        counts: list[int] = []
        while len(counts) < 60 and not (len(counts) >= 12 and all(connections_per_worker())):
            answer = fetch(f"http://127.0.0.1:{listen}/count")  # a new connection each time
            assert answer.status == 200
            counts.append(int(answer.headers["x-request-count"]))
        assert len(connections_per_worker()) == 2 and all(connections_per_worker()), "one worker got every request"
        # One counter for both workers' VMs: every request got the next number.
        assert counts == list(range(1, len(counts) + 1))


# -- shared_queue -----------------------------------------------------------------------


def test_shared_queue_producer_filter_feeds_singleton_consumer(built_plugin) -> None:
    wasm = built_plugin("shared_queue")
    listen, admin = free_port(), free_port()
    producer = plugin_config(name="producer", root_id="producer", wasm_file=wasm, vm_id="queue_vm")
    consumer = plugin_config(name="consumer", root_id="consumer", wasm_file=wasm, vm_id="queue_vm")
    config = bootstrap(http_filters=[http_filter(producer)], bootstrap_extensions=[wasm_service(consumer)],
                       listen_port=listen, admin_port=admin)
    with Envoy(config, admin_port=admin, concurrency=2) as envoy:
        paths = [f"/queued/{n}-{time.monotonic_ns()}" for n in range(3)]
        for path in paths:
            assert fetch(f"http://127.0.0.1:{listen}{path}").status == 200
        for path in paths:
            wait_for(lambda path=path: f"shared_queue: consumed GET {path}" in envoy.log_text(),
                     what=f"the consumer's log line for {path}")
        wait_for(lambda: envoy.stats("wasmcustom.shared_queue.consumed").get("wasmcustom.shared_queue.consumed") == 3,
                 what="the consumed counter to reach 3")
        assert "no consumer registered the queue yet" not in envoy.log_text()
