"""Properties: the host's attributes of the request, connection, node and plugin.

`get_property` reads any attribute by path; `properties` has typed getters for the
well-known ones (Envoy's attribute reference: request, response, connection, upstream,
source, destination, xds/node and plugin attributes). Getters return None when the
host does not know the attribute in the current context.

Checked against Envoy 1.40 (tests/e2e/test_properties_in_envoy.py): the node and the
listener direction are under ``xds`` there (older hosts had them at the top, which the
getters fall back to), and the attributes Envoy takes from the request headers (path,
host, method, id, ...) exist only in ``on_request_headers`` and ``on_log``.
"""

from __future__ import annotations

from . import _hostcalls
from ._codec import (
    decode_bool,
    decode_int,
    deserialize_header_map,
    serialize_property_path,
    to_bytes,
    to_str,
)
from ._errors import NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TypeVar

    _T = TypeVar("_T")

    PropertyPath = str | Sequence[str | bytes]
    """``"request.path"`` or ``("xds", "node", "metadata", "a.b")`` (for segments with dots)."""


def get_property(path: PropertyPath) -> bytes | None:
    """The raw value of property `path`, or None when the host has none."""
    try:
        return _hostcalls.get_property(serialize_property_path(path))
    except NotFound:
        return None


def get_property_str(path: PropertyPath) -> str | None:
    """A string property (UTF-8), or None."""
    value = get_property(path)
    return None if value is None else to_str(value)


def get_property_int(path: PropertyPath) -> int | None:
    """An integer property (the host encodes int64 little-endian), or None."""
    value = get_property(path)
    return None if value is None or not value else decode_int(value)


def get_property_bool(path: PropertyPath) -> bool | None:
    """A boolean property, or None."""
    value = get_property(path)
    return None if value is None or not value else decode_bool(value)


def get_property_map(path: PropertyPath) -> list[tuple[str, str]] | None:
    """A map property (such as ``request.headers``) as (key, value) pairs, or None."""
    value = get_property(path)
    return None if value is None else deserialize_header_map(value)


def _either(read: Callable[[PropertyPath], _T | None], path: PropertyPath, legacy: PropertyPath) -> _T | None:
    """`read(path)`, else `read(legacy)`: where hosts before Envoy's ``xds.*`` had it."""
    value = read(path)
    return read(legacy) if value is None else value


def set_property(path: PropertyPath, value: bytes | str) -> None:
    """Set property `path` (for example filter state) to `value`."""
    _hostcalls.set_property(serialize_property_path(path), to_bytes(value))


class Properties:
    """Typed getters for well-known attributes; each read is one hostcall."""

    __slots__ = ()

    # -- request ---------------------------------------------------------------------

    @property
    def request_path(self) -> str | None:
        """``request.path``: path with query string.

        Like every attribute Envoy reads from the request headers (``request_url_path``,
        ``request_host``, ``request_scheme``, ``request_method``, ``request_id``,
        ``request_useragent``, ``request_referer``), None in Envoy outside
        ``on_request_headers`` and ``on_log``: read it there and keep it.
        """
        return get_property_str("request.path")

    @property
    def request_url_path(self) -> str | None:
        """``request.url_path``: path without query string."""
        return get_property_str("request.url_path")

    @property
    def request_host(self) -> str | None:
        """``request.host``: the host / :authority."""
        return get_property_str("request.host")

    @property
    def request_scheme(self) -> str | None:
        """``request.scheme``."""
        return get_property_str("request.scheme")

    @property
    def request_method(self) -> str | None:
        """``request.method``."""
        return get_property_str("request.method")

    @property
    def request_id(self) -> str | None:
        """``request.id``: the x-request-id."""
        return get_property_str("request.id")

    @property
    def request_protocol(self) -> str | None:
        """``request.protocol``: HTTP/1.1, HTTP/2, ..."""
        return get_property_str("request.protocol")

    @property
    def request_time_ns(self) -> int | None:
        """``request.time``: when the first byte arrived, in ns since the epoch."""
        return get_property_int("request.time")

    @property
    def request_duration_ns(self) -> int | None:
        """``request.duration``: the request's total duration, in ns; Envoy has it only
        once the stream is complete (``on_log``)."""
        return get_property_int("request.duration")

    @property
    def request_size(self) -> int | None:
        """``request.size``: the body size: content-length, else the bytes so far."""
        return get_property_int("request.size")

    @property
    def request_useragent(self) -> str | None:
        """``request.useragent``."""
        return get_property_str("request.useragent")

    @property
    def request_referer(self) -> str | None:
        """``request.referer``."""
        return get_property_str("request.referer")

    # -- response --------------------------------------------------------------------

    @property
    def response_code(self) -> int | None:
        """``response.code``: the HTTP status."""
        return get_property_int("response.code")

    @property
    def response_code_details(self) -> str | None:
        """``response.code_details``."""
        return get_property_str("response.code_details")

    @property
    def response_flags(self) -> int | None:
        """``response.flags``: Envoy's response flags bitmask."""
        return get_property_int("response.flags")

    @property
    def response_grpc_status(self) -> int | None:
        """``response.grpc_status``: the grpc-status, or Envoy's mapping of the HTTP status
        (200 gives 2, UNKNOWN) for a plain HTTP response."""
        return get_property_int("response.grpc_status")

    @property
    def response_size(self) -> int | None:
        """``response.size``: body bytes sent to the client so far (0 until then)."""
        return get_property_int("response.size")

    # -- connection ------------------------------------------------------------------

    @property
    def source_address(self) -> str | None:
        """``source.address``: the downstream peer, ``ip:port``."""
        return get_property_str("source.address")

    @property
    def source_port(self) -> int | None:
        """``source.port``."""
        return get_property_int("source.port")

    @property
    def destination_address(self) -> str | None:
        """``destination.address``: the local address the connection came to."""
        return get_property_str("destination.address")

    @property
    def destination_port(self) -> int | None:
        """``destination.port``."""
        return get_property_int("destination.port")

    @property
    def connection_id(self) -> int | None:
        """``connection.id``."""
        return get_property_int("connection.id")

    @property
    def connection_mtls(self) -> bool | None:
        """``connection.mtls``: the peer presented a client certificate."""
        return get_property_bool("connection.mtls")

    @property
    def connection_requested_server_name(self) -> str | None:
        """``connection.requested_server_name``: the TLS SNI ("" without TLS)."""
        return get_property_str("connection.requested_server_name")

    @property
    def connection_tls_version(self) -> str | None:
        """``connection.tls_version``."""
        return get_property_str("connection.tls_version")

    @property
    def upstream_address(self) -> str | None:
        """``upstream.address``: the upstream host, ``ip:port``."""
        return get_property_str("upstream.address")

    @property
    def upstream_port(self) -> int | None:
        """``upstream.port``."""
        return get_property_int("upstream.port")

    # -- xDS, node, plugin -----------------------------------------------------------

    @property
    def cluster_name(self) -> str | None:
        """``xds.cluster_name``: the upstream cluster of the route."""
        return _either(get_property_str, "xds.cluster_name", "cluster_name")

    @property
    def route_name(self) -> str | None:
        """``xds.route_name``: the name of the route."""
        return _either(get_property_str, "xds.route_name", "route_name")

    @property
    def listener_direction(self) -> int | None:
        """``xds.listener_direction``: the listener's traffic_direction: 0 unspecified,
        1 inbound, 2 outbound (Istio sidecars)."""
        return _either(get_property_int, "xds.listener_direction", "listener_direction")

    @property
    def node_id(self) -> str | None:
        """``xds.node.id``: the Envoy node id."""
        return _either(get_property_str, "xds.node.id", "node.id")

    @property
    def node_cluster(self) -> str | None:
        """``xds.node.cluster``: the Envoy node's cluster."""
        return _either(get_property_str, "xds.node.cluster", "node.cluster")

    def node_metadata(self, key: str) -> str | None:
        """A string field of the node metadata, ``xds.node.metadata.KEY`` (Istio: ``NAME``,
        ``NAMESPACE``, ``WORKLOAD_NAME``, ``CLUSTER_ID``, ``ISTIO_VERSION``, ...); `key` may
        contain dots. Other value types come as Envoy encodes them (a number as an 8-byte
        double, a bool as one byte): read those with `get_property`."""
        return _either(get_property_str, ("xds", "node", "metadata", key), ("node", "metadata", key))

    @property
    def plugin_name(self) -> str | None:
        """``plugin_name``: the plugin's name in the host configuration."""
        return get_property_str("plugin_name")

    @property
    def plugin_root_id(self) -> str | None:
        """``plugin_root_id``: the root_id the host created the plugin with."""
        return get_property_str("plugin_root_id")

    @property
    def plugin_vm_id(self) -> str | None:
        """``plugin_vm_id``."""
        return get_property_str("plugin_vm_id")


properties = Properties()
"""The well-known properties of the current context."""
