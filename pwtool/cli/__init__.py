"""The ``pwtool`` command line: one module per command, all registered on one group."""

from __future__ import annotations

import click

from pwtool import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pwtool")
def main() -> None:
    """Write Envoy / Istio proxy-wasm plugins in Python: build, inspect, test, push, deploy."""


def _register_commands() -> None:
    # Each command lives in its own module and exposes a click command named ``command``.
    from pwtool.cli import build as build_cmd
    from pwtool.cli import inspect as inspect_cmd
    from pwtool.cli import manifest as manifest_cmd
    from pwtool.cli import new as new_cmd
    from pwtool.cli import pull as pull_cmd
    from pwtool.cli import push as push_cmd
    from pwtool.cli import run as run_cmd

    for module in (build_cmd, inspect_cmd, push_cmd, pull_cmd, manifest_cmd, run_cmd, new_cmd):
        main.add_command(module.command)


_register_commands()
