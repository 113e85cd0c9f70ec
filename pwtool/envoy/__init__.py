"""Real Envoy, driven from Python: start on free ports, wait until ready, stop by PID;
and small HTTP servers to put behind it."""

from pwtool.envoy._http import EchoServer, LocalHttpServer, Request, echo
from pwtool.envoy._log import LogRecord, error_summary, parse_log
from pwtool.envoy._process import Envoy, EnvoyError, envoy_binary, free_port, next_base_id, port_in_use, validate

__all__ = [
    "EchoServer", "Envoy", "EnvoyError", "LocalHttpServer", "LogRecord", "Request", "echo", "envoy_binary",
    "error_summary", "free_port", "next_base_id", "parse_log", "port_in_use", "validate",
]
