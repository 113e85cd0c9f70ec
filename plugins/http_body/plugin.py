"""HTTP body: rewrite the response body once it is complete.

``buffer_response_body`` makes Envoy buffer the body; ``on_response_body`` then runs
once, with all of it. Text bodies have every ``find`` replaced by ``replace``; the
content-length header is dropped in the header callback because the size changes.
"""

import proxywasm
from proxywasm import Action, HttpContext


class Rewrite(HttpContext):
    buffer_response_body = True

    def on_response_headers(self, headers, end_of_stream):
        content_type = headers.get("content-type", "")
        self.rewrite = content_type.startswith("text/")
        if self.rewrite:
            headers.remove("content-length")
        return Action.CONTINUE

    def on_response_body(self, body, end_of_stream):
        if self.rewrite:
            config = self.root.config
            text = body.read()
            new = text.replace(config["find"].encode(), config["replace"].encode())
            if new != text:
                body.replace(new)
        return Action.CONTINUE


class RewritePlugin(proxywasm.RootContext):
    http_context = Rewrite
    default_config = {"find": "hello", "replace": "goodbye"}


proxywasm.register(RewritePlugin)
