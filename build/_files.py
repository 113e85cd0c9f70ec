"""Files the build writes and caches: whole or not at all, and bounded."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path


def write_atomically(path: Path, data: bytes | bytearray | str) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one
    (another process may be building the same thing at the same time). An OSError leaves
    no partial file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        if isinstance(data, str):
            partial.write_text(data, encoding="utf-8")
        else:
            partial.write_bytes(data)
        partial.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise


class OutputPathError(ValueError):
    """An output path that cannot or must not be written. The message says what is wrong with the
    path and how to fix it, as a predicate ("names no file. Fix: ..."): callers put the path, as
    their users know it, in front."""


def shown_output(target: Path) -> str:
    """How to show an output path in a message: ``''`` for ``-o ''`` (which is ``Path('.')``)."""
    return "''" if target == Path() else str(target)


def check_output_path(target: Path, *, example: str, protected_dir: Path | None = None,
                      allowed_suffixes: tuple[str, ...] = ()) -> None:
    """Refuse, before any work, an output path that names no file, is a directory or lies under a
    file, or (with ``protected_dir``) is an existing file in that directory whose suffix is not one
    of ``allowed_suffixes`` (a source file, not an earlier output). ``example`` is a good path to
    suggest, such as ``dist/hello.wasm``."""
    if not target.name or target.name in (".", ".."):
        raise OutputPathError(f"names no file. Fix: pass -o a file path such as {example}")
    if target.is_dir():
        raise OutputPathError(f"is a directory. Fix: pass -o a file path such as {target / Path(example).name}")
    for parent in target.parents:
        if parent.exists() and not parent.is_dir():
            raise OutputPathError(f"is in {parent}, but {parent} is a file, not a directory. Fix: remove or "
                                  f"rename {parent}, or pass -o another path")
    if protected_dir is None:
        return
    resolved, root = target.resolve(), protected_dir.resolve()
    if resolved.is_file() and resolved.suffix.lower() not in allowed_suffixes and resolved.is_relative_to(root):
        raise OutputPathError(f"is {resolved.relative_to(root)} in the plugin directory {protected_dir}; writing "
                              f"there would destroy it. Fix: pass -o a {' or '.join(allowed_suffixes)} path, for "
                              f"example {example}")


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
