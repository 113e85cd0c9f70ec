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

enum { MAP_TYPES = 8, LONGEST_KEY = 256, NOT_FOUND = 1 };

/* One entry per ABI map type, and a last one for any other type the SDK asks for (the
 * host answers those with an error, but the entry keeps the code one path). */
struct kept_map {
    uint32_t generation; /* 0: nothing kept */
    uint32_t type;
    char *data;
    size_t size;
};
static struct kept_map maps[MAP_TYPES + 1];

static uint32_t generation = 1;

void pw_headers_changed(void) {
    if (++generation == 0) generation = 1;
}

void pw_header_map_written(uint32_t type) {
    maps[type < MAP_TYPES ? type : MAP_TYPES].generation = 0;
}

int pw_header_map_pairs(uint32_t type, const char **data, size_t *size) {
    struct kept_map *entry = &maps[type < MAP_TYPES ? type : MAP_TYPES];
    if (entry->generation != generation || entry->type != type) {
        free(entry->data);
        entry->data = NULL;
        entry->generation = 0;
        char *fetched = NULL;
        size_t fetched_size = 0;
        proxy_status_t status = proxy_get_header_map_pairs(type, &fetched, &fetched_size);
        if (status != PROXY_OK) {
            free(fetched);
            return (int)status;
        }
        entry->data = fetched;
        entry->size = fetched_size;
        entry->type = type;
        entry->generation = generation;
    }
    *data = entry->data;
    *size = entry->size;
    return PROXY_OK;
}

/* Whether `text` may be a header name or value: no CR, LF or NUL. Envoy passes such
 * bytes on unchecked, and on HTTP/1 a CR LF in a value ends its line and starts a new
 * header (response splitting). */
static int has_byte_below_14(uint64_t word) {
    static const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    return ((word - ones * 14) & ~word & highs) != 0;
}

int pw_header_text_valid(const char *text, size_t size) {
    /* Eight bytes at a time, the last 0-8 padded with 0xff: CR, LF and NUL are all below
     * 14, and only a word holding such a byte needs the exact look. */
    uint64_t word;
    size_t i = 0;
    for (; i + 8 < size; i += 8) {
        memcpy(&word, text + i, 8);
        if (has_byte_below_14(word)) goto exact;
    }
    word = ~(uint64_t)0;
    memcpy(&word, text + i, size - i);
    if (!has_byte_below_14(word)) return 1;
exact:
    for (i = 0; i < size; i++)
        if (text[i] == '\r' || text[i] == '\n' || text[i] == '\0') return 0;
    return 1;
}

/* Whether every name and value of a serialized header map is valid text; a map that
 * does not parse is left to the host, which refuses it. */
int pw_header_map_valid(const char *data, size_t size) {
    struct pw_pairs walk;
    const char *name, *value;
    uint32_t name_size, value_size;
    if (pw_pairs_begin(&walk, data, size) <= 0) return 1;
    while (pw_pairs_next(&walk, &name, &name_size, &value, &value_size) > 0)
        if (!pw_header_text_valid(name, name_size) || !pw_header_text_valid(value, value_size)) return 0;
    return 1;
}

proxy_status_t pw_header_map_write(enum pw_header_op op, uint32_t type, const char *key, size_t key_size,
                                   const char *value, size_t value_size) {
    if (op != PW_HEADER_REMOVE && (!pw_header_text_valid(key, key_size) || !pw_header_text_valid(value, value_size)))
        return PROXY_BAD_ARGUMENT;
    pw_header_map_written(type);
    switch (op) {
    case PW_HEADER_REMOVE:
        return proxy_remove_header_map_value(type, key, key_size);
    case PW_HEADER_ADD:
        return proxy_add_header_map_value(type, key, key_size, value, value_size);
    default:
        return proxy_replace_header_map_value(type, key, key_size, value, value_size);
    }
}

/* Header `key` in the cached pairs: 1 found (*value points into the cache), 0 absent,
 * -1 when the map could not be read or parsed. */
static int find_in_map(uint32_t type, const char *key, size_t key_size, const char **value, size_t *value_size) {
    char lower[LONGEST_KEY];
    if (key_size > LONGEST_KEY) return -1;
    for (size_t i = 0; i < key_size; i++) { /* the host keeps names lower-case (ASCII) */
        char c = key[i];
        lower[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
    }
    const char *data;
    size_t size;
    if (pw_header_map_pairs(type, &data, &size) != PROXY_OK) return -1;
    struct pw_pairs walk;
    int begun = pw_pairs_begin(&walk, data, size);
    if (begun <= 0) return begun == 0 && size == 0 ? 0 : -1; /* an empty map may come as no bytes */
    const char *name, *found;
    uint32_t name_size, found_size;
    int next;
    while ((next = pw_pairs_next(&walk, &name, &name_size, &found, &found_size)) > 0) {
        if (name_size == key_size && memcmp(name, lower, key_size) == 0) {
            *value = found;
            *value_size = found_size;
            return 1;
        }
    }
    return next; /* 0 absent, -1 truncated */
}

int pw_header_value(uint32_t type, const char *key, size_t key_size, PyObject **text) {
    const char *found = NULL;
    size_t size = 0;
    int result = find_in_map(type, key, key_size, &found, &size);
    char *fetched = NULL;
    if (result < 0) {
        proxy_status_t status = proxy_get_header_map_value(type, key, key_size, &fetched, &size);
        result = status == PROXY_OK ? 1 : status == NOT_FOUND ? 0 : -(int)status;
        found = fetched;
    }
    if (result == 1 && text != NULL) {
        *text = PyUnicode_DecodeUTF8(found ? found : "", (Py_ssize_t)size, "surrogateescape");
        if (*text == NULL) result = -1; /* not a status: the Python error stays set */
    }
    free(fetched);
    return result;
}
