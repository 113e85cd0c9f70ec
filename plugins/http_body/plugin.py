"""HTTP body: rewrite the response body once it is complete.

Text bodies have every ``find`` replaced by ``replace``. For them only, the header
callback sets ``buffer_response_body``, so that Envoy buffers the body and
``on_response_body`` runs once, with all of it, and drops content-length, since the
size changes. Other bodies stream through untouched (and unbuffered, whatever their size).
"""

import proxywasm
from proxywasm import Action, HttpContext


class Rewrite(HttpContext):
    def on_response_headers(self, headers, end_of_stream):
        content_type = headers.get("content-type", "")
        self.rewrite = self.buffer_response_body = content_type.startswith("text/")
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
