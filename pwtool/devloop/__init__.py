"""The local dev loop: a plugin in a live Envoy, rebuilt and hot-swapped through file-based ECDS."""

from pwtool.devloop._server import BuildError, DevLoopError, DevServer, Stopped, Swap, parse_config
from pwtool.devloop._watch import Snapshot, changed, snapshot

__all__ = ["BuildError", "DevLoopError", "Stopped", "DevServer", "Snapshot", "Swap", "changed", "parse_config", "snapshot"]
