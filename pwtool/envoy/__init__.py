"""Real Envoy, driven from Python: start on free ports, wait until ready, stop by PID;
and small HTTP servers to put behind it."""

from pwtool.envoy._http import EchoServer, LocalHttpServer, Request, echo
from pwtool.envoy._process import Envoy, EnvoyError, envoy_binary, free_port, next_base_id, validate

__all__ = [
    "EchoServer", "Envoy", "EnvoyError", "LocalHttpServer", "Request", "echo", "envoy_binary", "free_port",
    "next_base_id", "validate",
]
