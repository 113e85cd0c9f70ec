"""The SDK's property getters in real Envoy 1.40 (V8), against the truth the test knows.

A plugin reads every typed getter of ``proxywasm.properties`` (and the generic
``get_property*`` readers) in ``on_request_headers``, ``on_response_headers`` and
``on_log``, and logs what it got per phase: a value, None, or an exception. The test
knows the truth: the client's socket (source), the listener (destination), the echo
server (upstream), the named cluster and route, the node set in the bootstrap and the
plugin's name, root_id and vm_id.

What Envoy 1.40 does that a plugin must know (and the emulator copies): the node and
the listener direction live under ``xds``; the request attributes that come from the
request headers (path, host, method, id, user agent, ...) are absent in
``on_response_headers`` (and ``request.headers`` is empty there), and are back in
``on_log``.
"""

from __future__ import annotations

import http.client
import json
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2etools import cluster, hcm, wait_for

from pwtool.envoy import EchoServer, Envoy, free_port
from pwtool.manifests import bootstrap, http_filter, plugin_config

pytestmark = pytest.mark.envoy

PLUGIN = '''
"""Logs every property getter's result, per phase, as one JSON line."""

import json

import proxywasm
from proxywasm import Action, HttpContext, RootContext, properties

GETTERS = [name for name in dir(type(properties)) if not name.startswith("_") and name != "node_metadata"]
CALLS = {
    "meta_name": lambda: properties.node_metadata("NAME"),
    "meta_dotted": lambda: properties.node_metadata("app.kubernetes.io/name"),
    "meta_missing": lambda: properties.node_metadata("MISSING"),
    "meta_num_raw": lambda: proxywasm.get_property(("xds", "node", "metadata", "NUM")).hex(),
    "meta_flag": lambda: proxywasm.get_property_bool(("xds", "node", "metadata", "FLAG")),
    "meta_map": lambda: [k for k, _ in proxywasm.get_property_map("xds.node.metadata")],
    "int_port": lambda: proxywasm.get_property_int("destination.port"),
    "str_path": lambda: proxywasm.get_property_str(["request", "url_path"]),
    "raw_method": lambda: (proxywasm.get_property("request.method") or b"").hex(),
    "bool_mtls": lambda: proxywasm.get_property_bool("connection.mtls"),
    "request_headers": lambda: proxywasm.get_property_map("request.headers"),
    "response_headers": lambda: proxywasm.get_property_map("response.headers"),
    "absent": lambda: proxywasm.get_property("no.such.attribute"),
}


def read(getter):
    try:
        return ["value", getter()]
    except Exception as error:
        return ["error", type(error).__name__ + ": " + str(error)]


def report(phase, tag):
    seen = {name: read(lambda name=name: getattr(properties, name)) for name in GETTERS}
    seen.update({name: read(call) for name, call in CALLS.items()})
    proxywasm.log_info("props-report " + json.dumps({"tag": tag, "phase": phase, "seen": seen}))


class Stream(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        self.tag = headers.get("x-request-id")
        report("request", self.tag)
        if headers.get("x-local"):
            self.send_local_response(403, "denied", details="props_denied")
            return Action.PAUSE
        return Action.CONTINUE

    def on_response_headers(self, headers, end_of_stream):
        report("response", self.tag)
        return Action.CONTINUE

    def on_log(self):
        report("log", self.tag)


class Root(RootContext):
    http_context = Stream


proxywasm.register(Root, root_id="props_root")
'''

NODE_METADATA = {"NAME": "pod-a", "NUM": 7, "FLAG": True, "app.kubernetes.io/name": "dotty"}
REQUEST_HEADER_GETTERS = ("request_path", "request_url_path", "request_host", "request_scheme", "request_method",
                          "request_id", "request_useragent", "request_referer")


def config(wasm: Path, listen: int, admin: int, upstream: str) -> dict[str, Any]:
    """Named route and cluster, a node with metadata, an outbound listener."""
    plugin = plugin_config(name="props_plugin", root_id="props_root", vm_id="props_vm", wasm_file=wasm)
    cfg = bootstrap(http_filters=[http_filter(plugin)], listen_port=listen, admin_port=admin,
                    clusters=[cluster("props_cluster", upstream)])
    cfg["node"] = {"id": "props-node-1", "cluster": "props-node-cluster", "metadata": NODE_METADATA}
    cfg["static_resources"]["listeners"][0]["traffic_direction"] = "OUTBOUND"
    hcm(cfg)["route_config"]["virtual_hosts"][0]["routes"] = [
        {"name": "props_route", "match": {"prefix": "/"}, "route": {"cluster": "props_cluster"}}]
    return cfg


def request(listen: int, path: str, headers: dict[str, str], body: bytes) -> tuple[int, int, bytes]:
    """POST on a fresh connection: (the client's port, status, response body)."""
    connection = http.client.HTTPConnection("127.0.0.1", listen, timeout=15)
    try:
        connection.connect()
        assert connection.sock is not None
        client_port = connection.sock.getsockname()[1]
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return client_port, response.status, response.read()
    finally:
        connection.close()


def reports(envoy: Envoy, request_id: str) -> dict[str, dict[str, Any]]:
    """The plugin's report per phase for the request with x-request-id `request_id`."""
    def collect() -> dict[str, dict[str, Any]] | None:
        found = {}
        for line in envoy.log_text().splitlines():
            if "props-report " in line:
                item = json.loads(line.split("props-report ", 1)[1])
                if item["tag"] == request_id:
                    found[item["phase"]] = item["seen"]
        return found if "log" in found else None

    phases: dict[str, dict[str, Any]] = wait_for(collect, what=f"the on_log report of {request_id}")
    for phase, seen in phases.items():
        errors = {name: result for name, result in seen.items() if result[0] != "value"}
        assert not errors, f"getters raised in {phase}: {errors}"
    return {phase: {name: result[1] for name, result in seen.items()} for phase, seen in phases.items()}


@pytest.fixture(scope="module")
def served(built_plugin: Callable[[Path], Path], plugin_source: Callable[..., Path]) -> Any:
    wasm = built_plugin(plugin_source("props", PLUGIN, 'root_id = "props_root"\n'))
    listen, admin = free_port(), free_port()
    with EchoServer() as echo, Envoy(config(wasm, listen, admin, echo.address), admin_port=admin) as envoy:
        yield envoy, listen, int(echo.address.rpartition(":")[2])


def test_getters_match_the_truth_in_each_phase(served: Any) -> None:
    envoy, listen, echo_port = served
    before = time.time_ns()
    client_port, status, body = request(listen, "/p/q?x=1", {
        "Host": "props.example", "User-Agent": "props-agent/1", "Referer": "http://referer.example/",
        "x-request-id": "props-rid-1"}, b"hello")
    after = time.time_ns()
    assert status == 200
    phases = reports(envoy, "props-rid-1")
    req, resp, log = phases["request"], phases["response"], phases["log"]

    for phase, seen in phases.items():  # the same in every phase
        assert seen["source_address"] == f"127.0.0.1:{client_port}", phase
        assert seen["source_port"] == client_port, phase
        assert seen["destination_address"] == f"127.0.0.1:{listen}", phase
        assert seen["destination_port"] == seen["int_port"] == listen, phase
        assert seen["request_protocol"] == "HTTP/1.1", phase
        assert seen["request_size"] == len(b"hello"), phase
        assert before - 1_000_000_000 < seen["request_time_ns"] < after, phase
        assert seen["request_time_ns"] == req["request_time_ns"], phase
        assert isinstance(seen["connection_id"], int) and seen["connection_id"] == req["connection_id"], phase
        assert seen["connection_mtls"] is False and seen["bool_mtls"] is False, phase
        assert seen["connection_requested_server_name"] == "", phase  # no TLS: empty, not absent
        assert seen["connection_tls_version"] is None, phase
        assert (seen["cluster_name"], seen["route_name"]) == ("props_cluster", "props_route"), phase
        assert seen["listener_direction"] == 2, phase  # OUTBOUND
        assert (seen["node_id"], seen["node_cluster"]) == ("props-node-1", "props-node-cluster"), phase
        assert (seen["meta_name"], seen["meta_dotted"], seen["meta_missing"]) == ("pod-a", "dotty", None), phase
        assert struct.unpack("<d", bytes.fromhex(seen["meta_num_raw"])) == (7.0,), phase  # a JSON number: double
        assert seen["meta_flag"] is True, phase
        assert sorted(seen["meta_map"]) == sorted(NODE_METADATA), phase
        assert (seen["plugin_name"], seen["plugin_root_id"], seen["plugin_vm_id"]) == (
            "props_plugin", "props_root", "props_vm"), phase
        assert seen["response_flags"] == 0, phase
        assert seen["absent"] is None, phase

    for seen in (req, log):  # the request headers' attributes
        assert (seen["request_path"], seen["request_url_path"], seen["str_path"]) == ("/p/q?x=1", "/p/q", "/p/q")
        assert (seen["request_method"], seen["raw_method"]) == ("POST", b"POST".hex())
        assert (seen["request_host"], seen["request_scheme"]) == ("props.example", "http")
        assert (seen["request_useragent"], seen["request_referer"]) == ("props-agent/1", "http://referer.example/")
        assert seen["request_id"] == "props-rid-1"
        assert ["x-request-id", "props-rid-1"] in seen["request_headers"]
    # Envoy 1.40 lets go of the request headers once on_request_headers continues
    assert {name: resp[name] for name in REQUEST_HEADER_GETTERS} == dict.fromkeys(REQUEST_HEADER_GETTERS)
    assert resp["str_path"] is None and resp["raw_method"] == "" and resp["request_headers"] == []

    assert req["request_duration_ns"] is None and resp["request_duration_ns"] is None
    assert 0 < log["request_duration_ns"] < after - before
    assert (req["response_code"], req["response_code_details"], req["response_grpc_status"]) == (None, None, None)
    assert req["response_headers"] == [] and req["response_size"] == 0
    for seen in (resp, log):
        assert (seen["response_code"], seen["response_code_details"]) == (200, "via_upstream")
        assert seen["response_grpc_status"] == 2  # Envoy maps HTTP 200 to UNKNOWN
        assert [":status", "200"] in seen["response_headers"]
        assert seen["upstream_address"] == f"127.0.0.1:{echo_port}" and seen["upstream_port"] == echo_port
    assert req["upstream_address"] is None and req["upstream_port"] is None  # not chosen yet
    assert resp["response_size"] == 0 and log["response_size"] == len(body)


def test_local_response_properties(served: Any) -> None:
    envoy, listen, _ = served
    client_port, status, body = request(listen, "/local", {"x-local": "1", "x-request-id": "props-rid-2"}, b"")
    assert (status, body) == (403, b"denied")
    phases = reports(envoy, "props-rid-2")
    log = phases["log"]
    assert log["source_port"] == client_port and log["request_path"] == "/local"
    assert log["request_size"] == 0
    assert log["response_code"] == 403 and log["response_grpc_status"] == 7  # 403: PERMISSION_DENIED
    assert log["response_code_details"] == phases["response"]["response_code_details"] == "props_denied"
    assert log["response_size"] == len(b"denied")
    assert log["upstream_address"] is None and log["upstream_port"] is None
    assert phases["response"]["response_code"] == 403
