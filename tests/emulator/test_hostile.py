"""Hostile or buggy modules get clear errors, never a hang or a crash."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pwtool.emulator import Emulator, VMFailed, WasmTrap


def test_infinite_loop_hits_the_deadline(filter_wasm: Path) -> None:
    emu = Emulator(timeout=0.3)
    plugin = emu.load(filter_wasm)
    stream = plugin.http_stream()
    started = time.monotonic()
    with pytest.raises(WasmTrap, match="deadline exceeded") as info:
        stream.send_request_headers({":path": "/", "x-evil": "loop"})
    assert time.monotonic() - started < 5
    assert info.value.callback == "proxy_on_request_headers"
    # The VM is failed from now on, as in Envoy.
    with pytest.raises(VMFailed):
        plugin.http_stream()


def test_trap_names_callback_and_trap(filter_wasm: Path) -> None:
    plugin = Emulator().load(filter_wasm)
    with pytest.raises(WasmTrap) as info:
        plugin.http_stream().send_request_headers({":path": "/", "x-evil": "trap"})
    assert info.value.callback == "proxy_on_request_headers"
    assert "unreachable" in info.value.trap
    assert "proxy_on_request_headers" in str(info.value)


def test_out_of_bounds_pointers_get_invalid_memory_access(filter_wasm: Path) -> None:
    plugin = Emulator().load(filter_wasm)
    plugin.http_stream().send_request_headers({":path": "/", "x-evil": "oob"})
    assert plugin.logs.warn == [
        "c: oob log status=6",
        "c: oob len status=6",
        "c: oob out status=6",
        "c: oob key status=6",
    ]


def test_memory_limit_makes_allocation_fail_not_the_host(filter_wasm: Path) -> None:
    plugin = Emulator(memory_limit=64 * 1024 * 1024).load(filter_wasm)
    plugin.http_stream().send_request_headers({":path": "/", "x-evil": "alloc"})
    [message] = plugin.logs.warn
    count = int(message.rsplit("=", 1)[1])
    assert 0 < count < 4  # 16 MiB chunks under a 64 MiB cap
    plugin.http_stream().send_request_headers({":path": "/", "x-evil": "grow"})
    assert plugin.logs.warn[-1] == "c: memory.grow(65536 pages)=-1"


def test_proc_exit_is_a_trap(filter_wasm: Path) -> None:
    plugin = Emulator().load(filter_wasm)
    with pytest.raises(WasmTrap, match=r"proc_exit\(3\)"):
        plugin.http_stream().send_request_headers({":path": "/", "x-evil": "exit"})


def test_allocator_returning_garbage(c_module: Callable[..., Path]) -> None:
    plugin = Emulator().load(c_module("bad_malloc"))
    plugin.http_stream().send_request_headers({":path": "/x"})
    assert plugin.logs.warn == ["status=6"]
