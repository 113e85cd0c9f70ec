/* A module whose allocator hands the host pointers outside its memory. */
#include <stdint.h>
#include <stddef.h>
#include <string.h>
__attribute__((import_module("env"), import_name("proxy_log"))) int32_t proxy_log(uint32_t, const char *, size_t);
__attribute__((import_module("env"), import_name("proxy_get_header_map_value")))
int32_t proxy_get_header_map_value(uint32_t, const char *, size_t, char **, size_t *);
__attribute__((export_name("proxy_abi_version_0_2_1"))) void abi(void) {}
__attribute__((export_name("proxy_on_memory_allocate"))) void *bad_alloc(size_t n) { return (void *)0xFFFFFFF0u; }
__attribute__((export_name("proxy_on_request_headers"))) uint32_t on_request_headers(uint32_t ctx, uint32_t n, uint32_t eos) {
  char *v = 0;
  size_t vn = 0;
  int32_t s = proxy_get_header_map_value(0, ":path", 5, &v, &vn);
  char msg[] = "status=0";
  msg[7] = '0' + (char)s;
  proxy_log(3, msg, strlen(msg));
  return 0;
}
