/* A module that imports a WASI function Envoy does not offer. */
#include <stdint.h>
#include <stdlib.h>
__attribute__((import_module("wasi_snapshot_preview1"), import_name("path_open")))
int32_t path_open(int32_t, int32_t, int32_t, int32_t, int32_t, int64_t, int64_t, int32_t, int32_t);
__attribute__((export_name("proxy_abi_version_0_2_1"))) void abi(void) {}
__attribute__((export_name("malloc"))) void *my_malloc(size_t n) { return malloc(n); }
__attribute__((export_name("proxy_on_vm_start"))) uint32_t vm_start(uint32_t c, uint32_t s) {
  return path_open(3, 0, 0, 0, 0, 0, 0, 0, 0) == 0;
}
