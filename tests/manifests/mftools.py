"""Helpers for manifest tests: paths, a tiny proxy-wasm module source, Envoy validation."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
ENVOY = str(Path(sys.executable).parent / "envoy")
_base_ids = itertools.count(os.getpid() % 10000 * 10 + 100000)

MODULE_C = r"""
#include <stdint.h>
#define EXPORT(n) __attribute__((export_name(n)))
extern int32_t proxy_log(int32_t, const char*, int32_t) __attribute__((import_module("env"), import_name("proxy_log")));
static unsigned char heap[65536]; static uint32_t top;
EXPORT("proxy_abi_version_0_2_1") void abi(void) {}
EXPORT("proxy_on_memory_allocate") void* alloc(uint32_t n) { void* p = heap + top; top = (top + n + 7) & ~7u; if (top > sizeof heap) top = 0; return p; }
EXPORT("proxy_on_context_create") void ctx(uint32_t id, uint32_t parent) {}
EXPORT("proxy_on_vm_start") uint32_t vm_start(uint32_t id, uint32_t size) { proxy_log(2, "pwtool-test vm started", 22); return 1; }
EXPORT("proxy_on_configure") uint32_t configure(uint32_t id, uint32_t size) { return 1; }
EXPORT("proxy_on_request_headers") uint32_t req(uint32_t id, uint32_t n, uint32_t eos) { return 0; }
EXPORT("proxy_on_done") uint32_t done(uint32_t id) { return 1; }
EXPORT("proxy_on_delete") void del(uint32_t id) {}
"""


def envoy_validate(config: dict[str, Any], workdir: Path, name: str = "cfg") -> subprocess.CompletedProcess[str]:
    """Run ``envoy --mode validate -c`` on a full bootstrap."""
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([ENVOY, "--mode", "validate", "-c", str(path), "--base-id", str(next(_base_ids)),
                           "--log-level", "warn"], capture_output=True, text=True, timeout=120)


def next_base_id() -> int:
    return next(_base_ids)
