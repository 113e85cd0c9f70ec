/* A module without any proxy_abi_version_* export. */
#include <stdlib.h>
__attribute__((export_name("malloc"))) void *my_malloc(size_t n) { return malloc(n); }
