"""``pwtool pull``: fetch a wasm module from an OCI registry, verifying every digest."""

from __future__ import annotations

import json
import sys
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
    expected = _expected_sha256(expect_sha256, as_json)
    from pwtool.build._files import OutputPathError, check_output_path, write_atomically

    to_stdout = str(output) == "-"
    where = "cannot write the module to " + (str(output) if output.name else "-o ''")
    if not to_stdout:
        try:
            check_output_path(output, example="plugin.wasm")
        except OutputPathError as error:
            fail(f"{where}: it {error}, or -o - for standard output", as_json)
    creds = credentials_from(reference.registry, username, password, password_stdin, docker_config, as_json)
    try:
        result = pull_wasm(reference, credentials=creds, ca_file=ca_file, insecure=insecure, retries=retries,
                           timeout=timeout, notify=notice)
    except RegistryError as exc:
        fail(str(exc), as_json)
    if expected is not None and expected != result.module_sha256:
        fail(f"module of {reference} has sha256 {result.module_sha256}, expected {expect_sha256}; "
             "the tag may have moved, pin the reference by digest", as_json)
    if to_stdout:
        sys.stdout.buffer.write(result.module)
        sys.stdout.buffer.flush()
        return
    try:
        write_atomically(output, result.module)  # leaves no partial file when it fails
    except OSError as error:
        fail(f"{where}: {error.strerror or error}. Fix: pass -o a file path in a directory you can write to, "
             "or -o - for standard output", as_json)
    if as_json:
        click.echo(json.dumps({**result.as_dict(), "output": str(output)}, indent=2))
        return
    click.echo(f"pulled {result.reference} ({result.format}) -> {output}")
    click.echo(f"digest: {result.digest}")
    click.echo(f"module sha256: {result.module_sha256}")
