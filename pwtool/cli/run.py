"""``pwtool run``: the plugin in a live Envoy on 127.0.0.1, its logs on the terminal, hot reload."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import click

from pwtool.devloop import BuildError, DevLoopError, DevServer, Snapshot, Stopped
from pwtool.manifests import ManifestError, parse_upstream

_LEVEL_STYLE = {"error": "red", "critical": "red", "warning": "yellow"}
_INDENT = " " * len("00:00:00 info     ")  # continuation lines go under their record's text


def _upstream(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_upstream(value)
    except ManifestError as error:
        raise click.BadParameter(str(error)) from None
    return value


def _say(message: str) -> None:
    stamp = time.strftime("%H:%M:%S")
    error = message.startswith("error:")
    click.secho(f"{stamp} pwtool | {message}", fg="red" if error else "cyan", err=error)


def _stream_logs(dev: DevServer, stop: threading.Event, verbose: bool) -> None:
    """Print the plugin's log records (and Envoy's warnings and errors) until ``stop``; a record's
    continuation lines (a traceback, a message with newlines) under it."""
    shown = False  # whether the last record was printed (its late continuation lines follow it)
    while True:
        stopping = stop.wait(0.1)
        for record in dev.new_log_lines():
            style = _LEVEL_STYLE.get(record.level)
            if record.continued:
                if shown or verbose:
                    click.secho(_INDENT + record.text.replace("\n", "\n" + _INDENT), fg=style)
                continue
            message = dev.plugin_log_text(record.component, record.text)
            level, component = record.level, record.component
            if message is None and (verbose or level in ("error", "critical")
                                    or (level == "warning" and component != "main")):
                message, style = f"[{level or '...'}][{component}] {record.text}", style or "bright_black"
                level = "envoy"
            shown = message is not None
            if message is not None:
                click.secho(f"{time.strftime('%H:%M:%S')} {level:<8} {message.replace(chr(10), chr(10) + _INDENT)}",
                            fg=style)
        if stopping:  # one last read after the stop, so that no line is lost
            return


@click.command("run")
@click.argument("plugin_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--upstream", callback=_upstream, metavar="HOST:PORT",
              help="Where Envoy sends requests (default: a built-in echo server answering with a JSON "
                   "copy of each request).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Listener port on 127.0.0.1 (default: free).")
@click.option("--admin-port", type=click.IntRange(0, 65535), default=0,
              help="Envoy admin port on 127.0.0.1 (default: free).")
@click.option("--config", "config", metavar="JSON|@FILE",
              help="Plugin configuration passed by Envoy (default: plugin.toml's [config]). "
                   "An @file is watched too.")
@click.option("--watch", is_flag=True, help="Rebuild on every change and hot-swap the module (Envoy is restarted only if a plugin callback is stuck).")
@click.option("--full-swaps", is_flag=True,
              help="With --watch: swap in the module `pwtool build` makes, not the dev loop's module. "
                   "Exactly what ships, but each swap waits 4-8 s for Envoy to compile it.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Envoy worker threads (one plugin VM each).")
@click.option("-v", "--verbose", is_flag=True, help="Also show Envoy's own log lines.")
def command(plugin_dir: Path, upstream: str | None, port: int, admin_port: int, config: str | None,
            watch: bool, full_swaps: bool, concurrency: int, verbose: bool) -> None:
    """Build PLUGIN_DIR and serve it in a real Envoy on 127.0.0.1 until Ctrl-C.

    Prints the URL to send requests to and Envoy's admin URL, then the plugin's log
    lines. With --watch, every saved change to the plugin (or the SDK) is rebuilt and
    swapped into the running Envoy through a file-based ECDS update: no restart, no
    dropped requests (unless a plugin callback is stuck in an endless loop: then Envoy
    is restarted). A build error is printed and the previous module keeps serving.
    To make swaps take about a second, --watch serves the dev loop's module: the same
    interpreter and SDK, with the plugin's compiled code in the VM configuration and its
    module-level code run when each VM starts (--full-swaps serves the built module).

    \b
    Examples:
      pwtool run plugins/hello --watch
      pwtool run plugins/http_config --upstream 127.0.0.1:8080 --config '{"header_value": "dev"}'
    """
    if full_swaps and not watch:
        raise click.UsageError("--full-swaps only changes how --watch swaps a rebuilt plugin in. Fix: add --watch, "
                               "or drop --full-swaps")
    stop = threading.Event()
    dev = DevServer(plugin_dir, upstream=upstream, port=port or None, admin_port=admin_port or None,
                    config=config, concurrency=concurrency, say=_say, fast_swaps=watch and not full_swaps, stop=stop)

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():  # a second Ctrl-C: no more waiting (dev.kill() below reaps, outside the handler)
            dev.kill(reap=False)
            raise KeyboardInterrupt
        stop.set()
        click.echo("stopping… (Ctrl-C again to stop at once)", err=True)

    # Ctrl-C and `kill PID` both end the loop cleanly and stop Envoy by its PID.
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        _serve(dev, stop, watch, verbose)
    except KeyboardInterrupt:
        dev.kill()
        dev.close()
        click.echo("stopped (Envoy killed)")
        sys.exit(130)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _start(dev: DevServer, watch: bool) -> Snapshot | None:
    """Start the dev loop; with --watch, a plugin that does not build yet is waited for. Returns the
    watched files as they were before the build that serves (None if stopped), so that an edit
    saved during that build is not missed."""
    while True:
        before = dev.snapshot()
        try:
            dev.start()
            return before
        except Stopped:
            return None
        except BuildError as error:
            if not watch:
                raise click.ClickException(str(error)) from None
            _say(f"error: {error}")
            _say("waiting for a fix...")
            if not dev.wait_for_change(before):
                return None
            _say("changed - rebuilding")
        except DevLoopError as error:
            raise click.ClickException(str(error)) from None


def _serve(dev: DevServer, stop: threading.Event, watch: bool, verbose: bool) -> None:
    logs: threading.Thread | None = None
    try:
        before = _start(dev, watch)
        if before is None:
            click.echo("stopped")
            return
        click.secho(f"URL      {dev.url}", bold=True)
        click.echo(f"admin    {dev.admin_url}")
        click.echo(f"upstream {dev.upstream or 'built-in echo server'}")
        click.echo(f"envoy    pid {dev.pid}, work dir {dev.workdir}")
        if dev.fast_swaps:
            click.echo("module   the dev loop's (swaps in about a second; --full-swaps serves the built module)")
        click.echo("watching " + ", ".join(str(p) for p in dev.watch_roots) if watch else "Ctrl-C to stop")
        logs = threading.Thread(target=_stream_logs, args=(dev, stop, verbose), name="pwtool-logs", daemon=True)
        logs.start()
        if watch:
            try:
                dev.watch(stop, since=before)
            except DevLoopError as error:
                raise click.ClickException(str(error)) from None
        else:
            while not stop.wait(0.5):
                exited = dev.envoy_exit()
                if exited:
                    raise click.ClickException(exited)
    finally:
        stop.set()
        if logs is not None:
            logs.join(timeout=5)  # its last read, before close() removes the work directory
        dev.close()
    click.echo("stopped")
