/*
 * sqlite_journal.c — reading a run's events (through events_index, plus the
 * not yet indexed log), state snapshots, and workflow versions in the
 * SQLite store.  Appending is group commit's (sqlite_commit.c).
 *
 * Invariants: every event is found exactly once, either through
 * events_index or in the log (ids after events_indexed.upto); workflow
 * versions are immutable by (name, hash).
 */
#include "sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- events and snapshots ---------------------------------------------- */

static void copy_hash(char out[STORE_HASH_HEX + 1], sqlite3_stmt *st, int i)
{
    const char *h = (const char *)sqlite3_column_text(st, i);
    snprintf(out, STORE_HASH_HEX + 1, "%s", h ? h : "");
}

/* A read transaction around the two halves of a read (the indexed events
 * and the log), so the committer indexing rows in between cannot move a row
 * out of the second half's view after the first half was read.  Nested
 * reads on the same connection (an in-memory store, fn reading again) are
 * already inside one. */
static int read_begin(struct sq *q, struct conn *c, bool *began, struct keel_err *err)
{
    *began = false;
    if (!sqlite3_get_autocommit(c->db)) return 0;
    int rc = store_sq_exec_stmt(q, c, ST_BEGIN_READ, err);
    *began = rc == 0;
    return rc;
}

static void read_end(struct sq *q, struct conn *c, bool began)
{
    if (began) store_sq_exec_stmt(q, c, ST_COMMIT, NULL);
}

/* Runs statement id (bound to run_id) for one row of (seq, hash). */
static int tail_row(struct sq *q, struct conn *c, enum stmt_id id, const char *run_id, int64_t *seq,
                    char *hash, bool *found, struct keel_err *err)
{
    sqlite3_stmt *st = store_sq_stmt(q, c, id, err);
    if (!st) return err ? err->code : KEEL_EIO;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st), rc = 0;
    *found = src == SQLITE_ROW;
    if (src == SQLITE_ROW) {
        *seq = sqlite3_column_int64(st, 0);
        copy_hash(hash, st, 1);
    } else if (src != SQLITE_DONE) {
        rc = store_sq_fail(q, c->db, src, "reading a run's last event", err);
    }
    done_stmt(st);
    return rc;
}

int store_sq_tail_indexed(struct sq *q, struct conn *c, const char *run_id, int64_t *seq,
                          char *hash, struct keel_err *err)
{
    bool found = false;
    int rc = tail_row(q, c, ST_EV_TAIL, run_id, seq, hash, &found, err);
    if (!rc && !found) {
        *seq = 0;
        memcpy(hash, store_sq_zero_hash, sizeof store_sq_zero_hash);
    }
    return rc;
}

int store_sq_tail(struct sq *q, struct conn *c, const char *run_id, int64_t *seq, char *hash,
                  struct keel_err *err)
{
    /* The log holds the newest events; the index only older ones. */
    bool found = false;
    int rc = tail_row(q, c, ST_EV_TAIL_LOG, run_id, seq, hash, &found, err);
    if (!rc && !found) rc = store_sq_tail_indexed(q, c, run_id, seq, hash, err);
    return rc;
}

int store_sq_events_tail(struct store *s, const char *run_id, int64_t *seq, char *hash,
                         struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    bool began;
    int rc = read_begin(q, c, &began, err);
    if (!rc) rc = store_sq_tail(q, c, run_id, seq, hash, err);
    read_end(q, c, began);
    store_sq_reader_put(q, c);
    return rc;
}

/* Reads the rows of statement id (the indexed half or the log) for run_id
 * from from_seq, at most *left of them (-1: all), calling fn for each. */
static int scan_half(struct sq *q, struct conn *c, enum stmt_id id, const char *run_id,
                     int64_t from_seq, int64_t *left, store_event_fn fn, void *ctx,
                     struct keel_err *err)
{
    /* The connection's cached statement, unless it is in use: fn may read
     * from the store again on this thread (an in-memory store has one
     * connection), and then this scan takes a private statement rather
     * than reset the cached one under the outer scan's feet.  (Preparing
     * the statement every time was a third of the engine's CPU per
     * transition.)  fn must not write: on an in-memory store the writer
     * waits for this scan. */
    int rc = 0, src = SQLITE_OK;
    sqlite3_stmt *cached = store_sq_stmt(q, c, id, err);
    sqlite3_stmt *st = cached && !sqlite3_stmt_busy(cached) ? cached : NULL;
    if (!st) {
        src = sqlite3_prepare_v2(c->db, store_sq_stmt_sql[id], -1, &st, NULL);
        if (src != SQLITE_OK) return store_sq_fail(q, c->db, src, "preparing an event scan", err);
    }
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, from_seq);
    sqlite3_bind_int64(st, 3, *left);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        struct store_event ev;
        ev.run_id = (const char *)sqlite3_column_text(st, 0);
        ev.seq = sqlite3_column_int64(st, 1);
        ev.time_ms = sqlite3_column_int64(st, 2);
        ev.kind = (const char *)sqlite3_column_text(st, 3);
        ev.actor = (const char *)sqlite3_column_text(st, 4);
        ev.payload = (const char *)sqlite3_column_text(st, 5);
        ev.payload_len = (size_t)sqlite3_column_bytes(st, 5);
        copy_hash(ev.prev_hash, st, 6);
        copy_hash(ev.hash, st, 7);
        if (!ev.run_id) ev.run_id = "";
        if (!ev.kind) ev.kind = "";
        if (!ev.actor) ev.actor = "";
        if (!ev.payload) ev.payload = "";
        if (*left > 0) (*left)--;
        rc = fn(ctx, &ev);
        if (rc) break;
    }
    if (!rc && src != SQLITE_DONE) rc = store_sq_fail(q, c->db, src, "reading events", err);
    if (st == cached) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
    } else {
        sqlite3_finalize(st);
    }
    return rc;
}

int store_sq_events_scan(struct store *s, const char *run_id, int64_t from_seq, int64_t limit,
                         store_event_fn fn, void *ctx, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    bool began;
    int64_t left = limit > 0 ? limit : -1;
    int rc = read_begin(q, c, &began, err);
    if (!rc) rc = scan_half(q, c, ST_EV_SCAN, run_id, from_seq, &left, fn, ctx, err);
    if (!rc && left != 0)
        rc = scan_half(q, c, ST_EV_SCAN_LOG, run_id, from_seq, &left, fn, ctx, err);
    read_end(q, c, began);
    store_sq_reader_put(q, c);
    return rc;
}

int store_sq_snapshot_get(struct store *s, const char *run_id, int64_t max_seq, struct arena *a,
                          int64_t *seq, const char **state, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_SNAP_GET, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, max_seq);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            *seq = sqlite3_column_int64(st, 0);
            *state = col_text(a, st, 1);
        } else if (src == SQLITE_DONE) {
            rc = keel_fail(err, KEEL_ENOENT, "run %s has no snapshot", run_id);
        } else {
            rc = store_sq_fail(q, c->db, src, "reading a snapshot", err);
        }
        done_stmt(st);
    }
    store_sq_reader_put(q, c);
    return rc;
}

/* ---- workflows --------------------------------------------------------- */

static int wf_read(struct sq *q, struct conn *c, const char *name, const char *hash,
                   struct arena *a, const char **body, const char **hash_out, struct keel_err *err)
{
    sqlite3_stmt *st = store_sq_stmt(q, c, hash ? ST_WF_GET : ST_WF_LATEST, err);
    if (!st) return err ? err->code : KEEL_EIO;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (hash) sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    int rc = 0;
    if (src == SQLITE_ROW) {
        *body = col_text(a, st, 0);
        if (hash_out) *hash_out = col_text(a, st, 1);
    } else if (src == SQLITE_DONE) {
        rc = hash ? keel_fail(err, KEEL_ENOENT, "workflow %s has no version %.12s... in the store",
                              name, hash)
                  : keel_fail(err, KEEL_ENOENT, "no workflow '%s' in the store", name);
    } else {
        rc = store_sq_fail(q, c->db, src, "reading a workflow", err);
    }
    done_stmt(st);
    return rc;
}

int store_sq_workflow_put(struct store *s, const char *name, const char *hash, const char *body,
                          int64_t now_ms, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_WF_INSERT, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, body, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, now_ms);
        int src = sqlite3_step(st);
        done_stmt(st);
        if (src != SQLITE_DONE) rc = store_sq_fail(q, c->db, src, "storing a workflow", err);
    }
    if (!rc && sqlite3_changes(c->db) == 0) {
        /* The version exists: fine if it is the same content. */
        struct arena a;
        arena_init(&a);
        const char *old = NULL;
        rc = wf_read(q, c, name, hash, &a, &old, NULL, err);
        if (!rc && strcmp(old, body) != 0)
            rc = keel_fail(err, KEEL_ECORRUPT,
                           "workflow %s version %.12s... is already stored with different "
                           "content; a version hash must name one content",
                           name, hash);
        arena_cleanup(&a);
    }
    store_sq_writer_put(q);
    return rc;
}

int store_sq_workflow_get(struct store *s, const char *name, const char *hash, struct arena *a,
                          const char **body, const char **hash_out, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    int rc = wf_read(q, c, name, hash, a, body, hash_out, err);
    store_sq_reader_put(q, c);
    return rc;
}
