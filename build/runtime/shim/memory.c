/*
 * Python's memory allocator inside the module: libc malloc, zeroing what is freed
 * while the plugin is being built.
 *
 * A snapshot stores every non-zero byte of linear memory. Without zeroing, the
 * sources, syntax trees and temporary objects of the build stay behind in freed
 * blocks and triple the module's size. pwtool_boot() turns zeroing on for the build
 * only; in the snapshot it is off, so at run time a free costs one extra branch.
 * (pymalloc is not used: its pools would keep freed objects' bytes.)
 */
#include "abi.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

int pw_zero_freed_memory = 0;

/* Called through a volatile pointer: the compiler would otherwise drop a memset that
 * is followed by free() as a dead store. */
static void *(*volatile wipe)(void *, int, size_t) = memset;

static void zeroing_free(void *context, void *pointer) {
    (void)context;
    if (pointer != NULL && pw_zero_freed_memory) wipe(pointer, 0, malloc_usable_size(pointer));
    free(pointer);
}

static void *plain_malloc(void *context, size_t size) {
    (void)context;
    return malloc(size ? size : 1);
}

static void *plain_calloc(void *context, size_t count, size_t size) {
    (void)context;
    return calloc(count ? count : 1, size ? size : 1);
}

static void *zeroing_realloc(void *context, void *pointer, size_t size) {
    if (size == 0) size = 1;
    if (!pw_zero_freed_memory || pointer == NULL) return realloc(pointer, size);
    size_t old_size = malloc_usable_size(pointer);
    void *moved = malloc(size);
    if (moved == NULL) return NULL;
    memcpy(moved, pointer, old_size < size ? old_size : size);
    zeroing_free(context, pointer);
    return moved;
}

void pw_install_allocator(void) {
    PyMemAllocatorEx allocator = {NULL, plain_malloc, plain_calloc, zeroing_realloc, zeroing_free};
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &allocator);
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &allocator);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &allocator);
}
