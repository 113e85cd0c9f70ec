"""The snapshotter: run a module's initialisation once, keep the resulting memory.

``snapshot()`` is what ``pwtool build`` uses to ship an interpreter that has already
started and imported the plugin; Envoy then pays well under a millisecond per VM.
"""

from pwtool.build.snapshot._capture import instantiate, snapshot
from pwtool.build.snapshot._rewrite import nonzero_runs, write_snapshot
from pwtool.build.snapshot._strip import is_build_only, strip_build_only_code

__all__ = ["instantiate", "is_build_only", "nonzero_runs", "snapshot", "strip_build_only_code", "write_snapshot"]
