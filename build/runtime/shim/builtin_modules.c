/*
 * The table of C modules compiled into the runtime.
 *
 * It replaces CPython's generated Modules/config.c. Listing a module here is what makes
 * the linker keep it: every module left out (sockets, unicodedata, _decimal, the CJK
 * codecs, expat, test modules, the AST and tokenizer modules the stripped compiler
 * would need, _datetime, _locale...) drops out of the binary and keeps plugins small.
 * Pure-Python fallbacks exist for several of the omitted ones (decimal -> _pydecimal,
 * pickle, datetime, statistics, typing use their pure-Python code).
 */
#include "Python.h"

PyObject *PyInit__proxywasm(void);

extern PyObject *PyInit_posix(void);
extern PyObject *PyInit_errno(void);
extern PyObject *PyInit_atexit(void);
extern PyObject *PyInit__io(void);
extern PyObject *PyInit__codecs(void);
extern PyObject *PyInit__collections(void);
extern PyObject *PyInit_itertools(void);
extern PyObject *PyInit__sre(void);
extern PyObject *PyInit__thread(void);
extern PyObject *PyInit_time(void);
extern PyObject *PyInit__weakref(void);
extern PyObject *PyInit__abc(void);
extern PyObject *PyInit__functools(void);
extern PyObject *PyInit__operator(void);
extern PyObject *PyInit__stat(void);
extern PyObject *PyInit_math(void);
extern PyObject *PyInit__struct(void);
extern PyObject *PyInit_binascii(void);
extern PyObject *PyInit__json(void);
extern PyObject *PyInit__random(void);
extern PyObject *PyInit__bisect(void);
extern PyObject *PyInit__heapq(void);
extern PyObject *PyInit__md5(void);
extern PyObject *PyInit__sha1(void);
extern PyObject *PyInit__sha256(void);
extern PyObject *PyInit__sha512(void);
extern PyObject *PyInit_array(void);
extern PyObject *PyMarshal_Init(void);
extern PyObject *PyInit__imp(void);
extern PyObject *PyInit_gc(void);
extern PyObject *_PyWarnings_Init(void);
extern PyObject *PyInit__string(void);

struct _inittab _PyImport_Inittab[] = {
    {"_proxywasm", PyInit__proxywasm},
    {"posix", PyInit_posix},
    {"errno", PyInit_errno},
    {"atexit", PyInit_atexit},
    {"_io", PyInit__io},
    {"_codecs", PyInit__codecs},
    {"_collections", PyInit__collections},
    {"itertools", PyInit_itertools},
    {"_sre", PyInit__sre},
    {"_thread", PyInit__thread},
    {"time", PyInit_time},
    {"_weakref", PyInit__weakref},
    {"_abc", PyInit__abc},
    {"_functools", PyInit__functools},
    {"_operator", PyInit__operator},
    {"_stat", PyInit__stat},
    {"math", PyInit_math},
    {"_struct", PyInit__struct},
    {"binascii", PyInit_binascii},
    {"_json", PyInit__json},
    {"_random", PyInit__random},
    {"_bisect", PyInit__bisect},
    {"_heapq", PyInit__heapq},
    {"_md5", PyInit__md5},
    {"_sha1", PyInit__sha1},
    {"_sha256", PyInit__sha256},
    {"_sha512", PyInit__sha512},
    {"array", PyInit_array},
    {"marshal", PyMarshal_Init},
    {"_imp", PyInit__imp},
    {"builtins", NULL},
    {"sys", NULL},
    {"gc", PyInit_gc},
    {"_warnings", _PyWarnings_Init},
    {"_string", PyInit__string},
    {0, 0}
};
