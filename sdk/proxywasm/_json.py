"""JSON decoding without the `json` package, on the interpreter's `_json` scanner.

The `json` package imports `re` and `enum`: about fifteen modules that would sit in
every plugin's snapshot (memory per VM, module size, V8 compile time) only to read a
configuration. `_json.make_scanner` is the C scanner `json` itself uses; this module
drives it directly. Plugins that want the full `json` API import `json` themselves.
"""

from __future__ import annotations

import _json

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


_scan = _json.make_scanner(_ScannerSettings())  # type: ignore[arg-type]
_WHITESPACE = " \t\n\r"


def loads(data: str | bytes | bytearray) -> Any:
    """Parse one JSON document; raises ValueError (with the position) when it is not."""
    text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as stop:
        raise ValueError(f"invalid JSON: expecting a value at position {stop.value}") from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    except Exception as error:  # noqa: BLE001 - the scanner reports other errors via json.decoder
        raise ValueError(f"invalid JSON: {error}") from None
    rest = text[end:].strip(_WHITESPACE)
    if rest:
        raise ValueError(f"invalid JSON: extra data at position {end + text[end:].index(rest[0])}")
    return value
