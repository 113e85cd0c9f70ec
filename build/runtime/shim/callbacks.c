/*
 * The module's exports: every proxy-wasm 0.2.1 callback, forwarded to one method of
 * the Python dispatcher (see docs/abi-seam.md), plus the memory-management exports.
 *
 * The dispatcher catches plugin exceptions itself. If a dispatcher method raises
 * anyway (its own failure handling failed, say out of memory), or no dispatcher was
 * registered, the traceback is logged at error level and the callback returns its safe
 * default: an HTTP stream fails closed (500, or a reset once the response started),
 * CONTINUE for other actions, false for on_vm_start / on_configure, true for on_done.
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

enum { ACTION_CONTINUE = 0, ACTION_PAUSE = 1 };
enum { STREAM_REQUEST = 0, STREAM_RESPONSE = 1 };

/* What an HTTP stream callback does when Python could not handle its failure itself:
 * fail closed as the SDK would, with a 500 local response, or a reset of the stream
 * once the response can no longer be replaced. */
static uint32_t fail_stream_closed(uint32_t context_id, int response) {
    static const char details[] = "python_plugin_exception", body[] = "plugin error\n", no_headers[4] = {0};
    pw_headers_changed();
    proxy_set_effective_context(context_id);
    if (proxy_send_local_response(500, details, sizeof details - 1, body, sizeof body - 1, no_headers,
                                  sizeof no_headers, -1) != PROXY_OK)
        proxy_close_stream(response ? STREAM_RESPONSE : STREAM_REQUEST);
    return ACTION_PAUSE;
}

/* Whether `which` is a callback of an HTTP stream, and of its response. */
static int http_stream_callback(enum callback which, int *response) {
    *response = which >= CB_RESPONSE_HEADERS;
    return which >= CB_REQUEST_HEADERS && which <= CB_RESPONSE_TRAILERS;
}

/* Whether `result` is an action the host understands (CONTINUE or PAUSE): any other
 * int goes to the dispatcher, which refuses it (the host would hold the stream). */
static int is_action(PyObject *result) {
    if (!PyLong_Check(result)) return 0;
    /* CPython 3.11 ints: the sign is the sign of ob_size, digits are 30-bit. */
    Py_ssize_t digits = Py_SIZE(result);
    return digits == 0 || (digits == 1 && ((PyLongObject *)result)->ob_digit[0] == ACTION_PAUSE);
}

/* The callback's result as the ABI wants it, consuming `result`: None counts as
 * `fallback`, booleans as 0/1; a value that is not an integer is logged and gives
 * `fallback`. */
static uint32_t result_value(enum callback which, PyObject *result, uint32_t fallback) {
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

/* The int object for a context id; a new reference. A stream's callbacks (headers,
 * log, done, delete) each need it as a dict key, and ids past 256 are not among
 * CPython's cached small ints: recent ones are kept here, so a stream's callbacks share
 * one object instead of allocating one each. */
static PyObject *context_key(uint32_t context_id) {
    enum { KEPT = 64 };
    static PyObject *kept[KEPT];
    PyObject **entry = &kept[context_id % KEPT];
    if (*entry != NULL && PyLong_AsUnsignedLong(*entry) == context_id) return Py_NewRef(*entry);
    PyObject *key = PyLong_FromUnsignedLong(context_id);
    if (key != NULL) Py_XSETREF(*entry, Py_NewRef(key));
    return key;
}

/* Call dispatcher method `which` with `count` unsigned arguments. Returns the integer
 * value of its result (None counts as `fallback`), or `fallback` on any error. */
static uint32_t dispatch(enum callback which, uint32_t fallback, size_t count, uint32_t a, uint32_t b, uint32_t c,
                         uint32_t d, uint32_t e) {
    if (which != CB_CONTEXT_CREATE && pw_dispatch_idle[which]) return fallback; /* not needed by the SDK */
    pw_headers_changed(); /* header maps read in an earlier callback are stale */
    PyObject *method = pw_dispatch_methods[which];
    if (method == NULL) {
        pw_log_error("pwtool: no dispatcher registered; was `proxywasm` imported by the plugin?");
        return fallback;
    }
    uint32_t raw[5] = {a, b, c, d, e};
    PyObject *args[5];
    size_t made = 0;
    for (; made < count; made++) { /* the first argument is always a context id */
        args[made] = made == 0 ? context_key(raw[0]) : PyLong_FromUnsignedLong(raw[made]);
        if (args[made] == NULL) break;
    }
    PyObject *result = made == count ? PyObject_Vectorcall(method, args, count, NULL) : NULL;
    for (size_t i = 0; i < made; i++) Py_DECREF(args[i]);
    if (result == NULL) {
        pw_log_python_error(pw_dispatch_names[which]);
        int response;
        return http_stream_callback(which, &response) ? fail_stream_closed(a, response) : fallback;
    }
    return result_value(which, result, fallback);
}

#define CALL0(which, fallback, a) dispatch(which, fallback, 1, a, 0, 0, 0, 0)
#define CALL2(which, fallback, a, b) dispatch(which, fallback, 2, a, b, 0, 0, 0)
#define CALL3(which, fallback, a, b, c) dispatch(which, fallback, 3, a, b, c, 0, 0)

/* --- HTTP header callbacks without the dispatcher's Python frame -----------------
 *
 * The dispatcher's `header_fast_path` (see docs/abi-seam.md) holds, while one root
 * serves every stream through the default context factory, what the shim needs to do
 * the per-request part of `on_request_headers` / `on_response_headers` itself: enter
 * the callback, find or create the stream's context and header map, and call the
 * plugin's method. Everything else (a held stream, a result that is not an action, an
 * exception, a class with its own `__init__` or `__new__`) goes to the dispatcher's
 * Python methods, which have the same behaviour. */

enum {
    FAST_ROOT, FAST_CLASS, FAST_PLAIN, FAST_HEADERS_CLASS, FAST_REQUEST_MAP, FAST_RESPONSE_MAP, FAST_NOT_HELD,
    FAST_PENDING, FAST_CURRENT_VM, FAST_VM_KEY, FAST_REQUEST_STREAM, FAST_RESPONSE_STREAM, FAST_NEVER_HELD, FAST_SIZE
};

static PyObject *interned(const char *text) {
    PyObject *name = PyUnicode_InternFromString(text);
    if (name == NULL) PyErr_Clear();
    return name;
}

static struct {
    PyObject *id, *root, *dispatcher, *held, *request_headers, *response_headers, *response_started, *map_type,
        *context_id, *header_epoch, *epoch, *effective_context_id, *on_request_headers, *on_response_headers, *failed, *action,
        *create_http, *bound, *deleted, *tasks, *empty, *one, *minus_one;
} names;

static int names_ready(void) {
    if (names.empty != NULL) return 1;
    if ((names.id = interned("id")) == NULL || (names.root = interned("root")) == NULL ||
        (names.dispatcher = interned("_dispatcher")) == NULL || (names.held = interned("_held")) == NULL ||
        (names.request_headers = interned("_request_headers")) == NULL ||
        (names.response_headers = interned("_response_headers")) == NULL ||
        (names.response_started = interned("_response_started")) == NULL ||
        (names.map_type = interned("_map_type")) == NULL || (names.context_id = interned("_context_id")) == NULL ||
        (names.header_epoch = interned("_epoch")) == NULL || (names.epoch = interned("epoch")) == NULL ||
        (names.effective_context_id = interned("effective_context_id")) == NULL ||
        (names.on_request_headers = interned("on_request_headers")) == NULL ||
        (names.on_response_headers = interned("on_response_headers")) == NULL ||
        (names.failed = interned("_failed")) == NULL || (names.action = interned("_action")) == NULL ||
        (names.create_http = interned("_create_http")) == NULL || (names.bound = interned("_bound")) == NULL ||
        (names.deleted = interned("_deleted")) == NULL || (names.tasks = interned("_tasks")) == NULL)
        return 0;
    if ((names.one = PyLong_FromLong(1)) == NULL || (names.minus_one = PyLong_FromLong(-1)) == NULL ||
        (names.empty = PyTuple_New(0)) == NULL) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* Where a context keeps what the shim reads and writes: the stream context classes keep
 * it in __slots__ (see abi.h for HostHeaders and the dispatcher). Offsets are found once
 * per class; two classes are remembered (the fast path's, and one made by Python). */
struct context_slots {
    PyTypeObject *type;
    Py_ssize_t id, root, dispatcher, bound, deleted, tasks, request_headers, response_headers, held, response_started;
};

static struct context_slots *context_slots_of(PyTypeObject *type) {
    static struct context_slots known[2];
    static int next;
    for (int i = 0; i < 2; i++)
        if (known[i].type == type) return &known[i];
    struct context_slots *found = &known[next];
    next ^= 1;
    found->id = pw_slot_offset(type, "id");
    found->root = pw_slot_offset(type, "root");
    found->dispatcher = pw_slot_offset(type, "_dispatcher");
    found->bound = pw_slot_offset(type, "_bound");
    found->deleted = pw_slot_offset(type, "_deleted");
    found->tasks = pw_slot_offset(type, "_tasks");
    found->request_headers = pw_slot_offset(type, "_request_headers");
    found->response_headers = pw_slot_offset(type, "_response_headers");
    found->held = pw_slot_offset(type, "_held");
    found->response_started = pw_slot_offset(type, "_response_started");
    found->type = type;
    return found;
}

/* The dispatcher's `_enter`: a new epoch, the effective context, the current VM. */
static int enter_callback(PyObject *fast, PyObject *key) {
    const struct pw_dispatcher_layout *at = &pw_dispatcher_slots; /* found for pw_dispatcher's class */
    PyObject *epoch = pw_load_slot(pw_dispatcher, at->epoch, names.epoch);
    if (epoch == NULL) return -1;
    PyObject *next = PyNumber_Add(epoch, names.one);
    Py_DECREF(epoch);
    if (next == NULL) return -1;
    int failed = pw_store_slot(pw_dispatcher, at->epoch, names.epoch, next);
    Py_DECREF(next);
    if (failed || pw_store_slot(pw_dispatcher, at->effective_context_id, names.effective_context_id, key) < 0) return -1;
    PyObject *current_vm = PyTuple_GET_ITEM(fast, FAST_CURRENT_VM);
    if (!PyList_Check(current_vm) || PyList_GET_SIZE(current_vm) < 1) return -1;
    return PyList_SetItem(current_vm, 0, Py_NewRef(PyTuple_GET_ITEM(fast, FAST_VM_KEY)));
}

/* --- Stream objects kept for the next stream ----------------------------------------
 *
 * When a finished stream is deleted, its context and its two header maps are usually
 * referenced by nothing but the shim. Like CPython's own free lists, the shim then keeps
 * them for the next stream instead of freeing three objects and allocating three more
 * per request: a context only when the plugin kept no reference to it, set no attribute
 * on it, took no weak reference and defined no finalizer; a header map only when nothing
 * else refers to it. A new stream takes them back and sets every slot anew. */

enum { SPARE_CONTEXTS = 16, SPARE_MAPS = 32 };
static PyObject *spare_contexts[SPARE_CONTEXTS], *spare_maps[SPARE_MAPS];
static int spare_context_count, spare_map_count;

int _PyObject_IsInstanceDictEmpty(PyObject *object); /* CPython 3.11, Objects/dictobject.c */

/* Whether `object`, of which the caller holds the only reference, may be used again. */
static int reusable(PyObject *object) {
    PyTypeObject *type = Py_TYPE(object);
    if (Py_REFCNT(object) != 1 || type->tp_finalize != NULL || type->tp_del != NULL) return 0;
    return type->tp_weaklistoffset <= 0 || *(PyObject **)((char *)object + type->tp_weaklistoffset) == NULL;
}

/* Move the header map in the context slot at `offset` to the spare maps, when nothing
 * else refers to it. */
static void keep_header_map(PyObject *context, Py_ssize_t offset) {
    if (offset == 0) return; /* a class without the slot: the map is an attribute */
    PyObject **slot = pw_slot_address(context, offset);
    PyObject *map = *slot;
    if (map == NULL || Py_TYPE(map) != pw_header_slots.type || !reusable(map) || spare_map_count == SPARE_MAPS)
        return;
    Py_CLEAR(*pw_slot_address(map, pw_header_slots.pairs)); /* what its last callback read */
    *slot = Py_NewRef(Py_None);
    spare_maps[spare_map_count++] = map; /* the slot's reference */
}

/* Keep a deleted stream context (the caller's only reference, which this takes) with
 * its header maps for the next stream. 0 when it cannot be kept. */
static int keep_context(PyObject *context, const struct context_slots *at) {
    if (spare_context_count == SPARE_CONTEXTS || !reusable(context) || !_PyObject_IsInstanceDictEmpty(context))
        return 0;
    keep_header_map(context, at->request_headers);
    keep_header_map(context, at->response_headers);
    spare_contexts[spare_context_count++] = context;
    return 1;
}

/* A kept object of exactly `type` (a new reference), or NULL. */
static PyObject *take_spare(PyObject **spares, int *count, PyTypeObject *type) {
    if (*count == 0) return NULL;
    PyObject *object = spares[--*count];
    if (Py_TYPE(object) == type) return object;
    Py_DECREF(object); /* kept for a class no longer in use */
    return NULL;
}

/* A host-bound header map (the SDK's HostHeaders) for `map_type` of this context. */
static PyObject *new_header_map(PyObject *fast, PyObject *map_type, PyObject *key) {
    PyTypeObject *type = (PyTypeObject *)PyTuple_GET_ITEM(fast, FAST_HEADERS_CLASS);
    PyObject *headers = take_spare(spare_maps, &spare_map_count, type);
    if (headers == NULL) headers = PyBaseObject_Type.tp_new(type, names.empty, NULL);
    if (headers == NULL) return NULL;
    const struct pw_header_layout *at = &pw_header_slots;
    if (pw_store_slot(headers, at->map_type, names.map_type, map_type) < 0 ||
        pw_store_slot(headers, at->dispatcher, names.dispatcher, pw_dispatcher) < 0 ||
        pw_store_slot(headers, at->context_id, names.context_id, key) < 0 ||
        pw_store_slot(headers, at->epoch, names.header_epoch, names.minus_one) < 0) {
        Py_DECREF(headers);
        return NULL;
    }
    return headers;
}

/* The dispatcher's `_create_http` for a class without `__init__` / `__new__` of its own:
 * what `_bind` sets, and a new request header map, which goes to *request_headers (a
 * new reference). A stream made by its response (a module without
 * proxy_on_request_headers) gets None instead (`request_headers` makes it if asked), and
 * *request_headers stays NULL. */
static PyObject *new_stream(PyObject *fast, PyObject *key, PyObject **request_headers, int response) {
    PyTypeObject *cls = (PyTypeObject *)PyTuple_GET_ITEM(fast, FAST_CLASS);
    PyObject *context = take_spare(spare_contexts, &spare_context_count, cls);
    if (context == NULL) context = cls->tp_new(cls, names.empty, NULL);
    if (context == NULL) return NULL;
    struct context_slots *at = context_slots_of(cls);
    PyObject *headers = response ? NULL : new_header_map(fast, PyTuple_GET_ITEM(fast, FAST_REQUEST_MAP), key);
    if ((headers == NULL && !response) || pw_store_slot(context, at->id, names.id, key) < 0 ||
        pw_store_slot(context, at->root, names.root, PyTuple_GET_ITEM(fast, FAST_ROOT)) < 0 ||
        pw_store_slot(context, at->dispatcher, names.dispatcher, pw_dispatcher) < 0 ||
        pw_store_slot(context, at->bound, names.bound, Py_True) < 0 ||
        pw_store_slot(context, at->deleted, names.deleted, Py_False) < 0 ||
        pw_store_slot(context, at->tasks, names.tasks, Py_None) < 0 ||
        pw_store_slot(context, at->held, names.held, PyTuple_GET_ITEM(fast, FAST_NOT_HELD)) < 0 ||
        pw_store_slot(context, at->response_started, names.response_started, Py_False) < 0 ||
        pw_store_slot(context, at->request_headers, names.request_headers, response ? Py_None : headers) < 0 ||
        pw_store_slot(context, at->response_headers, names.response_headers, Py_None) < 0 ||
        PyDict_SetItem(pw_http_contexts, key, context) < 0) {
        Py_XDECREF(headers);
        Py_DECREF(context);
        return NULL;
    }
    *request_headers = headers;
    return context;
}

/* The stream context for `key`, created when new; a new reference. NULL with an
 * exception on error, NULL without one when the dispatcher must decide. When the shim
 * created it for a request, *request_headers receives its request header map. */
static PyObject *stream_context(PyObject *fast, PyObject *key, PyObject **request_headers, int response) {
    PyObject *context = PyDict_GetItemWithError(pw_http_contexts, key);
    if (context != NULL) return Py_NewRef(context);
    if (PyErr_Occurred()) return NULL;
    PyObject *pending = PyTuple_GET_ITEM(fast, FAST_PENDING);
    if (!PyDict_Check(pending) || PyDict_GET_SIZE(pending) != 0) return NULL;
    if (PyTuple_GET_ITEM(fast, FAST_PLAIN) == Py_True) return new_stream(fast, key, request_headers, response);
    return PyObject_CallMethodOneArg(pw_dispatcher, names.create_http, key); /* runs the class's __init__ */
}

/* 1 when the callback was handled (its action in *action), 0 for the dispatcher. */
static int header_callback_fast(int response, uint32_t context_id, uint32_t end_of_stream, uint32_t *action) {
    enum callback which = response ? CB_RESPONSE_HEADERS : CB_REQUEST_HEADERS;
    if (pw_header_fast_path == NULL || pw_dispatch_idle[which]) return 0;
    PyObject *fast = PyList_GET_ITEM(pw_header_fast_path, 0);
    if (!PyTuple_Check(fast) || PyTuple_GET_SIZE(fast) != FAST_SIZE || pw_http_contexts == NULL || !names_ready())
        return 0;
    PyObject *key = context_key(context_id);
    if (key == NULL) {
        PyErr_Clear();
        return 0;
    }
    pw_headers_changed();
    Py_INCREF(fast); /* plugin code may replace the list's item meanwhile */
    PyObject *context = NULL, *headers = NULL, *result = NULL;
    int handled = 0;
    if (enter_callback(fast, key) < 0) goto done;
    context = stream_context(fast, key, &headers, response);
    if (context == NULL) {
        handled = PyErr_Occurred() != NULL; /* raised while creating it: logged below */
        goto done;
    }
    struct context_slots *at = context_slots_of(Py_TYPE(context));
    if (response && pw_store_slot(context, at->response_started, names.response_started, Py_True) < 0) goto done;
    if (PyTuple_GET_ITEM(fast, FAST_NEVER_HELD) != Py_True) { /* some async callback held a stream */
        PyObject *held = pw_load_slot(context, at->held, names.held);
        if (held == NULL) goto done;
        Py_DECREF(held);
        if (held != PyTuple_GET_ITEM(fast, FAST_NOT_HELD)) goto done; /* this stream is held */
    }
    if (headers == NULL)
        headers = response ? pw_load_slot(context, at->response_headers, names.response_headers)
                           : pw_load_slot(context, at->request_headers, names.request_headers);
    if (headers == NULL) goto done;
    if (headers == Py_None) {
        Py_DECREF(headers);
        headers = NULL;
        if (!response) goto done; /* the dispatcher makes it (request_headers property) */
        headers = new_header_map(fast, PyTuple_GET_ITEM(fast, FAST_RESPONSE_MAP), key);
        if (headers == NULL || pw_store_slot(context, at->response_headers, names.response_headers, headers) < 0)
            goto done;
    }
    PyObject *args[3] = {context, headers, end_of_stream ? Py_True : Py_False};
    PyObject *method = response ? names.on_response_headers : names.on_request_headers;
    PyObject *stream = PyTuple_GET_ITEM(fast, response ? FAST_RESPONSE_STREAM : FAST_REQUEST_STREAM);
    result = PyObject_VectorcallMethod(method, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    handled = 1;
    if (result == NULL) {
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        PyErr_NormalizeException(&type, &value, &traceback);
        if (traceback != NULL) PyException_SetTraceback(value, traceback);
        Py_XDECREF(type);
        Py_XDECREF(traceback);
        result = PyObject_CallMethodObjArgs(pw_dispatcher, names.failed, context, value, stream, method, NULL);
        Py_XDECREF(value);
    } else if (result != Py_None && !is_action(result)) { /* a coroutine, or a wrong value */
        Py_SETREF(result, PyObject_CallMethodObjArgs(pw_dispatcher, names.action, context, result, stream, NULL));
    }
done:
    Py_XDECREF(headers);
    Py_XDECREF(context);
    Py_DECREF(key);
    Py_DECREF(fast);
    if (!handled) {
        PyErr_Clear(); /* the dispatcher's method decides */
        return 0;
    }
    if (result == NULL) {
        pw_log_python_error(pw_dispatch_names[which]);
        *action = fail_stream_closed(context_id, response);
        return 1;
    }
    *action = result_value(which, result, ACTION_CONTINUE);
    return 1;
}

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
    uint32_t action;
    if (header_callback_fast(0, context_id, end_of_stream, &action)) return action;
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
    uint32_t action;
    if (header_callback_fast(1, context_id, end_of_stream, &action)) return action;
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
 * finished HTTP stream with no pending tasks leaves the stream table and is marked deleted.
 * Returns 1 when done, 0 to let the dispatcher handle it. */
static int delete_finished_stream(uint32_t context_id) {
    if (pw_http_contexts == NULL || !names_ready()) return 0;
    PyObject *key = context_key(context_id);
    if (key == NULL) return 0;
    PyObject *stream = PyDict_GetItemWithError(pw_http_contexts, key); /* borrowed */
    int done = 0;
    if (stream != NULL) {
        struct context_slots *at = context_slots_of(Py_TYPE(stream));
        PyObject *tasks = pw_load_slot(stream, at->tasks, names.tasks);
        int busy = tasks == NULL ? -1 : PyObject_IsTrue(tasks);
        Py_XDECREF(tasks);
        if (busy == 0) {
            Py_INCREF(stream);
            done = PyDict_DelItem(pw_http_contexts, key) == 0 &&
                   pw_store_slot(stream, at->deleted, names.deleted, Py_True) == 0;
            if (!done || !keep_context(stream, at)) Py_DECREF(stream);
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
