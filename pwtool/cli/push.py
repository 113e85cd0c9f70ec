"""``pwtool push``: push a wasm module (or a plugin directory, built first) to an OCI registry."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pwtool.cli._errors import fail
from pwtool.cli._registry_opts import ProgressPrinter, credentials_from, notice, registry_options
from pwtool.cli._wasm import module_problem
from pwtool.oci import DEFAULT_CHUNK, FORMATS, ReferenceError, RegistryError, parse_reference, push_wasm


def _build_directory(path: Path, quiet: bool) -> tuple[bytes, str | None]:
    """Build a plugin directory with the build API (like ``pwtool build``); returns the module and root id."""
    from pwtool.build import BuildError, PluginError, build_plugin

    say = None if quiet else (lambda message: click.echo(message, err=True))
    try:
        result = build_plugin(path, progress=say)
    except (BuildError, PluginError) as exc:
        raise click.ClickException(f"building {path} failed: {exc}") from exc
    if not quiet:
        click.echo(f"built {result.path} ({result.size} bytes)", err=True)
    return Path(result.path).read_bytes(), (result.metadata.root_id or result.metadata.name)


@click.command("push")
@click.argument("source", type=click.Path(exists=True, path_type=Path), metavar="WASM|PLUGIN_DIR")
@click.argument("ref", metavar="REF")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default="compat", show_default=True,
              help="compat: image whose last layer is a tar+gzip with plugin.wasm (Istio, any registry); "
                   "oci: the two-layer wasm artifact Istio reads; cncf: application/wasm artifact (non-Istio tools).")
@click.option("--manifest-type", type=click.Choice(["oci", "docker"]), default="oci", show_default=True,
              help="Manifest flavour of the compat format: OCI image or Docker v2 schema 2.")
@click.option("--chunk-size", type=click.IntRange(0), default=DEFAULT_CHUNK, show_default=True,
              help="Upload blobs larger than this in PATCH chunks of this size (0: one monolithic PUT).")
@click.option("--annotation", "annotations", multiple=True, metavar="KEY=VALUE",
              help="Manifest annotation (OCI manifests only); repeatable.")
@click.option("--progress/--no-progress", default=None,
              help="Show upload progress (default: on a terminal, for blobs over 1 MB).")
@registry_options
def command(source: Path, ref: str, fmt: str, manifest_type: str, chunk_size: int,
            annotations: tuple[str, ...], progress: bool | None, username: str | None, password: str | None,
            password_stdin: bool, docker_config: Path | None, ca_file: str | None, insecure: bool,
            retries: int, timeout: float, as_json: bool) -> None:
    """Push WASM (a .wasm file) or PLUGIN_DIR (built first) to REF (HOST[:PORT]/REPO[:TAG]).

    Prints the manifest digest and the module's sha256. Re-pushing the same module is
    idempotent: blobs the registry already has are skipped and the digest is unchanged.

    \b
    Examples:
      pwtool push dist/hello.wasm ghcr.io/me/hello:v1
      pwtool push --format oci dist/hello.wasm localhost:5000/hello:v1 --insecure
    """
    try:
        reference = parse_reference(ref)
    except ReferenceError as exc:
        fail(f"{exc}", as_json)
    root_ids: tuple[str, ...] = ()
    if source.is_dir():
        module, root_id = _build_directory(source, as_json)
        root_ids = (root_id,) if root_id else ()
    else:
        try:
            module = source.read_bytes()
        except OSError as error:
            fail(f"{source}: cannot read it: {error.strerror or error}", as_json)
        problem = module_problem(module, str(source), "pass the .wasm file `pwtool build` wrote, or the plugin "
                                 f"directory (built first); `pwtool inspect {source}` shows what Envoy needs")
        if problem is not None:
            fail(problem, as_json)
    notes: dict[str, str] = {}
    for item in annotations:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--annotation")
        notes[key] = value
    creds = credentials_from(reference.registry, username, password, password_stdin, docker_config, as_json)
    printer = ProgressPrinter(force=bool(progress)) if progress is not False and not as_json else None
    try:
        result = push_wasm(module, reference, format=fmt, manifest_type=manifest_type, credentials=creds,
                           ca_file=ca_file, insecure=insecure, chunk_size=chunk_size, progress=printer,
                           root_ids=root_ids, annotations=notes or None, retries=retries,
                           timeout=timeout, notify=notice)
    except (RegistryError, ValueError) as exc:
        fail(str(exc), as_json)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    click.echo(f"pushed {reference} ({fmt}, {len(result.uploaded)} blobs uploaded, {len(result.skipped)} already present)")
    click.echo(f"digest: {result.digest}")
    click.echo(f"module sha256: {result.module_sha256}")
    click.echo(f"pinned: {result.reference}")
