"""``pwtool new``: scaffold a plugin directory (plugin.py, plugin.toml, a passing test)."""

from __future__ import annotations

import re
from pathlib import Path

import click

# Same rule as plugin.toml's `name` (pwtool.build.metadata), minus '.', so the name is
# also a clean directory name, header suffix and Envoy filter name.
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")

# Names the plugin directory must not take: where it is importable (`pytest NAME` puts its
# parent on sys.path; so does running Python there), it would shadow the SDK, the SDK's C
# seam, the plugin metadata module of a built plugin or pwtool itself.
_SHADOWING = frozenset({"proxywasm", "_proxywasm", "_pwtool_plugin", "pwtool"})

_PLUGIN = '''\
"""{name}: a proxy-wasm HTTP filter written in Python.

Each request is logged; each response gets an ``{header}`` header whose value comes
from the plugin configuration (``greeting``, default in plugin.toml).
Try it: ``pwtool run {name} --watch``, then ``curl -i <URL>`` and edit this file.
"""

import proxywasm
from proxywasm import Action, HttpContext, RootContext


class {cls}Stream(HttpContext):
    """One instance per HTTP request."""

    def on_request_headers(self, headers, end_of_stream):
        proxywasm.log_info(f"{name}: {{headers.get(':method')}} {{headers.get(':path')}}")
        return Action.CONTINUE

    def on_response_headers(self, headers, end_of_stream):
        headers["{header}"] = self.root.config["greeting"]
        return Action.CONTINUE


class {cls}(RootContext):
    """The plugin: one per VM; ``self.config`` is the JSON configuration over the defaults."""

    http_context = {cls}Stream
    default_config = {{"greeting": "hello"}}


proxywasm.register({cls})
'''

_TOML = '''\
name = "{name}"
version = "0.1.0"
description = "Adds an {header} response header."

[config]
greeting = "hello"
'''

_TEST = '''\
"""Tests for {name}, run in pwtool's emulator: ``pytest {name}``.

``both_modes`` runs each test twice: natively (pdb and coverage work) and as the built
wasm module that Envoy loads.
"""

from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parent


@pytest.mark.both_modes
def test_response_gets_the_header(load_plugin):
    plugin = load_plugin(PLUGIN)
    stream = plugin.http_stream()
    stream.send_request_headers({{":method": "GET", ":path": "/"}}, end_of_stream=True)
    stream.send_response(200, body="ok")
    assert stream.downstream_response.headers["{header}"] == "hello"
    assert "{name}: GET /" in plugin.logs.info


@pytest.mark.both_modes
def test_configuration_overrides_the_default(load_plugin):
    plugin = load_plugin(PLUGIN, config='{{"greeting": "bonjour"}}')
    stream = plugin.http_stream()
    stream.send_request_headers({{":method": "GET", ":path": "/"}}, end_of_stream=True)
    stream.send_response(200)
    assert stream.downstream_response.headers["{header}"] == "bonjour"
'''


# Names the generated plugin.py already uses (its imports) or that Python reserves: a class
# of that name would shadow the import or not compile, so such classes get a suffix.
_TAKEN_CLASS_NAMES = frozenset({"Action", "HttpContext", "RootContext", "None", "True", "False"})


def test_file_name(name: str) -> str:
    """The scaffold's test file, named after the plugin: pytest (default import mode)
    refuses two test files of the same name in one run, so two scaffolded plugins
    tested together need different names."""
    return f"test_{name.replace('-', '_')}.py"


def _class_name(name: str) -> str:
    cls = "".join(part.capitalize() for part in re.split(r"[-_]", name) if part) or "Plugin"
    return f"{cls}Plugin" if {cls, f"{cls}Stream"} & _TAKEN_CLASS_NAMES else cls


def scaffold(name: str, parent: Path) -> Path:
    """Write ``parent/name/{plugin.py, plugin.toml, test_NAME.py}``; return the directory."""
    if not _NAME.match(name):
        raise click.BadParameter(
            f"{name!r} is not a valid plugin name: use a letter first, then letters, digits, '-' or '_' "
            "(at most 63 characters), for example my_filter", param_hint="NAME")
    if name in _SHADOWING:
        raise click.BadParameter(
            f"{name!r} is the name of a module pwtool's build and tests import: a plugin directory of that name "
            f"would shadow it. Pick another name, for example {name.strip('_')}_plugin", param_hint="NAME")
    target = parent / name
    if target.exists() and not target.is_dir():
        raise click.ClickException(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()):
        raise click.ClickException(f"{target} already exists and is not empty; pick another NAME or --dir")
    slug = name.lower().replace("_", "-")
    values = {
        "name": name,
        "header": f"x-{slug}",
        "cls": _class_name(name),
    }
    target.mkdir(parents=True, exist_ok=True)
    (target / "plugin.py").write_text(_PLUGIN.format(**values), encoding="utf-8")
    (target / "plugin.toml").write_text(_TOML.format(**values), encoding="utf-8")
    (target / test_file_name(name)).write_text(_TEST.format(**values), encoding="utf-8")
    return target


@click.command("new")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(path_type=Path, file_okay=False), default=".",
              show_default=True, help="Parent directory to create NAME in.")
def command(name: str, parent: Path) -> None:
    """Create the plugin directory NAME: plugin.py, plugin.toml and test_NAME.py.

    The plugin adds a response header; its test passes in both emulator modes.

    \b
    Next steps:
      pytest NAME                 # emulator tests, natively and as wasm
      pwtool run NAME --watch     # live Envoy, hot reload on save
      pwtool build NAME           # dist/NAME.wasm
    """
    target = scaffold(name, parent)
    click.echo(f"created {target}/")
    for file in ("plugin.py", "plugin.toml", test_file_name(name)):
        click.echo(f"  {file}")
    click.echo(f"\nnext:\n  pytest {target}\n  pwtool run {target} --watch")
