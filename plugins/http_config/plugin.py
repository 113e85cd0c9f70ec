"""HTTP config: a validated JSON configuration with defaults.

Envoy / Istio pass the configuration; the SDK's ``on_configure`` parses it over
``default_config`` and refuses values of another type than their default's. This
plugin checks what types cannot say (each prefix is a path, the header name is
lowercase): a bad value makes ``on_configure`` return False, so Envoy rejects the
configuration instead of running with it.
Requests to a blocked path prefix get 403; all others get the configured header.
"""

import proxywasm
from proxywasm import Action, HttpContext, RootContext


class ConfiguredStream(HttpContext):
    def on_request_headers(self, headers, end_of_stream):
        config = self.root.config
        path = headers.get(":path", "/")
        if any(path.startswith(prefix) for prefix in config["blocked_prefixes"]):
            self.send_local_response(403, "blocked by configuration\n", details="path_blocked")
            return Action.PAUSE
        headers[config["header_name"]] = config["header_value"]
        return Action.CONTINUE


class ConfigPlugin(RootContext):
    http_context = ConfiguredStream
    default_config = {
        "header_name": "x-configured",
        "header_value": "yes",
        "blocked_prefixes": [],
    }

    def on_configure(self, configuration):
        # The SDK parses the JSON over the defaults and refuses a value whose type
        # differs from its default's (a string for blocked_prefixes, say).
        if not super().on_configure(configuration):
            return False
        config = self.config
        problems = []
        if not config["header_name"] or config["header_name"] != config["header_name"].lower():
            problems.append(f"header_name must be a non-empty lowercase name, got {config['header_name']!r}")
        for index, prefix in enumerate(config["blocked_prefixes"]):
            if not isinstance(prefix, str) or not prefix.startswith("/"):
                problems.append(f"blocked_prefixes[{index}] must be a path starting with '/', got {prefix!r}")
        if problems:
            proxywasm.log_error("http_config: invalid configuration: " + "; ".join(problems))
            return False
        proxywasm.log_info(f"http_config: configured {config}")
        return True


proxywasm.register(ConfigPlugin)
