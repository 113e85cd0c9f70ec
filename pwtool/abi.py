"""Facts about the proxy-wasm ABI and what Envoy offers, shared by the build, ``inspect``
and the emulator."""

from __future__ import annotations

#: Marker exports and the ABI version each one announces.
ABI_VERSION_EXPORTS = {
    "proxy_abi_version_0_1_0": "0.1.0",
    "proxy_abi_version_0_2_0": "0.2.0",
    "proxy_abi_version_0_2_1": "0.2.1",
}

#: The WASI functions Envoy (1.40, V8) offers; importing any other one fails the load.
ENVOY_WASI_FUNCTIONS = frozenset(
    "fd_write fd_read fd_seek fd_close fd_fdstat_get environ_get environ_sizes_get "
    "args_get args_sizes_get clock_time_get random_get proc_exit".split()
)

#: env.* hostcalls common to every ABI version.
COMMON_HOSTCALLS = frozenset(
    """proxy_log proxy_get_log_level proxy_get_current_time_nanoseconds proxy_set_tick_period_milliseconds
    proxy_get_property proxy_set_property proxy_get_buffer_bytes proxy_get_buffer_status proxy_set_buffer_bytes
    proxy_get_header_map_pairs proxy_set_header_map_pairs proxy_get_header_map_size proxy_get_header_map_value
    proxy_replace_header_map_value proxy_add_header_map_value proxy_remove_header_map_value
    proxy_send_local_response proxy_http_call proxy_grpc_call proxy_grpc_stream proxy_grpc_send proxy_grpc_cancel
    proxy_grpc_close proxy_get_status proxy_get_shared_data proxy_set_shared_data proxy_register_shared_queue
    proxy_resolve_shared_queue proxy_enqueue_shared_queue proxy_dequeue_shared_queue proxy_define_metric
    proxy_increment_metric proxy_record_metric proxy_get_metric proxy_set_effective_context proxy_done
    proxy_call_foreign_function""".split()
)

#: env.* hostcalls that only some ABI versions have.
VERSION_HOSTCALLS = {
    "0.1.0": frozenset({"proxy_get_configuration", "proxy_continue_request", "proxy_continue_response",
                        "proxy_clear_route_cache"}),
    "0.2.0": frozenset({"proxy_continue_stream", "proxy_close_stream"}),
    "0.2.1": frozenset({"proxy_continue_stream", "proxy_close_stream"}),
}

#: env.* functions that Envoy provides outside the proxy-wasm spec (toolchain glue).
ENVOY_ENV_EXTRAS = frozenset({"emscripten_notify_memory_growth", "pthread_equal"})


def hostcalls_for(version: str | None) -> frozenset[str]:
    """Every env.* import Envoy accepts from a module of ABI ``version``."""
    if version is None:
        return COMMON_HOSTCALLS | ENVOY_ENV_EXTRAS | frozenset().union(*VERSION_HOSTCALLS.values())
    return COMMON_HOSTCALLS | ENVOY_ENV_EXTRAS | VERSION_HOSTCALLS.get(version, frozenset())


#: Exports proxy-wasm-cpp-host (Envoy's host) looks up with a fixed signature: the number
#: of i32 parameters, and whether there is an i32 result. A function export of one of
#: these names with another signature fails the load ("Bad function signature for:
#: <name>"); an export of another kind counts as missing.
_WORD3, _VOID3 = ("iii", True), ("iii", False)
EXPORT_SIGNATURES: dict[str, tuple[str, bool]] = {
    "malloc": ("i", True),
    "proxy_on_memory_allocate": ("i", True),
    "_initialize": ("", False),
    "_start": ("", False),
    "__wasm_call_ctors": ("", False),
    "proxy_on_context_create": ("ii", False),
    "proxy_on_vm_start": ("ii", True),
    "proxy_on_configure": ("ii", True),
    "proxy_on_validate_configuration": ("ii", True),
    "proxy_on_tick": ("i", False),
    "proxy_on_done": ("i", True),
    "proxy_on_log": ("i", False),
    "proxy_on_delete": ("i", False),
    "proxy_on_new_connection": ("i", True),
    "proxy_on_downstream_data": _WORD3,
    "proxy_on_upstream_data": _WORD3,
    "proxy_on_downstream_connection_close": ("ii", False),
    "proxy_on_upstream_connection_close": ("ii", False),
    "proxy_on_request_headers": _WORD3,
    "proxy_on_request_body": _WORD3,
    "proxy_on_request_trailers": ("ii", True),
    "proxy_on_request_metadata": ("ii", True),
    "proxy_on_response_headers": _WORD3,
    "proxy_on_response_body": _WORD3,
    "proxy_on_response_trailers": ("ii", True),
    "proxy_on_response_metadata": ("ii", True),
    "proxy_on_http_call_response": ("iiiii", False),
    "proxy_on_grpc_receive_initial_metadata": _VOID3,
    "proxy_on_grpc_receive_trailing_metadata": _VOID3,
    "proxy_on_grpc_receive": _VOID3,
    "proxy_on_grpc_close": _VOID3,
    "proxy_on_queue_ready": ("ii", False),
    "proxy_on_foreign_function": _VOID3,
    "proxy_on_grpc_create_initial_metadata": _VOID3,
}
#: ABI 0.1.0's header callbacks have no end_of_stream argument.
EXPORT_SIGNATURES_0_1_0 = EXPORT_SIGNATURES | {
    "proxy_on_request_headers": ("ii", True),
    "proxy_on_response_headers": ("ii", True),
}


def export_signature_problem(name: str, params: list[str], results: list[str], abi: str | None) -> str | None:
    """Why Envoy refuses function export `name` with these wasm value types, or None."""
    expected = (EXPORT_SIGNATURES_0_1_0 if abi == "0.1.0" else EXPORT_SIGNATURES).get(name)
    if expected is None:
        return None
    want_params, want_results = ["i32"] * len(expected[0]), ["i32"] if expected[1] else []
    if params == want_params and results == want_results:
        return None
    return f"Bad function signature for: {name}: the module exports {_signature(params, results)}, Envoy expects {_signature(want_params, want_results)}"


def _signature(params: list[str], results: list[str]) -> str:
    return f"({', '.join(params)}) -> {results[0] if len(results) == 1 else '(' + ', '.join(results) + ')'}"
