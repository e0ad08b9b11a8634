/*
 * sqlite_runs.c — runs in the SQLite store: create, read, status changes
 * (compare-and-set on the current status), leases, and the list queries
 * shared with approvals (store_sq_list_rows).
 *
 * Invariants: every write goes through the writer connection with wlock
 * held; a status change with a from-mask reads and writes in one
 * transaction.
 */
#include "sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- runs -------------------------------------------------------------- */

static int read_run(struct sq *q, sqlite3_stmt *st, struct arena *a, struct store_run *r,
                    struct keel_err *err)
{
    memset(r, 0, sizeof *r);
    r->id = col_text(a, st, 0);
    r->workflow = col_text(a, st, 1);
    r->workflow_hash = col_text(a, st, 2);
    const char *status = (const char *)sqlite3_column_text(st, 3);
    if (store_run_status_parse(status, &r->status, err) != 0)
        return keel_fail(err, KEEL_ECORRUPT, "store %s: run %s has an unknown status '%s'", q->path,
                         r->id, status ? status : "(null)");
    r->reason = col_text(a, st, 4);
    r->input = col_text(a, st, 5);
    r->identity = col_text(a, st, 6);
    r->parent_id = col_text(a, st, 7);
    r->parent_seq = sqlite3_column_int64(st, 8);
    r->created_ms = sqlite3_column_int64(st, 9);
    r->updated_ms = sqlite3_column_int64(st, 10);
    r->lease_owner = col_text(a, st, 11);
    r->lease_expires_ms = sqlite3_column_int64(st, 12);
    return 0;
}

int store_sq_run_create(struct store *s, const struct store_run *run, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    int64_t created = run->created_ms ? run->created_ms : keel_wall_ms();
    int64_t updated = run->updated_ms ? run->updated_ms : created;
    int rc = 0;
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_RUN_INSERT, err);
    if (!st) rc = err ? err->code : KEEL_EIO;
    if (st) {
        sqlite3_bind_text(st, 1, run->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, run->workflow, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, run->workflow_hash, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, store_run_status_name(run->status), -1, SQLITE_STATIC);
        bind_text(st, 5, run->reason);
        sqlite3_bind_text(st, 6, run->input, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 7, run->identity, -1, SQLITE_STATIC);
        bind_text(st, 8, run->parent_id);
        sqlite3_bind_int64(st, 9, run->parent_seq);
        sqlite3_bind_int64(st, 10, created);
        sqlite3_bind_int64(st, 11, updated);
        int src = sqlite3_step(st);
        done_stmt(st);
        if ((src & 0xff) == SQLITE_CONSTRAINT)
            rc = keel_fail(err, KEEL_EEXIST, "a run with id '%s' already exists; use a new id",
                           run->id);
        else if (src != SQLITE_DONE)
            rc = store_sq_fail(q, c->db, src, "creating a run", err);
    }
    store_sq_writer_put(q);
    return rc;
}

int store_sq_run_get(struct store *s, const char *id, struct arena *a, struct store_run *out,
                     struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    int rc;
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_RUN_GET, err);
    if (!st) {
        rc = err ? err->code : KEEL_EIO;
    } else {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            rc = read_run(q, st, a, out, err);
        else if (src == SQLITE_DONE)
            rc = keel_fail(err, KEEL_ENOENT, "no run '%s' in the store; check the run id", id);
        else
            rc = store_sq_fail(q, c->db, src, "reading a run", err);
        done_stmt(st);
    }
    store_sq_reader_put(q, c);
    return rc;
}

int store_sq_run_set_status(struct store *s, const char *id, unsigned from_mask,
                            enum store_run_status to, const char *reason, int64_t now_ms,
                            struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    int rc = 0;
    if (from_mask != STORE_RUN_MASK_ANY) {
        rc = store_sq_exec_stmt(q, c, ST_BEGIN, err);
        sqlite3_stmt *st = rc ? NULL : store_sq_stmt(q, c, ST_RUN_STATUS, err);
        if (!rc && !st) rc = err ? err->code : KEEL_EIO;
        if (st) {
            sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
            int src = sqlite3_step(st);
            if (src == SQLITE_ROW) {
                const char *cur = (const char *)sqlite3_column_text(st, 0);
                enum store_run_status cs;
                if (store_run_status_parse(cur, &cs, NULL) != 0)
                    rc = keel_fail(err, KEEL_ECORRUPT, "run %s has an unknown status '%s'", id,
                                   cur ? cur : "(null)");
                else if (!(from_mask & STORE_RUN_MASK(cs)))
                    rc = keel_fail(err, KEEL_ESTATE, "run %s is %s; it cannot become %s from there",
                                   id, cur, store_run_status_name(to));
            } else if (src == SQLITE_DONE) {
                rc = keel_fail(err, KEEL_ENOENT, "no run '%s' in the store; check the run id", id);
            } else {
                rc = store_sq_fail(q, c->db, src, "reading a run's status", err);
            }
            done_stmt(st);
        }
    }
    if (!rc) rc = store_sq_set_status(q, c, id, to, reason, now_ms, err);
    if (from_mask != STORE_RUN_MASK_ANY) {
        if (!rc) rc = store_sq_exec_stmt(q, c, ST_COMMIT, err);
        if (rc) store_sq_rollback(q, c);
    }
    store_sq_writer_put(q);
    return rc;
}

/* Makes room for one more element in an arena array (*items, *cap), doubling
 * it; the old copy stays in the arena until it is freed.  Lists are capped at
 * STORE_LIST_MAX by the caller, so this stays small. */
void *store_sq_grow(struct arena *a, void *items, size_t count, size_t *cap, size_t size)
{
    if (count < *cap) return items;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *n = arena_alloc(a, ncap * size);
    if (count) memcpy(n, items, count * size);
    *cap = ncap;
    return n;
}

void store_sq_append_status_in(struct buf *sql, unsigned mask, unsigned count,
                               const char *(*name)(int))
{
    if (!mask) return;
    buf_puts(sql, " AND status IN (");
    bool first = true;
    for (unsigned i = 0; i < count; i++) {
        if (!(mask & (1u << i))) continue;
        buf_printf(sql, "%s'%s'", first ? "" : ", ", name((int)i));
        first = false;
    }
    if (first) buf_puts(sql, "NULL"); /* a mask with no valid bit matches nothing */
    buf_puts(sql, ")");
}

static const char *run_status_name_int(int i)
{
    return store_run_status_name((enum store_run_status)i);
}

const char *store_sq_approval_status_name_int(int i)
{
    return store_approval_status_name((enum store_approval_status)i);
}

/* Prepares sql (built per call: list filters vary) on c. */
static int prepare_dynamic(struct sq *q, struct conn *c, const char *sql, sqlite3_stmt **st,
                           struct keel_err *err)
{
    int rc = sqlite3_prepare_v2(c->db, sql, -1, st, NULL);
    if (rc != SQLITE_OK) return store_sq_fail(q, c->db, rc, "preparing a list query", err);
    return 0;
}

/* Reads the rows of one list row type into an arena array. */
/* Runs a list query built per call: sql's ?1..?nbinds are bound to binds
 * (borrowed text), each row is read with read into a growing array of
 * elements of size bytes in a.  Frees sql.  On success *out and *n hold the
 * rows (NULL and 0 when none); on failure they are untouched. */
int store_sq_list_rows(struct sq *q, struct buf *sql, const char *const *binds, int nbinds,
                       size_t size, row_reader read, const char *what, struct arena *a, void **out,
                       size_t *n, struct keel_err *err)
{
    struct conn *c = store_sq_reader_get(q, err);
    if (!c) {
        buf_cleanup(sql);
        return err ? err->code : KEEL_EIO;
    }
    sqlite3_stmt *st = NULL;
    int rc = prepare_dynamic(q, c, sql->data, &st, err);
    buf_cleanup(sql);
    if (!rc) {
        for (int i = 0; i < nbinds; i++)
            sqlite3_bind_text(st, i + 1, binds[i], -1, SQLITE_STATIC);
        char *rows = NULL;
        size_t count = 0, cap = 0;
        int src = SQLITE_DONE;
        while (!rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
            rows = store_sq_grow(a, rows, count, &cap, size);
            rc = read(q, st, a, rows + size * count++, err);
        }
        if (!rc && src != SQLITE_DONE) rc = store_sq_fail(q, c->db, src, what, err);
        if (!rc) {
            *out = rows;
            *n = count;
        }
    }
    sqlite3_finalize(st);
    store_sq_reader_put(q, c);
    return rc;
}

static int read_run_row(struct sq *q, sqlite3_stmt *st, struct arena *a, void *row,
                        struct keel_err *err)
{
    return read_run(q, st, a, row, err);
}

int store_sq_read_approval_row(struct sq *q, sqlite3_stmt *st, struct arena *a, void *row,
                               struct keel_err *err)
{
    return store_sq_read_approval(q, st, a, row, err);
}

int store_sq_run_list(struct store *s, const struct store_run_filter *f, struct arena *a,
                      struct store_run **out, size_t *n, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct buf sql;
    buf_init(&sql);
    buf_puts(&sql, "SELECT " RUN_COLS " FROM runs WHERE 1");
    store_sq_append_status_in(&sql, f->status_mask, STORE_RUN_STATUS_COUNT, run_status_name_int);
    const char *binds[3];
    int nb = 0;
    if (f->workflow) buf_printf(&sql, " AND workflow = ?%d", nb + 1), binds[nb++] = f->workflow;
    if (f->parent_id) buf_printf(&sql, " AND parent_id = ?%d", nb + 1), binds[nb++] = f->parent_id;
    if (f->after_id)
        buf_printf(&sql, " AND id %s ?%d", f->newest_first ? "<" : ">", nb + 1),
            binds[nb++] = f->after_id;
    buf_printf(&sql, " ORDER BY id %s LIMIT %zu", f->newest_first ? "DESC" : "ASC", f->limit);
    return store_sq_list_rows(q, &sql, binds, nb, sizeof **out, read_run_row, "listing runs", a,
                              (void **)out, n, err);
}

static int lease_busy(struct sq *q, struct conn *c, const char *id, struct keel_err *err)
{
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_RUN_LEASE, err);
    if (!st) return err ? err->code : KEEL_EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    int rc;
    if (src == SQLITE_ROW) {
        const char *owner = (const char *)sqlite3_column_text(st, 0);
        rc = keel_fail(err, KEEL_EBUSY,
                       "run %s is leased by '%s' until %lld ms; wait for the "
                       "lease to expire",
                       id, owner ? owner : "?", (long long)sqlite3_column_int64(st, 1));
    } else if (src == SQLITE_DONE) {
        rc = keel_fail(err, KEEL_ENOENT, "no run '%s' in the store; check the run id", id);
    } else {
        rc = store_sq_fail(q, c->db, src, "reading a lease", err);
    }
    done_stmt(st);
    return rc;
}

static int claim(struct sq *q, struct conn *c, const char *id, const char *owner, int64_t ttl_ms,
                 int64_t now_ms, bool *won, struct keel_err *err)
{
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_RUN_CLAIM, err);
    if (!st) return err ? err->code : KEEL_EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, now_ms + ttl_ms);
    sqlite3_bind_int64(st, 4, now_ms);
    int src = sqlite3_step(st);
    done_stmt(st);
    if (src != SQLITE_DONE) return store_sq_fail(q, c->db, src, "claiming a run", err);
    *won = sqlite3_changes(c->db) == 1;
    return 0;
}

int store_sq_run_claim(struct store *s, const char *id, const char *owner, int64_t ttl_ms,
                       int64_t now_ms, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    bool won = false;
    int rc = claim(q, c, id, owner, ttl_ms, now_ms, &won, err);
    if (!rc && !won) rc = lease_busy(q, c, id, err);
    store_sq_writer_put(q);
    return rc;
}

int store_sq_run_claim_next(struct store *s, unsigned status_mask, const char *owner,
                            int64_t ttl_ms, int64_t now_ms, struct arena *a, struct store_run *out,
                            struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct buf sql;
    buf_init(&sql);
    buf_puts(&sql, "SELECT id FROM runs WHERE (lease_owner IS NULL OR lease_expires_ms <= ?1)");
    store_sq_append_status_in(&sql, status_mask, STORE_RUN_STATUS_COUNT, run_status_name_int);
    buf_puts(&sql, " ORDER BY id LIMIT 1");
    struct conn *c = store_sq_writer_get(q, err);
    if (!c) {
        buf_cleanup(&sql);
        return err ? err->code : KEEL_EINVAL;
    }
    int rc = store_sq_exec_stmt(q, c, ST_BEGIN, err);
    sqlite3_stmt *st = NULL;
    if (!rc) rc = prepare_dynamic(q, c, sql.data, &st, err);
    buf_cleanup(&sql);
    char *id = NULL;
    if (!rc) {
        sqlite3_bind_int64(st, 1, now_ms);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            id = arena_strdup(a, (const char *)sqlite3_column_text(st, 0));
        else if (src == SQLITE_DONE)
            rc = keel_fail(err, KEEL_ENOENT, "no unclaimed run to claim");
        else
            rc = store_sq_fail(q, c->db, src, "finding a run to claim", err);
    }
    sqlite3_finalize(st);
    bool won = false;
    if (!rc) rc = claim(q, c, id, owner, ttl_ms, now_ms, &won, err);
    if (!rc && !won)
        rc = keel_fail(err, KEEL_EINTERNAL, "claim of run %s lost in a transaction", id);
    if (!rc) {
        sqlite3_stmt *g = store_sq_stmt(q, c, ST_RUN_GET, err);
        if (!g) rc = err ? err->code : KEEL_EIO;
        if (g) {
            sqlite3_bind_text(g, 1, id, -1, SQLITE_STATIC);
            int src = sqlite3_step(g);
            if (src == SQLITE_ROW)
                rc = read_run(q, g, a, out, err);
            else
                rc = store_sq_fail(q, c->db, src, "reading a claimed run", err);
            done_stmt(g);
        }
    }
    if (!rc) rc = store_sq_exec_stmt(q, c, ST_COMMIT, err);
    if (rc) store_sq_rollback(q, c);
    store_sq_writer_put(q);
    return rc;
}

int store_sq_run_release(struct store *s, const char *id, const char *owner, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_RUN_RELEASE, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        done_stmt(st);
        if (src != SQLITE_DONE) rc = store_sq_fail(q, c->db, src, "releasing a lease", err);
    }
    store_sq_writer_put(q);
    return rc;
}
