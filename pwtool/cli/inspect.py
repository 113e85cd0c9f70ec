"""``pwtool inspect``: describe any proxy-wasm module and say whether Envoy would load it."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pwtool.build.inspect import inspect_module
from pwtool.build.wasm_binary import WasmFormatError
from pwtool.cli._errors import fail


@click.command("inspect")
@click.argument("wasm", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def command(wasm: Path, as_json: bool) -> None:
    """Show WASM's ABI version, imports, exports, size, sha256 and embedded plugin metadata.

    Exits with status 1 when Envoy would refuse the module (for example, an import it does
    not provide). Works on modules built by any proxy-wasm SDK.
    """
    try:
        report = inspect_module(wasm.read_bytes())
    except WasmFormatError as error:
        fail(f"{wasm}: {error}", as_json)
    except OSError as error:
        fail(f"{wasm}: cannot read it: {error.strerror or error}", as_json)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(f"module       {wasm}")
        click.echo(f"size         {report.size:,} bytes")
        click.echo(f"sha256       {report.sha256}")
        click.echo(f"abi          {', '.join(report.abi_versions) or 'none'}")
        callbacks = sorted(e["name"] for e in report.exports if e["name"].startswith("proxy_on_"))
        click.echo(f"callbacks    {len(callbacks)}: {' '.join(name[len('proxy_on_'):] for name in callbacks)}")
        by_module: dict[str, list[str]] = {}
        for item in report.imports:
            by_module.setdefault(item["module"], []).append(item["name"])
        for module_name, names in sorted(by_module.items()):
            click.echo(f"imports      {module_name}: {len(names)} ({' '.join(sorted(names))})")
        if report.plugin:
            plugin = report.plugin
            root_id = plugin.get("root_id") or plugin.get("name")  # as `pwtool manifest` defaults it
            click.echo(f"plugin       {plugin.get('name')} {plugin.get('version', '')} root_id={root_id!r}")
            click.echo(f"config       {json.dumps(plugin.get('config', {}))}")
        click.echo("envoy        " + ("loads it" if report.envoy_loadable else "REFUSES it"))
        for problem in report.problems:
            click.echo(f"  problem: {problem}")
        for warning in report.warnings:
            click.echo(f"warning      {warning}")
    if not report.envoy_loadable:
        raise SystemExit(1)
