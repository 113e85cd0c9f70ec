"""The plugin configuration from Envoy / Istio: bad JSON, wrong types, unknown keys,
bad UTF-8 and NaN, in both emulator modes (the built module has no `json` package)."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import proxywasm
from proxywasm._json import loads
from pwtool.emulator import Emulator, ModuleLoadError, Plugin, PluginStartError

FIX = "(Envoy: configuration.value; Istio: pluginConfig)"
LABEL = "Root (root_id 'cfg')"

SOURCE = '''
import proxywasm
from proxywasm import Action, HttpContext, RootContext


class Stream(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        config = self.root.config
        headers["x-config"] = repr(sorted((key, repr(value)) for key, value in config.items()))
        return Action.CONTINUE


class Root(RootContext):
    http_context = Stream
    default_config = {
        "greeting": "hello",
        "limit": 10,
        "ratio": 0.5,
        "enabled": False,
        "paths": [],
        "extra": {},
        "anything": None,
    }


proxywasm.register(Root, root_id="cfg")
'''


@pytest.fixture(scope="session")
def config_plugin(plugin_source: Callable[..., Path]) -> Path:
    return plugin_source("config_plugin", SOURCE, 'root_id = "cfg"\n')


@pytest.fixture
def start(load_in_mode: Callable[..., Plugin], config_plugin: Path) -> Callable[[bytes], Plugin]:
    """``start(config)``: the test plugin, configured with `config`, in the test's mode."""
    return lambda config: load_in_mode(config_plugin, config=config, root_id="cfg")


def refused(start: Callable[[bytes], Plugin], emulator: Emulator, config: bytes) -> str:
    """Start with `config`, which must be refused; the one error line logged."""
    with pytest.raises(PluginStartError, match="on_configure returned false"):
        start(config)
    (error,) = emulator.logs.error
    return error


def config_seen(plugin: Plugin) -> dict[str, str]:
    stream = plugin.http_stream()
    stream.send_request({":method": "GET", ":path": "/", ":authority": "a"})
    return dict(ast.literal_eval(stream.upstream_request.headers["x-config"]))


# -- 1. malformed JSON: json's reason and position, in the built module too -----------

MALFORMED = [
    b'{"greeting": "hi",}',  # trailing comma
    b"{'greeting': 'hi'}",  # single quotes
    b'{"greeting": "hi',  # unterminated string
    b'{\n  "limit": 1\n  "ratio": 2\n}',  # missing comma, on line 3
    b'{"greeting": "a\\qb"}',  # bad escape
    b'{"greeting": }',  # no value
    b'{"limit": 1} x',  # extra data
    b'{"greeting" "hi"}',  # no colon
]


@pytest.mark.both_modes
@pytest.mark.parametrize("config", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_json_is_refused_with_the_reason_and_position(
    start: Callable[[bytes], Plugin], emulator: Emulator, config: bytes
) -> None:
    with pytest.raises(json.JSONDecodeError) as reference:
        json.loads(config)
    assert refused(start, emulator, config) == (
        f"{LABEL}: configuration is not valid JSON: {reference.value}; "
        f"fix the JSON in the plugin configuration {FIX}"
    )


WITHOUT_JSON = '''
import sys
from pwtool.emulator._native import install_router

install_router()  # the seam the SDK imports
from proxywasm._json import loads

assert "json" not in sys.modules and "json.decoder" not in sys.modules
try:
    loads(sys.argv[1])
except ValueError as error:
    print(error)
print("json.decoder loaded:", "json.decoder" in sys.modules)
'''


def test_malformed_json_is_explained_without_the_json_package() -> None:
    """The SDK's parser gives json's reason and position when no `json` package is loaded,
    as in a built module (pytest loads `json`: so in a fresh interpreter)."""
    result = subprocess.run(
        [sys.executable, "-I", "-c", WITHOUT_JSON, '{"greeting": "hi",}'],
        capture_output=True, text=True, timeout=120, check=True,
    )
    assert result.stdout.splitlines() == [
        "Expecting property name enclosed in double quotes: line 1 column 19 (char 18)",
        "json.decoder loaded: False",
    ]


def test_loads_words_errors_like_json() -> None:
    """Here `json` is imported, so the scanner raises real JSONDecodeErrors."""
    for document in [*MALFORMED, b"", b"  ", b"[1, 2", b'"\x01"', b"[" * 100000]:
        with pytest.raises(ValueError) as ours:
            loads(document)
        try:
            json.loads(document)
        except RecursionError:
            assert str(ours.value) == "nested too deeply"
        except json.JSONDecodeError as theirs:
            assert str(ours.value) == str(theirs)


# -- 2. types against default_config, unknown keys -----------------------------------

WRONG_TYPES = [
    ({"greeting": 5}, "'greeting' must be a string like its default, got an integer (5)"),
    ({"greeting": None}, "'greeting' must be a string like its default, got null"),
    ({"limit": True}, "'limit' must be an integer like its default, got a boolean (true)"),
    ({"limit": 2.5}, "'limit' must be an integer like its default, got a number (2.5)"),
    ({"limit": "10"}, "'limit' must be an integer like its default, got a string ('10')"),
    ({"ratio": False}, "'ratio' must be a number like its default, got a boolean (false)"),
    ({"enabled": 1}, "'enabled' must be a boolean like its default, got an integer (1)"),
    ({"paths": "/admin"}, "'paths' must be an array like its default, got a string ('/admin')"),
    ({"extra": []}, "'extra' must be an object like its default, got an array"),
]


@pytest.mark.both_modes
@pytest.mark.parametrize(("config", "problem"), WRONG_TYPES, ids=[str(c) for c, _ in WRONG_TYPES])
def test_a_value_of_the_wrong_type_is_refused(
    start: Callable[[bytes], Plugin], emulator: Emulator, config: dict[str, object], problem: str
) -> None:
    assert refused(start, emulator, json.dumps(config).encode()) == (
        f"{LABEL}: configuration key {problem}; fix the plugin configuration {FIX}"
    )


@pytest.mark.both_modes
def test_every_wrong_type_is_named_in_one_line(start: Callable[[bytes], Plugin], emulator: Emulator) -> None:
    error = refused(start, emulator, b'{"greeting": 1, "limit": "x", "ratio": 2}')
    assert "'greeting' must be a string" in error and "'limit' must be an integer" in error
    assert "'ratio'" not in error  # 2 is fine for a float default


@pytest.mark.both_modes
def test_values_of_the_default_types_are_accepted(start: Callable[[bytes], Plugin], emulator: Emulator) -> None:
    config = {"greeting": "hi", "limit": 3, "ratio": 2, "enabled": True, "paths": ["/a"], "extra": {"k": [1]},
              "anything": [1, "x"]}
    plugin = start(json.dumps(config).encode())
    assert config_seen(plugin) == {key: repr(value) for key, value in config.items()}
    plugin.configure(b'{"ratio": 0.25, "anything": "text"}')  # a float for a float; anything for None
    assert config_seen(plugin)["ratio"] == "0.25" and config_seen(plugin)["anything"] == "'text'"
    assert emulator.logs.error == [] and emulator.logs.warn == []


@pytest.mark.both_modes
def test_an_unknown_key_is_a_warning_naming_the_known_keys(
    start: Callable[[bytes], Plugin], emulator: Emulator
) -> None:
    plugin = start(b'{"greting": "hi"}')
    assert emulator.logs.warn == [
        f"{LABEL}: configuration key 'greting' is not among the known keys ('greeting', 'limit', 'ratio', "
        f"'enabled', 'paths', 'extra', 'anything'): a typo? If so, fix the plugin configuration {FIX}"
    ]
    assert config_seen(plugin)["greting"] == "'hi'" and config_seen(plugin)["greeting"] == "'hello'"


def test_hello_refuses_a_greeting_that_is_not_a_string(example: Callable[..., Plugin], emulator: Emulator) -> None:
    """The audit's case: this configuration made every request of plugins/hello fail with 500."""
    with pytest.raises(PluginStartError):
        example("hello", config=b'{"greeting": 5}')
    (error,) = emulator.logs.error
    assert error.startswith("Hello (root_id '')") and "'greeting' must be a string" in error


def test_parse_json_config_checks_types_only_when_asked() -> None:
    defaults = {"limit": 1, "ratio": 1.0}
    assert proxywasm.parse_json_config(b'{"limit": "x"}', defaults) == {"limit": "x", "ratio": 1.0}
    assert proxywasm.parse_json_config(b'{"ratio": 2}', defaults, check_types=True) == {"limit": 1, "ratio": 2}
    with pytest.raises(proxywasm.ConfigError, match="'limit' must be an integer"):
        proxywasm.parse_json_config(b'{"limit": "x"}', defaults, check_types=True)


# -- 3. invalid UTF-8, NaN and Infinity ------------------------------------------------


@pytest.mark.both_modes
def test_invalid_utf8_is_refused_naming_the_byte_offset(start: Callable[[bytes], Plugin], emulator: Emulator) -> None:
    config = '{"greeting": "café"}'.encode("latin-1")  # not UTF-8: é is the single byte 0xe9
    assert refused(start, emulator, config) == (
        f"{LABEL}: configuration is not valid UTF-8: byte 0xe9 at offset 17 (invalid continuation byte); "
        f"fix the plugin configuration {FIX}, saved as UTF-8"
    )


NON_FINITE = [
    (b'{"ratio": NaN}', "NaN at 'ratio'"),
    (b'{"ratio": Infinity}', "Infinity at 'ratio'"),
    (b'{"extra": {"x": [1, -Infinity]}}', "-Infinity at 'extra.x[1]'"),
]


@pytest.mark.both_modes
@pytest.mark.parametrize(("config", "where"), NON_FINITE, ids=[w for _, w in NON_FINITE])
def test_nan_and_infinity_are_refused(
    start: Callable[[bytes], Plugin], emulator: Emulator, config: bytes, where: str
) -> None:
    assert refused(start, emulator, config) == (
        f"{LABEL}: configuration is not valid JSON: {where} is not allowed: JSON has no NaN or Infinity; "
        f"fix the JSON in the plugin configuration {FIX}"
    )


def test_body_json_still_reads_nan_like_json_loads() -> None:
    assert math.isnan(loads(b"NaN")) and loads('[Infinity, -Infinity]') == [math.inf, -math.inf]
    with pytest.raises(ValueError, match="NaN as the whole document is not allowed"):
        loads(b"NaN", allow_nan=False)


def test_packaged_defaults_with_nan_are_refused_as_by_a_build(emulator: Emulator, tmp_path: Path) -> None:
    """plugin.toml's [config] is TOML, which has nan and inf, but it travels as JSON: native
    mode refuses it as `pwtool build` does, naming the file and the key."""
    directory = tmp_path / "packaged"
    directory.mkdir()
    (directory / "plugin.py").write_text(textwrap.dedent(SOURCE))
    (directory / "plugin.toml").write_text('name = "packaged"\n[config]\nratio = inf\n')
    with pytest.raises(ModuleLoadError, match=r"plugin\.toml: \[config\] ratio is inf.*Fix:"):
        emulator.load(directory, mode="native", root_id="cfg")
