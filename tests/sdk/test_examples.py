"""The example plugins in plugins/, run natively under the emulator."""

from __future__ import annotations

import json

from pwtool.emulator import Action

REQUEST = {":method": "GET", ":path": "/", ":authority": "example.com", ":scheme": "http"}


def test_hello(example):
    plugin = example("hello")
    assert "hello: VM started" in plugin.logs.info
    stream = plugin.http_stream()
    assert stream.send_request_headers(REQUEST, end_of_stream=True) == Action.CONTINUE
    assert stream.upstream_request.headers["x-hello-request"] == "1"
    assert stream.send_response_headers({":status": "200"}, end_of_stream=True) == Action.CONTINUE
    assert stream.downstream_response.headers["x-hello"] == "hello"


def test_hello_configured_greeting(example):
    plugin = example("hello", config=json.dumps({"greeting": "hi"}))
    stream = plugin.http_stream()
    stream.send_request(REQUEST)
    stream.send_response(200)
    assert stream.downstream_response.headers["x-hello"] == "hi"


def test_http_headers(example):
    plugin = example("http_headers", config='{"log_headers": true}')
    stream = plugin.http_stream()
    stream.send_request(REQUEST)
    assert stream.upstream_request.headers["x-request-id"] == f"pw-{stream.id}"
    assert any("request header :path: /" in line for line in plugin.logs.debug)
    stream.send_response(200, {"server": "upstream", "content-type": "text/plain"}, "ok")
    headers = stream.downstream_response.headers
    assert headers["x-powered-by"] == "pwtool"
    assert "server" not in headers
    assert plugin.metrics["http_headers.requests.method=GET"] == 1


def test_http_body_rewrites_text(example):
    plugin = example("http_body")
    stream = plugin.http_stream()
    stream.send_request(REQUEST)
    stream.send_response_headers({":status": "200", "content-type": "text/plain", "content-length": "11"})
    assert stream.send_response_body("hello ", end_of_stream=False) == Action.PAUSE
    assert stream.send_response_body("world", end_of_stream=True) == Action.CONTINUE
    assert stream.downstream_response.body == b"goodbye world"
    assert "content-length" not in stream.downstream_response.headers


def test_http_body_leaves_binary_alone(example):
    plugin = example("http_body")
    stream = plugin.http_stream()
    stream.send_request(REQUEST)
    stream.send_response(200, {"content-type": "application/octet-stream"}, "hello")
    assert stream.downstream_response.body == b"hello"


def test_http_auth_allows(example):
    plugin = example("http_auth")
    stream = plugin.http_stream()
    assert stream.send_request_headers({**REQUEST, "authorization": "Bearer t"}, end_of_stream=True) == Action.PAUSE
    (call,) = plugin.pending_http_calls
    assert call.upstream == "auth"
    assert call.path == "/check"
    assert call.headers["authorization"] == "Bearer t"
    call.respond(200, {"x-user": "alice"})
    assert not stream.request_paused
    assert stream.upstream_request.headers["x-user"] == "alice"


def test_http_auth_denies(example):
    plugin = example("http_auth")
    stream = plugin.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    plugin.pending_http_calls[0].respond(401)
    assert stream.local_response.status == 403
    assert stream.upstream_request.headers is None
    assert plugin.metrics["http_auth.denied"] == 1


def test_http_auth_service_down(example):
    plugin = example("http_auth")
    stream = plugin.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    plugin.pending_http_calls[0].fail()
    assert stream.local_response.status == 503
    assert any("auth service unavailable" in line for line in plugin.logs.warn)


def test_http_auth_timeout(example):
    plugin = example("http_auth")
    stream = plugin.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    plugin.advance(1000)
    assert stream.local_response.status == 503
    assert any("timed out" in line for line in plugin.logs.warn)


def test_http_config_defaults_and_blocking(example):
    plugin = example("http_config", config=json.dumps({"blocked_prefixes": ["/admin"]}))
    ok = plugin.http_stream()
    ok.send_request({**REQUEST, ":path": "/public"})
    assert ok.upstream_request.headers["x-configured"] == "yes"
    blocked = plugin.http_stream()
    blocked.send_request({**REQUEST, ":path": "/admin/users"})
    assert blocked.local_response.status == 403


def test_http_config_rejects_invalid(example, emulator):
    import pytest

    from pwtool.emulator import PluginStartError

    with pytest.raises(PluginStartError):  # the SDK's type check: a string, not a list
        example("http_config", config=json.dumps({"blocked_prefixes": "/admin"}))
    assert "configuration key 'blocked_prefixes' must be an array like its default" in emulator.logs.error[-1]
    with pytest.raises(PluginStartError):  # the plugin's own checks
        example("http_config", config=json.dumps({"header_name": "X-Up", "blocked_prefixes": ["/a", 3]}))
    assert emulator.logs.error[-1] == (
        "http_config: invalid configuration: header_name must be a non-empty lowercase name, got 'X-Up'; "
        "blocked_prefixes[1] must be a path starting with '/', got 3"
    )


def test_tcp_filter(example):
    plugin = example("tcp_filter")
    conn = plugin.tcp_stream()
    assert plugin.metrics["tcp_filter.open_connections"] == 1
    assert conn.send_downstream_data("ping") == Action.CONTINUE
    assert conn.send_upstream_data("pong!") == Action.CONTINUE
    conn.close_downstream()
    assert plugin.metrics["tcp_filter.bytes.direction=downstream"] == 4
    assert plugin.metrics["tcp_filter.bytes.direction=upstream"] == 5
    assert plugin.metrics["tcp_filter.open_connections"] == 0
    assert any("4 bytes in, 5 bytes out" in line for line in plugin.logs.info)


def test_tcp_filter_rejects_prefix(example):
    plugin = example("tcp_filter", config='{"reject_prefix": "EVIL"}')
    conn = plugin.tcp_stream()
    assert conn.send_downstream_data("EVIL payload") == Action.PAUSE
    assert conn.closed_by_plugin is not None


def test_shared_data_counts_across_workers(example):
    plugin = example("shared_data", workers=2)
    counts = []
    for worker in (0, 1, 0):
        stream = plugin.http_stream(worker=worker)
        stream.send_request(REQUEST)
        stream.send_response(200)
        counts.append(stream.downstream_response.headers["x-request-count"])
    assert counts == ["1", "2", "3"]


def test_shared_queue_producer_consumer(emulator, example):
    consumer = example("shared_queue", root_id="consumer", vm_id="q")
    producer = example("shared_queue", root_id="producer", vm_id="q")
    stream = producer.http_stream()
    stream.send_request({**REQUEST, ":path": "/a"})
    stream = producer.http_stream()
    stream.send_request({**REQUEST, ":method": "POST", ":path": "/b"}, body="x")
    assert consumer.metrics["shared_queue.consumed"] == 2
    assert "shared_queue: consumed GET /a" in consumer.logs.info
    assert "shared_queue: consumed POST /b" in consumer.logs.info
