"""The dev loop: a plugin served by a real Envoy, hot-swapped through file-based ECDS.

Envoy reads the wasm filter's config from an ECDS file (``path_config_source``) and
watches that file's directory for a *move onto* the file name (inotify ``IN_MOVED_TO``);
writing the file in place is not seen. So every swap builds the module under a new,
versioned file name, writes a new ``DiscoveryResponse`` (new ``version_info``) to a
temporary file in the same directory and renames it over the watched path. Envoy
then loads the new module on its main thread while the old filter config keeps serving;
streams that already started finish on the old VM, new streams get the new one.
A failed build or a module Envoy rejects leaves the old module serving.

With ``fast_swaps`` (``pwtool run --watch``) Envoy is given the dev loop's module
instead (pwtool.build.devmodule): the same bytes for every edit, with the edit's
compiled plugin in the VM configuration. Envoy's V8 then reuses the code it compiled
for the previous version, and a swap takes about a second instead of 4-8 s of compiling.
The real module is still built first, so build errors show as they would in ``pwtool build``.

A plugin callback that never returns wedges the Envoy thread running it: a worker (a request
callback) or the main thread (``on_configure`` of a new version). Then a swap is never
acknowledged; after ``stuck_after`` seconds without an acknowledgement the dev loop probes
Envoy (admin ``/ready``, one request through the listener, short timeouts) and, when twice in
a row it does not answer, restarts Envoy (by PID, SIGKILL if needed): with the new version
if a worker was stuck, with the previous one if loading the new version got stuck.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pwtool.build import PluginError, load_metadata
from pwtool.devloop._watch import Snapshot, changed, snapshot
from pwtool.envoy import EchoServer, Envoy, LogRecord, free_port, parse_log, port_in_use
from pwtool.envoy._log import error_summary
from pwtool.manifests import ManifestError, bootstrap, ecds_filter, ecds_resource, parse_upstream, plugin_config

Say = Callable[[str], None]
_KEEP_MODULES = 3
_WASM_LOG = re.compile(r"^wasm log(?: [^:\s]*)*?: ")


class DevLoopError(RuntimeError):
    """The dev loop could not start (the first build failed, Envoy refused the config, ...)."""


class BuildError(DevLoopError):
    """The plugin did not build (``start()``): fix it and start again, or wait for a change."""


class Stopped(DevLoopError):
    """The stop event was set while the dev loop waited (a build, Envoy, an acknowledgement)."""


@dataclass(frozen=True)
class Swap:
    """The outcome of one rebuild: ``ok`` and the new ``version``, or the ``error`` text."""

    ok: bool
    version: str
    seconds: float
    build_seconds: float = 0.0
    error: str = ""
    restarted: bool = False  # Envoy was stuck in the plugin and was restarted (new PID)


def _sdk_dir() -> Path | None:
    """The proxywasm SDK's source directory (found without importing it: it needs the host seam)."""
    spec = importlib.util.find_spec("proxywasm")
    return Path(spec.origin).parent if spec and spec.origin else None


def parse_config(value: str | None) -> tuple[dict[str, Any] | None, Path | None]:
    """``--config``: inline JSON, or ``@file`` holding JSON; returns (config, file to watch)."""
    if value is None:
        return None, None
    path: Path | None = None
    text = value
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise DevLoopError(f"--config {value}: cannot read {path}: {error.strerror}") from None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise DevLoopError(f"--config {value}: not valid JSON: {error}") from None
    if not isinstance(config, dict):
        raise DevLoopError(f"--config {value}: must be a JSON object, got {type(config).__name__}")
    return config, path


class DevServer:
    """``with DevServer("plugins/hello") as dev: dev.url; dev.reload()`` - plugin in a live Envoy.

    ``upstream`` is ``host:port`` (default: a built-in JSON echo server). ``config`` is
    ``--config`` syntax (JSON or ``@file``); without it the plugin.toml defaults apply.
    ``fast_swaps`` serves the dev loop's module (see the module docstring). ``stop``: waits
    (builds, acknowledgements) end early once it is set.
    """

    stuck_after = 10.0  # seconds without an acknowledgement before probing whether Envoy is stuck
    stuck_every = 4.0  # seconds between probes
    probe_timeout = 3.0

    def __init__(
        self,
        plugin_dir: Path | str,
        *,
        upstream: str | None = None,
        port: int | None = None,
        admin_port: int | None = None,
        config: str | None = None,
        concurrency: int = 1,
        workdir: Path | None = None,
        say: Say | None = None,
        watch_sdk: bool = True,
        fast_swaps: bool = False,
        stop: threading.Event | None = None,
    ) -> None:
        self.plugin_dir = Path(plugin_dir).resolve()
        self.upstream = upstream
        self._port_flags = {flag: value for flag, value in (("--port", port), ("--admin-port", admin_port)) if value}
        self.port = port or free_port()
        self.admin_port = admin_port or free_port()
        self.config_arg = config
        self.concurrency = concurrency
        self.fast_swaps = fast_swaps
        self._say: Say = say or (lambda message: None)
        self.stop_event = stop or threading.Event()
        self._owned_dir: Path | None = None  # removed by close(), unless Envoy failed to start
        if not workdir:
            self._owned_dir = workdir = Path(tempfile.mkdtemp(prefix="pwtool-run-"))
        self.workdir = Path(workdir)
        self.module_dir = self.workdir / "modules"
        self.ecds_dir = self.workdir / "ecds"
        self.generation = 0
        self.version = ""
        self.envoy: Envoy | None = None
        self._echo: EchoServer | None = None
        self._name = ""
        self._config_file: Path | None = None
        self._watch_roots = [self.plugin_dir]
        sdk = _sdk_dir() if watch_sdk else None
        if sdk is not None and sdk.is_dir():
            self._watch_roots.append(sdk)
        self._lock = threading.Lock()
        self._config: dict[str, Any] | None = None
        self._root_id = ""
        self._sha = ""
        self._dev_module: Path | None = None
        self._dev_vm_configuration = ""
        self._log_offset = 0
        self._log_rest = b""
        self._log_last: LogRecord | None = None
        self._build_process: subprocess.Popen[str] | None = None

    # -- properties ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def pid(self) -> int:
        assert self.envoy is not None, "not started"
        return self.envoy.pid

    @property
    def ecds_path(self) -> Path:
        return self.ecds_dir / f"{self._name}.yaml"

    @property
    def watch_roots(self) -> list[Path]:
        roots = list(self._watch_roots)
        if self._config_file is not None:
            roots.append(self._config_file)
        return roots

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> "DevServer":
        """Build the plugin, start the upstream (if built in) and Envoy; raise DevLoopError on failure
        (BuildError if the plugin did not build: then ``start()`` may be called again)."""
        for flag, port in self._port_flags.items():
            if port_in_use(port):
                raise DevLoopError(f"127.0.0.1:{port} ({flag}) is already in use. "
                                   f"Fix: choose another port or omit {flag}")
        try:
            metadata = load_metadata(self.plugin_dir)
        except PluginError as error:
            raise BuildError(str(error)) from None
        self._name = metadata.name
        self.module_dir.mkdir(parents=True, exist_ok=True)
        self.ecds_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        module, problem = self._build()
        if module is None:
            raise (Stopped if self.stop_event.is_set() else BuildError)(problem)
        self._write_ecds(module)
        if self.upstream is not None:
            self._check_upstream(self.upstream)
        upstream = self.upstream
        if upstream is None:
            echo = EchoServer()
            echo.start()
            self._echo = echo
            upstream = echo.address
        config = bootstrap(
            http_filters=[ecds_filter(self._name, self.ecds_path)],
            listen_port=self.port, admin_port=self.admin_port, upstream=upstream,
        )
        _answer_probes_in_envoy(config)
        self.envoy = Envoy(config, admin_port=self.admin_port, workdir=self.workdir, concurrency=self.concurrency)
        try:
            self.envoy.start(stop=self.stop_event)
        except Exception as error:
            self.stop()
            if self.stop_event.is_set():
                raise Stopped("stopped") from None
            kept = ""
            if self._owned_dir is not None:  # keep Envoy's log and config for a look
                self._owned_dir = None
                kept = f"\n(Envoy's config and full log are kept in {self.workdir})"
            raise DevLoopError(f"{error}{kept}") from None
        # Envoy starts serving even when it rejects the first ECDS file; refuse that here.
        counters = self._ecds_counters()
        if counters.get("config_reload", 0) < 1:
            reason = self._rejection_reason(0)
            self.stop()
            raise DevLoopError(f"Envoy did not load the plugin:\n{reason}")
        self._say(f"Envoy {self.pid} serving {self._name} {self.version} in {time.monotonic() - started:.1f} s")
        return self

    def stop(self) -> None:
        """Stop Envoy (by PID) and the built-in upstream; keep the work directory."""
        if self.envoy is not None:
            self.envoy.stop(grace=5)
        if self._echo is not None:
            self._echo.stop()
            self._echo = None

    def kill(self, reap: bool = True) -> None:
        """Stop at once (a second Ctrl-C): SIGKILL Envoy and a running build, by PID; ``reap=False``
        only sends the signals (from a signal handler, which must not wait)."""
        self.stop_event.set()
        build = self._build_process
        if build is not None and build.poll() is None:
            build.kill()
        if self.envoy is not None:
            self.envoy.kill(reap=reap)

    def close(self) -> None:
        self.stop()
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)

    def __enter__(self) -> "DevServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- swapping -----------------------------------------------------------------------------

    def reload(self, timeout: float = 60.0) -> Swap:
        """Rebuild and swap the module into the running Envoy; on any error the old one keeps serving."""
        with self._lock:
            started = time.monotonic()
            module, error = self._build()
            build_seconds = time.monotonic() - started
            if module is None:
                return Swap(False, self.version, time.monotonic() - started, build_seconds, error)
            before = self._ecds_counters()
            log_mark = self._log_size()
            previous = self.version
            previous_ecds = self.ecds_path.read_text(encoding="utf-8")
            try:
                self._write_ecds(module)
            except DevLoopError as failure:
                return Swap(False, previous, time.monotonic() - started, build_seconds, str(failure))
            outcome = self._await_ack(before, log_mark, timeout)
            if outcome == "stuck-worker":  # the old version is stuck in a request: restart with the new one
                self._say("Envoy seems stuck in the plugin (an endless loop in a callback?): "
                          "restarting Envoy with the new version")
                problem = self._restart()
                if problem:
                    raise DevLoopError(problem)  # no Envoy serves any version now
                self._prune_modules()
                return Swap(True, self.version, time.monotonic() - started, build_seconds, restarted=True)
            if outcome == "stuck-main":  # loading the new version got stuck: restart with the previous one
                self._say("Envoy seems stuck in the plugin (an endless loop in on_configure or on_vm_start?): "
                          f"restarting Envoy with the previous version {previous}")
                self._replace_ecds(previous_ecds)
                self.version = previous
                problem = self._restart()
                if problem:
                    raise DevLoopError(problem)
                outcome = (f"Envoy got stuck loading the new version (an endless loop in on_configure "
                           f"or on_vm_start?); Envoy was restarted as PID {self.pid}")
                return Swap(False, previous, time.monotonic() - started, build_seconds, outcome, restarted=True)
            if outcome:
                self.version = previous
                return Swap(False, previous, time.monotonic() - started, build_seconds, outcome)
            self._prune_modules()
            return Swap(True, self.version, time.monotonic() - started, build_seconds)

    def wait_for_change(self, since: Snapshot | None = None, interval: float = 0.1, settle: float = 0.1) -> list[str]:
        """Block until a watched file differs from ``since`` (default: now) and return the changed
        files, or [] once ``stop_event`` is set."""
        change = self._next_change(since or self.snapshot(), interval, settle)
        return change[0] if change else []

    def snapshot(self) -> Snapshot:
        """The watched files as they are now, for `wait_for_change` / `watch` to compare with."""
        return snapshot(self.watch_roots)

    def _next_change(self, state: Snapshot, interval: float, settle: float,
                     check: Callable[[], None] | None = None) -> tuple[list[str], Snapshot] | None:
        """The files changed since ``state`` and the new snapshot, once some change; None once stopped.
        ``check`` runs between polls (it may raise)."""
        stop = self.stop_event
        while not stop.wait(interval):
            if check is not None:
                check()
            current = snapshot(self.watch_roots)
            if current == state:
                continue
            # Let editors finish writing (save = truncate + write, or write temp + rename).
            while not stop.wait(settle):
                settled = snapshot(self.watch_roots)
                if settled == current:
                    break
                current = settled
            return changed(state, current), current
        return None

    def watch(self, stop: threading.Event, since: Snapshot | None = None, interval: float = 0.1,
              settle: float = 0.1) -> None:
        """Poll the plugin directory (and SDK, and a ``@file`` config) and reload on change until
        ``stop``; a change since ``since`` (taken before the build that is serving) counts too."""
        self.stop_event = stop
        state = since or self.snapshot()
        while (change := self._next_change(state, interval, settle, self._check_envoy)) is not None:
            files, state = change
            names = ", ".join(os.path.relpath(f, self.plugin_dir) if f.startswith(str(self.plugin_dir)) else f
                              for f in files[:3])
            self._say(f"changed: {names}{' ...' if len(files) > 3 else ''} - rebuilding")
            swap = self.reload()
            if stop.is_set():
                return
            if swap.ok:
                kept = f"Envoy restarted as PID {self.pid}" if swap.restarted else f"Envoy {self.pid} kept running"
                self._say(f"swapped in {swap.version} in {swap.seconds:.1f} s "
                          f"(build {swap.build_seconds:.1f} s), {kept}")
            else:
                self._say(f"error: {swap.error}\nstill serving {swap.version}")

    # -- logs ---------------------------------------------------------------------------------

    def new_log_lines(self) -> list[LogRecord]:
        """Envoy log records written since the last call, as ``(level, component, text, continued)``.

        A record's continuation lines (a traceback, a multi-line plugin message) are in its
        ``text`` after newlines; those read after their record was returned come as a
        ``continued`` record with that record's level and component."""
        if self.envoy is None:
            return []
        try:
            with open(self.envoy.log_path, "rb") as log:
                log.seek(self._log_offset)
                data = log.read()
        except FileNotFoundError:  # not written yet, or the work directory is being removed
            return []
        self._log_offset += len(data)
        data = self._log_rest + data
        *complete, self._log_rest = data.split(b"\n")
        records = parse_log([raw.decode("utf-8", "replace") for raw in complete], self._log_last)
        if records and not records[-1].continued:
            self._log_last = records[-1]
        return records

    @staticmethod
    def plugin_log_text(component: str, text: str) -> str | None:
        """The plugin's own message if this Envoy record is a wasm log line, else None
        (all its lines: a traceback, or a message with newlines)."""
        if component != "wasm":
            return None
        match = _WASM_LOG.match(text)
        return text[match.end():] if match else None

    # -- internals ----------------------------------------------------------------------------

    def _build(self) -> tuple[Path | None, str]:
        """Build in a fresh interpreter: a long-running loop then always uses the toolkit and
        SDK code on disk, and a crashing build cannot take the dev loop down."""
        target = self.module_dir / f"{self._name}-{self.generation + 1}.wasm"
        try:
            self._config, self._config_file = parse_config(self.config_arg)
        except DevLoopError as error:
            return None, str(error)
        command = [sys.executable, "-c", "from pwtool.cli import main; main()", "build", str(self.plugin_dir),
                   "-o", str(target), "--json"]
        vm_configuration = target.with_suffix(".vm-config")
        if self.fast_swaps:
            command += ["--dev-vm-config", str(vm_configuration)]
        # Poll, so that Ctrl-C (the stop event) ends a long build (an import that loops) at once.
        proc = self._build_process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                      text=True, stdin=subprocess.DEVNULL)
        try:
            while True:
                try:
                    stdout, stderr = proc.communicate(timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    if self.stop_event.is_set():
                        proc.kill()
                        proc.communicate()
                        target.unlink(missing_ok=True)
                        vm_configuration.unlink(missing_ok=True)
                        return None, "stopped"
        finally:
            self._build_process = None
        if proc.returncode != 0:
            target.unlink(missing_ok=True)
            vm_configuration.unlink(missing_ok=True)
            err = stderr.strip()
            index = err.find("Error: ")
            return None, (err[index + len("Error: "):] if index >= 0 else err) or f"build exited {proc.returncode}"
        result = json.loads(stdout)
        name = result["plugin"]["name"]
        if name != self._name:
            target.unlink(missing_ok=True)
            return None, (f"plugin.toml: the name changed from {self._name!r} to {name!r}; "
                          "restart `pwtool run` to rename the plugin")
        self.generation += 1
        self._root_id = result["plugin"]["root_id"]
        self._sha = result["sha256"]
        if self.fast_swaps:
            self._dev_module = Path(result["dev_module"])
            self._dev_vm_configuration = vm_configuration.read_text()
            vm_configuration.unlink()
        self._say(f"built {self._name} in {result['seconds']:.1f} s ({result['size'] / 1e6:.1f} MB)")
        return target, ""

    def _write_ecds(self, module: Path) -> None:
        version = f"v{self.generation}-{self._sha[:12]}"
        if self.fast_swaps and self._dev_module is not None:
            plugin = plugin_config(name=self._name, root_id=self._root_id, config=self._config,
                                   wasm_file=self._dev_module, vm_configuration=self._dev_vm_configuration)
        else:
            plugin = plugin_config(name=self._name, root_id=self._root_id, config=self._config, wasm_file=module)
        text = yaml.safe_dump(ecds_resource(plugin, resource_name=self._name, version=version), sort_keys=False)
        self._replace_ecds(text)
        self.version = version

    def _replace_ecds(self, text: str) -> None:
        # Temp file in the watched directory, then rename: the move is what Envoy sees, and
        # Envoy never reads a half-written file.
        handle, temp = tempfile.mkstemp(prefix=f".{self._name}.", suffix=".tmp", dir=self.ecds_dir)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, self.ecds_path)
        except OSError as error:
            Path(temp).unlink(missing_ok=True)
            raise DevLoopError(f"cannot write {self.ecds_path}: {error}") from None

    def envoy_exit(self) -> str:
        """Why Envoy is no longer running (its exit status and error records), or ``""``."""
        if self.envoy is None or self.envoy.process is None or self.envoy.process.poll() is None:
            return ""
        return f"Envoy exited with status {self.envoy.process.returncode}:\n{self.envoy.log_errors()}"

    def _check_envoy(self) -> None:
        exited = self.envoy_exit()
        if exited:
            raise DevLoopError(exited)

    def _check_upstream(self, upstream: str) -> None:
        try:
            host, port = parse_upstream(upstream)
            with socket.create_connection((host, port), timeout=1):
                pass
        except (ManifestError, OSError):
            self._say(f"warning: nothing answers at {upstream} yet; requests will get Envoy's 503 until it does")

    def _ecds_counters(self, timeout: float = 10.0) -> dict[str, int]:
        if self.envoy is None:
            return {}
        try:
            stats = self.envoy.stats("extension_config_discovery.", timeout=timeout)
        except (urllib.error.URLError, OSError):
            return {}
        return {name.rsplit(".", 1)[1]: value for name, value in stats.items()
                if f".{self._name}." in name or name.endswith(f".{self._name}")
                or name.split(".")[-2] == self._name}

    def _await_ack(self, before: dict[str, int], log_mark: int, timeout: float) -> str:
        """Wait until Envoy applies (``""``) or rejects (the reason) the new ECDS file; ``"stuck-worker"``
        or ``"stuck-main"`` if Envoy stopped answering (a plugin callback that never returns)."""
        started = time.monotonic()
        deadline = started + timeout
        next_probe = started + self.stuck_after
        misses: dict[str, int] = {}
        while time.monotonic() < deadline and not self.stop_event.is_set():
            now = self._ecds_counters(timeout=self.probe_timeout)
            if now.get("config_fail", 0) > before.get("config_fail", 0):
                return "Envoy rejected the new module:\n" + self._rejection_reason(log_mark)
            if now.get("config_reload", 0) > before.get("config_reload", 0):
                return ""
            exited = self.envoy_exit()
            if exited:
                return exited
            if time.monotonic() >= next_probe:
                stuck = self._stuck()
                misses = {stuck: misses.get(stuck, 0) + 1} if stuck else {}
                if stuck and misses[stuck] >= 2:
                    return stuck
                next_probe = time.monotonic() + self.stuck_every
            self.stop_event.wait(0.02)
        if self.stop_event.is_set():
            return "stopped"
        return (f"Envoy did not pick up {self.ecds_path} within {timeout:.0f} s (is a plugin callback stuck in an "
                "endless loop? Fix: then restart pwtool run)")

    def _stuck(self) -> str:
        """``"stuck-main"`` if Envoy's admin (main thread) does not answer, ``"stuck-worker"`` if a
        request through the listener gets no response in time, else ``""``."""
        try:
            with urllib.request.urlopen(f"{self.admin_url}/ready", timeout=self.probe_timeout):
                pass
        except urllib.error.HTTPError:
            pass  # it answered
        except (urllib.error.URLError, OSError):
            return "stuck-main"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.probe_timeout)
        try:
            conn.request("GET", "/", headers={PROBE_HEADER: "is-envoy-stuck"})
            conn.getresponse().read()
        except TimeoutError:
            return "stuck-worker"
        except (OSError, http.client.HTTPException):
            pass  # an answer of some kind: not stuck
        finally:
            conn.close()
        return ""

    def _restart(self) -> str:
        """Stop Envoy by PID (SIGKILL if it ignores SIGTERM) and start a new one on the same ports with
        the current ECDS file; ``""`` or what went wrong."""
        assert self.envoy is not None
        self.envoy.stop(grace=2)
        log_mark = self._log_size()
        try:
            self.envoy.start(timeout=30, stop=self.stop_event)
        except Exception as error:  # noqa: BLE001 - reported to the user, the loop goes on
            return f"could not restart Envoy: {error}"
        if self._ecds_counters().get("config_reload", 0) < 1:
            return f"the restarted Envoy did not load the plugin:\n{self._rejection_reason(log_mark)}"
        return ""

    def _log_size(self) -> int:
        try:
            return self.envoy.log_path.stat().st_size if self.envoy is not None else 0
        except OSError:
            return 0

    def _rejection_reason(self, log_mark: int) -> str:
        """Envoy's error lines written since ``log_mark`` (a byte offset in its log)."""
        assert self.envoy is not None
        with open(self.envoy.log_path, "rb") as log:
            log.seek(log_mark)
            text = log.read().decode("utf-8", "replace")
        return error_summary(text, also="update rejected") or "(no error in Envoy's log)"

    def _prune_modules(self) -> None:
        modules = sorted(self.module_dir.glob(f"{self._name}-*.wasm"), key=lambda p: p.stat().st_mtime_ns)
        for old in modules[:-_KEEP_MODULES]:
            old.unlink(missing_ok=True)


PROBE_HEADER = "x-pwtool-probe"


def _answer_probes_in_envoy(config: dict[str, Any]) -> None:
    """Route the dev loop's stuck-Envoy probes (`DevServer._stuck`) to a 204 from Envoy itself:
    they still pass the plugin on a worker, but never wait on (or reach) the upstream."""
    for listener in config["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                for host in network_filter["typed_config"]["route_config"]["virtual_hosts"]:
                    host["routes"].insert(0, {"match": {"prefix": "/", "headers": [
                        {"name": PROBE_HEADER, "present_match": True}]}, "direct_response": {"status": 204}})
