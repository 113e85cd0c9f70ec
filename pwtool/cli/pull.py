"""``pwtool pull``: fetch a wasm module from an OCI registry, verifying every digest."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import click

from pwtool.cli._errors import fail
from pwtool.cli._registry_opts import credentials_from, registry_options
from pwtool.oci import ReferenceError, RegistryError, parse_reference, pull_wasm


@click.command("pull")
@click.argument("ref", metavar="REF")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default=Path("plugin.wasm"),
              show_default=True, help="Where to write the module ('-' for standard output).")
@click.option("--expect-sha256", metavar="HEX", help="Fail unless the module's sha256 is HEX.")
@registry_options
def command(ref: str, output: Path, expect_sha256: str | None, username: str | None, password: str | None,
            password_stdin: bool, docker_config: Path | None, ca_file: str | None, insecure: bool,
            retries: int, as_json: bool) -> None:
    """Pull REF and extract plugin.wasm from a compat, oci or cncf image.

    The manifest and layer digests are verified; the module is written atomically.
    """
    try:
        reference = parse_reference(ref)
    except ReferenceError as exc:
        fail(str(exc), as_json)
        return
    creds = credentials_from(reference.registry, username, password, password_stdin, docker_config)
    try:
        result = pull_wasm(reference, credentials=creds, ca_file=ca_file, insecure=insecure, retries=retries)
    except RegistryError as exc:
        fail(str(exc), as_json)
        return
    if expect_sha256 and expect_sha256.lower().removeprefix("sha256:") != result.module_sha256:
        fail(f"module of {reference} has sha256 {result.module_sha256}, expected {expect_sha256}; "
             "the tag may have moved, pin the reference by digest", as_json)
    if str(output) == "-":
        sys.stdout.buffer.write(result.module)
        sys.stdout.buffer.flush()
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".pull-", dir=output.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(result.module)
    os.replace(tmp, output)
    if as_json:
        click.echo(json.dumps({**result.as_dict(), "output": str(output)}, indent=2))
        return
    click.echo(f"pulled {result.reference} ({result.format}) -> {output}")
    click.echo(f"digest: {result.digest}")
    click.echo(f"module sha256: {result.module_sha256}")
