/*
 * sqlite_usage.c — model usage in the SQLite store: the model_calls rows
 * (one per model.response event, written by the group commit in the same
 * transaction as the event, backfilled by migration 4), the compensated sum
 * keel_fsum every connection knows, and store_usage_sum's GROUP BY queries.
 *
 * Why a table: summing usage by reading every run's journal and parsing
 * each model.response payload cost ~0.5 ms per run (a minute for 100,000
 * runs).  A model_calls row holds exactly what a usage report needs (time,
 * agent, model, tokens, cost; the workflow comes from runs), so a query is
 * a range scan of the index on time_ms — covering: it holds every column
 * but the workflow — plus one runs probe per call for the workflow.
 *
 * Invariants: a model_calls row exists iff its model.response event does
 * (same transaction, and the backfill ran in the migration's transaction);
 * its values are what store_usage_of derives from the event's payload and
 * actor; the rows are never updated (events are immutable).
 */
#include "sqlite_internal.h"

#include "../json/json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- keel_fsum: Neumaier-compensated SUM ------------------------------- */

/* SQLite 3.40's SUM of reals adds them plainly, so the result depends on
 * the scan order and drifts with the number of terms (over 100,000 costs
 * of ~$0.001 the error reaches 1e-12 dollars, the precision reports show).
 * keel_fsum carries the lost low-order part (Neumaier's variant of Kahan),
 * so the sum is exact to the last bit or so in any order. */
struct fsum {
    double sum, carry;
};

static void fsum_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    struct fsum *f = sqlite3_aggregate_context(ctx, sizeof *f);
    if (!f) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
    double x = sqlite3_value_double(argv[0]);
    double t = f->sum + x;
    if (fabs(f->sum) >= fabs(x))
        f->carry += (f->sum - t) + x;
    else
        f->carry += (x - t) + f->sum;
    f->sum = t;
}

static void fsum_final(sqlite3_context *ctx)
{
    struct fsum *f = sqlite3_aggregate_context(ctx, 0);
    sqlite3_result_double(ctx, f ? f->sum + f->carry : 0.0);
}

int store_sq_register_functions(struct sq *q, sqlite3 *db, struct keel_err *err)
{
    int rc = sqlite3_create_function_v2(db, "keel_fsum", 1,
                                        SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                        NULL, NULL, fsum_step, fsum_final, NULL);
    if (rc != SQLITE_OK) return store_sq_fail(q, db, rc, "registering keel_fsum", err);
    return 0;
}

/* ---- rows ---------------------------------------------------------------- */

int store_sq_usage_insert(struct sq *q, struct conn *c, const char *run_id, int64_t seq,
                          int64_t time_ms, const struct store_usage *u, struct keel_err *err)
{
    sqlite3_stmt *st = store_sq_stmt(q, c, ST_MC_INSERT, err);
    if (!st) return err ? err->code : KEEL_EIO;
    sqlite3_bind_text(st, 1, run_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_int64(st, 3, time_ms);
    sqlite3_bind_text(st, 4, u->agent, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, u->model, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, u->input_tokens);
    sqlite3_bind_int64(st, 7, u->output_tokens);
    sqlite3_bind_double(st, 8, u->cost_usd);
    int rc = sqlite3_step(st);
    done_stmt(st);
    if (rc != SQLITE_DONE) return store_sq_fail(q, c->db, rc, "inserting a model call's usage", err);
    return 0;
}

/* Migration 4's backfill: a model_calls row for every model.response event
 * already stored, derived from its payload by store_usage_of exactly as the
 * append path derives it (so an upgraded store answers as the journal scan
 * did).  A payload that is not a JSON object gets no row: the scan skipped
 * it too.  Runs inside the migration's transaction. */
int store_sq_usage_backfill(struct sq *q, struct conn *c, struct keel_err *err)
{
    static const char sql[] = "SELECT run_id, seq, time_ms, actor, payload FROM events "
                              "WHERE kind = 'model.response' ORDER BY id";
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
    if (src != SQLITE_OK) return store_sq_fail(q, c->db, src, "reading model.response events", err);
    struct arena scratch;
    arena_init(&scratch);
    int rc = 0;
    int64_t rows = 0, skipped = 0;
    while (!rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
        arena_reset(&scratch);
        const char *payload = (const char *)sqlite3_column_text(st, 4);
        size_t len = (size_t)sqlite3_column_bytes(st, 4);
        struct json_value *v = NULL;
        if (!payload || json_parse(&scratch, payload, len, NULL, &v, NULL) != 0 ||
            !json_is(v, JSON_OBJECT)) {
            skipped++;
            continue;
        }
        struct store_usage u;
        store_usage_of(v, (const char *)sqlite3_column_text(st, 3), &u);
        rc = store_sq_usage_insert(q, c, (const char *)sqlite3_column_text(st, 0),
                                   sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2), &u,
                                   err);
        rows++;
    }
    if (!rc && src != SQLITE_DONE)
        rc = store_sq_fail(q, c->db, src, "reading model.response events", err);
    sqlite3_finalize(st);
    arena_cleanup(&scratch);
    if (!rc && (rows || skipped))
        keel_log(KEEL_LOG_INFO,
                 "store %s: indexed the usage of %lld model calls (%lld payloads not objects, "
                 "skipped)",
                 q->path, (long long)rows, (long long)skipped);
    return rc;
}

/* ---- store_usage_sum ------------------------------------------------------ */

/* The key of each dimension, in STORE_USAGE_BY_* bit order; ?3 is the
 * unknown name that an empty name becomes. */
static const struct {
    unsigned bit;
    const char *expr;
} dims[] = {
    {STORE_USAGE_BY_WORKFLOW, "coalesce(nullif(r.workflow, ''), ?3)"},
    {STORE_USAGE_BY_AGENT, "coalesce(nullif(m.agent, ''), ?3)"},
    {STORE_USAGE_BY_MODEL, "coalesce(nullif(m.model, ''), ?3)"},
};

/* The query of one grouping.  CROSS JOIN keeps model_calls the outer
 * table, read through its time index: the window bounds the work even when
 * a workflow filter would tempt the planner to walk that workflow's whole
 * history instead. */
static void grouping_sql(struct buf *b, const struct store_usage_filter *f, unsigned g)
{
    buf_puts(b, "SELECT ");
    for (size_t i = 0; i < KEEL_ARRAY_LEN(dims); i++)
        buf_printf(b, "%s, ", g & dims[i].bit ? dims[i].expr : "NULL");
    buf_puts(b, "count(DISTINCT m.run_id), count(*), coalesce(sum(m.input_tokens), 0), "
                "coalesce(sum(m.output_tokens), 0), coalesce(keel_fsum(m.cost_usd), 0) "
                "FROM model_calls m INDEXED BY model_calls_by_time CROSS JOIN runs r "
                "ON r.id = m.run_id WHERE m.time_ms >= ?1 AND m.time_ms < ?2");
    if (f->workflow) buf_puts(b, " AND r.workflow = ?4");
    if (f->agent) buf_printf(b, " AND %s = ?5", dims[1].expr);
    if (g) {
        buf_puts(b, " GROUP BY ");
        int k = 0;
        for (size_t i = 0; i < KEEL_ARRAY_LEN(dims); i++)
            if (g & dims[i].bit) buf_printf(b, "%s%zu", k++ ? ", " : "", i + 1);
    }
}

/* Runs one grouping's query on c, appending its rows to *rows. */
static int run_grouping(struct sq *q, struct conn *c, const struct store_usage_filter *f,
                        unsigned g, struct arena *a, struct store_usage_sum **rows, size_t *n,
                        size_t *cap, struct keel_err *err)
{
    struct buf sql;
    buf_init(&sql);
    grouping_sql(&sql, f, g);
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(c->db, sql.data, -1, &st, NULL);
    buf_cleanup(&sql);
    if (src != SQLITE_OK) return store_sq_fail(q, c->db, src, "preparing a usage query", err);
    sqlite3_bind_int64(st, 1, f->since_ms);
    sqlite3_bind_int64(st, 2, f->until_ms);
    sqlite3_bind_text(st, 3, f->unknown, -1, SQLITE_STATIC);
    bind_text(st, 4, f->workflow);
    bind_text(st, 5, f->agent);
    int rc = 0;
    while (!rc && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == STORE_USAGE_ROWS_MAX) {
            rc = keel_fail(err, KEEL_ELIMIT,
                           "usage query: more than %d groups; narrow the window or filter by "
                           "workflow or agent",
                           STORE_USAGE_ROWS_MAX);
            break;
        }
        *rows = store_sq_grow(a, *rows, *n, cap, sizeof **rows);
        struct store_usage_sum *r = &(*rows)[(*n)++];
        memset(r, 0, sizeof *r);
        r->grouping = g;
        r->workflow = col_text(a, st, 0);
        r->agent = col_text(a, st, 1);
        r->model = col_text(a, st, 2);
        r->runs = sqlite3_column_int64(st, 3);
        r->calls = sqlite3_column_int64(st, 4);
        r->input_tokens = sqlite3_column_int64(st, 5);
        r->output_tokens = sqlite3_column_int64(st, 6);
        r->cost_usd = sqlite3_column_double(st, 7);
    }
    if (!rc && src != SQLITE_DONE) rc = store_sq_fail(q, c->db, src, "summing model usage", err);
    sqlite3_finalize(st);
    return rc;
}

int store_sq_usage_sum(struct store *s, const struct store_usage_filter *f, struct arena *a,
                       struct store_usage_sum **out, size_t *n, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    /* One read transaction: every grouping sums the same calls, even while
     * the committer appends more. */
    bool began = false;
    int rc = 0;
    if (sqlite3_get_autocommit(c->db)) {
        rc = store_sq_exec_stmt(q, c, ST_BEGIN_READ, err);
        began = rc == 0;
    }
    struct store_usage_sum *rows = NULL;
    size_t count = 0, cap = 0;
    for (size_t i = 0; !rc && i < f->n_groupings; i++)
        rc = run_grouping(q, c, f, f->groupings[i], a, &rows, &count, &cap, err);
    if (began) store_sq_exec_stmt(q, c, ST_COMMIT, NULL);
    store_sq_reader_put(q, c);
    if (!rc) {
        *out = rows;
        *n = count;
    }
    return rc;
}
