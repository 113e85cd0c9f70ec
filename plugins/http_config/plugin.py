"""HTTP config: a validated JSON configuration with defaults.

Envoy / Istio pass the configuration; the default ``on_configure`` parses it over
``default_config``. This plugin checks it too: a wrong type makes ``on_configure``
return False, so Envoy rejects the configuration instead of running with it.
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
        config = proxywasm.parse_json_config(configuration, self.default_config)
        problems = [
            f"{key} must be a string"
            for key in ("header_name", "header_value")
            if not isinstance(config[key], str)
        ]
        prefixes = config["blocked_prefixes"]
        if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
            problems.append("blocked_prefixes must be a list of strings")
        if problems:
            proxywasm.log_error("http_config: invalid configuration: " + "; ".join(problems))
            return False
        self.config = config
        proxywasm.log_info(f"http_config: configured {config}")
        return True


proxywasm.register(ConfigPlugin)
