"""Hello world: log on start, add a request header and a response header."""

import proxywasm
from proxywasm import Action, HttpContext, RootContext


class HelloStream(HttpContext):
    """Each request gets ``x-hello-request``; each response ``x-hello``."""

    def on_request_headers(self, headers, end_of_stream):
        headers["x-hello-request"] = "1"
        return Action.CONTINUE

    def on_response_headers(self, headers, end_of_stream):
        headers["x-hello"] = self.root.config["greeting"]
        return Action.CONTINUE


class Hello(RootContext):
    """The plugin: greets the log when the VM starts."""

    http_context = HelloStream
    default_config = {"greeting": "hello"}

    def on_vm_start(self, vm_configuration: bytes) -> bool:
        proxywasm.log_info("hello: VM started")
        return True


proxywasm.register(Hello, root_id="hello")
