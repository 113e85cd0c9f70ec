"""Bad input — from a hostile module or from the test itself — gets a clear EmulatorError
naming what was wrong, never a hang, a raw TypeError/IndexError or a silent wrong answer."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from pwtool.emulator import (
    Action,
    Emulator,
    EmulatorError,
    HeaderMap,
    ModuleLoadError,
    PluginStartError,
    WasmTrap,
)

_HEADER = """
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
"""
_ALLOC = """
  (global $bump (mut i32) (i32.const 4096))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32) (local $r i32)
    global.get $bump local.set $r
    global.get $bump local.get $n i32.add global.set $bump
    local.get $r)
"""
_LOG = '(import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))'
_FD_WRITE = '(import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))'
_PROC_EXIT = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))'
_GET_PAIRS = '(import "env" "proxy_get_header_map_pairs" (func $pairs (param i32 i32 i32) (result i32)))'


def wat(body: str, *, imports: str = "", header: str = _HEADER, alloc: str = _ALLOC) -> bytes:
    return bytes(wasmtime.wat2wasm(f"(module {imports} {header} {alloc} {body})"))


def _load_in_thread(emu: Emulator, module: bytes, limit: float = 10.0) -> BaseException:
    """Load in a daemon thread, so a hang fails the test instead of blocking the run."""
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            emu.load(module)
        except BaseException as exc:  # noqa: BLE001 - inspected by the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"load() still running after {limit}s"
    assert outcome, "load() succeeded"
    return outcome[0]


# --------------------------------------------------------------------------- 1, 2: the start function


def test_start_function_that_loops_hits_the_deadline() -> None:
    started = time.monotonic()
    error = _load_in_thread(Emulator(timeout=0.3), wat("(func $s (loop $l br $l)) (start $s)"))
    assert time.monotonic() - started < 5
    assert isinstance(error, WasmTrap), repr(error)
    assert "deadline exceeded" in str(error) and "start function" in str(error)


@pytest.mark.parametrize(
    ("body", "imports", "reason"),
    [
        ("(func $s unreachable) (start $s)", "", "unreachable"),
        ("(func $s (call $exit (i32.const 7))) (start $s)", _PROC_EXIT, "proc_exit(7)"),
        (
            '(func $s (drop (call $log (i32.const 2) (i32.const 0) (i32.const 2)))) (start $s) (data (i32.const 0) "hi")',
            _LOG,
            "proxy_log called from the start function, before the module's memory is available",
        ),
    ],
    ids=["unreachable", "proc_exit", "hostcall"],
)
def test_start_function_trap_says_why(body: str, imports: str, reason: str) -> None:
    with pytest.raises(WasmTrap) as info:
        Emulator().load(wat(body, imports=imports))
    assert reason in str(info.value)
    assert "module bytes" in str(info.value)


# --------------------------------------------------------------------------- 3: odd exports


def test_allocator_exported_as_a_global_is_a_load_error() -> None:
    with pytest.raises(ModuleLoadError, match=r"missing malloc function \(malloc is exported as a global, not a function"):
        Emulator().load(wat('(global (export "malloc") i32 (i32.const 0))', alloc=""))


def test_allocator_global_named_malloc_falls_back_to_proxy_on_memory_allocate() -> None:
    # As proxy-wasm-cpp-host: only functions count, so proxy_on_memory_allocate is used.
    plugin = Emulator().load(wat('(global (export "malloc") i32 (i32.const 0))'))
    assert plugin.http_stream().send_request_headers({":path": "/"}) == Action.CONTINUE


@pytest.mark.parametrize(
    ("export", "expected"),
    [
        ('(func (export "proxy_on_memory_allocate") (param i32))', "proxy_on_memory_allocate: the module exports (i32) -> (), Envoy expects (i32) -> i32"),
        ('(func (export "malloc") (param i64) (result i64) i64.const 0)', "malloc: the module exports (i64) -> i64, Envoy expects (i32) -> i32"),
        ('(func (export "proxy_on_vm_start") (param i32 i32))', "proxy_on_vm_start: the module exports (i32, i32) -> (), Envoy expects (i32, i32) -> i32"),
    ],
    ids=["alloc-no-result", "malloc-i64", "vm-start-no-result"],
)
def test_exports_with_the_wrong_signature_are_load_errors(export: str, expected: str) -> None:
    alloc = "" if "malloc" in export or "allocate" in export else _ALLOC
    with pytest.raises(ModuleLoadError, match="Bad function signature for: ") as info:
        Emulator().load(wat(export, alloc=alloc))
    assert expected in str(info.value)


def test_allocator_trap_names_the_allocator_export() -> None:
    module = wat(
        '(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (call $pairs (i32.const 0) (i32.const 0) (i32.const 8)))',
        imports=_GET_PAIRS,
        alloc='(func (export "proxy_on_memory_allocate") (param i32) (result i32) unreachable)',
    )
    with pytest.raises(WasmTrap) as info:
        Emulator().load(module).http_stream().send_request_headers({":path": "/"})
    assert info.value.callback == "proxy_on_memory_allocate"


# --------------------------------------------------------------------------- 4: errors name the module


def test_load_errors_name_the_module_file(tmp_path: Path) -> None:
    bad = tmp_path / "x.wasm"
    bad.write_bytes(b"hello")
    with pytest.raises(ModuleLoadError) as info:
        Emulator().load(bad)
    assert str(info.value) == f"{bad}: Failed to parse corrupted Wasm module"
    with pytest.raises(ModuleLoadError, match=r"^module bytes: Failed to parse corrupted Wasm module$"):
        Emulator().load(b"hello")
    with pytest.raises(ModuleLoadError, match=r"nope\.wasm: no such file$"):
        Emulator().load(tmp_path / "nope.wasm")


def test_start_errors_name_the_module_file_and_root_id(filter_wasm: Path) -> None:
    with pytest.raises(PluginStartError) as info:
        Emulator().load(filter_wasm, config="fail", root_id="my_root")
    message = str(info.value)
    assert message.startswith(f"{filter_wasm}: on_configure returned false")
    assert "root_id 'my_root'" in message


# --------------------------------------------------------------------------- 5: conversions


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (":path: /", "request headers must be a dict, a list of (name, value) pairs, or a HeaderMap, not str"),
        ([":path", "/"], "item 0 must be a (name, value) pair, not str ':path'"),
        ([(":path", "/", "x")], "item 0 must be a (name, value) pair, not tuple"),
        ({":path": "/", "x-n": 5}, "value of 'x-n' must be str or bytes"),
        ({":path": "/", "x-n": None}, "value of 'x-n' must be str or bytes"),
        ({1: "x"}, "header name must be str or bytes"),
        (5, "request headers must be a dict, a list of (name, value) pairs, or a HeaderMap, not int 5"),
    ],
    ids=["str", "flat-list", "triple", "int-value", "none-value", "int-name", "int"],
)
def test_bad_headers_are_refused(filter_wasm: Path, headers: Any, expected: str) -> None:
    stream = Emulator().load(filter_wasm).http_stream()
    with pytest.raises(EmulatorError) as info:
        stream.send_request_headers(headers, end_of_stream=True)
    assert expected in str(info.value)


@pytest.mark.parametrize("body", [5, None, [1, 2, 3]], ids=["int", "none", "list"])
def test_bad_bodies_are_refused(filter_wasm: Path, body: Any) -> None:
    stream = Emulator().load(filter_wasm).http_stream()
    stream.send_request_headers({":path": "/"})
    with pytest.raises(EmulatorError, match="the request body must be str or bytes"):
        stream.send_request_body(body)


@pytest.mark.parametrize("config", [5, {"a": 1}, None], ids=["int", "dict", "none"])
def test_bad_configs_are_refused(filter_wasm: Path, config: Any) -> None:
    with pytest.raises(EmulatorError, match="config must be str or bytes"):
        Emulator().load(filter_wasm, config=config)


def test_accepted_header_and_body_forms(filter_wasm: Path) -> None:
    plugin = Emulator().load(filter_wasm)
    for headers in ({":path": "/"}, [(":path", "/")], [[b":path", b"/"]], HeaderMap([(":path", "/")])):
        stream = plugin.http_stream()
        stream.send_request_headers(headers)
        stream.send_request_body(memoryview(b"abc"), end_of_stream=True)
        assert stream.upstream_request.headers[":path"] == "/"
        assert stream.upstream_request.body == b"abc"


# --------------------------------------------------------------------------- 6: closed emulator, drained plugin


def test_a_closed_emulator_refuses_every_use(filter_wasm: Path) -> None:
    emu = Emulator()
    plugin = emu.load(filter_wasm)
    stream = plugin.http_stream()
    emu.close()
    with pytest.raises(EmulatorError, match="the emulator is closed"):
        plugin.http_stream()
    with pytest.raises(EmulatorError, match="the emulator is closed"):
        stream.send_request_headers({":path": "/"}, end_of_stream=True)
    with pytest.raises(EmulatorError, match="the emulator is closed"):
        plugin.tick(10)
    with pytest.raises(EmulatorError, match="the emulator is closed"):
        emu.load(filter_wasm)
    emu.close()  # closing twice is fine


def test_a_shut_down_plugin_takes_no_new_streams(filter_wasm: Path) -> None:
    plugin = Emulator().load(filter_wasm)
    plugin.shutdown()
    with pytest.raises(EmulatorError, match="was shut down"):
        plugin.http_stream()
    with pytest.raises(EmulatorError, match="was shut down"):
        plugin.tcp_stream()


# --------------------------------------------------------------------------- 7: argument checks


@pytest.mark.parametrize("workers", [0, -1])
def test_workers_must_be_at_least_one(filter_wasm: Path, workers: int) -> None:
    with pytest.raises(EmulatorError, match="workers must be an int of at least 1"):
        Emulator().load(filter_wasm, workers=workers)


def test_worker_index_out_of_range(filter_wasm: Path) -> None:
    plugin = Emulator().load(filter_wasm, workers=2)
    plugin.http_stream(worker=1)
    for worker in (2, -1):
        with pytest.raises(EmulatorError, match=r"no worker .*it runs on 2 worker\(s\), 0 to 1"):
            plugin.http_stream(worker=worker)
    with pytest.raises(EmulatorError, match="no worker 3"):
        plugin.tcp_stream(worker=3)


@pytest.mark.parametrize("timeout", [0, -1])
def test_timeout_must_be_positive(timeout: float) -> None:
    with pytest.raises(EmulatorError, match="timeout must be a number of seconds greater than 0"):
        Emulator(timeout=timeout)


def test_the_clock_does_not_go_back(filter_wasm: Path) -> None:
    emu = Emulator()
    plugin = emu.load(filter_wasm)
    before = emu.now_ns
    with pytest.raises(EmulatorError, match="the clock only moves forward"):
        plugin.advance(-1000)
    assert emu.now_ns == before


@pytest.mark.parametrize("status", ["abc", 0, 1000, 99, True, 200.0])
def test_http_call_status_must_be_an_http_status(filter_wasm: Path, status: Any) -> None:
    plugin = Emulator().load(filter_wasm)
    plugin.http_stream().send_request_headers({":path": "/callout"}, end_of_stream=True)
    [call] = plugin.pending_http_calls
    with pytest.raises(EmulatorError, match="the HTTP status must be an int from 100 to 999"):
        call.respond(status, body=b"x")
    assert not call.done
    call.respond(204)
    assert call.done


def test_response_headers_need_request_headers_first(filter_wasm: Path) -> None:
    stream = Emulator().load(filter_wasm).http_stream()
    with pytest.raises(EmulatorError, match="send the request headers before the response headers"):
        stream.send_response_headers({":status": "200"})


def test_end_of_stream_must_be_a_bool(filter_wasm: Path) -> None:
    plugin = Emulator().load(filter_wasm)
    stream = plugin.http_stream()
    with pytest.raises(EmulatorError, match="end_of_stream must be True or False, not str 'no'"):
        stream.send_request_headers({":path": "/"}, end_of_stream="no")  # type: ignore[arg-type]
    stream.send_request_headers({":path": "/"}, end_of_stream=1)  # type: ignore[arg-type]
    assert stream.upstream_request.end_of_stream


# --------------------------------------------------------------------------- 8: bounded logs


def test_fd_write_with_many_iovecs_keeps_a_bounded_record() -> None:
    # 8000 iovecs, each the whole 64 KiB memory: 500 MiB of "output".
    body = """(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (local $i i32)
      (loop $l (i32.store (i32.mul (local.get $i) (i32.const 8)) (i32.const 0))
               (i32.store (i32.add (i32.mul (local.get $i) (i32.const 8)) (i32.const 4)) (i32.const 65536))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 8000))))
      (drop (call $w (i32.const 1) (i32.const 0) (i32.const 8000) (i32.const 65532)))
      i32.const 0)"""
    emu = Emulator(timeout=5)
    plugin = emu.load(wat(body, imports=_FD_WRITE))
    started = time.monotonic()
    plugin.http_stream().send_request_headers({":path": "/"})
    assert time.monotonic() - started < 2
    [record] = emu.logs.records
    dropped = 8000 * 65536 - 1024 * 1024
    assert record.message.endswith(f"[... {dropped} bytes dropped]")
    assert len(record.message) < 1024 * 1024 + 100


def test_proxy_log_keeps_a_bounded_record() -> None:
    size = 2 * 1024 * 1024
    body = f"""(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
      (drop (call $log (i32.const 2) (i32.const 0) (i32.const {size}))) i32.const 0)"""
    emu = Emulator()
    plugin = emu.load(wat(body, imports=_LOG, header=_HEADER.replace('"memory") 1)', '"memory") 40)')))
    plugin.http_stream().send_request_headers({":path": "/"})
    [record] = emu.logs.records
    assert record.message.endswith(f"[... {size - 1024 * 1024} bytes dropped]")
    assert len(record.message) < 1024 * 1024 + 100


# --------------------------------------------------------------------------- 9: bad plugin directory


def test_plugin_directory_without_plugin_py_is_a_module_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModuleLoadError, match="no plugin.py") as info:
        Emulator(build_cache=tmp_path / "cache").load(tmp_path)
    assert str(info.value).count(str(tmp_path)) >= 1
    assert not str(info.value).startswith(f"{tmp_path}: {tmp_path}")


def test_unknown_mode_and_log_level_are_emulator_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EmulatorError, match="log_level must be one of LogLevel.TRACE"):
        Emulator(log_level="debug")  # type: ignore[arg-type]
    with Emulator() as emulator, pytest.raises(EmulatorError, match="mode must be one of 'wasm', 'native'|mode must be one of 'native', 'wasm'"):
        emulator.load(b"\0asm\1\0\0\0", mode="WASM")


def test_header_map_to_dict_keeps_every_value_of_a_repeated_name() -> None:
    headers = HeaderMap([("Set-Cookie", "a=1"), ("content-type", "text/plain"), ("set-cookie", "b=2")])
    assert headers.to_dict() == {"Set-Cookie": "a=1,b=2", "content-type": "text/plain"}
    assert headers.get("set-cookie") == "a=1"
    assert headers.get_all("SET-COOKIE") == ["a=1", "b=2"]
