"""Files the build writes and caches: whole or not at all, and bounded."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def write_atomically(path: Path, data: bytes | bytearray | str) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one
    (another process may be building the same thing at the same time)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    if isinstance(data, str):
        partial.write_text(data, encoding="utf-8")
    else:
        partial.write_bytes(data)
    partial.replace(path)


def prune_oldest(directory: Path, keep: int) -> None:
    """Keep the `keep` newest entries of a cache directory (edits leave stale ones)."""
    entries = list(directory.iterdir())
    if len(entries) <= keep:
        return
    entries.sort(key=lambda path: path.stat().st_mtime_ns)
    for stale in entries[: len(entries) - keep]:
        if stale.is_file():
            stale.unlink(missing_ok=True)
        else:
            shutil.rmtree(stale, ignore_errors=True)
