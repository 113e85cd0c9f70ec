"""Real Envoy, driven from Python: start on free ports, wait until ready, stop by PID."""

from pwtool.envoy._echo import EchoServer
from pwtool.envoy._process import Envoy, EnvoyError, envoy_binary, free_port, next_base_id, validate

__all__ = ["EchoServer", "Envoy", "EnvoyError", "envoy_binary", "free_port", "next_base_id", "validate"]
