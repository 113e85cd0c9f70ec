/*
 * Header maps read once per callback.
 *
 * The first lookup by name in a map fetches the whole map with one
 * proxy_get_header_map_pairs and keeps the host's serialized bytes here; later lookups
 * in the same callback scan them in C, without another hostcall (a crossing into the
 * host costs more than the scan). Whole-map reads (get_header_map_list) use the same
 * bytes. Anything that may change what the host holds forgets them: a new callback, a
 * change of effective context, a write to that map, and the hostcalls that act on the
 * stream (local response, continue, close, foreign functions, set_property).
 */
#include "abi.h"

#include <stdlib.h>
#include <string.h>

enum { MAP_TYPES = 8, LONGEST_KEY = 256 };

static struct {
    uint32_t generation; /* 0: nothing kept */
    char *data;
    size_t size;
} maps[MAP_TYPES];

static uint32_t generation = 1;

void pw_headers_changed(void) {
    if (++generation == 0) generation = 1;
}

void pw_header_map_written(uint32_t type) {
    if (type < MAP_TYPES) maps[type].generation = 0;
}

int pw_header_map_pairs(uint32_t type, const char **data, size_t *size) {
    if (type >= MAP_TYPES) return -1;
    if (maps[type].generation != generation) {
        free(maps[type].data);
        maps[type].data = NULL;
        maps[type].generation = 0;
        char *fetched = NULL;
        size_t fetched_size = 0;
        proxy_status_t status = proxy_get_header_map_pairs(type, &fetched, &fetched_size);
        if (status != PROXY_OK) {
            free(fetched);
            return (int)status;
        }
        maps[type].data = fetched;
        maps[type].size = fetched_size;
        maps[type].generation = generation;
    }
    *data = maps[type].data;
    *size = maps[type].size;
    return PROXY_OK;
}

int pw_header_map_find(uint32_t type, const char *key, size_t key_size, const char **value, size_t *value_size) {
    char lower[LONGEST_KEY];
    if (key_size > LONGEST_KEY) return -1;
    for (size_t i = 0; i < key_size; i++) { /* the host keeps names lower-case (ASCII) */
        char c = key[i];
        lower[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    const char *data;
    size_t size;
    if (pw_header_map_pairs(type, &data, &size) != PROXY_OK) return -1;
    if (data == NULL || size < 4) return size == 0 ? 0 : -1; /* an empty map may come as no bytes */
    uint32_t count;
    memcpy(&count, data, 4);
    if (count > (size - 4) / 10) return -1; /* each pair needs at least 10 bytes */
    size_t pos = 4 + 8 * (size_t)count;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t sizes[2];
        memcpy(sizes, data + 4 + 8 * (size_t)i, 8);
        if ((size_t)sizes[0] + sizes[1] + 2 > size - pos) return -1;
        const char *name = data + pos, *found = data + pos + sizes[0] + 1;
        if (sizes[0] == key_size && memcmp(name, lower, key_size) == 0) {
            *value = found;
            *value_size = sizes[1];
            return 1;
        }
        pos += (size_t)sizes[0] + sizes[1] + 2;
    }
    return 0;
}
