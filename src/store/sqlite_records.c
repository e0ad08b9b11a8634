/*
 * sqlite_records.c — the daemon's other records in the SQLite store:
 * approvals (decided once), timers (claimed for a while), idempotency
 * records (put-if-absent) and the key/value table.
 *
 * Invariants: every write goes through the writer connection with wlock
 * held; deciding an approval is a conditional update on status 'pending'.
 */
#include "sqlite_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- approvals --------------------------------------------------------- */

int store_sq_read_approval(struct sq *q, sqlite3_stmt *st, struct arena *a,
                           struct store_approval *ap, struct keel_err *err)
{
    memset(ap, 0, sizeof *ap);
    ap->id = col_text(a, st, 0);
    ap->run_id = col_text(a, st, 1);
    ap->step_id = col_text(a, st, 2);
    ap->group = col_text(a, st, 3);
    ap->request = col_text(a, st, 4);
    const char *status = (const char *)sqlite3_column_text(st, 5);
    if (store_approval_status_parse(status, &ap->status, NULL) != 0)
        return keel_fail(err, KEEL_ECORRUPT, "store %s: approval %s has an unknown status '%s'",
                         q->path, ap->id, status ? status : "(null)");
    ap->decided_by = col_text(a, st, 6);
    ap->comment = col_text(a, st, 7);
    ap->created_ms = sqlite3_column_int64(st, 8);
    ap->expires_ms = sqlite3_column_int64(st, 9);
    ap->decided_ms = sqlite3_column_int64(st, 10);
    return 0;
}

int store_sq_approval_create(struct store *s, const struct store_approval *ap, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_AP_INSERT, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, ap->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, ap->run_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, ap->step_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, ap->group, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 5, ap->request, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 6, ap->created_ms ? ap->created_ms : keel_wall_ms());
        sqlite3_bind_int64(st, 7, ap->expires_ms);
        int src = sqlite3_step(st);
        done_stmt(st);
        if ((src & 0xff) == SQLITE_CONSTRAINT)
            rc = keel_fail(err, KEEL_EEXIST, "an approval with id '%s' already exists", ap->id);
        else if (src != SQLITE_DONE)
            rc = store_sq_fail(q, c->db, src, "creating an approval", err);
    }
    store_sq_writer_put(q);
    return rc;
}

static int approval_read_one(struct sq *q, struct conn *c, const char *id, struct arena *a,
                             struct store_approval *out, struct keel_err *err)
{
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_AP_GET, err);
    if (!st) return err ? err->code : KEEL_EIO;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int src = sqlite3_step(st);
    int rc;
    if (src == SQLITE_ROW)
        rc = store_sq_read_approval(q, st, a, out, err);
    else if (src == SQLITE_DONE)
        rc = keel_fail(err, KEEL_ENOENT,
                       "no approval '%s'; list pending ones with "
                       "`keel approvals`",
                       id);
    else
        rc = store_sq_fail(q, c->db, src, "reading an approval", err);
    done_stmt(st);
    return rc;
}

int store_sq_approval_get(struct store *s, const char *id, struct arena *a,
                          struct store_approval *out, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    int rc = approval_read_one(q, c, id, a, out, err);
    store_sq_reader_put(q, c);
    return rc;
}

int store_sq_approval_list(struct store *s, const struct store_approval_filter *f, struct arena *a,
                           struct store_approval **out, size_t *n, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct buf sql;
    buf_init(&sql);
    buf_puts(&sql, "SELECT " APPROVAL_COLS " FROM approvals WHERE 1");
    store_sq_append_status_in(&sql, f->status_mask, STORE_APPROVAL_STATUS_COUNT,
                              store_sq_approval_status_name_int);
    const char *binds[3];
    int nb = 0;
    if (f->run_id) buf_printf(&sql, " AND run_id = ?%d", nb + 1), binds[nb++] = f->run_id;
    if (f->group) buf_printf(&sql, " AND grp = ?%d", nb + 1), binds[nb++] = f->group;
    if (f->after_id) buf_printf(&sql, " AND id > ?%d", nb + 1), binds[nb++] = f->after_id;
    buf_printf(&sql, " ORDER BY id LIMIT %zu", f->limit);
    return store_sq_list_rows(q, &sql, binds, nb, sizeof **out, store_sq_read_approval_row,
                              "listing approvals", a, (void **)out, n, err);
}

int store_sq_approval_decide(struct store *s, const char *id, enum store_approval_status to,
                             const char *decided_by, const char *comment, int64_t now_ms,
                             struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_AP_DECIDE, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, store_approval_status_name(to), -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, decided_by, -1, SQLITE_STATIC);
        bind_text(st, 4, comment);
        sqlite3_bind_int64(st, 5, now_ms);
        int src = sqlite3_step(st);
        done_stmt(st);
        if (src != SQLITE_DONE) rc = store_sq_fail(q, c->db, src, "deciding an approval", err);
    }
    if (!rc && sqlite3_changes(c->db) == 0) {
        /* Not pending: say why (unknown, or decided earlier and by whom). */
        struct arena a;
        arena_init(&a);
        struct store_approval ap;
        rc = approval_read_one(q, c, id, &a, &ap, err);
        if (!rc)
            rc = keel_fail(err, KEEL_ESTATE,
                           "approval %s was already %s by %s; a decision is "
                           "final",
                           id, store_approval_status_name(ap.status),
                           ap.decided_by ? ap.decided_by : "(unknown)");
        arena_cleanup(&a);
    }
    store_sq_writer_put(q);
    return rc;
}

/* ---- timers ------------------------------------------------------------ */

int store_sq_timer_set(struct store *s, const struct store_timer *t, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_TM_SET, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, t->run_id, -1, SQLITE_STATIC);
        bind_text(st, 3, t->step_id);
        sqlite3_bind_int64(st, 4, t->due_ms);
        bind_text(st, 5, t->payload);
        int src = sqlite3_step(st);
        done_stmt(st);
        if (src != SQLITE_DONE) rc = store_sq_fail(q, c->db, src, "setting a timer", err);
    }
    store_sq_writer_put(q);
    return rc;
}

int store_sq_timer_claim_due(struct store *s, int64_t now_ms, const char *owner, int64_t claim_ms,
                             size_t max, struct arena *a, struct store_timer **out, size_t *n,
                             struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    struct store_timer *ts = NULL;
    size_t count = 0, cap = 0;
    int rc = store_sq_exec_stmt(q, c, ST_BEGIN, err);
    sqlite3_stmt *st = rc ? NULL : store_sq_stmt(q, c, ST_TM_DUE, err);
    if (!rc && !st) rc = err ? err->code : KEEL_EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, now_ms);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
        int src;
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            ts = store_sq_grow(a, ts, count, &cap, sizeof *ts);
            struct store_timer *t = &ts[count++];
            t->id = col_text(a, st, 0);
            t->run_id = col_text(a, st, 1);
            t->step_id = col_text(a, st, 2);
            t->due_ms = sqlite3_column_int64(st, 3);
            t->payload = col_text(a, st, 4);
            t->claim_owner = arena_strdup(a, owner);
            t->claim_expires_ms = now_ms + claim_ms;
        }
        if (src != SQLITE_DONE) rc = store_sq_fail(q, c->db, src, "finding due timers", err);
        done_stmt(st);
    }
    for (size_t i = 0; !rc && i < count; i++) {
        sqlite3_stmt *u = store_sq_stmt(q, c, ST_TM_CLAIM, err);
        if (!u) {
            rc = err ? err->code : KEEL_EIO;
            break;
        }
        sqlite3_bind_text(u, 1, ts[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_text(u, 2, owner, -1, SQLITE_STATIC);
        sqlite3_bind_int64(u, 3, now_ms + claim_ms);
        int src = sqlite3_step(u);
        done_stmt(u);
        if (src != SQLITE_DONE) rc = store_sq_fail(q, c->db, src, "claiming a timer", err);
    }
    if (!rc) rc = store_sq_exec_stmt(q, c, ST_COMMIT, err);
    if (rc) store_sq_rollback(q, c);
    store_sq_writer_put(q);
    if (!rc) {
        *out = ts;
        *n = count;
    }
    return rc;
}

int store_sq_timer_next_due(struct store *s, int64_t *due_ms, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_TM_NEXT, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
            *due_ms = sqlite3_column_int64(st, 0);
        else if (src == SQLITE_ROW || src == SQLITE_DONE)
            rc = keel_fail(err, KEEL_ENOENT, "no timers are set");
        else
            rc = store_sq_fail(q, c->db, src, "reading the next timer", err);
        done_stmt(st);
    }
    store_sq_reader_put(q, c);
    return rc;
}

/* Runs a one-parameter DELETE on the writer; *changes gets the row count. */
static int delete_by(struct sq *q, enum stmt_id id, const char *key, int64_t ikey, size_t *changes,
                     const char *what, struct keel_err *err)
{
    struct conn *c = store_sq_writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    sqlite3_stmt *st = store_sq_stmt(q, c, id, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        if (key)
            sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        else
            sqlite3_bind_int64(st, 1, ikey);
        int src = sqlite3_step(st);
        done_stmt(st);
        if (src != SQLITE_DONE)
            rc = store_sq_fail(q, c->db, src, what, err);
        else
            *changes = (size_t)sqlite3_changes(c->db);
    }
    store_sq_writer_put(q);
    return rc;
}

int store_sq_timer_delete(struct store *s, const char *id, struct keel_err *err)
{
    size_t n = 0;
    int rc = delete_by(sq_of(s), ST_TM_DELETE, id, 0, &n, "deleting a timer", err);
    if (!rc && n == 0) rc = keel_fail(err, KEEL_ENOENT, "no timer '%s'", id);
    return rc;
}

int store_sq_timer_delete_run(struct store *s, const char *run_id, size_t *deleted,
                              struct keel_err *err)
{
    return delete_by(sq_of(s), ST_TM_DELETE_RUN, run_id, 0, deleted, "deleting a run's timers",
                     err);
}

/* ---- idempotency ------------------------------------------------------- */

int store_sq_idem_put(struct store *s, const char *key, const char *run_id, const char *result,
                      int64_t expires_ms, struct arena *a, const char **existing,
                      struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    int64_t now = keel_wall_ms();
    int rc = store_sq_exec_stmt(q, c, ST_BEGIN, err);
    sqlite3_stmt *st = rc ? NULL : store_sq_stmt(q, c, ST_IDEM_GET, err);
    if (!rc && !st) rc = err ? err->code : KEEL_EIO;
    if (st) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            int64_t exp = sqlite3_column_int64(st, 1);
            if (exp == 0 || exp > now) {
                if (existing) *existing = col_text(a, st, 0);
                rc = keel_fail(err, KEEL_EEXIST, "idempotency key '%s' is already recorded", key);
            }
        } else if (src != SQLITE_DONE) {
            rc = store_sq_fail(q, c->db, src, "reading an idempotency record", err);
        }
        done_stmt(st);
    }
    if (!rc) {
        st = store_sq_stmt(q, c, ST_IDEM_PUT, err);
        if (!st) rc = err ? err->code : KEEL_EIO;
        if (st) {
            sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
            bind_text(st, 2, run_id);
            sqlite3_bind_text(st, 3, result, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 4, now);
            sqlite3_bind_int64(st, 5, expires_ms);
            int src = sqlite3_step(st);
            done_stmt(st);
            if (src != SQLITE_DONE)
                rc = store_sq_fail(q, c->db, src, "recording an idempotency key", err);
        }
    }
    if (!rc) rc = store_sq_exec_stmt(q, c, ST_COMMIT, err);
    if (rc) store_sq_rollback(q, c);
    store_sq_writer_put(q);
    return rc;
}

int store_sq_idem_get(struct store *s, const char *key, int64_t now_ms, struct arena *a,
                      const char **result, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_IDEM_GET, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            int64_t exp = sqlite3_column_int64(st, 1);
            if (exp != 0 && exp <= now_ms)
                rc = keel_fail(err, KEEL_ENOENT, "idempotency key '%s' has expired", key);
            else
                *result = col_text(a, st, 0);
        } else if (src == SQLITE_DONE) {
            rc = keel_fail(err, KEEL_ENOENT, "no idempotency record for key '%s'", key);
        } else {
            rc = store_sq_fail(q, c->db, src, "reading an idempotency record", err);
        }
        done_stmt(st);
    }
    store_sq_reader_put(q, c);
    return rc;
}

int store_sq_idem_expire(struct store *s, int64_t now_ms, size_t *deleted, struct keel_err *err)
{
    return delete_by(sq_of(s), ST_IDEM_EXPIRE, NULL, now_ms, deleted,
                     "expiring idempotency records", err);
}

/* ---- key/value --------------------------------------------------------- */

int store_sq_kv_put(struct store *s, const char *key, const char *value, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_writer_get(q, err);
    if (!c) return err ? err->code : KEEL_EINVAL;
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_KV_PUT, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, keel_wall_ms());
        int src = sqlite3_step(st);
        done_stmt(st);
        if (src != SQLITE_DONE) rc = store_sq_fail(q, c->db, src, "writing a key", err);
    }
    store_sq_writer_put(q);
    return rc;
}

int store_sq_kv_get(struct store *s, const char *key, struct arena *a, const char **value,
                    struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_KV_GET, err);
    int rc = st ? 0 : (err ? err->code : KEEL_EIO);
    if (st) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            *value = col_text(a, st, 0);
        else if (src == SQLITE_DONE)
            rc = keel_fail(err, KEEL_ENOENT, "no key '%s' in the store", key);
        else
            rc = store_sq_fail(q, c->db, src, "reading a key", err);
        done_stmt(st);
    }
    store_sq_reader_put(q, c);
    return rc;
}

int store_sq_kv_delete(struct store *s, const char *key, struct keel_err *err)
{
    size_t n = 0;
    int rc = delete_by(sq_of(s), ST_KV_DELETE, key, 0, &n, "deleting a key", err);
    if (!rc && n == 0) rc = keel_fail(err, KEEL_ENOENT, "no key '%s' in the store", key);
    return rc;
}
