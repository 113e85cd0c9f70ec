"""Deployment manifests: Istio ``WasmPlugin`` resources and plain-Envoy wasm configs."""

from pwtool.manifests._envoy import (
    FAILURE_POLICIES, RUNTIMES, bootstrap, ecds_filter, ecds_resource, fetch_cluster, http_filter,
    parse_upstream, plugin_config, wasm_service,
)
from pwtool.manifests._istio import (
    FAIL_STRATEGIES, PHASES, PULL_POLICIES, api_version, cel_errors, crd_path, normalize_sha256,
    parse_target_ref, render_wasmplugin, to_yaml, url_scheme_ok, validate_wasmplugin,
)
from pwtool.manifests._plugin import ManifestError, PluginInfo, load_plugin, merge_settings, resource_name

__all__ = [
    "FAILURE_POLICIES", "FAIL_STRATEGIES", "ManifestError", "PHASES", "PULL_POLICIES", "PluginInfo", "RUNTIMES",
    "api_version", "bootstrap", "cel_errors", "crd_path", "ecds_filter", "ecds_resource", "fetch_cluster",
    "http_filter", "load_plugin", "merge_settings", "normalize_sha256", "parse_target_ref", "parse_upstream",
    "plugin_config", "render_wasmplugin", "resource_name", "to_yaml", "url_scheme_ok", "validate_wasmplugin",
    "wasm_service",
]
