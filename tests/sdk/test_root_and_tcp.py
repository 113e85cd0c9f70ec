"""Root context callbacks, registration / root_id selection, and TCP contexts."""

from __future__ import annotations

import json

import pytest

import proxywasm
from proxywasm import Action
from pwtool.emulator import Action as HostAction
from pwtool.emulator import PeerType, PluginStartError


def test_vm_start_and_configure_receive_raw_bytes(probe_factory) -> None:
    seen = {}
    probe = probe_factory(
        hooks={
            "on_vm_start": lambda root, data: seen.setdefault("vm", data) is not None,
            "on_configure": lambda root, data: seen.setdefault("plugin", data) is not None,
        },
        vm_config=b"vm-config",
        config=b"plugin-config",
    )
    assert seen == {"vm": b"vm-config", "plugin": b"plugin-config"}
    assert probe.run(lambda root: root.configuration) == b"plugin-config"


def test_default_on_configure_parses_json_over_defaults(load) -> None:
    plugin = load(
        """
        import json
        import proxywasm

        class Stream(proxywasm.HttpContext):
            def on_request_headers(self, headers, end_of_stream):
                headers["x-config"] = json.dumps(self.root.config, sort_keys=True)

        class Root(proxywasm.RootContext):
            http_context = Stream
            default_config = {"a": 1, "b": 2}

        proxywasm.register(Root)
        """,
        config=json.dumps({"b": 3}),
    )

    def config_seen() -> dict:
        stream = plugin.http_stream()
        stream.send_request({":path": "/"})
        return json.loads(stream.upstream_request.headers["x-config"])

    assert config_seen() == {"a": 1, "b": 3}
    plugin.configure(json.dumps({"a": 5}))  # a reconfiguration starts from the defaults
    assert config_seen() == {"a": 5, "b": 2}


def test_parse_json_config() -> None:
    assert proxywasm.parse_json_config(b"", {"a": 1}) == {"a": 1}
    assert proxywasm.parse_json_config(b'{"b": 2}', {"a": 1}) == {"a": 1, "b": 2}
    with pytest.raises(proxywasm.ConfigError, match="JSON object"):
        proxywasm.parse_json_config(b"[1]")
    with pytest.raises(proxywasm.ConfigError, match="not valid JSON"):
        proxywasm.parse_json_config(b"{")


def test_configure_returning_false_is_refused(probe_factory) -> None:
    with pytest.raises(PluginStartError):
        probe_factory(hooks={"on_configure": lambda root, data: False})


def test_tick(probe) -> None:
    ticks = []
    probe.hooks["on_tick"] = lambda root: ticks.append(proxywasm.current_time())
    probe.run(lambda root: root.set_tick_period(100))
    probe.advance(350)
    assert len(ticks) == 3
    probe.run(lambda root: root.set_tick_period(0))
    probe.advance(500)
    assert len(ticks) == 3


def test_queue_ready(probe) -> None:
    got = []

    def on_queue_ready(root, queue_id):
        got.append((queue_id, list(root.queue.drain())))

    def register(root):
        root.queue = proxywasm.SharedQueue.register("jobs")
        return root.queue.id

    queue_id = probe.run(register)
    probe.hooks["on_queue_ready"] = on_queue_ready
    probe.emulator.enqueue_by_name("", "jobs", "one")
    assert got == [(queue_id, [b"one"])]


def test_shared_queue_api(probe) -> None:
    def body(root):
        queue = proxywasm.SharedQueue.register("q")
        same = proxywasm.SharedQueue.resolve("q")
        missing = proxywasm.SharedQueue.resolve("nope")
        queue.enqueue("a")
        same.enqueue(b"b")
        return queue == same, missing, queue.dequeue(), queue.dequeue(), queue.dequeue()

    assert probe.run(body) == (True, None, b"a", b"b", None)


def test_foreign_function_receives_arguments(probe) -> None:
    got = []
    probe.hooks["on_foreign_function"] = lambda root, fid, data: got.append((fid, data))
    probe.plugin.call_foreign(7, b"args")
    assert got == [(7, b"args")]


def test_call_foreign_function(probe) -> None:
    probe.emulator.register_foreign_function("reverse", lambda data: data[::-1])
    assert probe.run(lambda root: proxywasm.call_foreign_function("reverse", b"abc")) == b"cba"


def test_on_done_false_then_done(probe) -> None:
    probe.hooks["on_done"] = lambda root: False
    probe.plugin.shutdown()
    assert not probe.plugin.done
    probe.run(lambda root: root.done())
    assert probe.plugin.done


def test_root_id_selection(load) -> None:
    source = """
        import proxywasm

        class A(proxywasm.HttpContext):
            def on_request_headers(self, headers, end_of_stream):
                headers["x-root"] = "a"

        class B(proxywasm.HttpContext):
            def on_request_headers(self, headers, end_of_stream):
                headers["x-root"] = "b"

        proxywasm.register(A, root_id="a")
        proxywasm.register(B, root_id="b")
        """
    for root_id in ("a", "b"):
        plugin = load(source, root_id=root_id)
        stream = plugin.http_stream()
        stream.send_request({":path": "/"})
        assert stream.upstream_request.headers["x-root"] == root_id


def test_unknown_root_id_refuses_to_start(load) -> None:
    source = """
        import proxywasm

        class A(proxywasm.RootContext): pass
        class B(proxywasm.RootContext): pass

        proxywasm.register(A, root_id="a")
        proxywasm.register(B, root_id="b")
        """
    with pytest.raises(PluginStartError):
        load(source, root_id="c")


def test_register_rejects_other_things() -> None:
    with pytest.raises(TypeError):
        proxywasm.register(object)  # type: ignore[type-var]


def test_context_knows_root_in_init(load) -> None:
    plugin = load(
        """
        import proxywasm

        class Stream(proxywasm.HttpContext):
            def __init__(self):
                self.greeting = self.root.config["greeting"]

            def on_request_headers(self, headers, end_of_stream):
                headers["x-greeting"] = self.greeting

        class Root(proxywasm.RootContext):
            http_context = Stream
            default_config = {"greeting": "hi"}

        proxywasm.register(Root)
        """
    )
    stream = plugin.http_stream()
    stream.send_request({":path": "/"})
    assert stream.upstream_request.headers["x-greeting"] == "hi"


def test_tcp_callbacks(probe_factory) -> None:
    probe = probe_factory(root_id="tcp")
    events = []

    def on_downstream_data(ctx, data, eos):
        events.append(("down", data.read(), eos))
        data.prepend(b"[")
        data.append(b"]")
        return Action.CONTINUE

    def on_upstream_data(ctx, data, eos):
        events.append(("up", bytes(data), eos))
        data.replace(b"REPLY")

    probe.hooks["on_new_connection"] = lambda ctx: events.append("new")
    probe.hooks["on_downstream_data"] = on_downstream_data
    probe.hooks["on_upstream_data"] = on_upstream_data
    probe.hooks["on_downstream_close"] = lambda ctx, peer: events.append(("down_close", peer))
    probe.hooks["on_upstream_close"] = lambda ctx, peer: events.append(("up_close", peer))
    probe.hooks["tcp_on_log"] = lambda ctx: events.append("log")
    conn = probe.tcp_stream()
    assert conn.send_downstream_data("hi") == HostAction.CONTINUE
    assert conn.send_upstream_data("reply") == HostAction.CONTINUE
    conn.close_upstream(PeerType.LOCAL)
    conn.close_downstream(PeerType.REMOTE)
    assert events == [
        "new",
        ("down", b"hi", False),
        ("up", b"reply", False),
        ("up_close", proxywasm.PeerType.LOCAL),
        ("down_close", proxywasm.PeerType.REMOTE),
        "log",
    ]
    assert bytes(conn.sent_upstream) == b"[hi]"
    assert bytes(conn.sent_downstream) == b"REPLY"


def test_tcp_pause_and_resume(probe_factory) -> None:
    probe = probe_factory(root_id="tcp")
    held = []
    probe.hooks["on_downstream_data"] = lambda ctx, data, eos: held.append(ctx) or Action.PAUSE
    conn = probe.tcp_stream()
    assert conn.send_downstream_data("x") == HostAction.PAUSE
    assert bytes(conn.sent_upstream) == b""
    assert probe.run(lambda root: held[0].resume_downstream()) is True


def test_async_vm_start_and_root_sleep(probe_factory) -> None:
    steps = []

    async def on_vm_start(root, data):
        steps.append("start")
        await proxywasm.sleep(100)
        steps.append("slept")

    probe = probe_factory(hooks={"on_vm_start": on_vm_start})
    assert steps == ["start"]
    probe.advance(100)
    assert steps == ["start", "slept"]


def test_tcp_upstream_controls(probe_factory) -> None:
    probe = probe_factory(root_id="tcp")
    held = []
    probe.hooks["on_upstream_data"] = lambda ctx, data, eos: held.append(ctx) or Action.PAUSE
    conn = probe.tcp_stream()
    conn.send_downstream_data("x")
    conn.send_upstream_data("y")
    results = probe.run(lambda root: (held[0].close_upstream(),))
    assert results in ((True,), (False,))  # Envoy may not implement upstream close for wasm
    assert not [line for line in probe.logs.error if "Traceback" in line]
