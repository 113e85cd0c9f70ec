"""A proxy-wasm module written in C against the raw ABI runs in the emulator (wasm mode)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pwtool.emulator import (
    Action,
    Emulator,
    LogLevel,
    ModuleLoadError,
    PeerType,
    Plugin,
    PluginStartError,
)


@pytest.fixture
def emu() -> Emulator:
    e = Emulator(properties={"node.metadata.REGION": "eu-west-1"})
    yield e
    e.close()


@pytest.fixture
def plugin(emu: Emulator, filter_wasm: Path) -> Plugin:
    return emu.load(filter_wasm, config="tick buffer", root_id="c_root", vm_id="vm1")


def test_start_logs_and_lifecycle(emu: Emulator, plugin: Plugin) -> None:
    assert plugin.logs.info[:2] == ["c: vm start, vm config bytes=0", "c: configure tick buffer"]
    assert emu.metrics["c_requests"] == 0
    plugin.shutdown()
    assert plugin.done


def test_configure_failure_raises(emu: Emulator, filter_wasm: Path) -> None:
    with pytest.raises(PluginStartError, match="on_configure returned false"):
        emu.load(filter_wasm, config="fail")


def test_headers_are_added_replaced_removed(plugin: Plugin) -> None:
    stream = plugin.http_stream()
    action = stream.send_request_headers({":path": "/", "x-replace": "a", "x-remove": "b", "X-Keep": "k"}, end_of_stream=True)
    assert action == Action.CONTINUE
    up = stream.upstream_request
    assert up.end_of_stream
    assert up.headers == {":path": "/", "x-replace": "replaced", "x-keep": "k", "x-c-module": "hello"}
    assert "x-remove" not in up.headers
    stream.send_response(200, {"server": "test"}, body="hello")
    assert stream.downstream_response.headers["x-c-response"] == "1"
    assert stream.downstream_response.body == b"hello"
    assert stream.done
    assert plugin.logs.debug[-1] == "c: log status=200"


def test_set_header_map_pairs_replaces_the_map(plugin: Plugin) -> None:
    stream = plugin.http_stream()
    stream.send_request_headers({":path": "/pairs", "a": "1"}, end_of_stream=True)
    headers = stream.upstream_request.headers
    assert headers.items()[:2] == [(":path", "/pairs"), ("x-only", "1")]
    # the old map was ":path" + "/pairs" and "a" + "1", serialized: 4 + 2*8 + 5+1+6+1 + 1+1+1+1
    assert headers["x-old-pairs-bytes"] == str(4 + 16 + 13 + 4)


def test_local_response_ends_stream_through_response_path(plugin: Plugin) -> None:
    stream = plugin.http_stream()
    action = stream.send_request_headers({":path": "/local"})
    assert action == Action.PAUSE
    local = stream.local_response
    assert local is not None and local.status == 403 and local.body == b"forbidden by c"
    assert local.details == "c_denied" and local.headers == {"x-c-local": "yes"}
    assert stream.upstream_request.headers is None  # nothing reached the upstream
    resp = stream.downstream_response
    assert resp.headers[":status"] == "403"
    assert resp.headers["content-type"] == "text/plain"
    assert resp.headers["x-c-response"] == "1"  # Envoy runs the local reply through the filter
    assert stream.status == 403 and stream.done


def test_http_callout_answered(plugin: Plugin) -> None:
    stream = plugin.http_stream()
    assert stream.send_request_headers({":path": "/callout"}, end_of_stream=True) == Action.PAUSE
    assert stream.paused
    [call] = plugin.pending_http_calls
    assert (call.upstream, call.method, call.path, call.authority, call.timeout_ms) == ("auth", "GET", "/check", "auth.local", 500)
    assert call.headers["x-from"] == "c"
    call.respond(200, {"x-a": "b"}, body="allowed")
    assert not plugin.pending_http_calls
    assert not stream.paused
    assert stream.upstream_request.headers["x-auth-status"] == "200"
    assert stream.upstream_request.headers["x-auth-body"] == "allowed"


def test_http_callout_failure_and_timeout(plugin: Plugin) -> None:
    failed = plugin.http_stream()
    failed.send_request_headers({":path": "/callout"})
    plugin.pending_http_calls[0].fail()
    assert failed.local_response is not None and failed.local_response.status == 503
    assert plugin.logs.error[-1] == "c: callout failed: reset"

    slow = plugin.http_stream()
    slow.send_request_headers({":path": "/callout"})
    plugin.advance(499)
    assert slow.paused and plugin.pending_http_calls
    plugin.advance(1)  # 500 ms timeout: Envoy's async client answers 504 itself
    assert not plugin.pending_http_calls
    assert slow.upstream_request.headers["x-auth-status"] == "504"
    assert slow.upstream_request.headers["x-auth-body"] == "upstream request timeout"




def test_ticks_resume_paused_streams(emu: Emulator, plugin: Plugin) -> None:
    a = plugin.http_stream()
    b = plugin.http_stream()
    a.send_request_headers({":path": "/pause"}, end_of_stream=True)
    b.send_request_headers({":path": "/pause"}, end_of_stream=True)
    assert a.paused and b.paused and emu.metrics["c_paused"] == 2
    b.complete()  # the client went away while held
    plugin.advance(999)
    assert emu.metrics["c_ticks"] == 0
    plugin.tick()
    assert emu.metrics["c_ticks"] == 1 and emu.metrics["c_paused"] == 0
    assert not a.paused
    assert a.upstream_request.headers["x-resumed-by"] == "tick"
    assert f"c: paused context is gone: {b.id}" in plugin.logs.warn
    plugin.advance(3000)
    assert emu.metrics["c_ticks"] == 4


def test_shared_data_cas_across_vms(emu: Emulator, filter_wasm: Path) -> None:
    plugin = emu.load(filter_wasm, vm_id="shared", workers=3)
    for i in range(6):
        stream = plugin.http_stream(worker=i % 3)
        stream.send_request_headers({":path": "/shared"}, end_of_stream=True)
        assert stream.upstream_request.headers["x-hits"] == str(i + 1)
    value, cas = emu.shared_data("shared")[b"hits"]
    assert value == b"6" and cas > 0
    # another vm_id does not see it
    other = emu.load(filter_wasm, vm_id="other")
    s = other.http_stream()
    s.send_request_headers({":path": "/shared"}, end_of_stream=True)
    assert s.upstream_request.headers["x-hits"] == "1"


def test_shared_queue_wakes_the_registering_vm(emu: Emulator, filter_wasm: Path) -> None:
    plugin = emu.load(filter_wasm, vm_id="q", workers=2)
    stream = plugin.http_stream(worker=1)
    stream.send_request_headers({":path": "/enqueue", "x-msg": "hello queue"}, end_of_stream=True)
    # worker 1 registered last, so it owns the queue; on_queue_ready ran after the callback
    assert "c: dequeued hello queue" in plugin.logs.info
    rec = [r for r in plugin.logs.records if r.message == "c: dequeued hello queue"][0]
    assert rec.vm == plugin.vms[1].index
    emu.enqueue_by_name("q", "c_queue", b"from test")
    assert "c: dequeued from test" in plugin.logs.info


def test_metrics(emu: Emulator, plugin: Plugin) -> None:
    for n in (1, 3):
        s = plugin.http_stream()
        s.send_request_headers({":path": "/x", **{f"h{i}": "v" for i in range(n - 1)}}, end_of_stream=True)
    assert emu.metrics["c_requests"] == 2
    assert emu.metrics["c_sizes"] == [1, 3]
    assert set(emu.metrics.names()) == {"c_requests", "c_paused", "c_sizes", "c_ticks"}


def test_properties(plugin: Plugin) -> None:
    s = plugin.http_stream()
    s.send_request_headers({":path": "/prop"}, end_of_stream=True)
    h = s.upstream_request.headers
    assert h["x-prop-path"] == "/prop"
    assert h["x-root-id"] == "c_root"
    assert h["x-region"] == "eu-west-1"
    assert h["x-c-state"] == "set-by-c"


def test_foreign_functions(emu: Emulator, plugin: Plugin) -> None:
    s = plugin.http_stream()
    s.send_request_headers({":path": "/foreign"}, end_of_stream=True)
    assert "c: foreign status=1" in plugin.logs.warn  # NOT_FOUND until registered
    emu.register_foreign_function("reverse", lambda data: data[::-1])
    s = plugin.http_stream()
    s.send_request_headers({":path": "/foreign"}, end_of_stream=True)
    assert s.upstream_request.headers["x-foreign"] == "cba"
    r = plugin.http_stream()
    r.send_request_headers({":path": "/rewrite"}, end_of_stream=True)
    assert r.upstream_request.headers[":path"] == "/rewritten"
    assert r.route_cache_clears == 1
    plugin.call_foreign(7, b"payload")
    assert "c: foreign call data payload" in plugin.logs.info


def test_body_buffering_and_rewrite(plugin: Plugin) -> None:
    s = plugin.http_stream()
    s.send_request_headers({":path": "/upload"})
    assert s.send_request_body(b"hello ", end_of_stream=False) == Action.PAUSE
    assert s.upstream_request.body == b""
    assert s.send_request_body(b"world", end_of_stream=True) == Action.CONTINUE
    assert s.upstream_request.body == b"HELLO WORLD"
    assert s.upstream_request.end_of_stream
    assert "c: request body bytes=11" in plugin.logs.info


def test_buffer_limit_gives_413(emu: Emulator, filter_wasm: Path) -> None:
    small = Emulator(buffer_limit=10)
    plugin = small.load(filter_wasm, config="buffer")
    s = plugin.http_stream()
    s.send_request_headers({":path": "/upload"})
    s.send_request_body(b"12345678", end_of_stream=False)
    s.send_request_body(b"90ab", end_of_stream=False)
    assert s.local_response is not None and s.local_response.status == 413 and s.local_response.from_host
    assert s.downstream_response.body == b"Payload Too Large"
    assert s.done


def test_close_stream_resets(plugin: Plugin) -> None:
    s = plugin.http_stream()
    s.send_request_headers({":path": "/close"})
    assert s.done and s.reset_by == "wasm_close_stream"


def test_grpc_call_reply_and_failure(plugin: Plugin) -> None:
    s = plugin.http_stream()
    assert s.send_request_headers({":path": "/grpc"}, end_of_stream=True) == Action.PAUSE
    [call] = plugin.pending_grpc_calls
    assert (call.upstream, call.service, call.method, call.message) == ("grpc_cluster", "pkg.Svc", "Get", b"ping")
    call.respond(b"pong")
    assert s.upstream_request.headers["x-grpc"] == "pong"
    f = plugin.http_stream()
    f.send_request_headers({":path": "/grpc"}, end_of_stream=True)
    plugin.pending_grpc_calls[0].fail(14, "no healthy upstream")
    assert "c: grpc closed: no healthy upstream" in plugin.logs.warn
    assert f.local_response is not None and f.local_response.status == 502 and f.local_response.grpc_status == 14


def test_log_level_visible_to_module(filter_wasm: Path) -> None:
    emu = Emulator(log_level=LogLevel.INFO)
    plugin = emu.load(filter_wasm)
    s = plugin.http_stream()
    s.send_request_headers({":path": "/", "x-log-level": "1"}, end_of_stream=True)
    assert "c: log level=2" in plugin.logs.info
    assert plugin.logs.debug == []  # below the level: not captured


def test_tcp_stream(plugin: Plugin) -> None:
    tcp = plugin.tcp_stream()
    assert tcp.new_connection_action == Action.CONTINUE
    assert tcp.send_downstream_data(b"abc") == Action.CONTINUE
    assert bytes(tcp.sent_upstream) == b"[c]abc"
    assert tcp.send_downstream_data(b"hold-") == Action.PAUSE
    assert bytes(tcp.sent_upstream) == b"[c]abc"
    assert tcp.send_downstream_data(b"done") == Action.CONTINUE  # the held bytes come again
    assert bytes(tcp.sent_upstream) == b"[c]abc[c]hold-done"
    tcp.send_upstream_data(b"reply")
    assert bytes(tcp.sent_downstream) == b"reply"
    tcp.close_downstream(PeerType.REMOTE)
    assert tcp.done and "c: downstream closed, peer=2" in plugin.logs.info


@pytest.mark.parametrize("abi", ["10", "20", "21"])
def test_every_abi_version(c_module: Callable[..., Path], abi: str) -> None:
    emu = Emulator()
    plugin = emu.load(c_module("filter", f"ABI_VERSION={abi}"), config="tick")
    assert plugin.vms[0].abi_version == f"0.{abi[0]}.{abi[1]}"
    s = plugin.http_stream()
    s.send_request_headers({":path": "/", "x-replace": "1"}, end_of_stream=True)
    assert s.upstream_request.headers["x-c-module"] == "hello"
    p = plugin.http_stream()
    p.send_request_headers({":path": "/pause"}, end_of_stream=True)
    plugin.tick()
    assert p.upstream_request.headers["x-resumed-by"] == "tick"
    r = plugin.http_stream()
    r.send_request_headers({":path": "/rewrite"}, end_of_stream=True)
    assert r.route_cache_clears == 1
    assert plugin.logs.info[1] == "c: configure tick"  # 0.1.0 reads it via proxy_get_configuration


def test_forbidden_import_is_refused_like_envoy(c_module: Callable[..., Path]) -> None:
    with pytest.raises(ModuleLoadError, match=r"missing import: wasi_snapshot_preview1\.path_open"):
        Emulator().load(c_module("bad_import"))


def test_module_without_abi_version(c_module: Callable[..., Path]) -> None:
    with pytest.raises(ModuleLoadError, match="Missing or unknown Proxy-Wasm ABI version"):
        Emulator().load(c_module("no_abi"))


def test_not_wasm_at_all() -> None:
    with pytest.raises(ModuleLoadError, match="corrupted"):
        Emulator().load(b"definitely not wasm")


def test_counts_instructions_when_asked(filter_wasm: Path) -> None:
    with Emulator(count_instructions=True) as counting:
        plugin = counting.load(filter_wasm, config="tick buffer", root_id="c_root", vm_id="vm1")
        started = plugin.instructions
        assert started is not None and started > 0  # VM start and configure ran
        costs = []
        for _ in range(3):
            before = plugin.instructions
            stream = plugin.http_stream()
            stream.send_request([(":method", "GET"), (":path", "/"), (":authority", "h")])
            costs.append(plugin.instructions - before)
        assert all(cost > 0 for cost in costs)
        assert costs[1] == costs[2]  # deterministic: the same request costs the same
    with Emulator() as plain:
        assert plain.load(filter_wasm, config="tick buffer", root_id="c_root", vm_id="vm1").instructions is None


def test_native_plugins_count_no_instructions(tmp_path: Path) -> None:
    (tmp_path / "plugin.py").write_text("import proxywasm\nproxywasm.register(proxywasm.HttpContext)\n")
    with Emulator(count_instructions=True) as emu:
        assert emu.load(tmp_path, mode="native").instructions is None
