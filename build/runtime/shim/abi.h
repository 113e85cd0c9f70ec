/*
 * The proxy-wasm ABI 0.2.1 as seen from inside the module: the host's imports, and
 * the pieces of the shim that the other translation units share.
 */
#ifndef PWTOOL_ABI_H
#define PWTOOL_ABI_H

#define PY_SSIZE_T_CLEAN
#include "Python.h"
#include <stddef.h>
#include <stdint.h>

#define PROXY_IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define PROXY_EXPORT(name) __attribute__((export_name(#name)))

typedef uint32_t proxy_status_t;

enum { PROXY_OK = 0, PROXY_BAD_ARGUMENT = 2 };
enum { PROXY_LOG_ERROR = 4 };

/* Hostcalls (imports). Pointers and sizes are 32-bit in wasm32. */
PROXY_IMPORT(proxy_log) proxy_status_t proxy_log(uint32_t level, const char *message, size_t size);
PROXY_IMPORT(proxy_get_log_level) proxy_status_t proxy_get_log_level(uint32_t *level);
PROXY_IMPORT(proxy_get_current_time_nanoseconds) proxy_status_t proxy_get_current_time_nanoseconds(uint64_t *time);
PROXY_IMPORT(proxy_set_tick_period_milliseconds) proxy_status_t proxy_set_tick_period_milliseconds(uint32_t period);
PROXY_IMPORT(proxy_get_property) proxy_status_t proxy_get_property(const char *path, size_t path_size, char **value, size_t *value_size);
PROXY_IMPORT(proxy_set_property) proxy_status_t proxy_set_property(const char *path, size_t path_size, const char *value, size_t value_size);
PROXY_IMPORT(proxy_get_buffer_bytes) proxy_status_t proxy_get_buffer_bytes(uint32_t type, size_t start, size_t max_size, char **data, size_t *size);
PROXY_IMPORT(proxy_get_buffer_status) proxy_status_t proxy_get_buffer_status(uint32_t type, size_t *size, uint32_t *flags);
PROXY_IMPORT(proxy_set_buffer_bytes) proxy_status_t proxy_set_buffer_bytes(uint32_t type, size_t start, size_t size, const char *data, size_t data_size);
PROXY_IMPORT(proxy_get_header_map_pairs) proxy_status_t proxy_get_header_map_pairs(uint32_t type, char **data, size_t *size);
PROXY_IMPORT(proxy_set_header_map_pairs) proxy_status_t proxy_set_header_map_pairs(uint32_t type, const char *data, size_t size);
PROXY_IMPORT(proxy_get_header_map_size) proxy_status_t proxy_get_header_map_size(uint32_t type, size_t *size);
PROXY_IMPORT(proxy_get_header_map_value) proxy_status_t proxy_get_header_map_value(uint32_t type, const char *key, size_t key_size, char **value, size_t *value_size);
PROXY_IMPORT(proxy_replace_header_map_value) proxy_status_t proxy_replace_header_map_value(uint32_t type, const char *key, size_t key_size, const char *value, size_t value_size);
PROXY_IMPORT(proxy_add_header_map_value) proxy_status_t proxy_add_header_map_value(uint32_t type, const char *key, size_t key_size, const char *value, size_t value_size);
PROXY_IMPORT(proxy_remove_header_map_value) proxy_status_t proxy_remove_header_map_value(uint32_t type, const char *key, size_t key_size);
PROXY_IMPORT(proxy_continue_stream) proxy_status_t proxy_continue_stream(uint32_t stream);
PROXY_IMPORT(proxy_close_stream) proxy_status_t proxy_close_stream(uint32_t stream);
PROXY_IMPORT(proxy_send_local_response) proxy_status_t proxy_send_local_response(uint32_t status_code, const char *details, size_t details_size, const char *body, size_t body_size, const char *headers, size_t headers_size, int32_t grpc_status);
PROXY_IMPORT(proxy_http_call) proxy_status_t proxy_http_call(const char *upstream, size_t upstream_size, const char *headers, size_t headers_size, const char *body, size_t body_size, const char *trailers, size_t trailers_size, uint32_t timeout_ms, uint32_t *token);
PROXY_IMPORT(proxy_grpc_call) proxy_status_t proxy_grpc_call(const char *upstream, size_t upstream_size, const char *service, size_t service_size, const char *method, size_t method_size, const char *metadata, size_t metadata_size, const char *message, size_t message_size, uint32_t timeout_ms, uint32_t *token);
PROXY_IMPORT(proxy_grpc_stream) proxy_status_t proxy_grpc_stream(const char *upstream, size_t upstream_size, const char *service, size_t service_size, const char *method, size_t method_size, const char *metadata, size_t metadata_size, uint32_t *token);
PROXY_IMPORT(proxy_grpc_send) proxy_status_t proxy_grpc_send(uint32_t token, const char *message, size_t message_size, uint32_t end_stream);
PROXY_IMPORT(proxy_grpc_cancel) proxy_status_t proxy_grpc_cancel(uint32_t token);
PROXY_IMPORT(proxy_grpc_close) proxy_status_t proxy_grpc_close(uint32_t token);
PROXY_IMPORT(proxy_get_status) proxy_status_t proxy_get_status(uint32_t *code, char **message, size_t *message_size);
PROXY_IMPORT(proxy_get_shared_data) proxy_status_t proxy_get_shared_data(const char *key, size_t key_size, char **value, size_t *value_size, uint32_t *cas);
PROXY_IMPORT(proxy_set_shared_data) proxy_status_t proxy_set_shared_data(const char *key, size_t key_size, const char *value, size_t value_size, uint32_t cas);
PROXY_IMPORT(proxy_register_shared_queue) proxy_status_t proxy_register_shared_queue(const char *name, size_t name_size, uint32_t *queue_id);
PROXY_IMPORT(proxy_resolve_shared_queue) proxy_status_t proxy_resolve_shared_queue(const char *vm_id, size_t vm_id_size, const char *name, size_t name_size, uint32_t *queue_id);
PROXY_IMPORT(proxy_enqueue_shared_queue) proxy_status_t proxy_enqueue_shared_queue(uint32_t queue_id, const char *data, size_t size);
PROXY_IMPORT(proxy_dequeue_shared_queue) proxy_status_t proxy_dequeue_shared_queue(uint32_t queue_id, char **data, size_t *size);
PROXY_IMPORT(proxy_define_metric) proxy_status_t proxy_define_metric(uint32_t type, const char *name, size_t name_size, uint32_t *metric_id);
PROXY_IMPORT(proxy_increment_metric) proxy_status_t proxy_increment_metric(uint32_t metric_id, int64_t offset);
PROXY_IMPORT(proxy_record_metric) proxy_status_t proxy_record_metric(uint32_t metric_id, uint64_t value);
PROXY_IMPORT(proxy_get_metric) proxy_status_t proxy_get_metric(uint32_t metric_id, uint64_t *value);
PROXY_IMPORT(proxy_set_effective_context) proxy_status_t proxy_set_effective_context(uint32_t context_id);
PROXY_IMPORT(proxy_done) proxy_status_t proxy_done(void);
PROXY_IMPORT(proxy_call_foreign_function) proxy_status_t proxy_call_foreign_function(const char *name, size_t name_size, const char *args, size_t args_size, char **results, size_t *results_size);

/* Shared between the shim's translation units. */

/* Write a message through proxy_log at error level; never fails. */
void pw_log_error(const char *message);

/* Log the pending Python exception (with its traceback when it can be formatted)
 * at error level, prefixed by `where`, and clear it. */
void pw_log_python_error(const char *where);

/* The dispatcher's bound methods, in callback order; filled by set_dispatcher. */
extern PyObject *pw_dispatch_methods[];
extern const char *const pw_dispatch_names[];
/* Non-zero for the callbacks the dispatcher listed in `idle_callbacks` (see set_dispatcher):
 * the shim answers them with their default without entering Python. For
 * on_context_create, only stream contexts (parent != 0) are skipped. */
extern unsigned char pw_dispatch_idle[];
/* The dispatcher's optional `stream_table`: its HTTP stream contexts by id (a dict), or
 * NULL. Lets the header callbacks find and make streams, and proxy_on_delete drop a
 * finished one, without Python. */
extern PyObject *pw_http_contexts;
/* The dispatcher itself, and its optional `header_fast_path`: a one-item list holding
 * None or the tuple that lets the shim run HTTP header callbacks without the
 * dispatcher's Python frame (callbacks.c). */
extern PyObject *pw_dispatcher, *pw_header_fast_path;

/* Parse a bytes or str (UTF-8, surrogateescape) argument; `*keep` receives a reference
 * to hold while `*data` is used (or NULL). 0 with an exception on error. */
int pw_arg_buf(PyObject *obj, const char **data, Py_ssize_t *size, PyObject **keep);

/* header_cache.c: header maps fetched whole once per callback (see there).
 * pw_headers_changed: a new callback, or anything that may change the host's maps.
 * pw_header_map_pairs gives the map's serialized pairs (kept by the cache: do not free)
 * or the host's status. pw_header_value reads header `key` (lower-cased by the host) as
 * str into *text (unless text is NULL): from the cached pairs, or, when the map cannot
 * be read whole, with one proxy_get_header_map_value; 1 found, 0 absent, -status for a
 * host error, -1 with a Python error set when the value cannot be made.
 * pw_header_map_write is every write of one header (op: replace, add or remove; `value`
 * unused for remove): it drops the cached copy of the map and returns the host's status. */
enum pw_header_op { PW_HEADER_REPLACE, PW_HEADER_ADD, PW_HEADER_REMOVE };
void pw_headers_changed(void);
int pw_header_map_pairs(uint32_t type, const char **data, size_t *size);
int pw_header_value(uint32_t type, const char *key, size_t key_size, PyObject **text);
proxy_status_t pw_header_map_write(enum pw_header_op op, uint32_t type, const char *key, size_t key_size,
                                   const char *value, size_t value_size);
void pw_header_map_written(uint32_t type);
int pw_header_text_valid(const char *text, size_t size);
int pw_header_map_valid(const char *data, size_t size);

/* A walk over a serialized header map (a count, the name and value sizes, then each name
 * and value followed by NUL). pw_pairs_begin: 1 for a count the size allows, 0 when
 * there is no map (NULL or under 4 bytes), -1 for an impossible count. pw_pairs_next:
 * the next pair (1), the end (0) or a truncated map (-1). */
struct pw_pairs { const char *data; size_t size, pos; uint32_t count, index; };

static inline int pw_pairs_begin(struct pw_pairs *walk, const char *data, size_t size) {
    walk->data = data;
    walk->size = size;
    walk->count = walk->index = 0;
    if (data == NULL || size < 4) return 0;
    memcpy(&walk->count, data, 4);
    if (walk->count > (size - 4) / 10) return -1; /* each pair needs at least 10 bytes */
    walk->pos = 4 + 8 * (size_t)walk->count;
    return 1;
}

static inline int pw_pairs_next(struct pw_pairs *walk, const char **name, uint32_t *name_size, const char **value,
                                uint32_t *value_size) {
    if (walk->index >= walk->count) return 0;
    uint32_t sizes[2];
    memcpy(sizes, walk->data + 4 + 8 * (size_t)walk->index, 8);
    if ((size_t)sizes[0] + sizes[1] + 2 > walk->size - walk->pos) return -1;
    *name = walk->data + walk->pos;
    *name_size = sizes[0];
    *value = *name + sizes[0] + 1;
    *value_size = sizes[1];
    walk->pos += (size_t)sizes[0] + sizes[1] + 2;
    walk->index++;
    return 1;
}

/* fast_methods.c: the offset of object slot `name` in `type` (0 when it has none), a
 * call of function(self, *args) for vectorcall arguments, and the seam functions that
 * hand out C versions of SDK methods. */
Py_ssize_t pw_slot_offset(PyTypeObject *type, const char *name);
PyObject *pw_call_with_self(PyObject *function, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames);
PyObject *pw_header_map_methods(PyObject *module, PyObject *cls);
PyObject *pw_counter_methods(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

/* Where the SDK's objects keep what the shim reads and writes: slot offsets, found once.
 * HostHeaders' by header_map_methods(), the dispatcher's by set_dispatcher(); 0 where
 * a class has no such slot (the attribute protocol is used then). */
struct pw_header_layout {
    PyTypeObject *type;
    Py_ssize_t map_type, dispatcher, context_id, epoch, pairs;
};
extern struct pw_header_layout pw_header_slots;
struct pw_dispatcher_layout {
    PyTypeObject *type;
    Py_ssize_t epoch, effective_context_id;
};
extern struct pw_dispatcher_layout pw_dispatcher_slots;

/* Where the slot at `offset` is, and its value (borrowed; NULL when unset). */
static inline PyObject **pw_slot_address(PyObject *object, Py_ssize_t offset) {
    return (PyObject **)((char *)object + offset);
}
static inline PyObject *pw_slot(PyObject *object, Py_ssize_t offset) { return *pw_slot_address(object, offset); }

/* An attribute kept in a slot at `offset` (found by pw_slot_offset), or through the
 * attribute protocol under `name` when `offset` is 0. pw_load_slot gives a new
 * reference (AttributeError when the slot is empty). */
static inline PyObject *pw_load_slot(PyObject *object, Py_ssize_t offset, PyObject *name) {
    if (offset == 0) return PyObject_GetAttr(object, name);
    PyObject *value = pw_slot(object, offset);
    if (value == NULL) PyErr_SetObject(PyExc_AttributeError, name);
    return Py_XNewRef(value);
}

static inline int pw_store_slot(PyObject *object, Py_ssize_t offset, PyObject *name, PyObject *value) {
    if (offset == 0) return PyObject_SetAttr(object, name, value);
    PyObject **slot = pw_slot_address(object, offset);
    Py_XSETREF(*slot, Py_NewRef(value));
    return 0;
}

#endif
