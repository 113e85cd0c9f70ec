/*
 * The builtin module `_proxywasm`: one Python function per proxy-wasm 0.2.1 hostcall.
 *
 * This is the seam described in docs/abi-seam.md. Arguments are ints and bytes (str is
 * accepted and UTF-8 encoded), results are ints, bytes or tuples of them, and a status
 * other than OK raises HostcallError(status, hostcall). Buffers the host allocates in
 * our memory (through proxy_on_memory_allocate) are copied to bytes and freed here.
 */
#include "abi.h"

#include <stdlib.h>
#include <string.h>

static PyObject *HostcallError;

/* Raise HostcallError for a failed hostcall; returns NULL for the caller to return. */
static PyObject *raise_status(proxy_status_t status, const char *hostcall) {
    PyObject *error = PyObject_CallFunction(HostcallError, "Is", (unsigned int)status, hostcall);
    if (error == NULL) return NULL;
    PyObject *status_obj = PyLong_FromUnsignedLong(status);
    PyObject *name_obj = PyUnicode_FromString(hostcall);
    if (status_obj && name_obj) {
        PyObject_SetAttrString(error, "status", status_obj);
        PyObject_SetAttrString(error, "hostcall", name_obj);
    }
    Py_XDECREF(status_obj);
    Py_XDECREF(name_obj);
    PyErr_SetObject(HostcallError, error);
    Py_DECREF(error);
    return NULL;
}

#define CHECK(call, name)                                        \
    do {                                                         \
        proxy_status_t status_ = (call);                         \
        if (status_ != PROXY_OK) return raise_status(status_, name); \
    } while (0)

/* Turn a host-allocated buffer into bytes and release it. */
static PyObject *take_buffer(char *data, size_t size) {
    PyObject *result = PyBytes_FromStringAndSize(data ? data : "", data ? (Py_ssize_t)size : 0);
    free(data);
    return result;
}


/* --- METH_FASTCALL argument helpers (the per-request hostcalls) ---------------
 * They accept what the PyArg_ParseTuple formats they replace accepted: "I" (an int,
 * masked to 32 bits) and "s#" (bytes, str as UTF-8, or a read-only bytes-like). */

static int check_nargs(Py_ssize_t nargs, Py_ssize_t want, const char *name) {
    if (nargs == want) return 1;
    PyErr_Format(PyExc_TypeError, "%s() takes exactly %zd arguments (%zd given)", name, want, nargs);
    return 0;
}

static int arg_u32(PyObject *obj, unsigned int *out) {
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "an integer is required, not %.100s", Py_TYPE(obj)->tp_name);
        return 0;
    }
    unsigned long value = PyLong_AsUnsignedLongMask(obj);
    if (value == (unsigned long)-1 && PyErr_Occurred()) return 0;
    *out = (unsigned int)value;
    return 1;
}

/* `*keep` receives a new reference to hold while `*data` is in use (or NULL). */
int pw_arg_buf(PyObject *obj, const char **data, Py_ssize_t *size, PyObject **keep) {
    *keep = NULL;
    if (PyBytes_CheckExact(obj)) {
        *data = PyBytes_AS_STRING(obj);
        *size = PyBytes_GET_SIZE(obj);
        return 1;
    }
    if (PyUnicode_Check(obj)) {
        *data = PyUnicode_AsUTF8AndSize(obj, size);
        if (*data != NULL) return 1;
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) return 0;
        PyErr_Clear(); /* lone surrogates: bytes that were not UTF-8 when they were read */
    }
    PyObject *copy = PyUnicode_Check(obj) ? PyUnicode_AsEncodedString(obj, "utf-8", "surrogateescape")
                                          : PyBytes_FromObject(obj);
    if (copy == NULL) return 0;
    *keep = copy;
    *data = PyBytes_AS_STRING(copy);
    *size = PyBytes_GET_SIZE(copy);
    return 1;
}

static PyObject *pw_log(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    unsigned int level;
    const char *message;
    Py_ssize_t size;
    PyObject *keep;
    if (!check_nargs(nargs, 2, "log") || !arg_u32(args[0], &level) || !pw_arg_buf(args[1], &message, &size, &keep))
        return NULL;
    proxy_status_t status = proxy_log(level, message, (size_t)size);
    Py_XDECREF(keep);
    if (status != PROXY_OK) return raise_status(status, "proxy_log");
    Py_RETURN_NONE;
}

static PyObject *pw_get_log_level(PyObject *self, PyObject *unused) {
    uint32_t level = 0;
    CHECK(proxy_get_log_level(&level), "proxy_get_log_level");
    return PyLong_FromUnsignedLong(level);
}

static PyObject *pw_get_current_time_nanoseconds(PyObject *self, PyObject *unused) {
    uint64_t now = 0;
    CHECK(proxy_get_current_time_nanoseconds(&now), "proxy_get_current_time_nanoseconds");
    return PyLong_FromUnsignedLongLong(now);
}

static PyObject *pw_set_tick_period_milliseconds(PyObject *self, PyObject *args) {
    unsigned int period;
    if (!PyArg_ParseTuple(args, "I:set_tick_period_milliseconds", &period)) return NULL;
    CHECK(proxy_set_tick_period_milliseconds(period), "proxy_set_tick_period_milliseconds");
    Py_RETURN_NONE;
}

static PyObject *pw_get_property(PyObject *self, PyObject *args) {
    const char *path;
    Py_ssize_t path_size;
    char *value = NULL;
    size_t value_size = 0;
    if (!PyArg_ParseTuple(args, "s#:get_property", &path, &path_size)) return NULL;
    CHECK(proxy_get_property(path, (size_t)path_size, &value, &value_size), "proxy_get_property");
    return take_buffer(value, value_size);
}

static PyObject *pw_set_property(PyObject *self, PyObject *args) {
    const char *path, *value;
    Py_ssize_t path_size, value_size;
    if (!PyArg_ParseTuple(args, "s#s#:set_property", &path, &path_size, &value, &value_size)) return NULL;
    pw_headers_changed();
    CHECK(proxy_set_property(path, (size_t)path_size, value, (size_t)value_size), "proxy_set_property");
    Py_RETURN_NONE;
}

static PyObject *pw_get_buffer_bytes(PyObject *self, PyObject *args) {
    unsigned int type, start, max_size;
    char *data = NULL;
    size_t size = 0;
    if (!PyArg_ParseTuple(args, "III:get_buffer_bytes", &type, &start, &max_size)) return NULL;
    CHECK(proxy_get_buffer_bytes(type, start, max_size, &data, &size), "proxy_get_buffer_bytes");
    return take_buffer(data, size);
}

static PyObject *pw_get_buffer_status(PyObject *self, PyObject *args) {
    unsigned int type;
    size_t size = 0;
    uint32_t flags = 0;
    if (!PyArg_ParseTuple(args, "I:get_buffer_status", &type)) return NULL;
    CHECK(proxy_get_buffer_status(type, &size, &flags), "proxy_get_buffer_status");
    return Py_BuildValue("(kk)", (unsigned long)size, (unsigned long)flags);
}

static PyObject *pw_set_buffer_bytes(PyObject *self, PyObject *args) {
    unsigned int type, start, size;
    const char *data;
    Py_ssize_t data_size;
    if (!PyArg_ParseTuple(args, "IIIs#:set_buffer_bytes", &type, &start, &size, &data, &data_size)) return NULL;
    CHECK(proxy_set_buffer_bytes(type, start, size, data, (size_t)data_size), "proxy_set_buffer_bytes");
    Py_RETURN_NONE;
}

static PyObject *pw_get_header_map_pairs(PyObject *self, PyObject *arg) {
    unsigned int type;
    const char *data = NULL;
    size_t size = 0;
    if (!arg_u32(arg, &type)) return NULL;
    CHECK((proxy_status_t)pw_header_map_pairs(type, &data, &size), "proxy_get_header_map_pairs"); /* once per callback */
    return PyBytes_FromStringAndSize(data ? data : "", data ? (Py_ssize_t)size : 0);
}

/* The map parsed here, in C: a list of (name, value) bytes pairs (see docs/abi-seam.md). */
static PyObject *pw_get_header_map_list(PyObject *self, PyObject *arg) {
    unsigned int type;
    const char *data = NULL;
    size_t size = 0;
    if (!arg_u32(arg, &type)) return NULL;
    CHECK((proxy_status_t)pw_header_map_pairs(type, &data, &size), "proxy_get_header_map_pairs"); /* once per callback */
    struct pw_pairs walk;
    int begun = pw_pairs_begin(&walk, data, size);
    if (begun < 0) {
        PyErr_SetString(PyExc_ValueError, "malformed header map from the host");
        return NULL;
    }
    PyObject *list = PyList_New((Py_ssize_t)walk.count);
    if (list == NULL) return NULL;
    for (uint32_t i = 0; i < walk.count; i++) {
        const char *name_data, *value_data;
        uint32_t name_size, value_size;
        if (pw_pairs_next(&walk, &name_data, &name_size, &value_data, &value_size) < 0) {
            PyErr_SetString(PyExc_ValueError, "truncated header map from the host");
            Py_DECREF(list);
            return NULL;
        }
        PyObject *name = PyBytes_FromStringAndSize(name_data, name_size);
        PyObject *value = PyBytes_FromStringAndSize(value_data, value_size);
        PyObject *pair = (name && value) ? PyTuple_New(2) : NULL;
        if (pair == NULL) {
            Py_XDECREF(name);
            Py_XDECREF(value);
            Py_DECREF(list);
            return NULL;
        }
        PyTuple_SET_ITEM(pair, 0, name);
        PyTuple_SET_ITEM(pair, 1, value);
        PyList_SET_ITEM(list, i, pair);
    }
    return list;
}

static PyObject *pw_set_header_map_pairs(PyObject *self, PyObject *args) {
    unsigned int type;
    const char *data;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "Is#:set_header_map_pairs", &type, &data, &size)) return NULL;
    if (!pw_header_map_valid(data, (size_t)size)) /* no CR, LF or NUL: see header_cache.c */
        return raise_status(PROXY_BAD_ARGUMENT, "proxy_set_header_map_pairs");
    pw_header_map_written(type);
    CHECK(proxy_set_header_map_pairs(type, data, (size_t)size), "proxy_set_header_map_pairs");
    Py_RETURN_NONE;
}

static PyObject *pw_get_header_map_size(PyObject *self, PyObject *args) {
    unsigned int type;
    size_t size = 0;
    if (!PyArg_ParseTuple(args, "I:get_header_map_size", &type)) return NULL;
    CHECK(proxy_get_header_map_size(type, &size), "proxy_get_header_map_size");
    return PyLong_FromSize_t(size);
}

static PyObject *pw_get_header_map_value(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    unsigned int type;
    const char *key;
    Py_ssize_t key_size;
    PyObject *keep;
    char *value = NULL;
    size_t value_size = 0;
    if (!check_nargs(nargs, 2, "get_header_map_value") || !arg_u32(args[0], &type) ||
        !pw_arg_buf(args[1], &key, &key_size, &keep))
        return NULL;
    proxy_status_t status = proxy_get_header_map_value(type, key, (size_t)key_size, &value, &value_size);
    Py_XDECREF(keep);
    if (status != PROXY_OK) return raise_status(status, "proxy_get_header_map_value");
    return take_buffer(value, value_size);
}

/* One header for the per-request path (docs/abi-seam.md): found in the map read whole
 * once per callback (header_cache.c), as the C methods do; the value is returned as str
 * (UTF-8, surrogateescape), and an absent header is None instead of a NOT_FOUND error. */
static PyObject *pw_find_header_map_value(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    unsigned int type;
    const char *key;
    Py_ssize_t key_size;
    PyObject *keep, *text = NULL;
    if (!check_nargs(nargs, 2, "find_header_map_value") || !arg_u32(args[0], &type) ||
        !pw_arg_buf(args[1], &key, &key_size, &keep))
        return NULL;
    int found = pw_header_value(type, key, (size_t)key_size, &text);
    Py_XDECREF(keep);
    if (found == 1) return text;
    if (found == 0) Py_RETURN_NONE;
    return PyErr_Occurred() ? NULL : raise_status((proxy_status_t)-found, "proxy_get_header_map_value");
}

/* replace / add / remove_header_map_value: (map_type, key[, value]) through the one
 * write path of header_cache.c. */
static PyObject *header_write(enum pw_header_op op, PyObject *const *args, Py_ssize_t nargs, const char *name,
                              const char *hostcall) {
    unsigned int type;
    const char *key, *value = NULL;
    Py_ssize_t key_size, value_size = 0;
    PyObject *keep_key, *keep_value = NULL;
    Py_ssize_t want = op == PW_HEADER_REMOVE ? 2 : 3;
    if (!check_nargs(nargs, want, name) || !arg_u32(args[0], &type) || !pw_arg_buf(args[1], &key, &key_size, &keep_key))
        return NULL;
    if (want == 3 && !pw_arg_buf(args[2], &value, &value_size, &keep_value)) {
        Py_XDECREF(keep_key);
        return NULL;
    }
    proxy_status_t status = pw_header_map_write(op, type, key, (size_t)key_size, value, (size_t)value_size);
    Py_XDECREF(keep_key);
    Py_XDECREF(keep_value);
    if (status != PROXY_OK) return raise_status(status, hostcall);
    Py_RETURN_NONE;
}

static PyObject *pw_replace_header_map_value(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return header_write(PW_HEADER_REPLACE, args, nargs, "replace_header_map_value", "proxy_replace_header_map_value");
}

static PyObject *pw_add_header_map_value(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return header_write(PW_HEADER_ADD, args, nargs, "add_header_map_value", "proxy_add_header_map_value");
}

static PyObject *pw_remove_header_map_value(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return header_write(PW_HEADER_REMOVE, args, nargs, "remove_header_map_value", "proxy_remove_header_map_value");
}

static PyObject *pw_continue_stream(PyObject *self, PyObject *args) {
    unsigned int stream;
    if (!PyArg_ParseTuple(args, "I:continue_stream", &stream)) return NULL;
    pw_headers_changed();
    CHECK(proxy_continue_stream(stream), "proxy_continue_stream");
    Py_RETURN_NONE;
}

static PyObject *pw_close_stream(PyObject *self, PyObject *args) {
    unsigned int stream;
    if (!PyArg_ParseTuple(args, "I:close_stream", &stream)) return NULL;
    pw_headers_changed();
    CHECK(proxy_close_stream(stream), "proxy_close_stream");
    Py_RETURN_NONE;
}

static PyObject *pw_send_local_response(PyObject *self, PyObject *args) {
    unsigned int code;
    int grpc_status;
    const char *details, *body, *headers;
    Py_ssize_t details_size, body_size, headers_size;
    if (!PyArg_ParseTuple(args, "Is#s#s#i:send_local_response", &code, &details, &details_size, &body,
                          &body_size, &headers, &headers_size, &grpc_status))
        return NULL;
    if (!pw_header_map_valid(headers, (size_t)headers_size))
        return raise_status(PROXY_BAD_ARGUMENT, "proxy_send_local_response");
    pw_headers_changed();
    CHECK(proxy_send_local_response(code, details, (size_t)details_size, body, (size_t)body_size, headers,
                                    (size_t)headers_size, grpc_status),
          "proxy_send_local_response");
    Py_RETURN_NONE;
}

static PyObject *pw_http_call(PyObject *self, PyObject *args) {
    const char *upstream, *headers, *body, *trailers;
    Py_ssize_t upstream_size, headers_size, body_size, trailers_size;
    unsigned int timeout_ms;
    uint32_t token = 0;
    if (!PyArg_ParseTuple(args, "s#s#s#s#I:http_call", &upstream, &upstream_size, &headers, &headers_size, &body,
                          &body_size, &trailers, &trailers_size, &timeout_ms))
        return NULL;
    if (!pw_header_map_valid(headers, (size_t)headers_size) || !pw_header_map_valid(trailers, (size_t)trailers_size))
        return raise_status(PROXY_BAD_ARGUMENT, "proxy_http_call");
    CHECK(proxy_http_call(upstream, (size_t)upstream_size, headers, (size_t)headers_size, body, (size_t)body_size,
                          trailers, (size_t)trailers_size, timeout_ms, &token),
          "proxy_http_call");
    return PyLong_FromUnsignedLong(token);
}

static PyObject *pw_grpc_call(PyObject *self, PyObject *args) {
    const char *upstream, *service, *method, *metadata, *message;
    Py_ssize_t upstream_size, service_size, method_size, metadata_size, message_size;
    unsigned int timeout_ms;
    uint32_t token = 0;
    if (!PyArg_ParseTuple(args, "s#s#s#s#s#I:grpc_call", &upstream, &upstream_size, &service, &service_size, &method,
                          &method_size, &metadata, &metadata_size, &message, &message_size, &timeout_ms))
        return NULL;
    CHECK(proxy_grpc_call(upstream, (size_t)upstream_size, service, (size_t)service_size, method, (size_t)method_size,
                          metadata, (size_t)metadata_size, message, (size_t)message_size, timeout_ms, &token),
          "proxy_grpc_call");
    return PyLong_FromUnsignedLong(token);
}

static PyObject *pw_grpc_stream(PyObject *self, PyObject *args) {
    const char *upstream, *service, *method, *metadata;
    Py_ssize_t upstream_size, service_size, method_size, metadata_size;
    uint32_t token = 0;
    if (!PyArg_ParseTuple(args, "s#s#s#s#:grpc_stream", &upstream, &upstream_size, &service, &service_size, &method,
                          &method_size, &metadata, &metadata_size))
        return NULL;
    CHECK(proxy_grpc_stream(upstream, (size_t)upstream_size, service, (size_t)service_size, method, (size_t)method_size,
                            metadata, (size_t)metadata_size, &token),
          "proxy_grpc_stream");
    return PyLong_FromUnsignedLong(token);
}

static PyObject *pw_grpc_send(PyObject *self, PyObject *args) {
    unsigned int token, end_stream;
    const char *message;
    Py_ssize_t message_size;
    if (!PyArg_ParseTuple(args, "Is#I:grpc_send", &token, &message, &message_size, &end_stream)) return NULL;
    CHECK(proxy_grpc_send(token, message, (size_t)message_size, end_stream), "proxy_grpc_send");
    Py_RETURN_NONE;
}

static PyObject *pw_grpc_cancel(PyObject *self, PyObject *args) {
    unsigned int token;
    if (!PyArg_ParseTuple(args, "I:grpc_cancel", &token)) return NULL;
    CHECK(proxy_grpc_cancel(token), "proxy_grpc_cancel");
    Py_RETURN_NONE;
}

static PyObject *pw_grpc_close(PyObject *self, PyObject *args) {
    unsigned int token;
    if (!PyArg_ParseTuple(args, "I:grpc_close", &token)) return NULL;
    CHECK(proxy_grpc_close(token), "proxy_grpc_close");
    Py_RETURN_NONE;
}

static PyObject *pw_get_status(PyObject *self, PyObject *unused) {
    uint32_t code = 0;
    char *message = NULL;
    size_t message_size = 0;
    CHECK(proxy_get_status(&code, &message, &message_size), "proxy_get_status");
    PyObject *message_obj = take_buffer(message, message_size);
    if (message_obj == NULL) return NULL;
    return Py_BuildValue("(kN)", (unsigned long)code, message_obj);
}

static PyObject *pw_get_shared_data(PyObject *self, PyObject *args) {
    const char *key;
    Py_ssize_t key_size;
    char *value = NULL;
    size_t value_size = 0;
    uint32_t cas = 0;
    if (!PyArg_ParseTuple(args, "s#:get_shared_data", &key, &key_size)) return NULL;
    CHECK(proxy_get_shared_data(key, (size_t)key_size, &value, &value_size, &cas), "proxy_get_shared_data");
    PyObject *value_obj = take_buffer(value, value_size);
    if (value_obj == NULL) return NULL;
    return Py_BuildValue("(Nk)", value_obj, (unsigned long)cas);
}

static PyObject *pw_set_shared_data(PyObject *self, PyObject *args) {
    const char *key, *value;
    Py_ssize_t key_size, value_size;
    unsigned int cas;
    if (!PyArg_ParseTuple(args, "s#s#I:set_shared_data", &key, &key_size, &value, &value_size, &cas)) return NULL;
    CHECK(proxy_set_shared_data(key, (size_t)key_size, value, (size_t)value_size, cas), "proxy_set_shared_data");
    Py_RETURN_NONE;
}

static PyObject *pw_register_shared_queue(PyObject *self, PyObject *args) {
    const char *name;
    Py_ssize_t name_size;
    uint32_t queue_id = 0;
    if (!PyArg_ParseTuple(args, "s#:register_shared_queue", &name, &name_size)) return NULL;
    CHECK(proxy_register_shared_queue(name, (size_t)name_size, &queue_id), "proxy_register_shared_queue");
    return PyLong_FromUnsignedLong(queue_id);
}

static PyObject *pw_resolve_shared_queue(PyObject *self, PyObject *args) {
    const char *vm_id, *name;
    Py_ssize_t vm_id_size, name_size;
    uint32_t queue_id = 0;
    if (!PyArg_ParseTuple(args, "s#s#:resolve_shared_queue", &vm_id, &vm_id_size, &name, &name_size)) return NULL;
    CHECK(proxy_resolve_shared_queue(vm_id, (size_t)vm_id_size, name, (size_t)name_size, &queue_id),
          "proxy_resolve_shared_queue");
    return PyLong_FromUnsignedLong(queue_id);
}

static PyObject *pw_enqueue_shared_queue(PyObject *self, PyObject *args) {
    unsigned int queue_id;
    const char *data;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "Is#:enqueue_shared_queue", &queue_id, &data, &size)) return NULL;
    CHECK(proxy_enqueue_shared_queue(queue_id, data, (size_t)size), "proxy_enqueue_shared_queue");
    Py_RETURN_NONE;
}

static PyObject *pw_dequeue_shared_queue(PyObject *self, PyObject *args) {
    unsigned int queue_id;
    char *data = NULL;
    size_t size = 0;
    if (!PyArg_ParseTuple(args, "I:dequeue_shared_queue", &queue_id)) return NULL;
    CHECK(proxy_dequeue_shared_queue(queue_id, &data, &size), "proxy_dequeue_shared_queue");
    return take_buffer(data, size);
}

static PyObject *pw_define_metric(PyObject *self, PyObject *args) {
    unsigned int type;
    const char *name;
    Py_ssize_t name_size;
    uint32_t metric_id = 0;
    if (!PyArg_ParseTuple(args, "Is#:define_metric", &type, &name, &name_size)) return NULL;
    CHECK(proxy_define_metric(type, name, (size_t)name_size, &metric_id), "proxy_define_metric");
    return PyLong_FromUnsignedLong(metric_id);
}

static PyObject *pw_increment_metric(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    unsigned int metric_id;
    long long offset;
    if (!check_nargs(nargs, 2, "increment_metric") || !arg_u32(args[0], &metric_id)) return NULL;
    offset = PyLong_AsLongLong(args[1]);
    if (offset == -1 && PyErr_Occurred()) return NULL;
    CHECK(proxy_increment_metric(metric_id, (int64_t)offset), "proxy_increment_metric");
    Py_RETURN_NONE;
}

static PyObject *pw_record_metric(PyObject *self, PyObject *args) {
    unsigned int metric_id;
    unsigned long long value;
    if (!PyArg_ParseTuple(args, "IK:record_metric", &metric_id, &value)) return NULL;
    CHECK(proxy_record_metric(metric_id, (uint64_t)value), "proxy_record_metric");
    Py_RETURN_NONE;
}

static PyObject *pw_get_metric(PyObject *self, PyObject *args) {
    unsigned int metric_id;
    uint64_t value = 0;
    if (!PyArg_ParseTuple(args, "I:get_metric", &metric_id)) return NULL;
    CHECK(proxy_get_metric(metric_id, &value), "proxy_get_metric");
    return PyLong_FromUnsignedLongLong(value);
}

static PyObject *pw_set_effective_context(PyObject *self, PyObject *arg) {
    unsigned int context_id;
    if (!arg_u32(arg, &context_id)) return NULL;
    pw_headers_changed();
    CHECK(proxy_set_effective_context(context_id), "proxy_set_effective_context");
    Py_RETURN_NONE;
}

static PyObject *pw_done(PyObject *self, PyObject *unused) {
    CHECK(proxy_done(), "proxy_done");
    Py_RETURN_NONE;
}

static PyObject *pw_call_foreign_function(PyObject *self, PyObject *args) {
    const char *name, *arguments;
    Py_ssize_t name_size, arguments_size;
    char *results = NULL;
    size_t results_size = 0;
    if (!PyArg_ParseTuple(args, "s#s#:call_foreign_function", &name, &name_size, &arguments, &arguments_size))
        return NULL;
    pw_headers_changed();
    CHECK(proxy_call_foreign_function(name, (size_t)name_size, arguments, (size_t)arguments_size, &results,
                                      &results_size),
          "proxy_call_foreign_function");
    return take_buffer(results, results_size);
}

/* 0 and *result NULL when `name` is absent, -1 on another error, 1 when found. */
static int PyObject_GetOptionalAttrString_compat(PyObject *obj, const char *name, PyObject **result) {
    *result = PyObject_GetAttrString(obj, name);
    if (*result != NULL) return 1;
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
    PyErr_Clear();
    return 0;
}

/* --- the dispatcher ----------------------------------------------------------- */

const char *const pw_dispatch_names[] = {
    "on_context_create", "on_vm_start", "on_configure", "on_tick", "on_queue_ready", "on_foreign_function",
    "on_new_connection", "on_downstream_data", "on_upstream_data", "on_downstream_connection_close",
    "on_upstream_connection_close", "on_request_headers", "on_request_body", "on_request_trailers",
    "on_response_headers", "on_response_body", "on_response_trailers", "on_done", "on_log", "on_delete",
    "on_http_call_response", "on_grpc_receive_initial_metadata", "on_grpc_receive",
    "on_grpc_receive_trailing_metadata", "on_grpc_close", NULL,
};

PyObject *pw_dispatch_methods[sizeof(pw_dispatch_names) / sizeof(pw_dispatch_names[0])];

unsigned char pw_dispatch_idle[sizeof(pw_dispatch_names) / sizeof(pw_dispatch_names[0])];

PyObject *pw_http_contexts, *pw_dispatcher, *pw_header_fast_path;

/* Keep the dispatcher, where it keeps its epoch and effective context, and its optional
 * `stream_table` (a dict, for proxy_on_delete and the header callbacks) and
 * `header_fast_path` (a one-item list, for the header callbacks). */
static int keep_dispatcher(PyObject *dispatcher) {
    PyObject *table = NULL, *fast = NULL;
    if (PyObject_GetOptionalAttrString_compat(dispatcher, "header_fast_path", &fast) < 0) return -1;
    if (fast != NULL && !(PyList_Check(fast) && PyList_GET_SIZE(fast) == 1)) Py_CLEAR(fast);
    Py_XSETREF(pw_header_fast_path, fast);
    Py_XSETREF(pw_dispatcher, Py_NewRef(dispatcher));
    if (pw_dispatcher_slots.type != Py_TYPE(dispatcher)) {
        pw_dispatcher_slots.epoch = pw_slot_offset(Py_TYPE(dispatcher), "epoch");
        pw_dispatcher_slots.effective_context_id = pw_slot_offset(Py_TYPE(dispatcher), "effective_context_id");
        pw_dispatcher_slots.type = Py_TYPE(dispatcher);
    }
    if (PyObject_GetOptionalAttrString_compat(dispatcher, "stream_table", &table) < 0) return -1;
    if (table != NULL && !PyDict_Check(table)) Py_CLEAR(table);
    Py_XSETREF(pw_http_contexts, table);
    return 0;
}

/* Look the dispatcher's methods up once; read its optional `idle_callbacks` (names of
 * callbacks it does not need: the shim answers them with their default itself) and
 * what keep_dispatcher keeps. */
static PyObject *pw_set_dispatcher(PyObject *self, PyObject *dispatcher) {
    size_t count = sizeof(pw_dispatch_names) / sizeof(pw_dispatch_names[0]) - 1;
    PyObject *found[sizeof(pw_dispatch_names) / sizeof(pw_dispatch_names[0])];
    unsigned char idle[sizeof(pw_dispatch_names) / sizeof(pw_dispatch_names[0])] = {0};
    PyObject *idle_names = NULL;
    if (PyObject_GetOptionalAttrString_compat(dispatcher, "idle_callbacks", &idle_names) < 0) return NULL;
    for (size_t i = 0; i < count; i++) {
        found[i] = PyObject_GetAttrString(dispatcher, pw_dispatch_names[i]);
        int is_idle = 0;
        if (found[i] != NULL && idle_names != NULL && idle_names != Py_None) {
            PyObject *name = PyUnicode_FromString(pw_dispatch_names[i]);
            is_idle = name == NULL ? -1 : PySequence_Contains(idle_names, name);
            Py_XDECREF(name);
        }
        if (found[i] == NULL || is_idle < 0) {
            for (size_t j = 0; j <= i; j++) Py_XDECREF(found[j]);
            Py_XDECREF(idle_names);
            return NULL;
        }
        idle[i] = (unsigned char)is_idle;
    }
    Py_XDECREF(idle_names);
    if (keep_dispatcher(dispatcher) < 0) {
        for (size_t i = 0; i < count; i++) Py_XDECREF(found[i]);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        Py_XSETREF(pw_dispatch_methods[i], found[i]);
        pw_dispatch_idle[i] = idle[i];
    }
    Py_RETURN_NONE;
}

static PyMethodDef hostcall_methods[] = {
    {"log", (PyCFunction)(void (*)(void))pw_log, METH_FASTCALL, "proxy_log(level, message)"},
    {"get_log_level", pw_get_log_level, METH_NOARGS, "proxy_get_log_level() -> level"},
    {"get_current_time_nanoseconds", pw_get_current_time_nanoseconds, METH_NOARGS, "proxy_get_current_time_nanoseconds() -> ns"},
    {"set_tick_period_milliseconds", pw_set_tick_period_milliseconds, METH_VARARGS, "proxy_set_tick_period_milliseconds(ms)"},
    {"get_property", pw_get_property, METH_VARARGS, "proxy_get_property(path) -> value"},
    {"set_property", pw_set_property, METH_VARARGS, "proxy_set_property(path, value)"},
    {"get_buffer_bytes", pw_get_buffer_bytes, METH_VARARGS, "proxy_get_buffer_bytes(type, start, max_size) -> data"},
    {"get_buffer_status", pw_get_buffer_status, METH_VARARGS, "proxy_get_buffer_status(type) -> (size, flags)"},
    {"set_buffer_bytes", pw_set_buffer_bytes, METH_VARARGS, "proxy_set_buffer_bytes(type, start, size, data)"},
    {"get_header_map_pairs", pw_get_header_map_pairs, METH_O, "proxy_get_header_map_pairs(type) -> serialized map"},
    {"get_header_map_list", pw_get_header_map_list, METH_O, "proxy_get_header_map_pairs(type) -> [(name, value), ...]"},
    {"set_header_map_pairs", pw_set_header_map_pairs, METH_VARARGS, "proxy_set_header_map_pairs(type, serialized map)"},
    {"get_header_map_size", pw_get_header_map_size, METH_VARARGS, "proxy_get_header_map_size(type) -> size"},
    {"get_header_map_value", (PyCFunction)(void (*)(void))pw_get_header_map_value, METH_FASTCALL, "proxy_get_header_map_value(type, key) -> value"},
    {"find_header_map_value", (PyCFunction)(void (*)(void))pw_find_header_map_value, METH_FASTCALL, "One header (from the map read once per callback) -> str or None"},
    {"replace_header_map_value", (PyCFunction)(void (*)(void))pw_replace_header_map_value, METH_FASTCALL, "proxy_replace_header_map_value(type, key, value)"},
    {"add_header_map_value", (PyCFunction)(void (*)(void))pw_add_header_map_value, METH_FASTCALL, "proxy_add_header_map_value(type, key, value)"},
    {"remove_header_map_value", (PyCFunction)(void (*)(void))pw_remove_header_map_value, METH_FASTCALL, "proxy_remove_header_map_value(type, key)"},
    {"continue_stream", pw_continue_stream, METH_VARARGS, "proxy_continue_stream(stream_type)"},
    {"close_stream", pw_close_stream, METH_VARARGS, "proxy_close_stream(stream_type)"},
    {"send_local_response", pw_send_local_response, METH_VARARGS, "proxy_send_local_response(code, details, body, headers, grpc_status)"},
    {"http_call", pw_http_call, METH_VARARGS, "proxy_http_call(upstream, headers, body, trailers, timeout_ms) -> token"},
    {"grpc_call", pw_grpc_call, METH_VARARGS, "proxy_grpc_call(upstream, service, method, metadata, message, timeout_ms) -> token"},
    {"grpc_stream", pw_grpc_stream, METH_VARARGS, "proxy_grpc_stream(upstream, service, method, metadata) -> token"},
    {"grpc_send", pw_grpc_send, METH_VARARGS, "proxy_grpc_send(token, message, end_stream)"},
    {"grpc_cancel", pw_grpc_cancel, METH_VARARGS, "proxy_grpc_cancel(token)"},
    {"grpc_close", pw_grpc_close, METH_VARARGS, "proxy_grpc_close(token)"},
    {"get_status", pw_get_status, METH_NOARGS, "proxy_get_status() -> (code, message)"},
    {"get_shared_data", pw_get_shared_data, METH_VARARGS, "proxy_get_shared_data(key) -> (value, cas)"},
    {"set_shared_data", pw_set_shared_data, METH_VARARGS, "proxy_set_shared_data(key, value, cas)"},
    {"register_shared_queue", pw_register_shared_queue, METH_VARARGS, "proxy_register_shared_queue(name) -> queue_id"},
    {"resolve_shared_queue", pw_resolve_shared_queue, METH_VARARGS, "proxy_resolve_shared_queue(vm_id, name) -> queue_id"},
    {"enqueue_shared_queue", pw_enqueue_shared_queue, METH_VARARGS, "proxy_enqueue_shared_queue(queue_id, data)"},
    {"dequeue_shared_queue", pw_dequeue_shared_queue, METH_VARARGS, "proxy_dequeue_shared_queue(queue_id) -> data"},
    {"define_metric", pw_define_metric, METH_VARARGS, "proxy_define_metric(type, name) -> metric_id"},
    {"increment_metric", (PyCFunction)(void (*)(void))pw_increment_metric, METH_FASTCALL, "proxy_increment_metric(metric_id, offset)"},
    {"record_metric", pw_record_metric, METH_VARARGS, "proxy_record_metric(metric_id, value)"},
    {"get_metric", pw_get_metric, METH_VARARGS, "proxy_get_metric(metric_id) -> value"},
    {"set_effective_context", pw_set_effective_context, METH_O, "proxy_set_effective_context(context_id)"},
    {"done", pw_done, METH_NOARGS, "proxy_done()"},
    {"call_foreign_function", pw_call_foreign_function, METH_VARARGS, "proxy_call_foreign_function(name, args) -> results"},
    {"set_dispatcher", pw_set_dispatcher, METH_O, "Route every proxy_on_* callback to the methods of this object."},
    {"header_map_methods", pw_header_map_methods, METH_O,
     "C versions of the SDK's HostHeaders get/__contains__/set/__setitem__/add/remove: {name: method}."},
    {"counter_methods", (PyCFunction)(void (*)(void))pw_counter_methods, METH_FASTCALL,
     "C versions of the SDK's Counter inc/with_tags: {name: method}."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef hostcall_module = {
    PyModuleDef_HEAD_INIT, "_proxywasm",
    "Raw proxy-wasm ABI 0.2.1 hostcalls: the seam between the module and the SDK.", -1, hostcall_methods,
};

PyObject *PyInit__proxywasm(void) {
    PyObject *module = PyModule_Create(&hostcall_module);
    if (module == NULL) return NULL;
    if (HostcallError == NULL) {
        HostcallError = PyErr_NewExceptionWithDoc(
            "_proxywasm.HostcallError", "A hostcall returned a status other than OK: args are (status, hostcall).",
            NULL, NULL);
        if (HostcallError == NULL) return NULL;
    }
    Py_INCREF(HostcallError);
    if (PyModule_AddObject(module, "HostcallError", HostcallError) < 0) {
        Py_DECREF(HostcallError);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
