"""``pwtool build``: compile a plugin directory to a proxy-wasm module."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pwtool.build import BuildError, PluginError, build_plugin
from pwtool.build.devmodule import ensure_dev_module, plugin_vm_configuration
from pwtool.build.runtime.recipe import RuntimeBuildError
from pwtool.cli._errors import fail


@click.command("build")
@click.argument("plugin_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help="Where to write the module (default: dist/<name>.wasm).")
@click.option("--keep-compiler", is_flag=True, help="Keep CPython's parser and compiler (+0.6 MB) for plugins that exec/eval source text at run time.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--dev-vm-config", type=click.Path(path_type=Path, dir_okay=False), hidden=True,
              help="For `pwtool run --watch`: also write the VM configuration that runs this build in the "
                   "dev loop's module; the JSON output names that module (dev_module).")
def command(plugin_dir: Path, output: Path | None, keep_compiler: bool, as_json: bool,
            dev_vm_config: Path | None) -> None:
    """Build PLUGIN_DIR (plugin.py + plugin.toml) into one proxy-wasm module (ABI 0.2.1).

    The first build on a machine also builds the runtime (CPython 3.11 for wasm32-wasi
    and pwtool's C shim) and caches it; later builds only snapshot the plugin.
    """
    if output == Path("-"):
        raise click.UsageError("build writes the module to a file, not to standard output. Fix: pass -o a .wasm "
                               "path such as dist/NAME.wasm, then read that file")

    def progress(message: str) -> None:
        click.echo(message, err=True)

    extra: dict[str, str] = {}
    try:
        result = build_plugin(plugin_dir, output, progress=progress, keep_compiler=keep_compiler)
        if dev_vm_config is not None:
            dev_module = ensure_dev_module(progress)
            try:
                dev_vm_config.write_text(plugin_vm_configuration(result, dev_module, keep_compiler=keep_compiler))
            except OSError as error:
                raise BuildError(f"cannot write the VM configuration to {dev_vm_config}: "
                                 f"{error.strerror or error}") from None
            extra["dev_module"] = str(dev_module.path)
    except (PluginError, BuildError, RuntimeBuildError) as error:
        fail(str(error), as_json)
    if as_json:
        click.echo(json.dumps(result.to_json() | extra, indent=2))
        return
    click.echo(f"built   {result.path}")
    # The root id the manifests write (`pwtool manifest`): plugin.toml's, else the name.
    click.echo(f"plugin  {result.metadata.name} (root_id {result.metadata.root_id or result.metadata.name!r})")
    click.echo(f"size    {result.size:,} bytes ({result.size / 1e6:.2f} MB)")
    click.echo(f"sha256  {result.sha256}")
    click.echo(f"time    {result.seconds:.1f} s")
