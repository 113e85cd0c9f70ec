/* A module with state built up by an initialiser, to test the snapshotter. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT(name) __attribute__((export_name(name)))

static int counter;
static char *heap_block;
static uint8_t pattern[50000];

EXPORT("init") void init(void) {
    counter = 41;
    heap_block = malloc(70000);  /* grows memory past the initial pages */
    for (int i = 0; i < 70000; i++) heap_block[i] = (char)(i % 251 + 1);
    for (int i = 0; i < 50000; i += 97) pattern[i] = (uint8_t)(i & 0xff) | 1;
}

EXPORT("noop") void noop(void) {}

EXPORT("next") int next(void) { return ++counter; }

EXPORT("heap_checksum") uint32_t heap_checksum(void) {
    uint32_t sum = 0;
    if (heap_block == NULL) return 0;
    for (int i = 0; i < 70000; i++) sum = sum * 31 + (uint8_t)heap_block[i];
    return sum;
}

EXPORT("allocate_more") int allocate_more(void) {
    char *more = malloc(1000);  /* the allocator's state survived the snapshot */
    if (more == NULL) return 0;
    memset(more, 7, 1000);
    return more != heap_block;
}
