"""Helpers for the dev-loop tests: run ``pwtool`` in a subprocess and load-test a URL."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PWTOOL = [sys.executable, "-c", "from pwtool.cli import main; main()"]


def pwtool(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PWTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


class Background:
    """``pwtool ARGS`` running in the background; its merged output collected line by line."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen([*PWTOOL, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, text=True, env=env)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, start: int = 0) -> str:
        """The first output line from index ``start`` on that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[start:]:
                if predicate(line):
                    return line
            if self.process.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no matching output line within {timeout} s; output so far:\n{self.output}")

    def value(self, label: str, timeout: float = 180) -> str:
        """The second field of the first line starting with ``label`` (e.g. ``URL  http://...``)."""
        return self.wait_for(lambda line: line.startswith(label + " "), timeout).split()[1]

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C by PID, then wait; kill if it does not stop."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._reader.join(timeout=5)
        return self.process.returncode


@dataclass
class Sample:
    at: float
    status: int | str
    header: str | None
    seconds: float


@dataclass
class Load:
    """A thread sending GET requests to ``port`` every ``interval`` seconds, recording each."""

    port: int
    header: str
    interval: float = 0.02
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", "/load")
                response = conn.getresponse()
                response.read()
                conn.close()
                self.samples.append(Sample(started, response.status, response.getheader(self.header),
                                           time.monotonic() - started))
            except (OSError, http.client.HTTPException) as error:
                self.samples.append(Sample(started, repr(error), None, time.monotonic() - started))
            self._stop.wait(self.interval)

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def failures(self) -> list[Sample]:
        return [s for s in self.samples if s.status != 200]

    def first_with(self, value: str, after: float = 0.0) -> Sample | None:
        return next((s for s in self.samples if s.at >= after and s.header == value), None)


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in ``path`` (must be present), as an editor save would."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not alive; /proc tells.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
