"""Logging through the host (`proxy_log`), plus exception formatting for tracebacks.

The standard `logging` module is deliberately not used: it is large, and Envoy already
filters by level and prefixes every line with the plugin and context.
"""

from __future__ import annotations

from . import _hostcalls
from ._codec import to_bytes
from ._types import LogLevel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType


def log(level: LogLevel | int, message: str | bytes) -> None:
    """Write `message` to the host's log at `level`."""
    _hostcalls.log(level, to_bytes(message))


def log_trace(message: str | bytes) -> None:
    """Log at TRACE level."""
    _hostcalls.log(LogLevel.TRACE, to_bytes(message))


def log_debug(message: str | bytes) -> None:
    """Log at DEBUG level."""
    _hostcalls.log(LogLevel.DEBUG, to_bytes(message))


def log_info(message: str | bytes) -> None:
    """Log at INFO level."""
    _hostcalls.log(LogLevel.INFO, to_bytes(message))


def log_warn(message: str | bytes) -> None:
    """Log at WARN level."""
    _hostcalls.log(LogLevel.WARN, to_bytes(message))


def log_error(message: str | bytes) -> None:
    """Log at ERROR level."""
    _hostcalls.log(LogLevel.ERROR, to_bytes(message))


def log_critical(message: str | bytes) -> None:
    """Log at CRITICAL level."""
    _hostcalls.log(LogLevel.CRITICAL, to_bytes(message))


def get_log_level() -> LogLevel:
    """The host's current log level: messages below it are dropped by the host."""
    level = _hostcalls.get_log_level()
    try:
        return LogLevel(level)
    except ValueError:
        return LogLevel.TRACE if level < 0 else LogLevel.CRITICAL


def format_exception(exc: BaseException) -> str:
    """A traceback in the familiar format, without the `traceback` module.

    Source lines are left out: inside the wasm VM there are no source files to read.
    Chained exceptions (``raise ... from`` and exceptions raised while handling another)
    are included, oldest first, like the interpreter prints them.
    """
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    note = ""
    while current is not None and id(current) not in seen and len(chain) < 8:
        seen.add(id(current))
        chain.append((current, note))
        if current.__cause__ is not None:
            note = "The above exception was the direct cause of the following exception:"
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            note = "During handling of the above exception, another exception occurred:"
            current = current.__context__
        else:
            current = None
    lines: list[str] = []
    for index, (error, _) in enumerate(reversed(chain)):
        if index:
            lines += ["", chain[len(chain) - index][1], ""]
        tb = error.__traceback__
        if tb is not None:
            lines.append("Traceback (most recent call last):")
        previous, repeats = "", 0
        while tb is not None:
            line = _frame_line(tb)
            repeats = repeats + 1 if line == previous else 0
            if repeats < _SHOWN_REPEATS:
                lines.append(line)
            previous, tb = line, tb.tb_next
            if repeats >= _SHOWN_REPEATS and (tb is None or _frame_line(tb) != line):
                more = repeats - _SHOWN_REPEATS + 1
                lines.append(f"  [Previous line repeated {more} more time{'s' if more > 1 else ''}]")
        lines.append(_exception_line(error))
    return "\n".join(lines)


_SHOWN_REPEATS = 3
"""A run of identical frames (a RecursionError's hundreds) shows this many, then a count,
as the interpreter's own tracebacks do."""


def _frame_line(tb: TracebackType) -> str:
    code = tb.tb_frame.f_code
    return f'  File "{code.co_filename}", line {tb.tb_lineno}, in {code.co_name}'


_LONGEST_MESSAGE = 64 * 1024
"""An exception's message is cut to this many characters: the host log is not a
store for megabytes that a plugin put in an exception."""


def _exception_line(error: BaseException) -> str:
    cls = type(error)
    name = cls.__qualname__
    if cls.__module__ not in ("builtins", "__main__"):
        name = f"{cls.__module__}.{name}"
    try:
        text = str(error)
    except BaseException as failure:  # the exception's own __str__ raised
        text = f"<str() of the exception raised {type(failure).__qualname__}>"
    if len(text) > _LONGEST_MESSAGE:
        text = f"{text[:_LONGEST_MESSAGE]}... [{len(text) - _LONGEST_MESSAGE} more characters]"
    return f"{name}: {text}" if text else name
