/*
 * The http_headers example's work, written in C against the raw proxy-wasm ABI 0.2.1
 * (no SDK): the floor a wasm filter can reach in Envoy's V8. Used by
 * bench/headers_vs_lua.py; compiled with zig (tests/pwtool_zig.py flags).
 *
 * Request: read all headers with one get_header_map_pairs, count the request in a
 * counter tagged by method, add x-request-id when it is absent.
 * Response: set x-powered-by, remove server.
 *
 * With -DHEADERS_FLOOR both header callbacks return at once: the same module making no
 * hostcalls, so that the bench can tell the cost of the hostcalls from that of the calls
 * into the VM.
 *
 * With -DONE_HEADER the module does the load test's work in DESIGN.md section 2 instead:
 * add x-powered-by to the response, nothing on the request (so it exports no
 * proxy_on_request_headers, as pwtool's build leaves it out of such a Python plugin).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

typedef int32_t st;

IMPORT(proxy_get_header_map_pairs) st proxy_get_header_map_pairs(uint32_t t, char **out, size_t *out_n);
IMPORT(proxy_replace_header_map_value) st proxy_replace_header_map_value(uint32_t t, const char *k, size_t kn, const char *v, size_t vn);
IMPORT(proxy_remove_header_map_value) st proxy_remove_header_map_value(uint32_t t, const char *k, size_t kn);
IMPORT(proxy_add_header_map_value) st proxy_add_header_map_value(uint32_t t, const char *k, size_t kn, const char *v, size_t vn);
IMPORT(proxy_define_metric) st proxy_define_metric(uint32_t type, const char *n, size_t nn, uint32_t *id);
IMPORT(proxy_increment_metric) st proxy_increment_metric(uint32_t id, int64_t offset);

EXPORT(proxy_abi_version_0_2_1) void abi_version(void) {}
EXPORT(proxy_on_memory_allocate) void *on_memory_allocate(size_t size) { return malloc(size); }
EXPORT(proxy_on_context_create) void on_context_create(uint32_t id, uint32_t parent) {}
EXPORT(proxy_on_vm_start) uint32_t on_vm_start(uint32_t id, uint32_t size) { return 1; }
EXPORT(proxy_on_configure) uint32_t on_configure(uint32_t id, uint32_t size) { return 1; }
/* No proxy_on_log, proxy_on_done or proxy_on_delete: this module has nothing to do in
 * them, and Envoy skips a callback that a module does not export (each call into the VM
 * costs Envoy a few thousand instructions). pwtool's build drops the Python runtime's
 * unused callbacks the same way; it keeps proxy_on_delete, which frees the context. */

enum { REQ_HEADERS = 0, RESP_HEADERS = 2, COUNTER = 0 };

#ifndef ONE_HEADER
/* A few methods' counters, defined on first use. */
static struct { char name[16]; uint32_t id; } metrics[8];
static int metric_count;

static void count(const char *method, size_t n) {
    if (n > 15) n = 15;
    for (int i = 0; i < metric_count; i++)
        if (strlen(metrics[i].name) == n && memcmp(metrics[i].name, method, n) == 0) {
            proxy_increment_metric(metrics[i].id, 1);
            return;
        }
    if (metric_count == 8) return;
    char stat[64] = "http_headers.requests.method=";
    size_t prefix = strlen(stat);
    memcpy(stat + prefix, method, n);
    uint32_t id;
    if (proxy_define_metric(COUNTER, stat, prefix + n, &id) != 0) return;
    memcpy(metrics[metric_count].name, method, n);
    metrics[metric_count].name[n] = 0;
    metrics[metric_count++].id = id;
    proxy_increment_metric(id, 1);
}

static uint32_t next_id;

EXPORT(proxy_on_request_headers) uint32_t on_request_headers(uint32_t id, uint32_t count_, uint32_t eos) {
#ifdef HEADERS_FLOOR
    return 0;
#endif
    char *map = 0;
    size_t size = 0;
    if (proxy_get_header_map_pairs(REQ_HEADERS, &map, &size) != 0 || size < 4) return 0;
    uint32_t pairs;
    memcpy(&pairs, map, 4);
    const char *sizes = map + 4, *data = map + 4 + 8 * pairs;
    const char *method = "UNKNOWN";
    size_t method_n = 7;
    int has_request_id = 0;
    for (uint32_t i = 0; i < pairs; i++) {
        uint32_t kn, vn;
        memcpy(&kn, sizes + 8 * i, 4);
        memcpy(&vn, sizes + 8 * i + 4, 4);
        const char *k = data, *v = data + kn + 1;
        if (kn == 7 && memcmp(k, ":method", 7) == 0) { method = v; method_n = vn; }
        if (kn == 12 && memcmp(k, "x-request-id", 12) == 0) has_request_id = 1;
        data = v + vn + 1;
    }
    count(method, method_n);
    if (!has_request_id) {
        char value[16] = "c-";
        uint32_t n = ++next_id, len = 2;
        char digits[10];
        int d = 0;
        do { digits[d++] = (char)('0' + n % 10); n /= 10; } while (n);
        while (d) value[len++] = digits[--d];
        proxy_replace_header_map_value(REQ_HEADERS, "x-request-id", 12, value, len);
    }
    free(map);
    return 0;
}
#endif

EXPORT(proxy_on_response_headers) uint32_t on_response_headers(uint32_t id, uint32_t count_, uint32_t eos) {
#ifdef HEADERS_FLOOR
    return 0;
#endif
#ifdef ONE_HEADER
    proxy_add_header_map_value(RESP_HEADERS, "x-powered-by", 12, "c", 1);
#else
    proxy_replace_header_map_value(RESP_HEADERS, "x-powered-by", 12, "c", 1);
    proxy_remove_header_map_value(RESP_HEADERS, "server", 6);
#endif
    return 0;
}
