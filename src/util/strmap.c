/*
 * strmap.c — open addressing with linear probing and backward-shift
 * deletion (no tombstones).  Capacity is a power of two; the table grows
 * when it is 3/4 full.
 */
#include "util.h"

#include <stdlib.h>
#include <string.h>

uint64_t keel_hash(const void *data, size_t len)
{
    /* FNV-1a, 64-bit, with a final avalanche so low bits are usable as a
     * table index.  Keys here are short (names, ids). */
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

void strmap_init(struct strmap *m)
{
    m->slots = NULL;
    m->cap = m->count = 0;
}

void strmap_cleanup(struct strmap *m)
{
    for (size_t i = 0; i < m->cap; i++) free(m->slots[i].key);
    free(m->slots);
    strmap_init(m);
}

static size_t find(const struct strmap *m, const char *key, size_t len, uint64_t h)
{
    size_t mask = m->cap - 1, i = h & mask;
    for (;;) {
        const struct strmap_entry *e = &m->slots[i];
        if (!e->key) return i;
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) return i;
        i = (i + 1) & mask;
    }
}

static void grow(struct strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct strmap_entry *old = m->slots;
    size_t old_cap = m->cap;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) abort();
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].key) continue;
        size_t j = find(m, old[i].key, old[i].key_len, old[i].hash);
        m->slots[j] = old[i];
    }
    free(old);
}

void *strmap_put(struct strmap *m, const char *key, size_t len, void *value)
{
    if ((m->count + 1) * 4 > m->cap * 3) grow(m);
    uint64_t h = keel_hash(key, len);
    size_t i = find(m, key, len, h);
    struct strmap_entry *e = &m->slots[i];
    if (e->key) {
        void *old = e->value;
        e->value = value;
        return old;
    }
    e->key = malloc(len + 1);
    if (!e->key) abort();
    memcpy(e->key, key, len);
    e->key[len] = '\0';
    e->key_len = len;
    e->hash = h;
    e->value = value;
    m->count++;
    return NULL;
}

void *strmap_get(const struct strmap *m, const char *key, size_t len)
{
    if (!m->cap) return NULL;
    size_t i = find(m, key, len, keel_hash(key, len));
    return m->slots[i].key ? m->slots[i].value : NULL;
}

void *strmap_del(struct strmap *m, const char *key, size_t len)
{
    if (!m->cap) return NULL;
    size_t mask = m->cap - 1;
    size_t i = find(m, key, len, keel_hash(key, len));
    if (!m->slots[i].key) return NULL;
    void *value = m->slots[i].value;
    free(m->slots[i].key);
    m->slots[i].key = NULL;
    m->count--;
    /* Backward-shift: move later members of the probe run into the hole. */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].key) break;
        size_t home = m->slots[j].hash & mask;
        /* Is home cyclically outside (i, j]?  Then the entry may move to i. */
        bool move = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
        if (move) {
            m->slots[i] = m->slots[j];
            m->slots[j].key = NULL;
            i = j;
        }
    }
    return value;
}
