"""Building plugins: the runtime (C shim + link recipe), the snapshotter, the plugin build."""

from pwtool.build.metadata import PluginError, PluginMetadata, load_metadata
from pwtool.build.plugin import BuildError, BuildResult, build_inputs_digest, build_plugin

__all__ = [
    "BuildError", "BuildResult", "PluginError", "PluginMetadata", "build_inputs_digest", "build_plugin",
    "load_metadata",
]
