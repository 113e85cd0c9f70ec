"""``pwtool pull``: fetch a wasm module from an OCI registry, verifying every digest."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from pathlib import Path

import click

from pwtool.cli._errors import fail
from pwtool.cli._registry_opts import credentials_from, notice, registry_options
from pwtool.oci import ReferenceError, RegistryError, parse_reference, pull_wasm


def _expected_sha256(value: str | None, as_json: bool) -> str | None:
    """--expect-sha256 as 64 lowercase hex digits, checked before any network I/O."""
    if value is None:
        return None
    from pwtool.manifests import ManifestError, normalize_sha256

    try:
        return normalize_sha256(value)
    except ManifestError as error:
        fail(f"--expect-sha256: {error}", as_json)


def _write_output(output: Path, module: bytes, as_json: bool) -> None:
    """Write the module to ``output`` atomically (a temporary file renamed over it); a failure is a
    message, and leaves no temporary file behind."""
    tmp: str | None = None
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".pull-", dir=output.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(module)
        os.replace(tmp, output)
    except OSError as error:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        fail(f"cannot write the module to {output}: {error.strerror or error}. Fix: pass -o a file path in a "
             "directory you can write to, or -o - for standard output", as_json)


@click.command("pull")
@click.argument("ref", metavar="REF")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default=Path("plugin.wasm"),
              show_default=True, help="Where to write the module ('-' for standard output).")
@click.option("--expect-sha256", metavar="HEX", help="Fail unless the module's sha256 is HEX.")
@registry_options
def command(ref: str, output: Path, expect_sha256: str | None, username: str | None, password: str | None,
            password_stdin: bool, docker_config: Path | None, ca_file: str | None, insecure: bool,
            retries: int, timeout: float, as_json: bool) -> None:
    """Pull REF and extract plugin.wasm from a compat, oci or cncf image.

    The manifest and layer digests are verified; the module is written atomically.
    """
    try:
        reference = parse_reference(ref)
    except ReferenceError as exc:
        fail(str(exc), as_json)
        return
    expected = _expected_sha256(expect_sha256, as_json)
    if str(output) != "-" and not output.name:
        fail("cannot write the module to -o '': it names no file. Fix: pass -o a file path such as plugin.wasm, "
             "or -o - for standard output", as_json)
    creds = credentials_from(reference.registry, username, password, password_stdin, docker_config, as_json)
    try:
        result = pull_wasm(reference, credentials=creds, ca_file=ca_file, insecure=insecure, retries=retries,
                           timeout=timeout, notify=notice)
    except RegistryError as exc:
        fail(str(exc), as_json)
        return
    if expected is not None and expected != result.module_sha256:
        fail(f"module of {reference} has sha256 {result.module_sha256}, expected {expect_sha256}; "
             "the tag may have moved, pin the reference by digest", as_json)
    if str(output) == "-":
        sys.stdout.buffer.write(result.module)
        sys.stdout.buffer.flush()
        return
    _write_output(output, result.module, as_json)
    if as_json:
        click.echo(json.dumps({**result.as_dict(), "output": str(output)}, indent=2))
        return
    click.echo(f"pulled {result.reference} ({result.format}) -> {output}")
    click.echo(f"digest: {result.digest}")
    click.echo(f"module sha256: {result.module_sha256}")
