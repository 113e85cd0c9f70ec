"""The snapshotter: run a module's initialisation once, keep the resulting memory.

``snapshot()`` is what ``pwtool build`` uses to ship an interpreter that has already
started and imported the plugin; Envoy then pays well under a millisecond per VM.
"""

from pwtool.build.snapshot._capture import snapshot
from pwtool.build.snapshot._rewrite import nonzero_runs, write_snapshot

__all__ = ["nonzero_runs", "snapshot", "write_snapshot"]
