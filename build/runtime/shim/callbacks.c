/*
 * The module's exports: every proxy-wasm 0.2.1 callback, forwarded to one method of
 * the Python dispatcher (see docs/abi-seam.md), plus the memory-management exports.
 *
 * The dispatcher catches plugin exceptions itself. If a dispatcher method raises
 * anyway, or no dispatcher was registered, the traceback is logged at error level and
 * the callback returns its safe default: CONTINUE for actions, false for
 * on_vm_start / on_configure, true for on_done.
 */
#include "abi.h"

#include <stdlib.h>

enum callback {
    CB_CONTEXT_CREATE, CB_VM_START, CB_CONFIGURE, CB_TICK, CB_QUEUE_READY, CB_FOREIGN_FUNCTION,
    CB_NEW_CONNECTION, CB_DOWNSTREAM_DATA, CB_UPSTREAM_DATA, CB_DOWNSTREAM_CLOSE, CB_UPSTREAM_CLOSE,
    CB_REQUEST_HEADERS, CB_REQUEST_BODY, CB_REQUEST_TRAILERS, CB_RESPONSE_HEADERS, CB_RESPONSE_BODY,
    CB_RESPONSE_TRAILERS, CB_DONE, CB_LOG, CB_DELETE, CB_HTTP_CALL_RESPONSE, CB_GRPC_INITIAL_METADATA,
    CB_GRPC_RECEIVE, CB_GRPC_TRAILING_METADATA, CB_GRPC_CLOSE,
};

enum { ACTION_CONTINUE = 0 };

/* Call dispatcher method `which` with `count` unsigned arguments. Returns the integer
 * value of its result (None counts as `fallback`), or `fallback` on any error. */
static uint32_t dispatch(enum callback which, uint32_t fallback, size_t count, uint32_t a, uint32_t b, uint32_t c,
                         uint32_t d, uint32_t e) {
    if (which != CB_CONTEXT_CREATE && pw_dispatch_idle[which]) return fallback; /* not needed by the SDK */
    PyObject *method = pw_dispatch_methods[which];
    if (method == NULL) {
        pw_log_error("pwtool: no dispatcher registered; was `proxywasm` imported by the plugin?");
        return fallback;
    }
    uint32_t raw[5] = {a, b, c, d, e};
    PyObject *args[5];
    size_t made = 0;
    for (; made < count; made++) {
        args[made] = PyLong_FromUnsignedLong(raw[made]);
        if (args[made] == NULL) break;
    }
    PyObject *result = made == count ? PyObject_Vectorcall(method, args, count, NULL) : NULL;
    for (size_t i = 0; i < made; i++) Py_DECREF(args[i]);
    if (result == NULL) {
        pw_log_python_error(pw_dispatch_names[which]);
        return fallback;
    }
    uint32_t value = fallback;
    if (result != Py_None) {
        if (PyBool_Check(result)) {
            value = result == Py_True;
        } else {
            unsigned long number = PyLong_AsUnsignedLong(result);
            if (number == (unsigned long)-1 && PyErr_Occurred()) {
                pw_log_python_error(pw_dispatch_names[which]);
            } else {
                value = (uint32_t)number;
            }
        }
    }
    Py_DECREF(result);
    return value;
}

#define CALL0(which, fallback, a) dispatch(which, fallback, 1, a, 0, 0, 0, 0)
#define CALL2(which, fallback, a, b) dispatch(which, fallback, 2, a, b, 0, 0, 0)
#define CALL3(which, fallback, a, b, c) dispatch(which, fallback, 3, a, b, c, 0, 0)

PROXY_EXPORT(proxy_abi_version_0_2_1) void proxy_abi_version_0_2_1(void) {}

PROXY_EXPORT(proxy_on_memory_allocate) void *proxy_on_memory_allocate(size_t size) { return malloc(size); }

PROXY_EXPORT(proxy_on_context_create) void proxy_on_context_create(uint32_t context_id, uint32_t parent_id) {
    if (parent_id != 0 && pw_dispatch_idle[CB_CONTEXT_CREATE]) return;
    CALL2(CB_CONTEXT_CREATE, 0, context_id, parent_id);
}

PROXY_EXPORT(proxy_on_vm_start) uint32_t proxy_on_vm_start(uint32_t context_id, uint32_t size) {
    return CALL2(CB_VM_START, 0, context_id, size);
}

PROXY_EXPORT(proxy_on_configure) uint32_t proxy_on_configure(uint32_t context_id, uint32_t size) {
    return CALL2(CB_CONFIGURE, 0, context_id, size);
}

PROXY_EXPORT(proxy_on_tick) void proxy_on_tick(uint32_t context_id) { CALL0(CB_TICK, 0, context_id); }

PROXY_EXPORT(proxy_on_queue_ready) void proxy_on_queue_ready(uint32_t context_id, uint32_t queue_id) {
    CALL2(CB_QUEUE_READY, 0, context_id, queue_id);
}

PROXY_EXPORT(proxy_on_foreign_function)
void proxy_on_foreign_function(uint32_t context_id, uint32_t function_id, uint32_t size) {
    CALL3(CB_FOREIGN_FUNCTION, 0, context_id, function_id, size);
}

PROXY_EXPORT(proxy_on_new_connection) uint32_t proxy_on_new_connection(uint32_t context_id) {
    return CALL0(CB_NEW_CONNECTION, ACTION_CONTINUE, context_id);
}

PROXY_EXPORT(proxy_on_downstream_data)
uint32_t proxy_on_downstream_data(uint32_t context_id, uint32_t size, uint32_t end_of_stream) {
    return CALL3(CB_DOWNSTREAM_DATA, ACTION_CONTINUE, context_id, size, end_of_stream);
}

PROXY_EXPORT(proxy_on_upstream_data)
uint32_t proxy_on_upstream_data(uint32_t context_id, uint32_t size, uint32_t end_of_stream) {
    return CALL3(CB_UPSTREAM_DATA, ACTION_CONTINUE, context_id, size, end_of_stream);
}

PROXY_EXPORT(proxy_on_downstream_connection_close)
void proxy_on_downstream_connection_close(uint32_t context_id, uint32_t peer) {
    CALL2(CB_DOWNSTREAM_CLOSE, 0, context_id, peer);
}

PROXY_EXPORT(proxy_on_upstream_connection_close)
void proxy_on_upstream_connection_close(uint32_t context_id, uint32_t peer) {
    CALL2(CB_UPSTREAM_CLOSE, 0, context_id, peer);
}

PROXY_EXPORT(proxy_on_request_headers)
uint32_t proxy_on_request_headers(uint32_t context_id, uint32_t count, uint32_t end_of_stream) {
    return CALL3(CB_REQUEST_HEADERS, ACTION_CONTINUE, context_id, count, end_of_stream);
}

PROXY_EXPORT(proxy_on_request_body)
uint32_t proxy_on_request_body(uint32_t context_id, uint32_t size, uint32_t end_of_stream) {
    return CALL3(CB_REQUEST_BODY, ACTION_CONTINUE, context_id, size, end_of_stream);
}

PROXY_EXPORT(proxy_on_request_trailers) uint32_t proxy_on_request_trailers(uint32_t context_id, uint32_t count) {
    return CALL2(CB_REQUEST_TRAILERS, ACTION_CONTINUE, context_id, count);
}

PROXY_EXPORT(proxy_on_response_headers)
uint32_t proxy_on_response_headers(uint32_t context_id, uint32_t count, uint32_t end_of_stream) {
    return CALL3(CB_RESPONSE_HEADERS, ACTION_CONTINUE, context_id, count, end_of_stream);
}

PROXY_EXPORT(proxy_on_response_body)
uint32_t proxy_on_response_body(uint32_t context_id, uint32_t size, uint32_t end_of_stream) {
    return CALL3(CB_RESPONSE_BODY, ACTION_CONTINUE, context_id, size, end_of_stream);
}

PROXY_EXPORT(proxy_on_response_trailers) uint32_t proxy_on_response_trailers(uint32_t context_id, uint32_t count) {
    return CALL2(CB_RESPONSE_TRAILERS, ACTION_CONTINUE, context_id, count);
}

PROXY_EXPORT(proxy_on_done) uint32_t proxy_on_done(uint32_t context_id) {
    return CALL0(CB_DONE, 1, context_id);
}

PROXY_EXPORT(proxy_on_log) void proxy_on_log(uint32_t context_id) {
    CALL0(CB_LOG, 0, context_id);
}

/* The per-request case of the dispatcher's on_delete, without entering Python: a
 * finished HTTP stream with no pending tasks leaves both tables and is marked deleted.
 * Returns 1 when done, 0 to let the dispatcher handle it. */
static int delete_finished_stream(uint32_t context_id) {
    static PyObject *tasks_name, *deleted_name;
    if (pw_http_contexts == NULL || pw_all_contexts == NULL) return 0;
    if (tasks_name == NULL && (tasks_name = PyUnicode_InternFromString("_tasks")) == NULL) return 0;
    if (deleted_name == NULL && (deleted_name = PyUnicode_InternFromString("_deleted")) == NULL) return 0;
    PyObject *key = PyLong_FromUnsignedLong(context_id);
    if (key == NULL) return 0;
    PyObject *stream = PyDict_GetItemWithError(pw_http_contexts, key); /* borrowed */
    int done = 0;
    if (stream != NULL) {
        PyObject *tasks = PyObject_GetAttr(stream, tasks_name);
        int busy = tasks == NULL ? -1 : PyObject_IsTrue(tasks);
        Py_XDECREF(tasks);
        if (busy == 0) {
            Py_INCREF(stream);
            done = PyDict_DelItem(pw_http_contexts, key) == 0 && PyDict_DelItem(pw_all_contexts, key) == 0 &&
                   PyObject_SetAttr(stream, deleted_name, Py_True) == 0;
            Py_DECREF(stream);
        }
    }
    Py_DECREF(key);
    if (PyErr_Occurred()) PyErr_Clear(); /* the dispatcher's on_delete decides */
    return done;
}

PROXY_EXPORT(proxy_on_delete) void proxy_on_delete(uint32_t context_id) {
    if (pw_dispatch_idle[CB_DELETE] || delete_finished_stream(context_id)) return;
    CALL0(CB_DELETE, 0, context_id);
}

PROXY_EXPORT(proxy_on_http_call_response)
void proxy_on_http_call_response(uint32_t context_id, uint32_t token, uint32_t headers, uint32_t body_size,
                                 uint32_t trailers) {
    dispatch(CB_HTTP_CALL_RESPONSE, 0, 5, context_id, token, headers, body_size, trailers);
}

PROXY_EXPORT(proxy_on_grpc_receive_initial_metadata)
void proxy_on_grpc_receive_initial_metadata(uint32_t context_id, uint32_t token, uint32_t count) {
    CALL3(CB_GRPC_INITIAL_METADATA, 0, context_id, token, count);
}

PROXY_EXPORT(proxy_on_grpc_receive) void proxy_on_grpc_receive(uint32_t context_id, uint32_t token, uint32_t size) {
    CALL3(CB_GRPC_RECEIVE, 0, context_id, token, size);
}

PROXY_EXPORT(proxy_on_grpc_receive_trailing_metadata)
void proxy_on_grpc_receive_trailing_metadata(uint32_t context_id, uint32_t token, uint32_t count) {
    CALL3(CB_GRPC_TRAILING_METADATA, 0, context_id, token, count);
}

PROXY_EXPORT(proxy_on_grpc_close) void proxy_on_grpc_close(uint32_t context_id, uint32_t token, uint32_t status) {
    CALL3(CB_GRPC_CLOSE, 0, context_id, token, status);
}
