"""HTTP headers: read request headers, rewrite response headers, count requests.

Reads all request headers with one hostcall (the SDK caches them for the callback),
tags a counter with the request method, and on the response adds
``x-powered-by`` and drops ``server``.
"""

import proxywasm
from proxywasm import Action, Counter, HttpContext

REQUESTS = Counter("http_headers.requests")


class Headers(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        method = headers.get(":method", "UNKNOWN")
        REQUESTS.with_tags(method=method).inc()
        if self.root.config["log_headers"]:
            for name, value in headers:
                proxywasm.log_debug(f"request header {name}: {value}")
        if "x-request-id" not in headers:
            headers["x-request-id"] = f"pw-{self.id}"
        return Action.CONTINUE

    def on_response_headers(self, headers, end_of_stream):
        headers["x-powered-by"] = self.root.config["powered_by"]
        headers.remove("server")
        return Action.CONTINUE


class HeadersPlugin(proxywasm.RootContext):
    http_context = Headers
    default_config = {"powered_by": "pwtool", "log_headers": False}


proxywasm.register(HeadersPlugin)
