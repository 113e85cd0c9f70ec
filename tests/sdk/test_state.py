"""Shared data, metrics, properties, logging and time."""

from __future__ import annotations

import pytest

import proxywasm
from proxywasm import Action

REQUEST = {":method": "POST", ":path": "/a?b=c", ":authority": "example.com", "x-request-id": "rid"}


def test_shared_data_get_set_cas(probe) -> None:
    def body(root):
        missing = proxywasm.get_shared_data("k")
        proxywasm.set_shared_data("k", "v1")
        value, cas = proxywasm.get_shared_data("k")
        proxywasm.set_shared_data("k", b"v2", cas)
        try:
            proxywasm.set_shared_data("k", "v3", cas)  # stale token
        except proxywasm.CasMismatch as error:
            mismatch = error.hostcall
        return missing, value, proxywasm.get_shared_data("k")[0], mismatch

    assert probe.run(body) == ((None, 0), b"v1", b"v2", "proxy_set_shared_data")


def test_update_shared_data_retries_lost_races(probe) -> None:
    def body(root):
        proxywasm.set_shared_data("n", "0")
        attempts = []

        def increment(current):
            attempts.append(current)
            if len(attempts) == 1:
                proxywasm.set_shared_data("n", "10")  # another worker wins the race
            return str(int(current) + 1)

        return proxywasm.update_shared_data("n", increment), attempts

    written, attempts = probe.run(body)
    assert written == b"11"
    assert attempts == [b"0", b"10"]
    assert probe.shared_data()[b"n"][0] == b"11"


def test_update_shared_data_gives_up(probe) -> None:
    def body(root):
        def always_loses(current):
            proxywasm.set_shared_data("n", "x")
            return "y"

        try:
            proxywasm.update_shared_data("n", always_loses, attempts=3)
        except proxywasm.CasMismatch:
            return "gave up"

    probe.run(lambda root: proxywasm.set_shared_data("n", "0"))
    assert probe.run(body) == "gave up"


def test_metrics(probe) -> None:
    counter = proxywasm.Counter("sdk.requests")
    gauge = proxywasm.Gauge("sdk.inflight")
    histogram = proxywasm.Histogram("sdk.latency_ms")
    tagged = proxywasm.Counter("sdk.responses", {"code": "200", "route": "a.b"})

    def body(root):
        counter.inc()
        counter.inc(4)
        gauge.set(10)
        gauge.add(-3)
        histogram.record(12)
        histogram.record(30)
        tagged.inc()
        counter.with_tags(method="GET").inc()
        assert counter.with_tags(method="GET") is counter.with_tags(method="GET")
        tagged.with_tags(method="PUT").inc(2)  # tags added to a tagged metric: all sorted after the name
        tagged.with_tags(method="PUT").with_tags(zone="z.1").inc()
        return counter.get(), gauge.get()

    assert probe.run(body) == (5, 7)
    metrics = probe.metrics
    assert metrics["sdk.requests"] == 5
    assert metrics["sdk.inflight"] == 7
    assert metrics["sdk.latency_ms"] == [12, 30]
    assert metrics["sdk.responses.code=200.route=a_b"] == 1
    assert metrics["sdk.requests.method=GET"] == 1
    assert metrics["sdk.responses.code=200.method=PUT.route=a_b"] == 2
    assert metrics["sdk.responses.code=200.method=PUT.route=a_b.zone=z_1"] == 1


def test_metrics_are_per_vm(probe_factory) -> None:
    probe = probe_factory(workers=2)
    counter = proxywasm.Counter("sdk.per_vm")
    probe.hooks["on_request_headers"] = lambda ctx, h, eos: counter.inc()
    for worker in (0, 1, 0):
        probe.http_stream(worker=worker).send_request({":path": "/"})
    assert probe.metrics["sdk.per_vm"] == 3


def test_well_known_properties(probe) -> None:
    seen = {}

    def on_request_headers(ctx, headers, eos):
        p = proxywasm.properties
        seen.update(
            path=p.request_path,
            url_path=p.request_url_path,
            method=p.request_method,
            host=p.request_host,
            id=p.request_id,
            protocol=p.request_protocol,
            source=p.source_address,
            source_port=p.source_port,
            destination=p.destination_address,
            destination_port=p.destination_port,
            mtls=p.connection_mtls,
            plugin_name=p.plugin_name,
            root_id=p.plugin_root_id,
            node_id=p.node_id,
            direction=p.listener_direction,
            missing=p.response_code,
            headers=dict(proxywasm.get_property_map("request.headers") or []),
            raw=proxywasm.get_property(("request", "method")),
        )
        return Action.CONTINUE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    assert seen["path"] == "/a?b=c" and seen["url_path"] == "/a"
    assert (seen["method"], seen["host"], seen["id"], seen["protocol"]) == ("POST", "example.com", "rid", "HTTP/1.1")
    assert seen["source"] == "127.0.0.1:50000" and seen["source_port"] == 50000
    assert seen["destination_port"] == 10000 and seen["mtls"] is False
    assert seen["plugin_name"] == "plugin" and seen["root_id"] == ""
    assert seen["node_id"].startswith("emulator") and seen["direction"] == 1
    assert seen["missing"] is None
    assert seen["headers"][":authority"] == "example.com"
    assert seen["raw"] == b"POST"


def test_node_metadata_and_set_property(emulator, probe_factory) -> None:
    emulator.properties[("node", "metadata", "WORKLOAD_NAME")] = b"reviews-v1"
    probe = probe_factory()
    seen = {}

    def on_request_headers(ctx, headers, eos):
        proxywasm.set_property("filter_state.x", "1")
        seen["meta"] = proxywasm.properties.node_metadata("WORKLOAD_NAME")
        seen["set"] = proxywasm.get_property_str("filter_state.x")

    probe.hooks["on_request_headers"] = on_request_headers
    probe.http_stream().send_request_headers(REQUEST, end_of_stream=True)
    assert seen == {"meta": "reviews-v1", "set": "1"}


def test_logging_and_time(probe) -> None:
    def body(root):
        proxywasm.log_trace("t")
        proxywasm.log_debug("d")
        proxywasm.log_info("i")
        proxywasm.log_warn("w")
        proxywasm.log_error("e")
        proxywasm.log_critical("c")
        proxywasm.log(proxywasm.LogLevel.INFO, b"bytes")
        return proxywasm.get_log_level(), proxywasm.current_time_ns(), proxywasm.current_time()

    level, ns, seconds = probe.run(body)
    assert level == proxywasm.LogLevel.TRACE
    assert ns == probe.emulator.now_ns and abs(seconds - ns / 1e9) < 1e-6
    logs = probe.logs
    assert (logs.trace, logs.debug, logs.warn, logs.error, logs.critical) == (["t"], ["d"], ["w"], ["e"], ["c"])
    assert logs.info == ["i", "bytes"]


METRIC_LIMITS = '''
import proxywasm
from proxywasm import Action, HttpContext, RootContext

COUNTER = proxywasm.Counter("limits.counter")
GAUGE = proxywasm.Gauge("limits.gauge")
HISTOGRAM = proxywasm.Histogram("limits.histogram")


def outcome(call):
    try:
        call()
        return "ok"
    except Exception as error:
        return f"{type(error).__name__}: {error}"


def contended(current):
    proxywasm.set_shared_data("hot", "x")  # another worker always wins the race
    return "y"


class Limits(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        proxywasm.set_shared_data("hot", "0")
        results = [
            outcome(lambda: COUNTER.inc(0)), outcome(lambda: COUNTER.inc(-2)), outcome(lambda: COUNTER.inc(5)),
            outcome(lambda: GAUGE.set(-1)), outcome(lambda: HISTOGRAM.record(-1)),
            outcome(lambda: proxywasm.Counter("")),
            outcome(lambda: proxywasm.update_shared_data("hot", contended, attempts=2)),
        ]
        self.send_local_response(200, "\\n".join(results))
        return Action.PAUSE


class LimitsRoot(RootContext):
    http_context = Limits


proxywasm.register(LimitsRoot)
'''


@pytest.mark.both_modes
def test_metric_limits_and_update_give_up_as_in_envoy(plugin_source, load_in_mode) -> None:
    # What tests/e2e/test_state_and_tcp_in_envoy.py measured in Envoy: it refuses inc(0)
    # (BAD_ARGUMENT) and stores negative gauge/histogram values as uint64.
    plugin = load_in_mode(plugin_source("metric_limits", METRIC_LIMITS))
    stream = plugin.http_stream()
    stream.send_request_headers({":path": "/", ":method": "GET"}, end_of_stream=True)
    assert stream.local_response is not None
    assert stream.local_response.body.decode().split("\n") == [
        "ok",
        "ValueError: counter 'limits.counter' cannot go down (inc(-2)); use a Gauge",
        "ok",
        "ValueError: Gauge('limits.gauge'): Envoy metrics are unsigned, got -1",
        "ValueError: Histogram('limits.histogram'): Envoy metrics are unsigned, got -1",
        "ValueError: a metric needs a name (Envoy would call it just 'wasmcustom')",
        "CasMismatch: update_shared_data(key=b'hot', attempts=2) failed: CAS_MISMATCH",
    ]
    assert plugin.metrics["limits.counter"] == 5
