"""Native mode loads a plugin directory the way a build packages it: plugin.toml read by
the same code (its [config] as the packaged defaults), sibling modules kept per plugin,
and a plugin that cannot be imported reported with its file, line and fix."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from pwtool.emulator import Emulator, ModuleLoadError

SOURCE = '''
import proxywasm
from proxywasm import Action, HttpContext, RootContext
{imports}

class Stream(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        headers["x-greeting"] = str(self.root.config["greeting"])
        headers["x-helper"] = {helper_value}
        return Action.CONTINUE


class Root(RootContext):
    http_context = Stream
    default_config = {{"greeting": "from default_config"}}


proxywasm.register(Root)
'''


def make_plugin(
    parent: Path, name: str, *, toml_config: str = "", helper: str | None = None, source: str | None = None
) -> Path:
    """A plugin directory `parent/name`; with `helper`, a sibling helper.py whose VALUE it is."""
    directory = parent / name
    directory.mkdir(parents=True)
    imports, helper_value = ("import helper", "helper.VALUE") if helper is not None else ("", '"none"')
    code = source if source is not None else SOURCE.format(imports=imports, helper_value=helper_value)
    (directory / "plugin.py").write_text(textwrap.dedent(code))
    (directory / "plugin.toml").write_text(f'name = "{name}"\n{toml_config}')
    if helper is not None:
        (directory / "helper.py").write_text(f"VALUE = {helper!r}\n")
    return directory


def request_headers(emulator: Emulator, directory: Path) -> dict[str, str]:
    plugin = emulator.load(directory, mode="native")
    stream = plugin.http_stream()
    stream.send_request({":method": "GET", ":path": "/", ":authority": "a"})
    headers = stream.upstream_request.headers
    return {"greeting": headers["x-greeting"], "helper": headers["x-helper"]}


# -- plugin.toml -------------------------------------------------------------------------


def test_plugin_toml_config_is_the_packaged_default_natively(emulator: Emulator, tmp_path: Path) -> None:
    directory = make_plugin(tmp_path, "packaged", toml_config='[config]\ngreeting = "from plugin.toml"\n')
    assert request_headers(emulator, directory)["greeting"] == "from plugin.toml"


def test_each_plugin_gets_its_own_packaged_defaults(emulator: Emulator, tmp_path: Path) -> None:
    """The SDK caches the parsed packaged configuration: a second plugin must not see the first's."""
    first = make_plugin(tmp_path, "first", toml_config='[config]\ngreeting = "first"\n')
    second = make_plugin(tmp_path, "second", toml_config='[config]\ngreeting = "second"\n')
    plain = make_plugin(tmp_path, "plain")
    assert request_headers(emulator, first)["greeting"] == "first"
    assert request_headers(emulator, second)["greeting"] == "second"
    assert request_headers(emulator, plain)["greeting"] == "from default_config"


def test_a_bad_plugin_toml_is_a_module_load_error_naming_it(emulator: Emulator, tmp_path: Path) -> None:
    directory = make_plugin(tmp_path, "bad_toml", toml_config="colour = 'blue'\n")
    with pytest.raises(ModuleLoadError, match=r"plugin\.toml: unknown key\(s\) colour\. Fix: use only"):
        emulator.load(directory, mode="native")


# -- sibling modules ---------------------------------------------------------------------


def test_sibling_modules_of_the_same_name_stay_with_their_plugin(emulator: Emulator, tmp_path: Path) -> None:
    one = make_plugin(tmp_path, "one", helper="helper of one")
    two = make_plugin(tmp_path, "two", helper="helper of two")
    first = emulator.load(one, mode="native")
    assert request_headers(emulator, two)["helper"] == "helper of two"
    # The first plugin still runs with its own helper after the second was imported.
    stream = first.http_stream()
    stream.send_request({":method": "GET", ":path": "/", ":authority": "a"})
    assert stream.upstream_request.headers["x-helper"] == "helper of one"


def test_a_reload_imports_an_edited_sibling_afresh(emulator: Emulator, tmp_path: Path) -> None:
    directory = make_plugin(tmp_path, "edited", helper="before")
    assert request_headers(emulator, directory)["helper"] == "before"
    (directory / "helper.py").write_text("VALUE = 'after, a longer line so the size differs'\n")
    assert request_headers(emulator, directory)["helper"] == "after, a longer line so the size differs"


def test_nothing_of_a_closed_plugin_stays_in_sys_modules_or_sys_path(tmp_path: Path) -> None:
    directory = make_plugin(tmp_path, "leaves_nothing", helper="x", toml_config='[config]\ngreeting = "g"\n')
    with Emulator() as emulator:
        assert request_headers(emulator, directory)["helper"] == "x"
    assert "helper" not in sys.modules and "_pwtool_plugin" not in sys.modules
    assert str(directory.resolve()) not in sys.path


# -- import failures ---------------------------------------------------------------------


def load_error(emulator: Emulator, directory: Path) -> ModuleLoadError:
    with pytest.raises(ModuleLoadError) as caught:
        emulator.load(directory, mode="native")
    return caught.value


def test_a_syntax_error_names_the_file_line_and_fix(emulator: Emulator, tmp_path: Path) -> None:
    directory = make_plugin(tmp_path, "syntax", source="import proxywasm\n\ndef broken(:\n    pass\n")
    error = load_error(emulator, directory)
    message = str(error)
    assert message.startswith(f"{directory / 'plugin.py'}:3: syntax error: ")
    assert "plugin 'syntax' cannot be imported" in message and "def broken(:" in message
    assert "Fix: correct plugin.py there" in message
    assert isinstance(error.__cause__, SyntaxError)


def test_a_syntax_error_in_a_sibling_names_the_sibling(emulator: Emulator, tmp_path: Path) -> None:
    directory = make_plugin(tmp_path, "bad_sibling", helper="x")
    (directory / "helper.py").write_text("VALUE = (\n")
    message = str(load_error(emulator, directory))
    assert message.startswith(f"{directory / 'helper.py'}:1: syntax error: ")
    assert "Fix: correct helper.py there" in message


def test_a_missing_import_names_the_importing_line_and_the_fix(emulator: Emulator, tmp_path: Path) -> None:
    directory = make_plugin(tmp_path, "missing", source="import proxywasm\nimport no_such_helper_module\n")
    error = load_error(emulator, directory)
    message = str(error)
    assert message.startswith(f"{directory / 'plugin.py'}:2: plugin 'missing' imports 'no_such_helper_module'")
    assert f"Fix: put no_such_helper_module.py (or the package no_such_helper_module/) in {directory}" in message
    assert isinstance(error.__cause__, ModuleNotFoundError)


def test_module_level_code_that_raises_gives_its_traceback(emulator: Emulator, tmp_path: Path) -> None:
    source = "import proxywasm\n\ndef setting():\n    return {}['port']\n\nPORT = setting()\n"
    directory = make_plugin(tmp_path, "raises", source=source)
    error = load_error(emulator, directory)
    message = str(error)
    assert message.startswith(f"{directory / 'plugin.py'}:4: importing plugin 'raises' raised KeyError: 'port'")
    assert "PORT = setting()" in message and "return {}['port']" in message  # the traceback's lines
    assert "importlib" not in message  # import machinery frames are left out
    assert "move the code into a callback such as on_configure" in message
    assert isinstance(error.__cause__, KeyError)


def test_a_plugin_py_that_is_a_directory_is_named(emulator: Emulator, tmp_path: Path) -> None:
    directory = tmp_path / "dir_plugin"
    (directory / "plugin.py").mkdir(parents=True)
    with pytest.raises(ModuleLoadError, match=r"plugin\.py is not a file\. Fix: make .* the plugin's Python source"):
        emulator.load(directory, mode="native")


def test_a_failed_import_leaves_the_next_load_working(emulator: Emulator, tmp_path: Path) -> None:
    broken = make_plugin(tmp_path / "a", "same", helper="x")
    (broken / "helper.py").write_text("raise RuntimeError('helper fails')\n")
    load_error(emulator, broken)
    working = make_plugin(tmp_path / "b", "same", helper="works")
    assert request_headers(emulator, working)["helper"] == "works"
