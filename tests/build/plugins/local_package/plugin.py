"""Uses a package beside plugin.py, a guarded optional import and a stdlib module."""

import base64

import proxywasm
from helpers import shout

try:
    import numpy  # not available: guarded, so the build must not fail
except ImportError:
    numpy = None


class Stream(proxywasm.HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        word = headers.get("x-word", "hi")
        headers["x-shout"] = shout(word, self.root.config["suffix"])
        headers["x-b64"] = base64.b64encode(word.encode()).decode()
        headers["x-numpy"] = "yes" if numpy else "no"
        return proxywasm.Action.CONTINUE


proxywasm.register(Stream, root_id="lp")
