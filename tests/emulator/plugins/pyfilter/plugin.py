"""A small SDK plugin the emulator tests run in both modes (native and wasm)."""

import proxywasm
from proxywasm import Action


class Filter(proxywasm.HttpContext):
    async def on_request_headers(self, headers, end_of_stream):
        path = headers.get(":path", "")
        self.root.requests.inc()
        if path == "/local":
            self.send_local_response(403, "forbidden by python", {"x-py-local": "yes"}, details="py_denied")
            return Action.PAUSE
        if path == "/callout":
            response = await self.http_call("auth", {":path": "/check", ":authority": "auth.local"}, timeout_ms=500)
            headers["x-auth-status"] = str(response.status)
            return Action.CONTINUE
        if path == "/boom":
            raise RuntimeError("plugin bug")
        headers["x-py"] = "hello"
        proxywasm.log_info(f"py: request {path}")
        return Action.CONTINUE

    def on_response_headers(self, headers, end_of_stream):
        headers["x-py-response"] = "1"
        return Action.CONTINUE


class Root(proxywasm.RootContext):
    http_context = Filter

    def on_configure(self, configuration):
        ok = super().on_configure(configuration)
        self.requests = proxywasm.Counter("py_requests")
        proxywasm.log_info(f"py: configured {sorted(self.config)}")
        return ok


proxywasm.register(Root)
