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
 * but the workflow — grouped per run, plus one runs probe per run for the
 * workflow (see store_sq_usage_sum).
 *
 * Invariants: a model_calls row exists iff its model.response event does
 * (same transaction, and the backfill ran in the migration's transaction);
 * its values are what store_usage_of derives from the event's payload and
 * actor; the rows are never updated (events are immutable).
 */
#include "sqlite_internal.h"

#include "../json/json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- keel_fsum: Neumaier-compensated SUM ------------------------------- */

/* SQLite 3.40's SUM of reals adds them plainly, so the result depends on
 * the scan order and drifts with the number of terms: over bench/usage's
 * kind of costs (~$0.0011 each) it is 5e-14 dollars off after 4,000 terms,
 * 1.5e-12 after 40,000 and 1.3e-11 after 100,000 — past the 1e-12 that
 * reports round to, so a plain SUM would change their answers.
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
                                        SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                                        NULL, fsum_step, fsum_final, NULL);
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
    if (rc != SQLITE_DONE)
        return store_sq_fail(q, c->db, rc, "inserting a model call's usage", err);
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

/* One query does the scan for every grouping.  It sums the window's calls
 * per (run, agent, model) in SQL — a range scan of the covering time index
 * feeding one GROUP BY — and joins runs once per such row rather than once
 * per call; the groupings are then folded from those rows here, in run
 * order, so "distinct runs" is a comparison with the previous row's run.
 * Measured on bench/usage's store (4,000 calls of 1,000 runs): 6 ms, where
 * one GROUP BY ... count(DISTINCT run_id) query per grouping (each its own
 * scan, join and DISTINCT b-tree) took 15-20 ms for the four a report
 * needs.  ?3 is the unknown name an empty name becomes. */

/* The per-(run, agent, model) sums over the window, grouped in SQL. */
static const char usage_inner[] =
    "SELECT run_id, coalesce(nullif(agent, ''), ?3) AS agent, "
    "coalesce(nullif(model, ''), ?3) AS model, count(*) AS calls, "
    "sum(input_tokens) AS input, sum(output_tokens) AS output, keel_fsum(cost_usd) AS cost "
    "FROM model_calls INDEXED BY model_calls_by_time WHERE time_ms >= ?1 AND time_ms < ?2";

static void usage_sql(struct buf *b, const struct store_usage_filter *f)
{
    buf_puts(b, "SELECT g.run_id, coalesce(nullif(r.workflow, ''), ?3), g.agent, g.model, "
                "g.calls, g.input, g.output, g.cost FROM (");
    buf_puts(b, usage_inner);
    if (f->agent) buf_puts(b, " AND coalesce(nullif(agent, ''), ?3) = ?5");
    buf_puts(b, " GROUP BY run_id, 2, 3) AS g JOIN runs r ON r.id = g.run_id");
    if (f->workflow) buf_puts(b, " WHERE r.workflow = ?4");
    buf_puts(b, " ORDER BY g.run_id");
}

/* A group being summed. */
struct acc {
    struct store_usage_sum s;
    double carry;    /* Neumaier: s.cost_usd + carry is the sum */
    size_t last_run; /* ordinal of the last run counted in s.runs */
};

struct fold {
    struct arena *a;
    struct strmap groups; /* grouping + key -> index + 1 in accs */
    struct acc *accs;
    size_t n, cap;
    struct buf key;
};

static void add_cost(struct acc *g, double x)
{
    double t = g->s.cost_usd + x;
    if (fabs(g->s.cost_usd) >= fabs(x))
        g->carry += (g->s.cost_usd - t) + x;
    else
        g->carry += (x - t) + g->s.cost_usd;
    g->s.cost_usd = t;
}

/* The group of grouping g for names (workflow, agent, model), created if
 * new.  NULL with err set past STORE_USAGE_ROWS_MAX or out of memory. */
static struct acc *group_of(struct fold *fo, unsigned g, const char *const names[3],
                            struct keel_err *err)
{
    static const unsigned bits[3] = {STORE_USAGE_BY_WORKFLOW, STORE_USAGE_BY_AGENT,
                                     STORE_USAGE_BY_MODEL};
    /* The key: the grouping, then each of its names with its length, so
     * no two different name lists make the same key. */
    fo->key.len = 0;
    buf_printf(&fo->key, "%u", g);
    for (int d = 0; d < 3; d++)
        if (g & bits[d]) buf_printf(&fo->key, "|%zu:%s", strlen(names[d]), names[d]);
    uintptr_t at = (uintptr_t)strmap_get(&fo->groups, fo->key.data, fo->key.len);
    if (at) return &fo->accs[at - 1];
    if (fo->n == STORE_USAGE_ROWS_MAX) {
        keel_fail(err, KEEL_ELIMIT,
                  "usage query: more than %d groups; narrow the window or filter by workflow or "
                  "agent",
                  STORE_USAGE_ROWS_MAX);
        return NULL;
    }
    if (fo->n == fo->cap) {
        size_t cap = fo->cap ? 2 * fo->cap : 16;
        struct acc *v = realloc(fo->accs, cap * sizeof *v);
        if (!v) {
            keel_fail(err, KEEL_ENOMEM, "out of memory summing model usage");
            return NULL;
        }
        fo->accs = v;
        fo->cap = cap;
    }
    struct acc *c = &fo->accs[fo->n++];
    memset(c, 0, sizeof *c);
    c->s.grouping = g;
    c->s.workflow = g & bits[0] ? arena_strdup(fo->a, names[0]) : NULL;
    c->s.agent = g & bits[1] ? arena_strdup(fo->a, names[1]) : NULL;
    c->s.model = g & bits[2] ? arena_strdup(fo->a, names[2]) : NULL;
    strmap_put(&fo->groups, fo->key.data, fo->key.len, (void *)(uintptr_t)fo->n);
    return c;
}

static const char *text_or_empty(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? t : "";
}

/* Folds the rows of st (per run, agent and model, in run order) into the
 * groups of every grouping of f. */
static int fold_rows(struct sq *q, struct conn *c, sqlite3_stmt *st,
                     const struct store_usage_filter *f, struct fold *fo, struct keel_err *err)
{
    /* Grouping 0 has its row even when nothing matched. */
    static const char *const none[3] = {"", "", ""};
    for (size_t k = 0; k < f->n_groupings; k++)
        if (f->groupings[k] == 0 && !group_of(fo, 0, none, err)) return err ? err->code : KEEL_EIO;
    char last[STORE_ID_MAX + 1] = "";
    size_t run = 0;
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        const char *run_id = text_or_empty(st, 0);
        if (run == 0 || strcmp(run_id, last) != 0) {
            run++;
            snprintf(last, sizeof last, "%s", run_id);
        }
        const char *names[3] = {text_or_empty(st, 1), text_or_empty(st, 2), text_or_empty(st, 3)};
        int64_t calls = sqlite3_column_int64(st, 4), in = sqlite3_column_int64(st, 5),
                out = sqlite3_column_int64(st, 6);
        double cost = sqlite3_column_double(st, 7);
        for (size_t k = 0; k < f->n_groupings; k++) {
            struct acc *g = group_of(fo, f->groupings[k], names, err);
            if (!g) return err ? err->code : KEEL_EIO;
            if (g->last_run != run) {
                g->last_run = run;
                g->s.runs++;
            }
            g->s.calls += calls;
            g->s.input_tokens += in;
            g->s.output_tokens += out;
            add_cost(g, cost);
        }
    }
    if (src != SQLITE_DONE) return store_sq_fail(q, c->db, src, "summing model usage", err);
    return 0;
}

int store_sq_usage_sum(struct store *s, const struct store_usage_filter *f, struct arena *a,
                       struct store_usage_sum **out, size_t *n, struct keel_err *err)
{
    struct sq *q = sq_of(s);
    struct conn *c = store_sq_reader_get(q, err);
    if (!c) return err ? err->code : KEEL_EIO;
    struct fold fo = {.a = a};
    strmap_init(&fo.groups);
    buf_init(&fo.key);
    struct buf sql;
    buf_init(&sql);
    usage_sql(&sql, f);
    sqlite3_stmt *st = NULL;
    int rc = 0, src = sqlite3_prepare_v2(c->db, sql.data, -1, &st, NULL);
    buf_cleanup(&sql);
    if (src != SQLITE_OK) {
        rc = store_sq_fail(q, c->db, src, "preparing a usage query", err);
    } else {
        sqlite3_bind_int64(st, 1, f->since_ms);
        sqlite3_bind_int64(st, 2, f->until_ms);
        sqlite3_bind_text(st, 3, f->unknown, -1, SQLITE_STATIC);
        bind_text(st, 4, f->workflow);
        bind_text(st, 5, f->agent);
        rc = fold_rows(q, c, st, f, &fo, err); /* one statement: one consistent read */
    }
    sqlite3_finalize(st);
    store_sq_reader_put(q, c);
    if (!rc) {
        struct store_usage_sum *rows = fo.n ? arena_alloc(a, fo.n * sizeof *rows) : NULL;
        for (size_t i = 0; i < fo.n; i++) {
            rows[i] = fo.accs[i].s;
            rows[i].cost_usd += fo.accs[i].carry;
        }
        *out = rows;
        *n = fo.n;
    }
    free(fo.accs);
    buf_cleanup(&fo.key);
    strmap_cleanup(&fo.groups);
    return rc;
}
