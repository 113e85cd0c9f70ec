"""Envoy's log, read as records: one header line plus the continuation lines written with it.

A record starts with ``[time][thread][level][component] [source:line] text``; the lines after
it that do not start that way (a Python traceback, a plugin's ``log_info("a\\nb")``) belong
to it: same level and component.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# "[2025-01-01 00:00:00.000][1234][info][wasm] [source/...:123] wasm log hello: text"
LOG_LINE = re.compile(r"^\[[^\]]*\]\[\d+\]\[(?P<level>\w+)\]\[(?P<component>[\w-]+)\] (?:\[[^\]]*\] )?(?P<text>.*)$")
ERROR_LEVELS = ("error", "critical")


class LogRecord(NamedTuple):
    """One Envoy log record; ``text`` holds its continuation lines after newlines.

    ``continued`` marks continuation lines read after their record was already returned
    (the record was split across two reads): they carry that record's level and component.
    """

    level: str
    component: str
    text: str
    continued: bool = False


def parse_log(lines: list[str], last: LogRecord | None = None) -> list[LogRecord]:
    """Group log ``lines`` into records. Continuation lines before the first header belong
    to ``last`` (the record returned before), returned as one ``continued`` record."""
    records: list[LogRecord] = []
    for line in lines:
        match = LOG_LINE.match(line)
        if match:
            records.append(LogRecord(match["level"], match["component"], match["text"]))
        elif not line.strip() and not records:
            continue
        elif records:
            head = records[-1]
            records[-1] = head._replace(text=f"{head.text}\n{line}")
        elif last is not None:
            records.append(LogRecord(last.level, last.component, line, continued=True))
        else:
            records.append(LogRecord("", "", line, continued=True))
    # Blank lines Envoy ends a record with are not part of its text.
    return [record._replace(text=record.text.rstrip("\n ")) for record in records]


def error_summary(text: str, limit: int = 10, also: str | None = None) -> str:
    """The error and critical records of a log ``text`` (the last ``limit``, repeats once), indented;
    with ``also``, records of any level that contain it too."""
    records = [r for r in parse_log(text.splitlines()) if r.level in ERROR_LEVELS or (also and also in r.text)]
    shown = dict.fromkeys("  " + r.text.replace("\n", "\n  ") for r in records[-limit:])
    return "\n".join(shown)
