"""Puts a random number in a response header: VMs must not share a sequence."""

import random

import proxywasm


class Stream(proxywasm.HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        self.send_local_response(200, headers={"x-random": str(random.getrandbits(64))})
        return proxywasm.Action.PAUSE


proxywasm.register(Stream)
