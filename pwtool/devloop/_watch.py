"""Polling file watcher: cheap, portable, no inotify dependency."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# Directories and files that never affect a build (caches, outputs, editor droppings).
_SKIP_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".git", "dist", ".hypothesis", "node_modules"}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".swp", ".swx", ".tmp", "~", ".wasm", ".partial")

Snapshot = dict[str, tuple[int, int]]


def snapshot(roots: Iterable[Path]) -> Snapshot:
    """``{path: (mtime_ns, size)}`` for every relevant file under ``roots`` (files or directories)."""
    seen: Snapshot = {}
    for root in roots:
        root = Path(root)
        if root.is_file():
            _add(seen, root)
            continue
        for directory, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(".")]
            for name in filenames:
                if name.startswith(".") or name.endswith(_SKIP_SUFFIXES):
                    continue
                _add(seen, Path(directory) / name)
    return seen


def _add(seen: Snapshot, path: Path) -> None:
    try:
        stat = path.stat()
    except OSError:  # deleted between listing and stat
        return
    seen[str(path)] = (stat.st_mtime_ns, stat.st_size)


def changed(before: Snapshot, after: Snapshot) -> list[str]:
    """Paths added, removed or modified between two snapshots, sorted."""
    return sorted(path for path in before.keys() | after.keys() if before.get(path) != after.get(path))
