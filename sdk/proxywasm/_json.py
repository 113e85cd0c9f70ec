"""JSON decoding without the `json` package, on the interpreter's `_json` scanner.

The `json` package imports `re` and `enum`: about fifteen modules that would sit in
every plugin's snapshot (memory per VM, module size, V8 compile time) only to read a
configuration. `_json.make_scanner` is the C scanner `json` itself uses; this module
drives it directly. Plugins that want the full `json` API import `json` themselves.

Do not import `json` here, not even inside a function: `pwtool build` follows every
import in the SDK (function bodies included) into the snapshot.
"""

from __future__ import annotations

import _json
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _ScannerSettings:
    """The attributes `_json.make_scanner` reads from a `json.JSONDecoder`."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity
    memo = None


class _NonFinite:
    """Stands for a NaN / Infinity / -Infinity literal where those are refused."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


class _RefusingSettings(_ScannerSettings):
    """Settings whose NaN / Infinity / -Infinity become `_NonFinite` markers."""

    parse_constant = _NonFinite  # type: ignore[assignment]


class _SyntaxError(ValueError):
    """Stand-in for ``json.decoder.JSONDecodeError`` (see `_syntax_error`)."""

    def __init__(self, msg: str, doc: str, pos: int) -> None:
        super().__init__(msg)
        self.msg = msg
        self.pos = pos


_scan = _json.make_scanner(_ScannerSettings())  # type: ignore[arg-type]
_scan_refusing = _json.make_scanner(_RefusingSettings())  # type: ignore[arg-type]
_WHITESPACE = " \t\n\r"


def _where(text: str, pos: int) -> str:
    """``line L column C (char N)`` for position `pos` of `text`, as `json` words it."""
    line = text.count("\n", 0, pos) + 1
    column = pos - text.rfind("\n", 0, pos)
    return f"line {line} column {column} (char {pos})"


def loads(data: str | bytes | bytearray, *, allow_nan: bool = True) -> Any:
    """Parse one JSON document; raises ValueError worded like `json`'s when it is not.

    Bytes must be UTF-8 (UnicodeDecodeError, a ValueError, names the offset). With
    ``allow_nan=False`` the NaN, Infinity and -Infinity literals (which JSON does not
    allow; `json` accepts them) raise ValueError naming where they are.
    """
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = (_scan if allow_nan else _scan_refusing)(text, start)
    except StopIteration as stop:
        raise ValueError(f"Expecting value: {_where(text, stop.value)}") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except Exception as error:  # noqa: BLE001 - the scanner's syntax errors, see _syntax_error
        msg, pos = _syntax_error(text, start, error)
        raise ValueError(msg if pos is None else f"{msg}: {_where(text, pos)}") from None
    rest = text[end:].lstrip(_WHITESPACE)
    if rest:
        raise ValueError(f"Extra data: {_where(text, len(text) - len(rest))}")
    if not allow_nan:
        found = _find_non_finite(value, "")
        if found is not None:
            literal, path = found
            at = f"at {path!r}" if path else "as the whole document"
            raise ValueError(f"{literal} {at} is not allowed: JSON has no NaN or Infinity")
    return value


def _syntax_error(text: str, start: int, error: Exception) -> tuple[str, int | None]:
    """The scanner's message and position for a document it refused with `error`.

    The C scanner builds its errors with ``JSONDecodeError`` from the ``json.decoder``
    module in `sys.modules`. Without the `json` package (a built module, or a process
    that never imported it) there is none, and CPython 3.11 reports a SystemError that
    says nothing. Then scan once more with a stand-in module there, which records the
    message and the position, and take it out again.
    """
    msg, pos = getattr(error, "msg", None), getattr(error, "pos", None)
    if isinstance(msg, str) and isinstance(pos, int):
        return msg, pos  # json.decoder was loaded: a real JSONDecodeError
    modules = sys.modules
    if "json.decoder" in modules:
        return str(error), None
    stand_in = type(sys)("json.decoder")
    setattr(stand_in, "JSONDecodeError", _SyntaxError)
    modules["json.decoder"] = stand_in
    try:
        _scan(text, start)
    except _SyntaxError as syntax:
        return syntax.msg, syntax.pos
    except Exception:  # noqa: BLE001 - anything else: keep the first error
        pass
    finally:
        if modules.get("json.decoder") is stand_in:
            del modules["json.decoder"]
    return str(error), None


def _find_non_finite(value: object, path: str) -> tuple[str, str] | None:
    """(literal, path) of the first `_NonFinite` marker in a parsed value, if any."""
    if isinstance(value, _NonFinite):
        return value.literal, path
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_non_finite(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_non_finite(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
