"""Fails in the ways a real plugin can, to test the failure behaviour."""

import proxywasm


class Stream(proxywasm.HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        mode = headers.get("x-fail", "")
        if mode == "raise":
            return self.explode()
        if mode == "exec":
            namespace = {}
            exec("value = 6 * 7", namespace)
            headers["x-exec"] = str(namespace["value"])
        return proxywasm.Action.CONTINUE

    def explode(self):
        raise ValueError("boom from the plugin")  # line 18


class Root(proxywasm.RootContext):
    http_context = Stream

    def on_configure(self, configuration):
        if configuration == b"refuse":
            raise RuntimeError("configuration refused by the plugin")
        return True


proxywasm.register(Root)
