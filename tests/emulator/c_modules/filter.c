/*
 * A proxy-wasm filter written in C against the raw ABI (no SDK), used to check that
 * the emulator runs modules not built by pwtool's runtime.
 *
 * Compile with -DABI_VERSION=10|20|21 for ABI 0.1.0, 0.2.0 or 0.2.1 (default 21).
 * Behaviour is chosen by the request path; see tests/emulator/test_c_module.py.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#ifndef ABI_VERSION
#define ABI_VERSION 21
#endif

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

typedef int32_t st; /* WasmResult */

IMPORT(proxy_log) st proxy_log(uint32_t level, const char *msg, size_t len);
IMPORT(proxy_get_current_time_nanoseconds) st proxy_get_current_time_nanoseconds(uint64_t *out);
IMPORT(proxy_set_tick_period_milliseconds) st proxy_set_tick_period_milliseconds(uint32_t ms);
IMPORT(proxy_get_property) st proxy_get_property(const char *p, size_t n, char **out, size_t *out_n);
IMPORT(proxy_set_property) st proxy_set_property(const char *p, size_t n, const char *v, size_t vn);
IMPORT(proxy_get_buffer_bytes) st proxy_get_buffer_bytes(uint32_t t, size_t start, size_t max, char **out, size_t *out_n);
IMPORT(proxy_get_buffer_status) st proxy_get_buffer_status(uint32_t t, size_t *size, uint32_t *flags);
IMPORT(proxy_set_buffer_bytes) st proxy_set_buffer_bytes(uint32_t t, size_t start, size_t len, const char *d, size_t dn);
IMPORT(proxy_get_header_map_pairs) st proxy_get_header_map_pairs(uint32_t t, char **out, size_t *out_n);
IMPORT(proxy_set_header_map_pairs) st proxy_set_header_map_pairs(uint32_t t, const char *d, size_t n);
IMPORT(proxy_get_header_map_size) st proxy_get_header_map_size(uint32_t t, size_t *out);
IMPORT(proxy_get_header_map_value) st proxy_get_header_map_value(uint32_t t, const char *k, size_t kn, char **out, size_t *out_n);
IMPORT(proxy_replace_header_map_value) st proxy_replace_header_map_value(uint32_t t, const char *k, size_t kn, const char *v, size_t vn);
IMPORT(proxy_add_header_map_value) st proxy_add_header_map_value(uint32_t t, const char *k, size_t kn, const char *v, size_t vn);
IMPORT(proxy_remove_header_map_value) st proxy_remove_header_map_value(uint32_t t, const char *k, size_t kn);
IMPORT(proxy_send_local_response) st proxy_send_local_response(uint32_t code, const char *d, size_t dn, const char *b, size_t bn, const char *h, size_t hn, int32_t grpc);
IMPORT(proxy_http_call) st proxy_http_call(const char *u, size_t un, const char *h, size_t hn, const char *b, size_t bn, const char *t, size_t tn, uint32_t timeout, uint32_t *token);
IMPORT(proxy_grpc_call) st proxy_grpc_call(const char *u, size_t un, const char *s, size_t sn, const char *m, size_t mn, const char *md, size_t mdn, const char *q, size_t qn, uint32_t timeout, uint32_t *token);
IMPORT(proxy_get_status) st proxy_get_status(uint32_t *code, char **msg, size_t *msg_n);
IMPORT(proxy_get_shared_data) st proxy_get_shared_data(const char *k, size_t kn, char **v, size_t *vn, uint32_t *cas);
IMPORT(proxy_set_shared_data) st proxy_set_shared_data(const char *k, size_t kn, const char *v, size_t vn, uint32_t cas);
IMPORT(proxy_register_shared_queue) st proxy_register_shared_queue(const char *n, size_t nn, uint32_t *id);
IMPORT(proxy_enqueue_shared_queue) st proxy_enqueue_shared_queue(uint32_t id, const char *d, size_t n);
IMPORT(proxy_dequeue_shared_queue) st proxy_dequeue_shared_queue(uint32_t id, char **out, size_t *out_n);
IMPORT(proxy_define_metric) st proxy_define_metric(uint32_t type, const char *n, size_t nn, uint32_t *id);
IMPORT(proxy_increment_metric) st proxy_increment_metric(uint32_t id, int64_t offset);
IMPORT(proxy_record_metric) st proxy_record_metric(uint32_t id, uint64_t value);
IMPORT(proxy_get_metric) st proxy_get_metric(uint32_t id, uint64_t *out);
IMPORT(proxy_set_effective_context) st proxy_set_effective_context(uint32_t ctx);
IMPORT(proxy_call_foreign_function) st proxy_call_foreign_function(const char *n, size_t nn, const char *a, size_t an, char **out, size_t *out_n);
IMPORT(proxy_done) st proxy_done(void);
#if ABI_VERSION == 10
IMPORT(proxy_continue_request) st proxy_continue_request(void);
IMPORT(proxy_clear_route_cache) st proxy_clear_route_cache(void);
IMPORT(proxy_get_configuration) st proxy_get_configuration(char **out, size_t *out_n);
#define CONTINUE_REQUEST() proxy_continue_request()
#else
IMPORT(proxy_continue_stream) st proxy_continue_stream(uint32_t type);
IMPORT(proxy_close_stream) st proxy_close_stream(uint32_t type);
#define CONTINUE_REQUEST() proxy_continue_stream(0)
#endif
#if ABI_VERSION == 21
IMPORT(proxy_get_log_level) st proxy_get_log_level(uint32_t *out);
#endif
__attribute__((import_module("wasi_snapshot_preview1"), import_name("proc_exit"))) void wasi_proc_exit(int32_t code);

#if ABI_VERSION == 10
EXPORT(proxy_abi_version_0_1_0) void abi_version(void) {}
#elif ABI_VERSION == 20
EXPORT(proxy_abi_version_0_2_0) void abi_version(void) {}
#else
EXPORT(proxy_abi_version_0_2_1) void abi_version(void) {}
#endif

EXPORT(proxy_on_memory_allocate) void *on_memory_allocate(size_t size) { return malloc(size); }

/* ---------------------------------------------------------------- helpers */

enum { REQ_HEADERS = 0, RESP_HEADERS = 2, CALL_RESP_HEADERS = 6 };
enum { BODY_REQ = 0, DOWNSTREAM = 2, CALL_BODY = 4, GRPC_BUF = 5, PLUGIN_CONFIG = 7, CALL_DATA = 8 };

static void logs(uint32_t level, const char *s) { proxy_log(level, s, strlen(s)); }

static void logf2(uint32_t level, const char *a, const char *b, size_t bn) {
  char buf[512];
  size_t an = strlen(a);
  if (bn > sizeof(buf) - an - 1) bn = sizeof(buf) - an - 1;
  memcpy(buf, a, an);
  memcpy(buf + an, b, bn);
  proxy_log(level, buf, an + bn);
}

static void logi(uint32_t level, const char *a, long v) {
  char buf[128];
  int n = snprintf(buf, sizeof buf, "%s%ld", a, v);
  proxy_log(level, buf, (size_t)n);
}

static int streq(const char *a, size_t an, const char *b) { return an == strlen(b) && memcmp(a, b, an) == 0; }

/* Serialize up to 4 header pairs (ABI layout). Returns size; *out malloc'ed. */
static size_t pairs(char **out, int n, const char *kv[]) {
  size_t size = 4 + 8 * n;
  for (int i = 0; i < 2 * n; i++) size += strlen(kv[i]) + 1;
  char *b = malloc(size), *p = b + 4 + 8 * n;
  uint32_t *h = (uint32_t *)b;
  h[0] = n;
  for (int i = 0; i < n; i++) {
    h[1 + 2 * i] = strlen(kv[2 * i]);
    h[2 + 2 * i] = strlen(kv[2 * i + 1]);
  }
  for (int i = 0; i < 2 * n; i++) {
    size_t l = strlen(kv[i]);
    memcpy(p, kv[i], l);
    p[l] = 0;
    p += l + 1;
  }
  *out = b;
  return size;
}

static void add_req(const char *k, const char *v, size_t vn) { proxy_add_header_map_value(REQ_HEADERS, k, strlen(k), v, vn); }

/* ---------------------------------------------------------------- state */

static uint32_t root_ctx, m_requests, m_paused, m_sizes, m_ticks, queue_id;
static char config[256];
static size_t config_len;
#define MAXP 64
static uint32_t paused[MAXP];
static int npaused;
static uint32_t call_token[MAXP], call_ctx[MAXP];
static int ncalls;

static int config_has(const char *needle) {
  size_t n = strlen(needle);
  for (size_t i = 0; i + n <= config_len; i++)
    if (memcmp(config + i, needle, n) == 0) return 1;
  return 0;
}

static void remember_call(uint32_t token, uint32_t ctx) {
  if (ncalls < MAXP) { call_token[ncalls] = token; call_ctx[ncalls] = ctx; ncalls++; }
}

static uint32_t take_call(uint32_t token) {
  for (int i = 0; i < ncalls; i++)
    if (call_token[i] == token) {
      uint32_t ctx = call_ctx[i];
      call_token[i] = call_token[--ncalls];
      call_ctx[i] = call_ctx[ncalls];
      return ctx;
    }
  return 0;
}

/* ---------------------------------------------------------------- lifecycle */

EXPORT(proxy_on_context_create) void on_context_create(uint32_t ctx, uint32_t parent) {
  if (parent == 0) root_ctx = ctx;
}

EXPORT(proxy_on_vm_start) uint32_t on_vm_start(uint32_t ctx, uint32_t size) {
  logi(2, "c: vm start, vm config bytes=", (long)size);
  return 1;
}

EXPORT(proxy_on_configure) uint32_t on_configure(uint32_t ctx, uint32_t size) {
  char *data = 0;
  size_t n = 0;
#if ABI_VERSION == 10
  proxy_get_configuration(&data, &n);
#else
  proxy_get_buffer_bytes(PLUGIN_CONFIG, 0, size, &data, &n);
#endif
  config_len = n < sizeof config ? n : sizeof config;
  if (data) memcpy(config, data, config_len);
  free(data);
  logf2(2, "c: configure ", config, config_len);
  if (config_has("fail")) return 0;
  proxy_define_metric(0, "c_requests", 10, &m_requests);
  proxy_define_metric(1, "c_paused", 8, &m_paused);
  proxy_define_metric(2, "c_sizes", 7, &m_sizes);
  proxy_define_metric(0, "c_ticks", 7, &m_ticks);
  proxy_register_shared_queue("c_queue", 7, &queue_id);
  if (config_has("tick")) proxy_set_tick_period_milliseconds(1000);
  return 1;
}

EXPORT(proxy_on_done) uint32_t on_done(uint32_t ctx) {
  if (ctx == root_ctx && config_has("slow-done")) return 0;
  return 1;
}

EXPORT(proxy_on_log) void on_log(uint32_t ctx) {
  char *v = 0;
  size_t n = 0;
  if (proxy_get_header_map_value(RESP_HEADERS, ":status", 7, &v, &n) == 0) {
    logf2(1, "c: log status=", v, n);
    free(v);
  } else {
    logi(1, "c: log ctx=", ctx);
  }
}

EXPORT(proxy_on_delete) void on_delete(uint32_t ctx) {}

/* ---------------------------------------------------------------- HTTP */

static void evil(const char *how, size_t n) {
  if (streq(how, n, "loop")) {
    volatile int x = 0;
    for (;;) x++;
  } else if (streq(how, n, "trap")) {
    __builtin_trap();
  } else if (streq(how, n, "oob")) {
    logi(3, "c: oob log status=", proxy_log(2, (const char *)0xFFFFFF00u, 1000));
    logi(3, "c: oob len status=", proxy_log(2, "x", 0x7FFFFFFF));
    char *v = 0;
    size_t vn = 0;
    logi(3, "c: oob out status=", proxy_get_header_map_value(REQ_HEADERS, ":path", 5, (char **)0xFFFFFFF0u, &vn));
    logi(3, "c: oob key status=", proxy_get_header_map_value(REQ_HEADERS, (const char *)0xFFFFFFF0u, 64, &v, &vn));
  } else if (streq(how, n, "alloc")) {
    long count = 0;
    static char *volatile sink;
    for (;;) {
      char *p = malloc(16 << 20);
      if (p == 0) break;
      p[0] = 1; /* touch it so the allocation cannot be optimized away */
      sink = p;
      count++;
    }
    logi(3, "c: allocations of 16 MiB before failure=", count);
  } else if (streq(how, n, "grow")) {
    long pages = __builtin_wasm_memory_grow(0, 65536);
    logi(3, "c: memory.grow(65536 pages)=", pages);
  } else if (streq(how, n, "exit")) {
    wasi_proc_exit(3);
  }
}

EXPORT(proxy_on_request_headers) uint32_t on_request_headers(uint32_t ctx, uint32_t nheaders
#if ABI_VERSION != 10
                                                            , uint32_t eos
#endif
) {
  char *path = 0, *v = 0;
  size_t plen = 0, vn = 0;
  proxy_increment_metric(m_requests, 1);
  proxy_record_metric(m_sizes, nheaders);
  if (proxy_get_header_map_value(REQ_HEADERS, "x-evil", 6, &v, &vn) == 0 && vn > 0) {
    evil(v, vn);
    free(v);
  }
  proxy_get_header_map_value(REQ_HEADERS, ":path", 5, &path, &plen);
  uint32_t action = 0;
  if (streq(path, plen, "/local")) {
    const char *kv[] = {"x-c-local", "yes"};
    char *h;
    size_t hn = pairs(&h, 1, kv);
    proxy_send_local_response(403, "c_denied", 8, "forbidden by c", 14, h, hn, -1);
    free(h);
    action = 1;
  } else if (streq(path, plen, "/callout")) {
    const char *kv[] = {":method", "GET", ":path", "/check", ":authority", "auth.local", "x-from", "c"};
    char *h;
    size_t hn = pairs(&h, 4, kv);
    uint32_t token = 0;
    st s = proxy_http_call("auth", 4, h, hn, "", 0, "", 0, 500, &token);
    free(h);
    if (s != 0) {
      logi(4, "c: http_call failed status=", s);
    } else {
      remember_call(token, ctx);
      logi(2, "c: http_call token=", token);
      action = 1;
    }
  } else if (streq(path, plen, "/grpc")) {
    uint32_t token = 0;
    st s = proxy_grpc_call("grpc_cluster", 12, "pkg.Svc", 7, "Get", 3, "", 0, "ping", 4, 1000, &token);
    if (s == 0) {
      remember_call(token, ctx);
      action = 1;
    } else {
      logi(4, "c: grpc_call failed status=", s);
    }
  } else if (streq(path, plen, "/shared")) {
    for (int attempt = 0; attempt < 3; attempt++) {
      char *d = 0;
      size_t dn = 0;
      uint32_t cas = 0;
      long hits = 0;
      if (proxy_get_shared_data("hits", 4, &d, &dn, &cas) == 0) {
        char tmp[32] = {0};
        memcpy(tmp, d, dn < 31 ? dn : 31);
        hits = strtol(tmp, 0, 10);
        free(d);
      }
      char out[32];
      int on = snprintf(out, sizeof out, "%ld", hits + 1);
      if (proxy_set_shared_data("hits", 4, out, on, cas) == 0) {
        add_req("x-hits", out, on);
        break;
      }
    }
  } else if (streq(path, plen, "/pause")) {
    if (npaused < MAXP) paused[npaused++] = ctx;
    proxy_increment_metric(m_paused, 1);
    action = 1;
  } else if (streq(path, plen, "/enqueue")) {
    if (proxy_get_header_map_value(REQ_HEADERS, "x-msg", 5, &v, &vn) == 0) {
      proxy_enqueue_shared_queue(queue_id, v, vn);
      free(v);
    }
  } else if (streq(path, plen, "/prop")) {
    if (proxy_get_property("request\0path", 12, &v, &vn) == 0) { add_req("x-prop-path", v, vn); free(v); }
    if (proxy_get_property("plugin_root_id", 14, &v, &vn) == 0) { add_req("x-root-id", v, vn); free(v); }
    if (proxy_get_property("node\0metadata\0REGION", 20, &v, &vn) == 0) { add_req("x-region", v, vn); free(v); }
    proxy_set_property("c_state", 7, "set-by-c", 8);
    if (proxy_get_property("c_state", 7, &v, &vn) == 0) { add_req("x-c-state", v, vn); free(v); }
  } else if (streq(path, plen, "/foreign")) {
    char *r = 0;
    size_t rn = 0;
    st s = proxy_call_foreign_function("reverse", 7, "abc", 3, &r, &rn);
    if (s == 0) { add_req("x-foreign", r, rn); free(r); }
    else logi(3, "c: foreign status=", s);
  } else if (streq(path, plen, "/rewrite")) {
    proxy_replace_header_map_value(REQ_HEADERS, ":path", 5, "/rewritten", 10);
#if ABI_VERSION == 10
    proxy_clear_route_cache();
#else
    proxy_call_foreign_function("clear_route_cache", 17, "", 0, 0, 0);
#endif
#if ABI_VERSION != 10
  } else if (streq(path, plen, "/close")) {
    proxy_close_stream(0);
#endif
  } else if (streq(path, plen, "/pairs")) {
    char *all = 0;
    size_t an = 0;
    proxy_get_header_map_pairs(REQ_HEADERS, &all, &an);
    const char *kv[] = {":path", "/pairs", "x-only", "1"};
    char *h;
    size_t hn = pairs(&h, 2, kv);
    proxy_set_header_map_pairs(REQ_HEADERS, h, hn);
    free(h);
    char n[16];
    int nn = snprintf(n, sizeof n, "%zu", an);
    add_req("x-old-pairs-bytes", n, nn);
    free(all);
  } else {
    add_req("x-c-module", "hello", 5);
    proxy_replace_header_map_value(REQ_HEADERS, "x-replace", 9, "replaced", 8);
    proxy_remove_header_map_value(REQ_HEADERS, "x-remove", 8);
  }
#if ABI_VERSION == 21
  if (proxy_get_header_map_value(REQ_HEADERS, "x-log-level", 11, &v, &vn) == 0) {
    uint32_t level = 99;
    proxy_get_log_level(&level);
    logi(2, "c: log level=", level);
    free(v);
  }
#endif
  free(path);
  return action;
}

EXPORT(proxy_on_request_body) uint32_t on_request_body(uint32_t ctx, uint32_t size, uint32_t eos) {
  if (!config_has("buffer")) return 0;
  if (!eos) return 1; /* buffer until the whole body is here */
  char *body = 0;
  size_t n = 0;
  proxy_get_buffer_bytes(BODY_REQ, 0, size, &body, &n);
  for (size_t i = 0; i < n; i++)
    if (body[i] >= 'a' && body[i] <= 'z') body[i] -= 32;
  proxy_set_buffer_bytes(BODY_REQ, 0, size, body, n);
  logi(2, "c: request body bytes=", (long)n);
  free(body);
  return 0;
}

EXPORT(proxy_on_response_headers) uint32_t on_response_headers(uint32_t ctx, uint32_t n
#if ABI_VERSION != 10
                                                              , uint32_t eos
#endif
) {
  proxy_add_header_map_value(RESP_HEADERS, "x-c-response", 12, "1", 1);
  return 0;
}

/* ---------------------------------------------------------------- timers, callouts, queues */

EXPORT(proxy_on_tick) void on_tick(uint32_t ctx) {
  proxy_increment_metric(m_ticks, 1);
  int resumed = 0;
  for (int i = 0; i < npaused; i++) {
    if (proxy_set_effective_context(paused[i]) != 0) {
      logi(3, "c: paused context is gone: ", paused[i]);
      continue;
    }
    add_req("x-resumed-by", "tick", 4);
    CONTINUE_REQUEST();
    resumed++;
  }
  npaused = 0;
  proxy_record_metric(m_paused, 0);
  logi(2, "c: tick resumed=", resumed);
}

EXPORT(proxy_on_http_call_response) void on_http_call_response(uint32_t ctx, uint32_t token, uint32_t nh, uint32_t bs, uint32_t nt) {
  uint32_t stream = take_call(token);
  if (stream == 0 || proxy_set_effective_context(stream) != 0) {
    logi(3, "c: callout for a gone stream, token=", token);
    return;
  }
  if (nh == 0) {
    uint32_t code = 0;
    char *msg = 0;
    size_t mn = 0;
    proxy_get_status(&code, &msg, &mn);
    logf2(4, "c: callout failed: ", msg, mn);
    free(msg);
    proxy_send_local_response(503, "c_callout_failed", 16, "callout failed", 14, "", 0, -1);
    return;
  }
  char *status = 0, *body = 0;
  size_t sn = 0, bn = 0;
  proxy_get_header_map_value(CALL_RESP_HEADERS, ":status", 7, &status, &sn);
  proxy_get_buffer_bytes(CALL_BODY, 0, bs, &body, &bn);
  add_req("x-auth-status", status, sn);
  add_req("x-auth-body", body, bn);
  free(status);
  free(body);
  CONTINUE_REQUEST();
}

EXPORT(proxy_on_grpc_receive) void on_grpc_receive(uint32_t ctx, uint32_t token, uint32_t size) {
  char *msg = 0;
  size_t n = 0;
  proxy_get_buffer_bytes(GRPC_BUF, 0, size, &msg, &n);
  logf2(2, "c: grpc reply ", msg, n);
  uint32_t stream = take_call(token);
  if (stream && proxy_set_effective_context(stream) == 0) {
    add_req("x-grpc", msg, n);
    CONTINUE_REQUEST();
  }
  free(msg);
}

EXPORT(proxy_on_grpc_close) void on_grpc_close(uint32_t ctx, uint32_t token, uint32_t status) {
  uint32_t code = 0;
  char *msg = 0;
  size_t mn = 0;
  proxy_get_status(&code, &msg, &mn);
  logf2(3, "c: grpc closed: ", msg, mn);
  free(msg);
  uint32_t stream = take_call(token);
  if (stream && proxy_set_effective_context(stream) == 0)
    proxy_send_local_response(502, "c_grpc_failed", 13, "", 0, "", 0, (int32_t)status);
}

EXPORT(proxy_on_queue_ready) void on_queue_ready(uint32_t ctx, uint32_t qid) {
  char *d = 0;
  size_t n = 0;
  while (proxy_dequeue_shared_queue(qid, &d, &n) == 0) {
    logf2(2, "c: dequeued ", d, n);
    free(d);
  }
}

EXPORT(proxy_on_foreign_function) void on_foreign_function(uint32_t ctx, uint32_t id, uint32_t size) {
  char *d = 0;
  size_t n = 0;
  proxy_get_buffer_bytes(CALL_DATA, 0, size, &d, &n);
  logf2(2, "c: foreign call data ", d, n);
  free(d);
}

/* ---------------------------------------------------------------- TCP */

EXPORT(proxy_on_new_connection) uint32_t on_new_connection(uint32_t ctx) { return 0; }

EXPORT(proxy_on_downstream_data) uint32_t on_downstream_data(uint32_t ctx, uint32_t size, uint32_t eos) {
  char *d = 0;
  size_t n = 0;
  proxy_get_buffer_bytes(DOWNSTREAM, 0, size, &d, &n);
  uint32_t hold = n >= 4 && memcmp(d, "hold", 4) == 0 && !(n >= 8 && memcmp(d + n - 4, "done", 4) == 0);
  if (!hold && n > 0) proxy_set_buffer_bytes(DOWNSTREAM, 0, 0, "[c]", 3); /* prepend */
  free(d);
  return hold;
}

EXPORT(proxy_on_upstream_data) uint32_t on_upstream_data(uint32_t ctx, uint32_t size, uint32_t eos) { return 0; }

EXPORT(proxy_on_downstream_connection_close) void on_downstream_close(uint32_t ctx, uint32_t peer) {
  logi(2, "c: downstream closed, peer=", peer);
}

/* ---------------------------------------------------------------- fuzzing entry point */

/* Calls one hostcall with raw, attacker-chosen arguments and returns its status. */
EXPORT(proxy_fuzz_hostcall) int32_t fuzz_hostcall(uint32_t ctx, uint32_t op, uint32_t a, uint32_t b, uint32_t c, uint32_t d, uint32_t e) {
  switch (op) {
  case 0: return proxy_log(a % 6, (const char *)b, c);
  case 1: return proxy_get_property((const char *)a, b, (char **)c, (size_t *)d);
  case 2: return proxy_get_header_map_value(a % 9, (const char *)b, c, (char **)d, (size_t *)e);
  case 3: return proxy_set_shared_data((const char *)a, b, (const char *)c, d, e);
  case 4: return proxy_add_header_map_value(a % 9, (const char *)b, c, (const char *)d, e);
  case 5: return proxy_get_buffer_bytes(a % 10, b, c, (char **)d, (size_t *)e);
  case 6: return proxy_set_header_map_pairs(a % 9, (const char *)b, c);
  case 7: return proxy_http_call((const char *)a, b, (const char *)c, d, "", 0, "", 0, e, (uint32_t *)a);
  case 8: return proxy_get_shared_data((const char *)a, b, (char **)c, (size_t *)d, (uint32_t *)e);
  case 9: return proxy_define_metric(a % 4, (const char *)b, c, (uint32_t *)d);
  case 10: return proxy_get_header_map_pairs(a % 9, (char **)b, (size_t *)c);
  case 11: return proxy_send_local_response(a, (const char *)b, c, (const char *)d, e, (const char *)b, c, -1);
  default: return -1;
  }
}
