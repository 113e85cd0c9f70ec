"""Options and helpers shared by ``pwtool push`` and ``pwtool pull``."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from pwtool.cli._errors import fail
from pwtool.oci import Credentials, DockerConfigError, resolve_credentials

F = TypeVar("F", bound=Callable[..., Any])


def registry_options(func: F) -> F:
    """Add credential, TLS and retry options to a command."""
    opts = [
        click.option("-u", "--username", envvar="PWTOOL_REGISTRY_USERNAME", show_envvar=True,
                     help="Registry user (else the docker config ~/.docker/config.json is read)."),
        click.option("-p", "--password", envvar="PWTOOL_REGISTRY_PASSWORD", show_envvar=True,
                     help="Registry password or token."),
        click.option("--password-stdin", is_flag=True, help="Read the password from standard input."),
        click.option("--docker-config", type=click.Path(dir_okay=False, path_type=Path),
                     help="Docker config file to read credentials from (read only)."),
        click.option("--ca-file", type=click.Path(exists=True, dir_okay=False),
                     help="PEM file with an extra CA to trust for the registry's TLS certificate."),
        click.option("--insecure", is_flag=True,
                     help="Allow plain HTTP and skip TLS certificate verification."),
        click.option("--retries", type=click.IntRange(0, 20), default=4, show_default=True,
                     help="Retries of transient errors (5xx, 429, timeouts, connection resets), with backoff; "
                          "each retry is announced on stderr."),
        click.option("--timeout", type=click.FloatRange(0, min_open=True), default=60, show_default=True,
                     metavar="SECONDS",
                     help="Give up waiting when the registry sends nothing for SECONDS (connecting or "
                          "mid-transfer). Each request, retries included, must also finish within 5 x SECONDS "
                          "plus 1 s per 64 KiB it moves (a 20 MB module: 5 min + 5 min)."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def notice(message: str) -> None:
    """Print a retry notice or warning from the registry client on stderr (also with --json)."""
    click.echo(message, err=True)


def credentials_from(registry: str, username: str | None, password: str | None,
                     password_stdin: bool, docker_config: Path | None, as_json: bool = False) -> Credentials | None:
    """Resolve credentials: flags/env first, then the docker config (``--docker-config`` must be readable)."""
    if password_stdin:
        context = click.get_current_context(silent=True)
        if password is not None and context is not None and (
                context.get_parameter_source("password") == ParameterSource.COMMANDLINE):
            raise click.UsageError("pass --password or --password-stdin, not both")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            command = context.command_path if context is not None else "pwtool push"
            raise click.UsageError(f"--password-stdin read an empty password: standard input was empty. Fix: pipe "
                                   f"the password in, for example: echo \"$TOKEN\" | {command} ... -u USER "
                                   "--password-stdin")
    if (username is None) != (password is None):
        raise click.UsageError("pass both --username and --password (or PWTOOL_REGISTRY_USERNAME and "
                               "PWTOOL_REGISTRY_PASSWORD), or neither to use the docker config")
    try:
        return resolve_credentials(registry, username, password, docker_config)
    except DockerConfigError as error:
        fail(str(error), as_json)


class ProgressPrinter:
    """Progress of large uploads on stderr: a live line on a TTY, quarter steps otherwise."""

    def __init__(self, min_size: int = 1 << 20, force: bool = False) -> None:
        self.min_size = min_size
        self.force = force
        self.tty = sys.stderr.isatty()
        self._last: dict[str, int] = {}

    @functools.cached_property
    def _enabled(self) -> bool:
        return self.force or self.tty

    def __call__(self, label: str, done: int, total: int) -> None:
        if not self._enabled or (total < self.min_size and not self.force):
            return
        pct = 100 * done // max(total, 1)
        if self.tty:
            end = "\n" if done >= total else ""
            click.echo(f"\r  {label}  {done / 1e6:7.1f}/{total / 1e6:.1f} MB  {pct:3d}%", nl=False, err=True)
            if end:
                click.echo("", err=True)
            return
        step = pct // 25
        if self._last.get(label, -1) < step:
            self._last[label] = step
            click.echo(f"  {label}  {done}/{total} bytes  {pct}%", err=True)
