"""Conformance plugin: the request path picks the behaviour (see tests/conformance).

Every log line carries ``conf[<x-conf-id>]`` so that the suite can pick the lines of
one request out of Envoy's log and out of the emulator's captured logs.
"""

import proxywasm
from proxywasm import Action, Counter, Gauge, HttpCallFailed, HttpCallTimeout, HttpContext, RootContext

REQUESTS = Counter("conformance.requests")
BODY_BYTES = Counter("conformance.body_bytes")
PAUSED = Gauge("conformance.paused")


class Stream(HttpContext):
    def __init__(self):
        self.path = "/"
        self.tag = "conf[-]"

    def log(self, level, message):
        proxywasm.log(level, f"{self.tag} {message}")

    async def on_request_headers(self, headers, end_of_stream):
        self.path = headers.get(":path", "/")
        self.tag = f"conf[{headers.get('x-conf-id', '-')}]"
        REQUESTS.inc()
        path = self.path.split("?", 1)[0]
        config = self.root.config
        if path == "/headers":
            headers["x-conf-added"] = "req"
            headers.add("x-conf-multi", "a")
            headers.add("x-conf-multi", "b")
            headers.remove("x-conf-remove")
            if "x-conf-replace" in headers:
                headers["x-conf-replace"] = headers["x-conf-replace"].upper()
        elif path == "/local":
            self.send_local_response(
                418, "short and stout\n", {"x-conf-local": "yes"}, details="conf_teapot"
            )
            return Action.PAUSE
        elif path == "/local-empty":
            self.send_local_response(204, details="conf_empty")
            return Action.PAUSE
        elif path in ("/buffer-request", "/buffer-limit"):
            self.buffer_request_body = True
        elif path in ("/buffer-response", "/buffer-response-limit"):
            self.buffer_response_body = True
        elif path == "/stream-body":
            pass
        elif path in ("/callout", "/callout-dead", "/callout-slow", "/callout-unknown"):
            cluster = {
                "/callout": config["callout_cluster"],
                "/callout-dead": config["dead_cluster"],
                "/callout-slow": config["slow_cluster"],
                "/callout-unknown": "no_such_cluster",
            }[path]
            try:
                answer = await self.http_call(
                    cluster,
                    {":method": "GET", ":path": "/check?from=plugin", ":authority": "callout",
                     "x-conf-id": headers.get("x-conf-id", "-")},
                    timeout_ms=config["callout_timeout_ms"],
                )
            except HttpCallTimeout as error:
                self.log(proxywasm.LogLevel.WARN, f"callout timed out: {error}")
                headers["x-callout-result"] = "timeout"
                return Action.CONTINUE
            except HttpCallFailed as error:
                self.log(proxywasm.LogLevel.WARN, f"callout failed: {error}")
                headers["x-callout-result"] = "failed"
                return Action.CONTINUE
            except proxywasm.HostcallError as error:
                self.log(proxywasm.LogLevel.WARN, f"callout refused: {type(error).__name__}")
                self.send_local_response(502, f"callout refused: {type(error).__name__}\n",
                                         details="conf_callout_refused")
                return Action.PAUSE
            headers["x-callout-result"] = "answered"
            headers["x-callout-status"] = str(answer.status)
            headers["x-callout-body"] = answer.body.decode()[:300].strip()
            headers["x-callout-type"] = answer.headers.get("content-type", "-")
            headers["x-callout-upstream"] = answer.headers.get("x-upstream", "")
            self.log(proxywasm.LogLevel.INFO, f"callout answered {answer.status}")
        elif path == "/sleep":
            PAUSED.add(1)
            await proxywasm.sleep(100)
            PAUSED.add(-1)
            headers["x-conf-slept"] = "100"
            self.log(proxywasm.LogLevel.INFO, "woke up")
        elif path == "/tick-resume":
            PAUSED.add(1)
            self.root.waiting.append(self)
            return Action.PAUSE
        elif path == "/shared":
            count = proxywasm.update_shared_data("conformance.count", lambda v: str(int(v or b"0") + 1))
            headers["x-conf-count"] = count
            self.count = count.decode() if isinstance(count, bytes) else str(count)
        elif path == "/log":
            proxywasm.log_trace(f"{self.tag} trace line")
            proxywasm.log_debug(f"{self.tag} debug line")
            proxywasm.log_info(f"{self.tag} info line")
            proxywasm.log_warn(f"{self.tag} warn line")
            proxywasm.log_error(f"{self.tag} error line")
            proxywasm.log_critical(f"{self.tag} critical line")
        elif path == "/raise-request":
            raise ValueError(f"{self.tag} boom in request headers")
        elif path == "/raise-callout-callback":
            async def answered(response):
                await proxywasm.sleep(50)
                raise ValueError(f"{self.tag} boom in an async callout callback ({response.status})")

            self.dispatch_http_call(
                config["callout_cluster"], {":method": "GET", ":path": "/check", ":authority": "callout"},
                timeout_ms=config["callout_timeout_ms"], callback=answered,
            )
            return Action.PAUSE
        return Action.CONTINUE

    def on_request_body(self, body, end_of_stream):
        path = self.path.split("?", 1)[0]
        if len(body):  # Envoy refuses a counter increment of 0 (the last, empty chunk)
            BODY_BYTES.inc(len(body))
        if path == "/stream-body":
            self.log(proxywasm.LogLevel.INFO, f"request body chunk {len(body)} bytes, eos={end_of_stream}")
        if path == "/buffer-request":
            data = body.read()
            self.log(proxywasm.LogLevel.INFO, f"request body {len(data)} bytes, eos={end_of_stream}")
            body.replace(data.upper())
        elif path == "/raise-body":
            raise RuntimeError(f"{self.tag} boom in request body")
        return Action.CONTINUE

    def on_response_headers(self, headers, end_of_stream):
        headers["x-conf-response"] = self.path.split("?", 1)[0]
        headers.remove("x-upstream-secret")
        if hasattr(self, "count"):
            headers["x-conf-count"] = self.count
        if self.path.startswith("/buffer-response") or self.path.startswith("/raise-response-body"):
            headers.remove("content-length")
        if self.path.startswith("/raise-response-headers"):
            raise KeyError(f"{self.tag} boom in response headers")
        return Action.CONTINUE

    def on_response_body(self, body, end_of_stream):
        path = self.path.split("?", 1)[0]
        if path == "/buffer-response":
            data = body.read()
            body.replace(data.replace(b"hello", b"goodbye"))
            self.log(proxywasm.LogLevel.INFO, f"response body {len(data)} bytes")
        elif path == "/raise-response-body":
            raise RuntimeError(f"{self.tag} boom in response body")
        return Action.CONTINUE


class Conformance(RootContext):
    http_context = Stream
    default_config = {
        "callout_cluster": "callout",
        "dead_cluster": "dead",
        "slow_cluster": "slow",
        "callout_timeout_ms": 300,
    }

    def on_vm_start(self, vm_configuration):
        self.waiting = []
        return True

    def on_configure(self, configuration):
        ok = super().on_configure(configuration)
        self.set_tick_period(200)
        proxywasm.log_info("conf[start] configured")
        return ok

    def on_tick(self):
        waiting, self.waiting = self.waiting, []
        for stream in waiting:
            stream.request_headers["x-conf-resumed-by"] = "tick"
            PAUSED.add(-1)
            stream.resume_request()
            stream.log(proxywasm.LogLevel.INFO, "resumed by tick")


proxywasm.register(Conformance)
