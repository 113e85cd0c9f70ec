/*
 * Starting the embedded CPython 3.11, once, at plugin build time.
 *
 * `pwtool build` instantiates the runtime under wasmtime and calls pwtool_boot() with
 * a marshalled bundle (see pwtool.build.plugin). The interpreter is brought up in two
 * phases so that it never touches a file system:
 *   1. core init (builtins, sys, frozen importlib) with an empty sys.path;
 *   2. the bundle's boot code installs an in-memory importer for the stdlib modules,
 *      the SDK and the plugin; then the main init runs (it imports `encodings`
 *      through that importer), and the boot code's main() runs: it compiles the
 *      modules (first instance) or imports the plugin (second instance, snapshotted).
 * The snapshotter then writes linear memory into a new module whose `_initialize` is
 * pwtool_snapshot_initialize(), a no-op: Envoy gets a ready interpreter.
 */
#include "abi.h"

#include <marshal.h>
#include <stdlib.h>
#include <string.h>

void pw_log_error(const char *message) { proxy_log(PROXY_LOG_ERROR, message, strlen(message)); }

static void log_status(const char *where, PyStatus status) {
    char message[512];
    snprintf(message, sizeof message, "pwtool: %s failed: %s%s%s", where, status.func ? status.func : "",
             status.func ? ": " : "", status.err_msg ? status.err_msg : "unknown error");
    pw_log_error(message);
}

void pw_log_python_error(const char *where) {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (traceback != NULL && value != NULL) PyException_SetTraceback(value, traceback);
    /* The SDK's formatter first (the stdlib `traceback` module is usually not bundled). */
    PyObject *text = NULL;
    PyObject *module = PyImport_ImportModule("proxywasm._log");
    if (module != NULL && value != NULL) text = PyObject_CallMethod(module, "format_exception", "O", value);
    Py_XDECREF(module);
    if (text == NULL || !PyUnicode_Check(text)) {
        PyErr_Clear();
        Py_XDECREF(text);
        text = NULL;
        module = PyImport_ImportModule("traceback");
        if (module != NULL && value != NULL) {
            PyObject *lines = PyObject_CallMethod(module, "format_exception", "O", value);
            if (lines != NULL) {
                PyObject *empty = PyUnicode_FromString("");
                if (empty != NULL) text = PyUnicode_Join(empty, lines);
                Py_XDECREF(empty);
                Py_DECREF(lines);
            }
        }
        Py_XDECREF(module);
    }
    if (text == NULL) {
        PyErr_Clear();
        text = value != NULL ? PyObject_Repr(value) : PyUnicode_FromString("unknown error");
    }
    const char *utf8 = text != NULL ? PyUnicode_AsUTF8(text) : NULL;
    PyErr_Clear();
    char header[160];
    snprintf(header, sizeof header, "pwtool: uncaught Python exception in %s:\n", where);
    size_t header_size = strlen(header);
    size_t body_size = utf8 ? strlen(utf8) : 0;
    char *message = malloc(header_size + body_size + 1);
    if (message != NULL) {
        memcpy(message, header, header_size);
        if (utf8) memcpy(message + header_size, utf8, body_size);
        message[header_size + body_size] = 0;
        proxy_log(PROXY_LOG_ERROR, message, header_size + body_size);
        free(message);
    } else {
        pw_log_error(header);
    }
    Py_XDECREF(text);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
}

/* Call bootmodule.<name>() and return 0 when it returned True. */
static int call_boot_step(PyObject *boot, const char *name) {
    PyObject *result = PyObject_CallMethod(boot, name, NULL);
    if (result == NULL) {
        pw_log_python_error(name);
        return 1;
    }
    int ok = PyObject_IsTrue(result) == 1;
    Py_DECREF(result);
    return ok ? 0 : 1;
}

/* Build-time entry point (pwtool_boot). `bundle` is a marshalled dict with at least "boot" (the
 * source of the boot module) and whatever that boot module reads. Returns 0 on
 * success; failures are reported through proxy_log. The bundle buffer is wiped and
 * freed so that it does not end up in the snapshot. */
extern int pw_zero_freed_memory;
void pw_install_allocator(void);
void pw_allocator_forget_free_blocks(void);

static int boot(char *bundle, size_t bundle_size);

PROXY_EXPORT(pwtool_boot) int pwtool_boot(char *bundle, size_t bundle_size) {
    pw_zero_freed_memory = 1;
    int result = boot(bundle, bundle_size);
    pw_allocator_forget_free_blocks();
    pw_zero_freed_memory = 0;
    return result;
}

static int boot(char *bundle, size_t bundle_size) {
    /* Objects are allocated with malloc rather than pymalloc so that memory freed
     * during the build is zeroed (see memory.c) and stays out of the snapshot. */
    PyPreConfig preconfig;
    PyPreConfig_InitIsolatedConfig(&preconfig);
    preconfig.allocator = PYMEM_ALLOCATOR_MALLOC;
    PyStatus status = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(status)) {
        log_status("interpreter pre-initialisation", status);
        return 1;
    }
    pw_install_allocator();
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.write_bytecode = 0;
    config.install_signal_handlers = 0;
    config.use_hash_seed = 1;
    config.hash_seed = 0;
    config.pathconfig_warnings = 0;
    config.module_search_paths_set = 1;
    config.buffered_stdio = 0;
    config.faulthandler = 0;
    config.tracemalloc = 0;
    config.code_debug_ranges = 0; /* line numbers only: column tables would double co_linetable */
    config._init_main = 0;
    status = PyConfig_SetString(&config, &config.program_name, L"pwtool-plugin");
    if (!PyStatus_Exception(status)) status = PyConfig_SetString(&config, &config.home, L"/");
    if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        log_status("interpreter core start-up", status);
        return 1;
    }

    PyObject *data = PyMarshal_ReadObjectFromString(bundle, (Py_ssize_t)bundle_size);
    PyMem_RawFree(bundle); /* zeroed on the way out, like all memory freed during the build */
    if (data == NULL || !PyDict_Check(data)) {
        pw_log_python_error("reading the build bundle");
        Py_XDECREF(data);
        return 1;
    }
    PyObject *source = PyDict_GetItemString(data, "boot");
    PyObject *boot = PyModule_New("_pwtool_boot");
    PyObject *code = source ? Py_CompileString(PyUnicode_AsUTF8(source), "<pwtool boot>", Py_file_input) : NULL;
    int failed = boot == NULL || code == NULL;
    if (!failed) {
        PyObject *globals = PyModule_GetDict(boot);
        failed = PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) < 0 ||
                 PyDict_SetItemString(globals, "BUNDLE", data) < 0;
        PyObject *result = failed ? NULL : PyEval_EvalCode(code, globals, globals);
        failed = result == NULL;
        Py_XDECREF(result);
    }
    Py_XDECREF(code);
    Py_DECREF(data);
    if (failed) {
        pw_log_python_error("loading the boot code");
        Py_XDECREF(boot);
        return 1;
    }
    PyObject *modules = PyImport_GetModuleDict();
    PyDict_SetItemString(modules, "_pwtool_boot", boot);

    if (call_boot_step(boot, "install_importer") != 0) return 1;
    status = _Py_InitializeMain();
    if (PyStatus_Exception(status)) {
        log_status("interpreter main start-up", status);
        return 1;
    }
    int result = call_boot_step(boot, "main");
    Py_DECREF(boot);
    return result;
}

/* What `_initialize` becomes in the snapshot: the runtime was initialised at build
 * time, and C constructors must not run twice. */
PROXY_EXPORT(pwtool_snapshot_initialize) void pwtool_snapshot_initialize(void) {}
