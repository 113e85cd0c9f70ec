import proxywasm


class Stream(proxywasm.HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        import yaml  # line 6: only imported when called, still checked at build time

        return proxywasm.Action.CONTINUE


proxywasm.register(Stream)
