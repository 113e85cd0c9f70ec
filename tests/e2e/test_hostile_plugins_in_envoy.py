"""Hostile and buggy Python plugins in real Envoy 1.40 (V8): Envoy must never crash or
hang because of the module. A Python exception becomes a logged traceback, then the
failure behaviour: HTTP fails closed with a 500 for that stream, and the VM keeps
serving the next request.

One plugin holds every case; the request header ``x-case`` picks what its callback does
(the configuration cases pick it with the plugin configuration). One Envoy serves all
request cases.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from e2etools import Answer, fetch, wait_for

from pwtool.emulator import ModuleLoadError
from pwtool.envoy import EchoServer, Envoy, free_port, validate
from pwtool.manifests import bootstrap, http_filter, plugin_config

pytestmark = pytest.mark.envoy

PLUGIN = '''
"""Misbehaves in the way the request header x-case (or the configuration) names."""

import sys

import proxywasm


def recurse(n):
    return recurse(n + 1) + 1


class Deep:
    def __getattr__(self, name):  # recursion through C: each level costs native stack
        return getattr(self, name + "x")


def deep_c_recursion(limit):
    sys.setrecursionlimit(limit)
    return Deep().a


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("str() of this exception raises")


def raise_(error):
    raise error


def hoard_small_objects():
    hoard = []
    while True:
        hoard.append(len(hoard))


def break_sdk_failure_handling(context):
    dispatcher = type(context._dispatcher)
    original = dispatcher._failed

    def failed(*args):
        dispatcher._failed = original
        raise RuntimeError("the SDK's failure handling failed too")

    dispatcher._failed = failed
    raise ValueError("first failure")


def add_many(headers):
    for i in range(10000):
        headers.add(f"x-many-{i}", "v")


CASES = {
    "recursion": lambda c, h: recurse(0),
    "c-recursion": lambda c, h: Deep().a,
    "raise-recursion-limit": lambda c, h: deep_c_recursion(1_000_000),
    "huge-alloc": lambda c, h: len(b"x" * ((1 << 31) - 100)),
    "memory-hog": lambda c, h: hoard_small_objects(),
    "unprintable": lambda c, h: raise_(Unprintable()),
    "huge-message": lambda c, h: raise_(ValueError("m" * (10 << 20))),
    "sys-exit": lambda c, h: sys.exit(3),
    "keyboard-interrupt": lambda c, h: raise_(KeyboardInterrupt()),
    "generator-exit": lambda c, h: raise_(GeneratorExit()),
    "sdk-broken": lambda c, h: break_sdk_failure_handling(c),
    "crlf": lambda c, h: h.set("x-bad", "a\\r\\nx-injected: 1"),
    "nul": lambda c, h: h.set("x-bad", "a\\0b"),
    "crlf-name": lambda c, h: h.add("x-bad\\r\\nx-injected", "1"),
    "crlf-replace-all": lambda c, h: h.replace_all(list(h.items()) + [("x-bad", "a\\nb")]),
    "crlf-local-response": lambda c, h: c.send_local_response(403, "no", {"x-bad": "a\\r\\nx-injected: 1"}),
    "non-ascii": lambda c, h: h.set("x-bad", "h\\u00e9llo \\u2603"),
    "bytes": lambda c, h: h.set(b"x-bad", b"\\xff\\xfe"),
    "many": lambda c, h: add_many(h),
    "ret-str": lambda c, h: "continue",
    "ret-bigint": lambda c, h: 1 << 100,
    "ret-negative": lambda c, h: -1,
    "ret-7": lambda c, h: 7,
    "ret-float": lambda c, h: 1.5,
}


class Stream(proxywasm.HttpContext):
    case = ""

    def on_request_headers(self, headers, end_of_stream):
        self.case = headers.get("x-case", "")
        action = CASES.get(self.case)
        return proxywasm.Action.CONTINUE if action is None else action(self, headers)

    def on_response_headers(self, headers, end_of_stream):
        headers["x-served-by"] = "hostile"
        if self.case == "resp-big-body":
            headers.remove("content-length")
        action = CASES.get(self.case[5:]) if self.case.startswith("resp-") else None
        return proxywasm.Action.CONTINUE if action is None else action(self, headers)

    def on_response_body(self, body, end_of_stream):
        if self.case == "resp-big-body" and end_of_stream:
            body.replace(b"y" * (50 << 20))
        return proxywasm.Action.CONTINUE


class Root(proxywasm.RootContext):
    http_context = Stream

    def on_vm_start(self, configuration):
        if configuration == b"sys-exit":
            sys.exit(2)
        return True

    def on_configure(self, configuration):
        mode = configuration.decode()
        if mode == "recursion":
            recurse(0)
        if mode == "ret-str":
            return "no"
        if mode == "ret-none":
            return None
        return True


proxywasm.register(Root)
'''


@pytest.fixture(scope="module")
def hostile_wasm(built_plugin: Callable[[Path], Path], plugin_source: Callable[..., Path]) -> Path:
    return built_plugin(plugin_source("hostile", PLUGIN))


class Served:
    """The one Envoy of the request cases, with helpers that read what a case did."""

    def __init__(self, envoy: Envoy, listen: int) -> None:
        self.envoy = envoy
        self.listen = listen

    def get(self, case: str | None = None) -> Answer:
        """The answer to a request with ``x-case: case``."""
        return fetch(f"http://127.0.0.1:{self.listen}/", headers={"x-case": case} if case else None)

    def log_since(self, offset: int, *texts: str) -> str:
        """Envoy's log from `offset` on, once it holds every one of `texts`."""
        def logged() -> str | None:
            log = self.envoy.log_text()[offset:]
            return log if all(text in log for text in texts) else None

        return str(wait_for(logged, timeout=5, what=f"{texts!r} in Envoy's log"))

    def raw(self, case: str) -> bytes:
        """The raw HTTP/1.1 response (head and body) to a request with ``x-case: case``."""
        with socket.create_connection(("127.0.0.1", self.listen), timeout=15) as connection:
            connection.sendall(f"GET / HTTP/1.1\r\nhost: x\r\nx-case: {case}\r\nconnection: close\r\n\r\n".encode())
            chunks = []
            while chunk := connection.recv(1 << 20):
                chunks.append(chunk)
        return b"".join(chunks)

    def assert_still_serving(self) -> None:
        answer = self.get()
        assert answer.status == 200, "the VM stopped serving after the case"
        assert answer.headers["x-served-by"] == "hostile"
        assert self.envoy.process is not None and self.envoy.process.poll() is None, "Envoy exited"


def _serve(wasm: Path) -> Iterator[Served]:
    listen, admin = free_port(), free_port()
    plugin = plugin_config(name="hostile", root_id="", wasm_file=wasm)
    with EchoServer() as echo:
        config = bootstrap(http_filters=[http_filter(plugin)], listen_port=listen, admin_port=admin,
                           upstream=echo.address)
        with Envoy(config, admin_port=admin) as envoy:
            yield Served(envoy, listen)


@pytest.fixture(scope="module")
def served(hostile_wasm: Path) -> Iterator[Served]:
    yield from _serve(hostile_wasm)


@pytest.fixture(scope="module")
def exhausted(hostile_wasm: Path) -> Iterator[Served]:
    """An Envoy of its own for the out-of-memory cases: the memory that small objects
    took stays with the VM's allocator pools, so later big allocations may fail."""
    yield from _serve(hostile_wasm)


def _fails_closed(served: Served, case: str, *logged: str) -> str:
    """Request `case`: a 500 from the plugin, with `logged` in Envoy's log; the VM serves on."""
    offset = len(served.envoy.log_text())
    answer = served.get(case)
    assert answer.status == 500, (answer.status, answer.body[:200], served.envoy.log_text()[offset:][-2000:])
    assert answer.body == b"plugin error\n"
    log = served.log_since(offset, *logged)
    served.assert_still_serving()
    return log


# -- 1. unbounded recursion -----------------------------------------------------------------


def test_unbounded_recursion_in_a_callback_fails_closed(served: Served) -> None:
    log = _fails_closed(served, "recursion", "RecursionError: maximum recursion depth exceeded")
    assert 'in recurse\n  [Previous line repeated' in log  # a short traceback, not 600 frames
    _fails_closed(served, "c-recursion", "RecursionError", "in __getattr__")


def test_raising_the_recursion_limit_is_refused_instead_of_overflowing_v8s_stack(served: Served) -> None:
    # Allowed, recursion through C past ~1200 levels overflows V8's native stack: the VM
    # traps and Envoy answers 503 to every later request.
    _fails_closed(served, "raise-recursion-limit", "cannot raise the recursion limit")


def test_recursion_in_on_configure_and_a_sys_exit_in_on_vm_start_refuse_the_plugin(
        hostile_wasm: Path, tmp_path: Path) -> None:
    for where, mode, logged in [("configuration", "recursion", "RecursionError"),
                                ("vm_configuration", "sys-exit", "SystemExit: 2")]:
        plugin = plugin_config(name="hostile", root_id="", wasm_file=hostile_wasm,
                               vm_configuration=mode if where == "vm_configuration" else None)
        if where == "configuration":
            plugin["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": mode}
        result = validate(bootstrap(http_filters=[http_filter(plugin)], listen_port=free_port(),
                                    admin_port=free_port()), tmp_path)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert logged in output and "Unable to create Wasm plugin hostile" in output, output[-3000:]
        assert "Caught" not in output and "Segmentation fault" not in output


# -- 2. memory exhaustion -------------------------------------------------------------------


def test_a_huge_allocation_is_a_memory_error(exhausted: Served) -> None:
    _fails_closed(exhausted, "huge-alloc", "MemoryError")


def test_running_out_of_linear_memory_fails_closed_and_the_vm_serves_on(exhausted: Served) -> None:
    # The SDK logs the plugin's traceback, or when even that runs out of memory, the
    # shim logs what failed and answers the 500 itself.
    for _ in range(2):
        _fails_closed(exhausted, "memory-hog", "MemoryError")
    _fails_closed(exhausted, "sys-exit", "SystemExit: 3")  # failures are still handled as usual


# -- 3. exceptions that are hard to report ------------------------------------------------------


def test_an_exception_whose_str_raises_is_still_reported_and_fails_closed(served: Served) -> None:
    _fails_closed(served, "unprintable", "plugin.Unprintable: <str() of the exception raised RuntimeError>")


def test_a_10_mb_exception_message_is_cut_in_the_log(served: Served) -> None:
    log = _fails_closed(served, "huge-message", "more characters]")
    assert "ValueError: mmm" in log
    assert len(log) < 200_000


@pytest.mark.parametrize("case, logged", [("sys-exit", "SystemExit: 3"), ("keyboard-interrupt", "KeyboardInterrupt"),
                                          ("generator-exit", "GeneratorExit")])
def test_base_exceptions_from_a_callback_fail_closed(served: Served, case: str, logged: str) -> None:
    _fails_closed(served, case, "exception in Stream.on_request_headers", logged)
    _fails_closed(served, f"resp-{case}", "exception in Stream.on_response_headers", logged)


def test_the_shim_fails_closed_when_the_sdks_failure_handling_fails(served: Served) -> None:
    for case in ("sdk-broken", "resp-sdk-broken"):
        _fails_closed(served, case, "pwtool: uncaught Python exception", "the SDK's failure handling failed too")


@pytest.mark.parametrize("source", ["import sys\nimport proxywasm\nsys.exit(0)\n",
                                    "import sys\nimport proxywasm\nsys.setrecursionlimit(100_000)\n"])
def test_the_build_refuses_a_plugin_that_exits_or_raises_the_recursion_limit_at_import(
        built_plugin: Callable[[Path], Path], plugin_source: Callable[..., Path], source: str) -> None:
    with pytest.raises(ModuleLoadError) as refused:
        built_plugin(plugin_source("at_import", source))
    assert "failed during `import plugin`" in str(refused.value)
    assert ("SystemExit: 0" if "exit" in source else "cannot raise the recursion limit") in str(refused.value)


# -- 4. invalid headers, very many headers, a huge body -------------------------------------------


@pytest.mark.parametrize("case", ["crlf", "nul", "crlf-name", "crlf-replace-all", "crlf-local-response"])
def test_cr_lf_or_nul_in_a_header_raises_bad_argument(served: Served, case: str) -> None:
    _fails_closed(served, case, "proxywasm._errors.BadArgument", "failed: BAD_ARGUMENT")


@pytest.mark.parametrize("case", ["resp-crlf", "resp-nul", "resp-crlf-name", "resp-crlf-replace-all"])
def test_no_response_splitting_through_a_header_value(served: Served, case: str) -> None:
    response = served.raw(case)
    head = response.partition(b"\r\n\r\n")[0]
    assert head.startswith(b"HTTP/1.1 500 "), head
    assert b"x-injected" not in head and b"x-bad" not in head and b"\0" not in head
    served.assert_still_serving()


def test_non_ascii_and_raw_byte_header_values_pass_through(served: Served) -> None:
    for case, sent in [("non-ascii", "héllo ☃".encode()), ("bytes", b"\xff\xfe")]:
        answer = served.get(case)
        assert answer.status == 200
        seen = json.loads(answer.body)["headers"]["x-bad"]
        assert seen.encode("latin-1") == sent  # http.server decodes header bytes as latin-1


def test_ten_thousand_headers_do_not_hurt_envoy(served: Served) -> None:
    answer = served.get("many")
    # The upstream (http.server) refuses so many: 431, or a 503 from Envoy when it closes
    # the connection before Envoy has sent them all.
    assert answer.status in (431, 503), answer.status
    head = served.raw("resp-many").partition(b"\r\n\r\n")[0]
    assert head.count(b"\r\nx-many-") == 10000
    served.assert_still_serving()


def test_a_50_mb_response_body_replacement_is_delivered(served: Served) -> None:
    head, _, chunked = served.raw("resp-big-body").partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"transfer-encoding: chunked" in head, head
    body = _dechunk(chunked)  # what came before the last body callback, then its replacement
    assert body.endswith(b"y" * (50 << 20)) and body.startswith(b'{"method": "GET"'), body[:100]
    served.assert_still_serving()


def _dechunk(data: bytes) -> bytes:
    """The body of a chunked transfer encoding."""
    body, position = [], 0
    while True:
        end = data.index(b"\r\n", position)
        size = int(data[position:end], 16)
        if size == 0:
            return b"".join(body)
        body.append(data[end + 2:end + 2 + size])
        position = end + 2 + size + 2


# -- 5. callbacks returning the wrong type ----------------------------------------------------------


@pytest.mark.parametrize("case, shown", [("ret-str", "'continue' (str)"), ("ret-bigint", f"{1 << 100} (int)"),
                                         ("ret-negative", "-1 (int)"), ("ret-7", "7 (int)"),
                                         ("ret-float", "1.5 (float)")])
def test_a_stream_callback_returning_a_wrong_value_fails_closed(served: Served, case: str, shown: str) -> None:
    # 7 made Envoy hold the request until its 15 s timeout; huge or negative ints failed open.
    _fails_closed(served, case, f"TypeError: a stream callback returned {shown}")


def test_on_configure_returning_a_string_refuses_and_none_accepts(hostile_wasm: Path, tmp_path: Path) -> None:
    outputs: dict[str, Any] = {}
    for mode in ("ret-str", "ret-none"):
        plugin = plugin_config(name="hostile", root_id="", wasm_file=hostile_wasm)
        plugin["configuration"] = {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": mode}
        outputs[mode] = validate(bootstrap(http_filters=[http_filter(plugin)], listen_port=free_port(),
                                           admin_port=free_port()), tmp_path)
    refused = outputs["ret-str"].stdout + outputs["ret-str"].stderr
    assert outputs["ret-str"].returncode != 0
    assert "TypeError: returned 'no' (str); return True, False or None" in refused
    assert outputs["ret-none"].returncode == 0, outputs["ret-none"].stdout[-3000:]
