"""The emulator's properties per phase agree with Envoy 1.40 (what
tests/e2e/test_properties_in_envoy.py checks in real Envoy): the node and the listener
direction under ``xds``; the request headers' attributes only in ``on_request_headers``
and ``on_log``; request.time, sizes, code details and the gRPC status of a plain
response as Envoy reports them."""

from __future__ import annotations

from typing import Any

import proxywasm
from proxywasm import Action

REQUEST = {":method": "POST", ":path": "/p/q?x=1", ":authority": "props.example", ":scheme": "http",
           "user-agent": "props-agent/1", "referer": "http://referer.example/", "x-request-id": "rid",
           "content-length": "5"}
REQUEST_HEADER_GETTERS = ("request_path", "request_url_path", "request_host", "request_scheme", "request_method",
                          "request_id", "request_useragent", "request_referer")
OTHER_GETTERS = ("request_protocol", "request_time_ns", "request_duration_ns", "request_size", "response_code",
                 "response_code_details", "response_flags", "response_grpc_status", "response_size",
                 "connection_requested_server_name", "node_id", "node_cluster", "listener_direction")


def snapshot() -> dict[str, Any]:
    p = proxywasm.properties
    seen = {name: getattr(p, name) for name in REQUEST_HEADER_GETTERS + OTHER_GETTERS}
    seen["request_headers"] = proxywasm.get_property_map("request.headers")
    seen["response_headers"] = proxywasm.get_property_map("response.headers")
    seen["meta_name"] = p.node_metadata("NAME")
    seen["legacy_node_id"] = proxywasm.get_property_str("node.id")
    seen["legacy_direction"] = proxywasm.get_property("listener_direction")
    return seen


def record(probe: Any, phases: dict[str, dict[str, Any]], local: bool = False) -> None:
    def on_request_headers(ctx: Any, headers: Any, eos: bool) -> Action:
        phases["request"] = snapshot()
        if local:
            ctx.send_local_response(403, "denied", details="props_denied")
            return Action.PAUSE
        return Action.CONTINUE

    def on_request_body(ctx: Any, body: Any, eos: bool) -> Action:
        phases["request_body"] = snapshot()
        return Action.CONTINUE

    def on_response_headers(ctx: Any, headers: Any, eos: bool) -> Action:
        phases["response"] = snapshot()
        return Action.CONTINUE

    probe.hooks.update(on_request_headers=on_request_headers, on_request_body=on_request_body,
                       on_response_headers=on_response_headers,
                       on_log=lambda ctx: phases.__setitem__("log", snapshot()))


def test_properties_per_phase_as_in_envoy(emulator, probe) -> None:
    emulator.properties[("xds", "node", "metadata", "NAME")] = b"pod-a"
    phases: dict[str, dict[str, Any]] = {}
    record(probe, phases)
    stream = probe.http_stream()
    started = emulator.now_ns
    stream.send_request(REQUEST, body=b"hello")
    emulator.advance(7)  # ms: the upstream takes a while
    stream.send_response(200, {"content-type": "text/plain"}, body=b"0123456789")
    req, req_body, resp, log = phases["request"], phases["request_body"], phases["response"], phases["log"]

    for phase, seen in phases.items():
        assert seen["request_protocol"] == "HTTP/1.1", phase
        assert seen["request_time_ns"] == started, phase
        assert seen["request_size"] == 5, phase
        assert seen["response_flags"] == 0, phase
        assert seen["connection_requested_server_name"] == "", phase
        assert seen["node_id"].startswith("emulator~") and seen["node_cluster"] == "emulator", phase
        assert seen["listener_direction"] == 1 and seen["meta_name"] == "pod-a", phase
        assert seen["legacy_node_id"] is None and seen["legacy_direction"] is None, phase  # not at the top level

    for seen in (req, log):
        assert (seen["request_path"], seen["request_url_path"], seen["request_method"]) == ("/p/q?x=1", "/p/q", "POST")
        assert (seen["request_host"], seen["request_scheme"], seen["request_id"]) == ("props.example", "http", "rid")
        assert (seen["request_useragent"], seen["request_referer"]) == ("props-agent/1", "http://referer.example/")
        assert ("x-request-id", "rid") in seen["request_headers"]
    for seen in (req_body, resp):  # Envoy let go of the request headers when on_request_headers continued
        assert {name: seen[name] for name in REQUEST_HEADER_GETTERS} == dict.fromkeys(REQUEST_HEADER_GETTERS)
        assert seen["request_headers"] == []

    assert req["request_duration_ns"] is None and resp["request_duration_ns"] is None
    assert log["request_duration_ns"] == 7_000_000
    assert (req["response_code"], req["response_code_details"], req["response_grpc_status"]) == (None, None, None)
    assert req["response_headers"] == [] and req["response_size"] == 0
    for seen in (resp, log):
        assert (seen["response_code"], seen["response_code_details"], seen["response_grpc_status"]) == (
            200, "via_upstream", 2)
        assert (":status", "200") in seen["response_headers"]
    assert resp["response_size"] == 0 and log["response_size"] == 10


def test_local_response_properties_as_in_envoy(probe) -> None:
    phases: dict[str, dict[str, Any]] = {}
    record(probe, phases, local=True)
    stream = probe.http_stream()
    stream.send_request_headers({":method": "GET", ":path": "/local", ":authority": "a"}, end_of_stream=True)
    assert stream.status == 403
    for seen in (phases["response"], phases["log"]):
        assert (seen["response_code"], seen["response_code_details"], seen["response_grpc_status"]) == (
            403, "props_denied", 7)
    assert phases["log"]["request_path"] == "/local" and phases["log"]["request_size"] == 0
    assert phases["response"]["response_size"] == 0 and phases["log"]["response_size"] == len(b"denied")
