/*
 * arena.c — bump allocation in chunks.  Small requests are carved from the
 * current chunk; a request larger than a quarter of the default chunk gets a
 * chunk of its own (inserted behind the current one so the current chunk's
 * free tail is not wasted).
 */
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK (64 * 1024)
#define ARENA_SPARE_MAX 64 /* standard chunks kept by arena_reset: 4 MiB */

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;
    _Alignas(16) char data[];
};

void arena_init(struct arena *a)
{
    a->head = NULL;
    a->ptr = a->end = NULL;
    a->total = 0;
    a->spare = NULL;
    a->nspare = 0;
}

static void free_list(struct arena_chunk *c)
{
    while (c) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
}

void arena_cleanup(struct arena *a)
{
    free_list(a->head);
    free_list(a->spare);
    arena_init(a);
}

void arena_reset(struct arena *a)
{
    struct arena_chunk *c = a->head;
    while (c) {
        struct arena_chunk *next = c->next;
        if (c->size == ARENA_CHUNK && a->nspare < ARENA_SPARE_MAX) {
            c->next = a->spare;
            a->spare = c;
            a->nspare++;
        } else {
            free(c);
        }
        c = next;
    }
    a->head = NULL;
    a->ptr = a->end = NULL;
    a->total = 0;
}

static struct arena_chunk *chunk_new(size_t size)
{
    struct arena_chunk *c = malloc(sizeof *c + size);
    if (!c) abort();
    c->size = size;
    c->next = NULL;
    return c;
}

void *arena_alloc(struct arena *a, size_t size)
{
    size = (size + 7) & ~(size_t)7;
    if (size == 0) size = 8;
    a->total += size;
    if ((size_t)(a->end - a->ptr) >= size && a->ptr) {
        void *p = a->ptr;
        a->ptr += size;
        return p;
    }
    if (size > ARENA_CHUNK / 4) {
        struct arena_chunk *c = chunk_new(size);
        if (a->head) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            a->head = c;
            a->ptr = a->end = c->data + size; /* full */
        }
        return c->data;
    }
    struct arena_chunk *c = a->spare;
    if (c) {
        a->spare = c->next;
        a->nspare--;
    } else {
        c = chunk_new(ARENA_CHUNK);
    }
    c->next = a->head;
    a->head = c;
    a->ptr = c->data + size;
    a->end = c->data + ARENA_CHUNK;
    return c->data;
}

void *arena_zalloc(struct arena *a, size_t size)
{
    void *p = arena_alloc(a, size);
    memset(p, 0, size);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t len)
{
    char *p = arena_alloc(a, len + 1);
    if (len) memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    char *p = arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}
