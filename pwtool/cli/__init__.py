"""The ``pwtool`` command line: one module per command, all registered on one group.

A command's module is imported only when that command runs (or ``--help`` lists them
all), so ``pwtool build`` does not pay for the registry, manifest and Envoy code.
"""

from __future__ import annotations

import importlib

import click

from pwtool import __version__

# Each command lives in the module of its name under pwtool.cli, as ``command``.
_COMMANDS = ("build", "inspect", "push", "pull", "manifest", "run", "new")


class _LazyGroup(click.Group):
    """A group whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in _COMMANDS:
            return None
        command = importlib.import_module(f"pwtool.cli.{cmd_name}").command
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pwtool")
def main() -> None:
    """Write Envoy / Istio proxy-wasm plugins in Python: build, inspect, test, push, deploy."""
