"""The ``pwtool`` command line: one module per command, all registered on one group.

A command's module is imported only when that command runs (or ``--help`` lists them
all), so ``pwtool build`` does not pay for the registry, manifest and Envoy code.
"""

from __future__ import annotations

import importlib

import click

from pwtool import __version__

# Command name -> the module under pwtool.cli that defines it as ``command``.
_COMMAND_MODULES = {
    "build": "build",
    "inspect": "inspect",
    "push": "push",
    "pull": "pull",
    "manifest": "manifest",
    "run": "run",
    "new": "new",
}


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMAND_MODULES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module_name = _COMMAND_MODULES.get(cmd_name)
        if module_name is None:
            return None
        command = importlib.import_module(f"pwtool.cli.{module_name}").command
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pwtool")
def main() -> None:
    """Write Envoy / Istio proxy-wasm plugins in Python: build, inspect, test, push, deploy."""
