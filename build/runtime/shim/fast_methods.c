/*
 * C versions of the SDK's per-request methods: the header-map reads and writes of
 * HostHeaders, and Counter.inc / Counter.with_tags.
 *
 * The SDK hands its classes to `_proxywasm.header_map_methods(cls)` and
 * `_proxywasm.counter_methods(cls, current_vm)` and installs the method descriptors they
 * return (docs/abi-seam.md). Each C method does the common case only: a lookup in the
 * map the shim read once for this callback (header_cache.c), one hostcall or one dict
 * lookup, reading the object's __slots__ at their offsets. For anything else
 * (a header map already read whole in this callback, a context that is not the
 * effective one, a failed hostcall, unusual arguments) it calls the Python method it
 * replaced, which has the full behaviour; so both give the same results.
 */
#include "abi.h"

#include <stdlib.h>

#include "structmember.h"

Py_ssize_t pw_slot_offset(PyTypeObject *type, const char *name) {
    PyObject *key = PyUnicode_InternFromString(name);
    if (key == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *descr = _PyType_Lookup(type, key); /* borrowed; never raises */
    Py_DECREF(key);
    if (descr == NULL || !Py_IS_TYPE(descr, &PyMemberDescr_Type)) return 0;
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    return member->type == T_OBJECT_EX && !(member->flags & READONLY) ? member->offset : 0;
}

struct pw_header_layout pw_header_slots;
struct pw_dispatcher_layout pw_dispatcher_slots;

/* function(self, *args, **kwargs) for a vectorcall's arguments. */
PyObject *pw_call_with_self(PyObject *function, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                            PyObject *kwnames) {
    PyObject *bound = PyMethod_New(function, self);
    if (bound == NULL) return NULL;
    PyObject *result = PyObject_Vectorcall(bound, args, (size_t)nargs, kwnames);
    Py_DECREF(bound);
    return result;
}

/* --- HostHeaders --------------------------------------------------------------- */

enum { GET, CONTAINS, SET, SETITEM, ADD, REMOVE, HEADER_METHODS };
static const char *const header_method_names[HEADER_METHODS] = {"get", "__contains__", "set", "__setitem__", "add",
                                                                "remove"};
static PyObject *header_python[HEADER_METHODS]; /* the Python methods replaced */

/* Call the Python method `which` replaced, with the arguments as they came. */
static PyObject *python_method(int which, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    return pw_call_with_self(header_python[which], self, args, nargs, kwnames);
}

/* The map type when this map can go straight to the host: its pairs were not read in
 * this callback (no cache to keep coherent) and its context is the effective one.
 * -1 otherwise. */
static long direct_map_type(PyObject *self) {
    const struct pw_header_layout *at = &pw_header_slots;
    PyObject *dispatcher = pw_slot(self, at->dispatcher), *epoch = pw_slot(self, at->epoch);
    PyObject *context_id = pw_slot(self, at->context_id), *map_type = pw_slot(self, at->map_type);
    if (dispatcher == NULL || epoch == NULL || context_id == NULL || map_type == NULL) return -1;
    const struct pw_dispatcher_layout *its = &pw_dispatcher_slots; /* the VM's dispatcher class */
    if (Py_TYPE(dispatcher) != its->type || its->epoch == 0 || its->effective_context_id == 0) return -1;
    PyObject *now = pw_slot(dispatcher, its->epoch), *effective = pw_slot(dispatcher, its->effective_context_id);
    if (now == NULL || effective == NULL || !PyLong_CheckExact(epoch) || !PyLong_CheckExact(now) ||
        !PyLong_CheckExact(effective) || !PyLong_CheckExact(context_id) || !PyLong_Check(map_type))
        return -1;
    int same_epoch = PyObject_RichCompareBool(epoch, now, Py_EQ);
    int effective_is_ours = PyObject_RichCompareBool(effective, context_id, Py_EQ);
    if (same_epoch != 0 || effective_is_ours != 1) {
        PyErr_Clear();
        return -1;
    }
    long type = PyLong_AsLong(map_type);
    if (type < 0) PyErr_Clear();
    return type;
}

static int is_text(PyObject *object) { return PyUnicode_Check(object) || PyBytes_CheckExact(object); }

/* Header `name` of map `type`: 1 found (*text a new str when text is not NULL), 0
 * absent, -1 to leave it to the Python method. The map is read whole once per callback
 * (header_cache.c); when it cannot be, the host is asked for the one header. */
static int lookup(long type, PyObject *name, PyObject **text) {
    const char *key;
    Py_ssize_t key_size;
    PyObject *keep;
    if (!pw_arg_buf(name, &key, &key_size, &keep)) {
        PyErr_Clear();
        return -1;
    }
    int found = pw_header_value((uint32_t)type, key, (size_t)key_size, text);
    Py_XDECREF(keep);
    if (found < 0) PyErr_Clear();
    return found < 0 ? -1 : found;
}

static PyObject *header_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    long type = (nargs == 1 || nargs == 2) && kwnames == NULL ? direct_map_type(self) : -1;
    if (type < 0 || !is_text(args[0])) return python_method(GET, self, args, nargs, kwnames);
    PyObject *text = NULL;
    int found = lookup(type, args[0], &text);
    if (found < 0) return python_method(GET, self, args, nargs, NULL);
    if (!found) return Py_NewRef(nargs == 2 ? args[1] : Py_None);
    return text;
}

static PyObject *header_contains(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    long type = nargs == 1 && kwnames == NULL ? direct_map_type(self) : -1;
    if (type < 0 || !is_text(args[0])) return python_method(CONTAINS, self, args, nargs, kwnames);
    int found = lookup(type, args[0], NULL);
    if (found < 0) return python_method(CONTAINS, self, args, nargs, NULL);
    return PyBool_FromLong(found);
}

/* set / __setitem__ / add / remove: one hostcall when the map can go straight to the host. */
static PyObject *header_write(int which, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
    Py_ssize_t want = which == REMOVE ? 1 : 2;
    long type = nargs == want && kwnames == NULL ? direct_map_type(self) : -1;
    if (type < 0) return python_method(which, self, args, nargs, kwnames);
    const char *key, *value = NULL;
    Py_ssize_t key_size, value_size = 0;
    PyObject *keep_key = NULL, *keep_value = NULL;
    if (!pw_arg_buf(args[0], &key, &key_size, &keep_key) ||
        (want == 2 && !pw_arg_buf(args[1], &value, &value_size, &keep_value))) {
        PyErr_Clear();
        Py_XDECREF(keep_key);
        return python_method(which, self, args, nargs, NULL); /* raises the SDK's TypeError */
    }
    enum pw_header_op op = which == REMOVE ? PW_HEADER_REMOVE : which == ADD ? PW_HEADER_ADD : PW_HEADER_REPLACE;
    proxy_status_t status = pw_header_map_write(op, (uint32_t)type, key, (size_t)key_size, value, (size_t)value_size);
    Py_XDECREF(keep_key);
    Py_XDECREF(keep_value);
    if (status != PROXY_OK) return python_method(which, self, args, nargs, NULL); /* raises the SDK's error */
    Py_RETURN_NONE;
}

static PyObject *header_set(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return header_write(SET, self, args, nargs, kwnames);
}
static PyObject *header_setitem(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return header_write(SETITEM, self, args, nargs, kwnames);
}
static PyObject *header_add(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return header_write(ADD, self, args, nargs, kwnames);
}
static PyObject *header_remove(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return header_write(REMOVE, self, args, nargs, kwnames);
}

static PyMethodDef header_methods[HEADER_METHODS] = {
    {"get", (PyCFunction)(void (*)(void))header_get, METH_FASTCALL | METH_KEYWORDS, "The first value of header `name`, or `default`."},
    {"__contains__", (PyCFunction)(void (*)(void))header_contains, METH_FASTCALL | METH_KEYWORDS, "Whether header `name` is present."},
    {"set", (PyCFunction)(void (*)(void))header_set, METH_FASTCALL | METH_KEYWORDS, "Set header `name`, replacing every value."},
    {"__setitem__", (PyCFunction)(void (*)(void))header_setitem, METH_FASTCALL | METH_KEYWORDS, "Set header `name`."},
    {"add", (PyCFunction)(void (*)(void))header_add, METH_FASTCALL | METH_KEYWORDS, "Add one more value for `name`."},
    {"remove", (PyCFunction)(void (*)(void))header_remove, METH_FASTCALL | METH_KEYWORDS, "Remove every value of `name`."},
};

/* Read `names` off `cls` into `python` and return {name: C method descriptor}. */
static PyObject *method_table(PyTypeObject *cls, PyMethodDef *defs, const char *const *names, PyObject **python,
                              int count) {
    PyObject *table = PyDict_New();
    if (table == NULL) return NULL;
    for (int i = 0; i < count; i++) {
        PyObject *original = PyObject_GetAttrString((PyObject *)cls, names[i]);
        PyObject *descr = original == NULL ? NULL : PyDescr_NewMethod(cls, &defs[i]);
        if (descr == NULL || PyDict_SetItemString(table, names[i], descr) < 0) {
            Py_XDECREF(original);
            Py_XDECREF(descr);
            Py_DECREF(table);
            return NULL;
        }
        Py_DECREF(descr);
        Py_XSETREF(python[i], original);
    }
    return table;
}

PyObject *pw_header_map_methods(PyObject *module, PyObject *cls) {
    if (!PyType_Check(cls)) return PyErr_Format(PyExc_TypeError, "header_map_methods() takes a class");
    PyTypeObject *type = (PyTypeObject *)cls;
    struct pw_header_layout *at = &pw_header_slots;
    at->map_type = pw_slot_offset(type, "_map_type");
    at->dispatcher = pw_slot_offset(type, "_dispatcher");
    at->context_id = pw_slot_offset(type, "_context_id");
    at->epoch = pw_slot_offset(type, "_epoch");
    at->pairs = pw_slot_offset(type, "_pairs");
    if (!at->map_type || !at->dispatcher || !at->context_id || !at->epoch || !at->pairs)
        return PyErr_Format(PyExc_TypeError, "%s lacks the slots _map_type, _dispatcher, _context_id, _epoch, _pairs",
                            type->tp_name);
    at->type = type;
    return method_table(type, header_methods, header_method_names, header_python, HEADER_METHODS);
}

/* --- Counter ------------------------------------------------------------------- */

enum { INC, WITH_TAGS, COUNTER_METHODS };
static const char *const counter_method_names[COUNTER_METHODS] = {"inc", "with_tags"};
static PyObject *counter_python[COUNTER_METHODS];
static PyObject *current_vm; /* the SDK's one-item list: the key of the VM in a callback */
static Py_ssize_t ids_offset, children_offset;

static PyObject *counter_inc(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *ids = pw_slot(self, ids_offset);
    if (kwnames == NULL && (nargs == 0 || (nargs == 1 && PyLong_CheckExact(args[0]))) && ids != NULL && PyDict_CheckExact(ids) &&
        PyList_GET_SIZE(current_vm) == 1) {
        PyObject *metric_id = PyDict_GetItemWithError(ids, PyList_GET_ITEM(current_vm, 0));
        if (metric_id != NULL && PyLong_CheckExact(metric_id)) { /* else not defined yet in this VM */
            long long amount = nargs ? PyLong_AsLongLong(args[0]) : 1;
            unsigned long long id = PyLong_AsUnsignedLongLong(metric_id);
            if (!PyErr_Occurred() && id <= UINT32_MAX &&
                proxy_increment_metric((uint32_t)id, (int64_t)amount) == PROXY_OK)
                Py_RETURN_NONE;
        }
        PyErr_Clear();
    }
    return pw_call_with_self(counter_python[INC], self, args, nargs, kwnames); /* defines it, or raises */
}

static PyObject *counter_with_tags(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    PyObject *children = pw_slot(self, children_offset);
    if (nargs == 0 && kwnames != NULL && PyTuple_GET_SIZE(kwnames) == 1 && children != NULL &&
        PyDict_CheckExact(children)) {
        PyObject *item = PyTuple_Pack(2, PyTuple_GET_ITEM(kwnames, 0), args[0]);
        PyObject *child = item == NULL ? NULL : PyDict_GetItemWithError(children, item);
        Py_XDECREF(item);
        if (child != NULL) return Py_NewRef(child);
        PyErr_Clear(); /* unhashable value, or a new tag: Python makes the child */
    }
    return pw_call_with_self(counter_python[WITH_TAGS], self, args, nargs, kwnames);
}

static PyMethodDef counter_methods[COUNTER_METHODS] = {
    {"inc", (PyCFunction)(void (*)(void))counter_inc, METH_FASTCALL | METH_KEYWORDS, "Add `amount` (default 1)."},
    {"with_tags", (PyCFunction)(void (*)(void))counter_with_tags, METH_FASTCALL | METH_KEYWORDS,
     "The counter with these extra tags (created once, then reused)."},
};

PyObject *pw_counter_methods(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyType_Check(args[0]) || !PyList_CheckExact(args[1]))
        return PyErr_Format(PyExc_TypeError, "counter_methods(cls, current_vm) takes a class and a list");
    PyTypeObject *type = (PyTypeObject *)args[0];
    ids_offset = pw_slot_offset(type, "_ids");
    children_offset = pw_slot_offset(type, "_children");
    if (!ids_offset || !children_offset)
        return PyErr_Format(PyExc_TypeError, "%s lacks the slots _ids and _children", type->tp_name);
    Py_XSETREF(current_vm, Py_NewRef(args[1]));
    return method_table(type, counter_methods, counter_method_names, counter_python, COUNTER_METHODS);
}
