"""HTTP auth through a callout, written with ``await``.

Each request is checked by an authorization service (cluster ``auth_cluster``): the
request's ``authorization`` header goes to ``GET /check``. 200 lets the request through
with the ``x-user`` the service answered; any other status gets 403. If the service is
down or slow, the request gets 503 (fail closed, but with a clear answer).
"""

import proxywasm
from proxywasm import Action, HttpCallFailed, HttpContext

DENIED = proxywasm.Counter("http_auth.denied")


class Auth(HttpContext):
    async def on_request_headers(self, headers, end_of_stream):
        config = self.root.config
        try:
            answer = await self.http_call(
                config["auth_cluster"],
                {
                    ":method": "GET",
                    ":path": config["check_path"],
                    ":authority": config["auth_authority"],
                    "authorization": headers.get("authorization", ""),
                },
                timeout_ms=config["timeout_ms"],
            )
        except HttpCallFailed as error:  # HttpCallTimeout included
            proxywasm.log_warn(f"auth service unavailable: {error}")
            self.send_local_response(503, "auth service unavailable\n", details="auth_unavailable")
            return Action.PAUSE
        if answer.status != 200:
            DENIED.inc()
            self.send_local_response(403, "forbidden\n", details="auth_denied")
            return Action.PAUSE
        user = answer.headers.get("x-user")
        if user:
            headers["x-user"] = user
        return Action.CONTINUE


class AuthPlugin(proxywasm.RootContext):
    http_context = Auth
    default_config = {
        "auth_cluster": "auth",
        "auth_authority": "auth",
        "check_path": "/check",
        "timeout_ms": 1000,
    }


proxywasm.register(AuthPlugin)
