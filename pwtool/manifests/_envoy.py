"""Render plain-Envoy configs for a wasm module: HTTP filter, ECDS resource, bootstrap WasmService."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

from pwtool.manifests._istio import normalize_sha256
from pwtool.manifests._plugin import ManifestError

WASM_FILTER = "envoy.filters.http.wasm"
WASM_FILTER_TYPE = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
WASM_SERVICE_TYPE = "type.googleapis.com/envoy.extensions.wasm.v3.WasmService"
TYPED_EXTENSION_TYPE = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
STRING_VALUE_TYPE = "type.googleapis.com/google.protobuf.StringValue"
FAILURE_POLICIES = ("FAIL_CLOSED", "FAIL_OPEN", "FAIL_RELOAD")
RUNTIMES = ("v8", "wamr", "wasmtime")
"""Runtimes that run a wasm module (``null`` runs only plugins compiled into Envoy itself)."""
DEFAULT_FETCH_CLUSTER = "wasm_fetch"


def _code(wasm_file: Path | None, url: str | None, sha256: str | None, cluster: str,
          timeout_s: int, retries: int) -> dict[str, Any]:
    if (wasm_file is None) == (url is None):
        raise ManifestError("pass exactly one of --wasm FILE (local module) or --url https://... (remote module)")
    if wasm_file is not None:
        return {"local": {"filename": str(wasm_file)}}
    assert url is not None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ManifestError(f"--url {url!r}: Envoy fetches remote modules over http:// or https:// only; "
                            "for oci:// images use Istio, or pull the module and pass --wasm")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0 or not parts.hostname:
        problem = ("it names no host" if not parts.hostname
                   else f"its port {parts.netloc.rpartition(':')[2]!r} is not a number between 1 and 65535")
        raise ManifestError(f"--url {url!r}: {problem}. Fix: pass --url https://HOST[:PORT]/PATH")
    if not sha256:
        raise ManifestError(f"remote module {url} needs --sha256: Envoy refuses remote code without a checksum")
    return {"remote": {
        "http_uri": {"uri": url, "cluster": cluster, "timeout": f"{timeout_s}s"},
        "sha256": normalize_sha256(sha256),
        "retry_policy": {"retry_back_off": {"base_interval": "1s", "max_interval": "10s"},
                         "num_retries": retries},
    }}


def plugin_config(
    *, name: str, root_id: str, config: dict[str, Any] | None = None, wasm_file: Path | None = None,
    url: str | None = None, sha256: str | None = None, vm_id: str | None = None, runtime: str = "v8",
    failure_policy: str | None = None, env: dict[str, str] | None = None, host_env: list[str] | None = None,
    fetch_cluster: str = DEFAULT_FETCH_CLUSTER, fetch_timeout_s: int = 30, fetch_retries: int = 5,
    vm_configuration: str | None = None,
) -> dict[str, Any]:
    """The ``envoy.extensions.wasm.v3.PluginConfig`` shared by the filter, ECDS and WasmService.

    ``vm_configuration`` is what the module's ``on_vm_start`` receives."""
    if runtime not in RUNTIMES:
        raise ManifestError(f"unknown wasm runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if failure_policy is not None and failure_policy not in FAILURE_POLICIES:
        raise ManifestError(f"unknown failure policy {failure_policy!r}; choose one of {', '.join(FAILURE_POLICIES)}")
    vm: dict[str, Any] = {
        "vm_id": vm_id or name,
        "runtime": f"envoy.wasm.runtime.{runtime}",
        "code": _code(wasm_file, url, sha256, fetch_cluster, fetch_timeout_s, fetch_retries),
    }
    if vm_configuration:
        vm["configuration"] = {"@type": STRING_VALUE_TYPE, "value": vm_configuration}
    if env or host_env:
        vm["environment_variables"] = {}
        if host_env:
            vm["environment_variables"]["host_env_keys"] = list(host_env)
        if env:
            vm["environment_variables"]["key_values"] = dict(env)
    out: dict[str, Any] = {"name": name, "root_id": root_id, "vm_config": vm}
    if config:
        out["configuration"] = {"@type": STRING_VALUE_TYPE, "value": json.dumps(config, sort_keys=True)}
    if failure_policy:
        out["failure_policy"] = failure_policy
    return out


def http_filter(plugin: dict[str, Any]) -> dict[str, Any]:
    """An ``http_filters`` entry running ``plugin``."""
    return {"name": WASM_FILTER, "typed_config": {"@type": WASM_FILTER_TYPE, "config": plugin}}


def ecds_resource(plugin: dict[str, Any], *, resource_name: str | None = None,
                  version: str | None = None) -> dict[str, Any]:
    """A file-based ECDS ``DiscoveryResponse`` holding one ``TypedExtensionConfig``."""
    response: dict[str, Any] = {"resources": [{
        "@type": TYPED_EXTENSION_TYPE,
        "name": resource_name or plugin["name"],
        "typed_config": {"@type": WASM_FILTER_TYPE, "config": plugin},
    }]}
    if version:
        response["version_info"] = version
    return response


def ecds_filter(resource_name: str, ecds_path: Path | str) -> dict[str, Any]:
    """An ``http_filters`` entry whose config comes from the ECDS file at ``ecds_path``."""
    return {"name": resource_name, "config_discovery": {
        "config_source": {"path_config_source": {"path": str(ecds_path)}, "resource_api_version": "V3"},
        "type_urls": [WASM_FILTER_TYPE],
    }}


def wasm_service(plugin: dict[str, Any], *, singleton: bool = True) -> dict[str, Any]:
    """A ``bootstrap_extensions`` entry running ``plugin`` as a (singleton) WasmService."""
    return {"name": "envoy.bootstrap.wasm",
            "typed_config": {"@type": WASM_SERVICE_TYPE, "singleton": singleton, "config": plugin}}


def fetch_cluster(url: str, name: str = DEFAULT_FETCH_CLUSTER) -> dict[str, Any]:
    """A cluster that can fetch ``url`` (used by remote ``http_uri`` code)."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    host = parts.hostname or ""
    cluster: dict[str, Any] = {
        "name": name, "type": "STRICT_DNS" if not host.replace(".", "").isdigit() else "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}]},
    }
    if parts.scheme == "https":
        cluster["transport_socket"] = {"name": "envoy.transport_sockets.tls", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "sni": host}}
    return cluster


def parse_upstream(text: str) -> tuple[str, int]:
    """``host:port`` (or ``[ipv6]:port``) as (host, port); a ManifestError says what is wrong."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    problem = ("it has no :PORT" if not sep else "its host is empty" if not host.strip()
               else f"its host {host!r} contains whitespace" if any(c.isspace() for c in host)
               else f"its port {port!r} is not a number" if not port.isdigit()
               else f"its port {port} is not between 1 and 65535" if not 0 < int(port) < 65536 else None)
    if problem is not None:
        raise ManifestError(f"--upstream {text!r}: {problem}. Fix: pass HOST:PORT, for example 127.0.0.1:8080")
    return host, int(port)


def bootstrap(
    *, http_filters: list[dict[str, Any]] | None = None, bootstrap_extensions: list[dict[str, Any]] | None = None,
    clusters: list[dict[str, Any]] | None = None, listen_port: int = 10000, admin_port: int | None = None,
    upstream: str | None = None,
) -> dict[str, Any]:
    """A minimal complete bootstrap: one listener on 127.0.0.1 with ``http_filters`` then the router.

    Requests go to ``upstream`` (``host:port``, see `parse_upstream`) or get a direct 200 response.
    """
    route: dict[str, Any]
    all_clusters = list(clusters or [])
    if upstream:
        host, port = parse_upstream(upstream)
        all_clusters.append({
            "name": "upstream", "type": "STRICT_DNS", "connect_timeout": "5s",
            "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": host, "port_value": port}}}}]}]},
        })
        route = {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}
    else:
        route = {"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok\n"}}}
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
                 "HttpConnectionManager",
        "stat_prefix": "ingress",
        "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [route]}]},
        "http_filters": [*(http_filters or []), {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
    }
    cfg: dict[str, Any] = {
        "node": {"id": "pwtool", "cluster": "pwtool"},
        "static_resources": {
            "listeners": [{
                "name": "main",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen_port}},
                "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                "typed_config": hcm}]}],
            }],
            "clusters": all_clusters,
        },
    }
    if bootstrap_extensions:
        cfg["bootstrap_extensions"] = list(bootstrap_extensions)
    if admin_port is not None:
        cfg["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}}
    return cfg
