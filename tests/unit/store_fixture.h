/*
 * store_fixture.h — a fresh directory with a SQLite store file in it, for
 * the tests of store/ and journal/ (both open stores the same way).
 */
#ifndef KEEL_TEST_STORE_FIXTURE_H
#define KEEL_TEST_STORE_FIXTURE_H

#include "store/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct tmp {
    char dir[256];
    char uri[320];
    char path[300];
};

/* Makes $TMPDIR/keel-test-<what>-XXXXXX and names keel.db inside it. */
static inline void tmp_make_named(struct tmp *t, const char *what)
{
    snprintf(t->dir, sizeof t->dir, "%s/keel-test-%s-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", what);
    if (!mkdtemp(t->dir)) abort();
    snprintf(t->path, sizeof t->path, "%s/keel.db", t->dir);
    snprintf(t->uri, sizeof t->uri, "sqlite:%s", t->path);
}

/* Removes the store file, its WAL/SHM/journal, and the directory. */
static inline void tmp_remove(struct tmp *t)
{
    const char *sfx[] = {"", "-wal", "-shm", "-journal"};
    char p[400];
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", t->path, sfx[i]);
        unlink(p);
    }
    rmdir(t->dir);
}

/* Opens the store at t (NULL on failure, with the reason on stderr). */
static inline struct store *open_store(struct tmp *t)
{
    struct keel_err err;
    struct store *s = NULL;
    if (store_open(t->uri, NULL, &s, &err)) fprintf(stderr, "store_open: %s\n", err.msg);
    return s;
}

#endif
