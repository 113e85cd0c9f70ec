"""How every command reports a failure: ``Error: ...`` on stderr, exit status 1."""

from __future__ import annotations

import json
from typing import NoReturn

import click


def fail(message: str, as_json: bool) -> NoReturn:
    """Report an error (also as JSON on stdout with ``--json``) and exit 1."""
    if as_json:
        click.echo(json.dumps({"error": message}))
    raise click.ClickException(message)
