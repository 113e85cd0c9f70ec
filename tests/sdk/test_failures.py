"""Failure behaviour: tracebacks in the log, fail closed by default, fail open on request."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import proxywasm
from proxywasm import Action
from pwtool.emulator import Action as HostAction
from pwtool.emulator import Emulator, HttpStream, Plugin, PluginStartError

REQUEST = {":method": "GET", ":path": "/p", ":authority": "h"}


def boom(*args):
    raise ValueError("boom")


def test_http_exception_fails_closed_with_traceback(probe) -> None:
    probe.hooks["on_request_headers"] = boom
    stream = probe.http_stream()
    assert stream.send_request_headers(REQUEST, end_of_stream=True) == HostAction.PAUSE
    assert stream.local_response.status == 500
    assert stream.local_response.details == "python_plugin_exception"
    (error,) = probe.logs.error
    assert "ProbeHttp.on_request_headers" in error
    assert "Traceback (most recent call last):" in error
    assert 'in boom' in error and error.endswith("ValueError: boom")


def test_response_exception_fails_closed(probe) -> None:
    probe.hooks["on_response_headers"] = boom
    stream = probe.http_stream()
    stream.send_request(REQUEST)
    assert stream.send_response_headers({":status": "200"}, end_of_stream=True) == HostAction.PAUSE
    assert stream.status == 500


def test_fail_open(probe_factory) -> None:
    probe = probe_factory()
    probe.run(lambda root: setattr(root, "fail_open", True))
    probe.hooks["on_request_headers"] = boom
    stream = probe.http_stream()
    assert stream.send_request_headers(REQUEST, end_of_stream=True) == HostAction.CONTINUE
    assert stream.local_response is None
    assert len(probe.logs.error) == 1


def test_fail_open_by_registration(load) -> None:
    plugin = load(
        """
        import proxywasm

        class Broken(proxywasm.HttpContext):
            def on_request_headers(self, headers, end_of_stream):
                raise RuntimeError("broken")

        proxywasm.register(Broken, fail_open=True)
        """
    )
    stream = plugin.http_stream()
    assert stream.send_request_headers(REQUEST, end_of_stream=True) == HostAction.CONTINUE


def test_fail_open_class_attribute_on_http_context(load) -> None:
    plugin = load(
        """
        import proxywasm

        class Broken(proxywasm.HttpContext):
            fail_open = True

            def on_request_headers(self, headers, end_of_stream):
                raise RuntimeError("broken")

        proxywasm.register(Broken)
        """
    )
    stream = plugin.http_stream()
    assert stream.send_request_headers(REQUEST, end_of_stream=True) == HostAction.CONTINUE


def test_vm_start_and_configure_exceptions_return_false(probe_factory) -> None:
    import pytest

    from pwtool.emulator import PluginStartError

    with pytest.raises(PluginStartError, match="on_vm_start"):
        probe_factory(hooks={"on_vm_start": boom})
    with pytest.raises(PluginStartError, match="on_configure"):
        probe_factory(hooks={"on_configure": boom})


def test_invalid_json_configuration_is_refused(probe_factory) -> None:
    import pytest

    from pwtool.emulator import PluginStartError

    with pytest.raises(PluginStartError):
        probe_factory(config=b"{not json")


def test_root_callback_exceptions_are_logged(probe) -> None:
    probe.hooks["on_tick"] = boom
    probe.run(lambda root: root.set_tick_period(5))
    probe.tick()
    assert any("Probe.on_tick" in line for line in probe.logs.error)


def test_tcp_exception_closes_connection(probe_factory) -> None:
    probe = probe_factory(root_id="tcp")
    probe.hooks["on_downstream_data"] = boom
    conn = probe.tcp_stream()
    assert conn.send_downstream_data("x") == HostAction.PAUSE
    assert conn.closed_by_plugin is not None


def test_callback_exception_in_callout_fails_closed(probe) -> None:
    def on_request_headers(ctx, headers, eos):
        ctx.dispatch_http_call("cluster", callback=boom)
        return Action.PAUSE

    probe.hooks["on_request_headers"] = on_request_headers
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    probe.pending_http_calls[0].respond(200)
    assert stream.local_response.status == 500


def test_stream_gone_is_clear(probe) -> None:
    held = []
    probe.hooks["on_request_headers"] = lambda ctx, h, eos: held.append(ctx) or Action.PAUSE
    stream = probe.http_stream()
    stream.send_request_headers(REQUEST, end_of_stream=True)
    stream.complete()

    def use_gone_context(root):
        (ctx,) = held
        try:
            ctx.send_local_response(200)
        except proxywasm.StreamGone as error:
            return (ctx.alive, ctx.resume_request(), str(error))

    alive, resumed, message = probe.run(use_gone_context)
    assert alive is False and resumed is False
    assert "is gone" in message


def test_exception_chain_is_formatted() -> None:
    from proxywasm._log import format_exception

    try:
        try:
            raise KeyError("inner")
        except KeyError as inner:
            raise proxywasm.ConfigError("outer") from inner
    except proxywasm.ConfigError as exc:
        text = format_exception(exc)
    assert text.index("KeyError: 'inner'") < text.index("direct cause") < text.index(
        "proxywasm._errors.ConfigError: outer"
    )


def test_recursion_traceback_counts_repeated_frames() -> None:
    """A run of identical frames shows three, then a count, as CPython's tracebacks do;
    frames around the run stay."""
    from proxywasm._log import format_exception

    def down(n: int) -> int:
        if n == 40:
            return 1 // 0
        return down(n + 1)

    try:
        down(0)
    except ZeroDivisionError as exc:
        lines = format_exception(exc).splitlines()
    frames = [line for line in lines if "in down" in line]
    assert len(frames) == 4 and len(set(frames)) == 2  # the recursive call three times, then the raising line
    count = lines.index("  [Previous line repeated 37 more times]")
    assert lines[count - 3:count] == [frames[0]] * 3 and lines[count + 1] == frames[3]
    assert lines[-1] == "ZeroDivisionError: integer division or modulo by zero"


# -- hostile plugins, in both modes (tests/e2e/test_hostile_plugins_in_envoy.py: in Envoy) --

HOSTILE = '''
import proxywasm
from proxywasm import Action


class Stream(proxywasm.HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        case = headers.get("x-case", "")
        if case == "crlf":
            headers["x-bad"] = "a\\r\\nx-injected: 1"
        elif case == "nul-name":
            headers.add("x-bad\\0", "1")
        elif case == "crlf-pairs":
            headers.replace_all([(":method", "GET"), (":path", "/"), ("x-bad", "a\\nb")])
        elif case == "crlf-local-response":
            self.send_local_response(403, "no", {"x-bad": "a\\r\\nx-injected: 1"})
            return Action.PAUSE
        elif case == "return-7":
            return 7
        elif case == "return-str":
            return "continue"
        elif case == "keyboard-interrupt":
            raise KeyboardInterrupt
        elif case == "system-exit":
            raise SystemExit(3)
        return Action.CONTINUE


class Root(proxywasm.RootContext):
    http_context = Stream

    def on_configure(self, configuration):
        return "no" if configuration == b"say no" else True


proxywasm.register(Root)
'''


@pytest.fixture(scope="module")
def hostile_dir(plugin_source: Callable[..., Path]) -> Path:
    return plugin_source("hostile", HOSTILE)


@pytest.fixture
def hostile(load_in_mode: Callable[..., Plugin], hostile_dir: Path) -> Callable[..., Plugin]:
    return lambda **kwargs: load_in_mode(hostile_dir, **kwargs)


def hostile_request(plugin: Plugin, case: str) -> HttpStream:
    stream = plugin.http_stream()
    stream.send_request_headers({**REQUEST, "x-case": case}, end_of_stream=True)
    return stream


@pytest.mark.both_modes
@pytest.mark.parametrize(("case", "hostcall"), [
    ("crlf", "proxy_replace_header_map_value"), ("nul-name", "proxy_add_header_map_value"),
    ("crlf-pairs", "proxy_set_header_map_pairs"), ("crlf-local-response", "proxy_send_local_response"),
])
def test_cr_lf_or_nul_in_header_text_is_a_bad_argument(
    hostile: Callable[..., Plugin], emulator: Emulator, case: str, hostcall: str
) -> None:
    """Envoy would pass them on (response splitting on HTTP/1): the runtime refuses them,
    and natively the emulator's seam does the same."""
    stream = hostile_request(hostile(), case)
    assert stream.local_response is not None and stream.local_response.status == 500
    assert stream.local_response.details == "python_plugin_exception"
    (error,) = emulator.logs.error
    assert "proxywasm._errors.BadArgument" in error and hostcall in error
    assert all("injected" not in name + value for name, value in stream.request_headers.items())


@pytest.mark.both_modes
@pytest.mark.parametrize(("case", "shown"), [("return-7", "7 (int)"), ("return-str", "'continue' (str)")])
def test_a_callback_returning_something_else_than_an_action_fails_closed(
    hostile: Callable[..., Plugin], emulator: Emulator, case: str, shown: str
) -> None:
    stream = hostile_request(hostile(), case)  # 7 used to leave the stream paused for good
    assert stream.local_response is not None and stream.local_response.status == 500
    (error,) = emulator.logs.error
    assert f"TypeError: a stream callback returned {shown}; return Action.CONTINUE" in error


@pytest.mark.both_modes
def test_on_configure_returning_a_string_refuses_the_configuration(
    hostile: Callable[..., Plugin], emulator: Emulator
) -> None:
    with pytest.raises(PluginStartError, match="on_configure returned false"):
        hostile(config=b"say no")
    assert "TypeError: returned 'no' (str); return True, False or None" in emulator.logs.error[-1]


@pytest.mark.both_modes
def test_system_exit_from_a_callback_fails_closed(hostile: Callable[..., Plugin], emulator: Emulator) -> None:
    stream = hostile_request(hostile(), "system-exit")
    assert stream.local_response is not None and stream.local_response.status == 500
    assert emulator.logs.error[-1].endswith("SystemExit: 3")


def test_keyboard_interrupt_fails_closed_in_a_vm_but_stops_a_native_run(
    load_plugin: Callable[..., Plugin], built_plugin: Callable[[Path], Path], hostile_dir: Path, emulator: Emulator
) -> None:
    built = load_plugin(built_plugin(hostile_dir), mode="wasm")
    stream = hostile_request(built, "keyboard-interrupt")  # nothing sends one to a VM: a plugin bug
    assert stream.local_response is not None and stream.local_response.status == 500
    native = load_plugin(hostile_dir, mode="native")
    with pytest.raises(KeyboardInterrupt):  # natively it is the user's Ctrl-C
        hostile_request(native, "keyboard-interrupt")
