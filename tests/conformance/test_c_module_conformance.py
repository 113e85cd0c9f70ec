"""The raw-ABI C module (tests/emulator/c_modules/filter.c, built with zig) in Envoy and the emulator."""

from __future__ import annotations

import pytest
from conformance_kit import Request, Scenario, Suite, diff, run_in_emulator, run_in_envoy

pytestmark = pytest.mark.envoy

RESP = ("x-c-response", "x-c-local", "content-type", "x-upstream")
UP = ("x-c-module", "x-replace", "x-remove", "x-hits", "x-resumed-by", "x-auth-status", "x-auth-body", "x-only")

SCENARIOS = [
    Scenario("c-headers", "headers", Request("/", headers=(("x-replace", "old"), ("x-remove", "gone"))), RESP, UP,
             metrics=("c_requests",), logs=False),
    Scenario("c-pairs", "headers", Request("/pairs", headers=(("x-dropped", "1"),)), RESP, UP, logs=False),
    Scenario("c-local", "local-response", Request("/local"), RESP, UP, logs=False),
    Scenario("c-body", "body", Request("/", "POST", body=b"shout this"), RESP, UP, log_marker="c: request body bytes="),
    Scenario("c-callout", "callout", Request("/callout"), RESP, UP, logs=False),
    Scenario("c-tick", "tick", Request("/pause"), RESP, UP, metrics=("c_paused",), log_marker="c: paused context"),
    Scenario("c-shared-1", "shared-data", Request("/shared"), RESP, UP, logs=False),
    Scenario("c-shared-2", "shared-data", Request("/shared"), RESP, UP, metrics=("c_requests",), logs=False),
]


@pytest.fixture(scope="module")
def observed(c_filter_wasm):
    suite = Suite("c_filter", c_filter_wasm, "c_filter", SCENARIOS, config={"c": "tick buffer"},
                  buffer_limit=4096, clusters={"auth": "upstream"})
    return run_in_envoy(suite), run_in_emulator(suite)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_c_module_agrees(observed, scenario: Scenario) -> None:
    envoy, emulated = observed
    problems = diff({scenario.name: envoy[scenario.name]}, {scenario.name: emulated[scenario.name]})
    assert not problems, "\n".join(problems)
