"""The conformance plugin's scenarios in real Envoy and in the emulator: every observation agrees."""

from __future__ import annotations

from pathlib import Path

import pytest
from conformance_kit import BIG_BODY, Request, Scenario, Suite, diff, run_in_emulator, run_in_envoy

pytestmark = pytest.mark.envoy

HERE = Path(__file__).parent
RESP = ("x-conf-response", "x-upstream", "x-upstream-secret", "content-type", "x-conf-local", "x-conf-count")
UP = ("x-conf-added", "x-conf-multi", "x-conf-remove", "x-conf-replace", "x-callout-result", "x-callout-status",
      "x-callout-body", "x-callout-type", "x-callout-upstream", "x-conf-slept", "x-conf-resumed-by", "x-conf-count")
SMALL = b"small body, under the limit"

SCENARIOS = [
    # request/response header mutation
    Scenario("headers", "headers", Request("/headers", headers=(("x-conf-remove", "1"), ("x-conf-replace", "abc"))),
             RESP, UP, metrics=("conformance.requests",)),
    # local responses, and whether they pass through on_response_headers
    Scenario("local", "local-response", Request("/local"), RESP, UP),
    Scenario("local-empty", "local-response", Request("/local-empty"), RESP, UP),
    # body buffering and rewrite
    Scenario("buffer-request", "body", Request("/buffer-request", "POST", body=b"make me loud"), RESP, UP),
    Scenario("stream-body", "body", Request("/stream-body", "POST", body=b"x" * 300), RESP, UP,
             metrics=("conformance.body_bytes",)),
    Scenario("buffer-response", "body", Request("/buffer-response"), RESP, UP),
    # buffer limit: 413 for a request, 500 (or reset) for a response
    Scenario("buffer-limit-under", "buffer-limit", Request("/buffer-request", "POST", body=SMALL), RESP, UP),
    Scenario("buffer-limit", "buffer-limit", Request("/buffer-limit", "POST", body=BIG_BODY), RESP, UP),
    Scenario("buffer-response-limit", "buffer-limit", Request("/buffer-response-limit"), RESP, UP),
    # HTTP callouts: answered, refused connection, timeout, unknown cluster
    Scenario("callout", "callout", Request("/callout"), RESP, UP),
    Scenario("callout-dead", "callout", Request("/callout-dead"), RESP, UP),
    Scenario("callout-slow", "callout", Request("/callout-slow"), RESP, UP),
    Scenario("callout-unknown", "callout", Request("/callout-unknown"), RESP, UP),
    # tick: an async sleep, and a stream held until the root's tick resumes it
    Scenario("sleep", "tick", Request("/sleep"), RESP, UP, metrics=("conformance.paused",)),
    Scenario("tick-resume", "tick", Request("/tick-resume"), RESP, UP, metrics=("conformance.paused",)),
    # shared data and metrics
    Scenario("shared-1", "shared-data", Request("/shared"), RESP, UP),
    Scenario("shared-2", "shared-data", Request("/shared"), RESP, UP, metrics=("conformance.requests",)),
    # logs at every level (trace is below Envoy's wasm:debug level in both)
    Scenario("log", "logs", Request("/log"), RESP, UP),
    # Python exceptions: fail closed with 500 (request), reset or 500 (response)
    Scenario("raise-request", "exception", Request("/raise-request"), RESP, UP),
    Scenario("raise-body", "exception", Request("/raise-body", "POST", body=b"abc"), RESP, UP),
    Scenario("raise-response-headers", "exception", Request("/raise-response-headers"), RESP, UP),
    Scenario("raise-response-body", "exception", Request("/raise-response-body"), RESP, UP),
    Scenario("raise-callout-callback", "exception", Request("/raise-callout-callback"), RESP, UP),
    Scenario("after-errors", "exception", Request("/headers"), RESP, UP, metrics=("conformance.requests",)),
]


@pytest.fixture(scope="module")
def suite(built_plugin) -> Suite:
    wasm = built_plugin(HERE / "plugins" / "conformance")
    return Suite("conformance", wasm, "conformance", SCENARIOS, config={"callout_timeout_ms": 300},
                 buffer_limit=4096, clusters={"callout": "upstream", "dead": "dead", "slow": "slow"})


@pytest.fixture(scope="module")
def observed(suite: Suite):
    return run_in_envoy(suite), run_in_emulator(suite)


def test_every_area_has_a_scenario() -> None:
    areas = {s.area for s in SCENARIOS}
    assert {"headers", "local-response", "body", "buffer-limit", "callout", "tick", "shared-data", "logs",
            "exception"} <= areas


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_emulator_agrees_with_envoy(observed, scenario: Scenario) -> None:
    envoy, emulated = observed
    problems = diff({scenario.name: envoy[scenario.name]}, {scenario.name: emulated[scenario.name]})
    assert not problems, "\n".join(problems)


def test_exceptions_fail_closed_in_envoy(observed) -> None:
    """Beside agreeing with the emulator: in Envoy, a Python exception before the
    request went upstream (in a callback, or in an async callout callback after an await)
    answers 500 with the traceback in Envoy's log; the request never reaches the upstream
    whole (a body callback's request went on with its headers)."""
    envoy, _ = observed
    for name in ("raise-request", "raise-body", "raise-callout-callback"):
        seen = envoy[name]
        assert seen.status == 500, (name, seen)
        assert seen.upstream is None if name != "raise-body" else seen.upstream[3] is None, (name, seen)
        assert any("Traceback" in message for _, message in seen.logs), (name, seen.logs)
