"""Shared data: a request counter shared by every VM (worker) of the plugin.

Each request increments the counter with a compare-and-swap update that retries
when another worker wrote in between, and the response carries the count.
"""

import proxywasm
from proxywasm import Action, HttpContext

KEY = "shared_data.requests"


def increment(current):
    return str(int(current or b"0") + 1)


class Counting(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        self.count = int(proxywasm.update_shared_data(KEY, increment))
        return Action.CONTINUE

    def on_response_headers(self, headers, end_of_stream):
        headers["x-request-count"] = str(self.count)
        return Action.CONTINUE


class SharedDataPlugin(proxywasm.RootContext):
    http_context = Counting

    def on_vm_start(self, vm_configuration):
        value, _ = proxywasm.get_shared_data(KEY)
        if value is None:
            proxywasm.set_shared_data(KEY, "0")
        return True


proxywasm.register(SharedDataPlugin)
