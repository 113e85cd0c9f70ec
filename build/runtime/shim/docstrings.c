/*
 * Drop the docstrings of CPython's C types, methods and modules from the snapshot.
 *
 * They are about a third of the interpreter's static data (some 300 KB of every
 * module, every VM) and a plugin never reads them. Stdlib and SDK Python code is
 * compiled without docstrings already (optimize=2). After this, `__doc__` of a builtin
 * is '' and `__text_signature__` is None.
 *
 * The strings live in the module's read-only data, but wasm memory has no protection:
 * they are overwritten with zeros, which the snapshot then skips. Strings in static
 * data are not tail-merged by wasm-ld at the default optimisation level, so no other
 * string shares their bytes.
 */
#include "abi.h"

#include <string.h>

#include <descrobject.h>
#include <structmember.h>

static void wipe(const char *text) {
    if (text != NULL && text[0] != 0) memset((char *)text, 0, strlen(text));
}

static void wipe_methods(PyMethodDef *methods) {
    for (; methods != NULL && methods->ml_name != NULL; methods++) wipe(methods->ml_doc);
}

static void wipe_type(PyTypeObject *type) {
    if (type->tp_flags & Py_TPFLAGS_HEAPTYPE) return;
    wipe(type->tp_doc);
    wipe_methods(type->tp_methods);
    for (PyGetSetDef *getset = type->tp_getset; getset != NULL && getset->name != NULL; getset++) wipe(getset->doc);
    for (PyMemberDef *member = type->tp_members; member != NULL && member->name != NULL; member++) wipe(member->doc);
    if (type->tp_dict == NULL) return;
    /* PyType_Ready copied tp_doc into the type's dict: drop that copy too. */
    PyObject *doc = PyDict_GetItemString(type->tp_dict, "__doc__");
    if (doc != NULL && PyUnicode_Check(doc)) PyDict_SetItemString(type->tp_dict, "__doc__", Py_None);
    PyObject *key, *value;
    Py_ssize_t position = 0;
    while (PyDict_Next(type->tp_dict, &position, &key, &value)) {
        if (Py_IS_TYPE(value, &PyWrapperDescr_Type)) wipe(((PyWrapperDescrObject *)value)->d_base->doc);
    }
}

static void wipe_type_tree(PyObject *type, PyObject *seen) {
    if (!PyType_Check(type) || PySet_Contains(seen, type) != 0 || PySet_Add(seen, type) < 0) return;
    wipe_type((PyTypeObject *)type);
    PyObject *subclasses = PyObject_CallMethod(type, "__subclasses__", NULL);
    if (subclasses == NULL) {
        PyErr_Clear();
        return;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(subclasses); i++) wipe_type_tree(PyList_GET_ITEM(subclasses, i), seen);
    Py_DECREF(subclasses);
}

void pw_drop_c_docstrings(void) {
    PyObject *seen = PySet_New(NULL);
    if (seen == NULL) {
        PyErr_Clear();
        return;
    }
    wipe_type_tree((PyObject *)&PyBaseObject_Type, seen);
    wipe_type_tree((PyObject *)&PyType_Type, seen);
    Py_DECREF(seen);
    PyObject *key, *module;
    Py_ssize_t position = 0;
    PyObject *modules = PyImport_GetModuleDict();
    while (PyDict_Next(modules, &position, &key, &module)) {
        if (!PyModule_Check(module)) continue;
        PyModuleDef *definition = PyModule_GetDef(module);
        if (definition == NULL) {
            PyErr_Clear();
            continue;
        }
        wipe(definition->m_doc);
        wipe_methods(definition->m_methods);
        PyObject *dict = PyModule_GetDict(module);
        PyObject *doc = dict ? PyDict_GetItemString(dict, "__doc__") : NULL;
        if (doc != NULL && PyUnicode_Check(doc)) PyDict_SetItemString(dict, "__doc__", Py_None);
    }
    PyErr_Clear();
}
