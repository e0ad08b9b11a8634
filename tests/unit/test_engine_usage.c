/*
 * test_engine_usage.c — engine_usage and engine_usage_time on a store
 * written by hand: runs with chosen statuses and times, journals with
 * model.response events at chosen milliseconds, so the window bounds
 * (since inclusive, until exclusive), the run pruning (a run that has not
 * ended counts whatever its updated time), the filters and the sums are
 * checked exactly; a store upgraded from schema 3 (calls only in the
 * journals) answers as one written since.  The end-to-end path (real agent runs, the API, the
 * CLI) is tests/integration/usage.py.
 */
#include "engine/engine.h"
#include "journal/journal.h"
#include "store/store.h"
#include "test.h"

#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define T0 1700000000000LL /* 2023-11-14T22:13:20Z */

static const char *hash64 = "0000000000000000000000000000000000000000000000000000000000000001";

struct call {
    const char *agent; /* NULL: left out of the payload (the actor names it) */
    const char *model;
    int64_t in, out;
    double cost;
    int64_t t;
    bool error; /* a failed call: no usage, no cost */
};

static void put_run(struct store *s, const char *id, const char *wf, enum store_run_status st,
                    int64_t created, int64_t updated, const struct call *calls, size_t n)
{
    struct keel_err err;
    keel_err_clear(&err);
    struct store_run r = {.id = id,
                          .workflow = wf,
                          .workflow_hash = hash64,
                          .status = st,
                          .input = "{}",
                          .identity = "admin",
                          .created_ms = created,
                          .updated_ms = updated};
    REQUIRE(store_run_create(s, &r, &err) == 0);
    struct journal_writer *w;
    REQUIRE(journal_writer_open(s, id, &w, &err) == 0);
    struct arena a;
    arena_init(&a);
    struct json_value *p = json_object(&a);
    json_object_setc(&a, p, "workflow", json_cstr(&a, wf));
    json_object_setc(&a, p, "workflow_hash", json_cstr(&a, hash64));
    json_object_setc(&a, p, "input", json_object(&a));
    CHECK(journal_writer_append(w, "run.started", "system", p, created, NULL, &err) == 0);
    for (size_t i = 0; i < n; i++) {
        const struct call *c = &calls[i];
        p = json_object(&a);
        json_object_setc(&a, p, "step", json_cstr(&a, "ask"));
        json_object_setc(&a, p, "call_id", json_cstr(&a, arena_printf(&a, "ask/0/m%zu", i)));
        json_object_setc(&a, p, "model", json_cstr(&a, c->model));
        if (c->agent) json_object_setc(&a, p, "agent", json_cstr(&a, c->agent));
        if (c->error) {
            struct json_value *e = json_object(&a);
            json_object_setc(&a, e, "code", json_cstr(&a, "EPROTO"));
            json_object_setc(&a, e, "message", json_cstr(&a, "not JSON"));
            json_object_setc(&a, p, "error", e);
        } else {
            struct json_value *u = json_object(&a);
            json_object_setc(&a, u, "input_tokens", json_int(&a, c->in));
            json_object_setc(&a, u, "output_tokens", json_int(&a, c->out));
            json_object_setc(&a, p, "usage", u);
            json_object_setc(&a, p, "cost_usd", json_double(&a, c->cost));
        }
        const char *actor = arena_printf(&a, "agent:%s", c->agent ? c->agent : "support/triage");
        CHECK(journal_writer_append(w, "model.response", actor, p, c->t, NULL, &err) == 0);
        /* An unrelated event carrying usage-like fields must not count. */
        struct json_value *q = json_object(&a);
        json_object_setc(&a, q, "step", json_cstr(&a, "ask"));
        json_object_setc(&a, q, "attempt", json_int(&a, 1));
        json_object_setc(&a, q, "usage",
                         json_get(p, "usage") ? json_get(p, "usage") : json_object(&a));
        CHECK(journal_writer_append(w, "step.started", "system", q, c->t, NULL, &err) == 0);
    }
    journal_writer_free(w);
    arena_cleanup(&a);
}


/* The fixture: four runs over two workflows, two agents, two models. */
static const struct call r1[] = {
    {"support/triage", "small", 100, 10, 0.00012, T0 + 10, false},
    {"support/drafter", "big", 200, 20, 0.0009, T0 + 20, false},
};
static const struct call r2[] = {
    {"support/drafter", "small", 50, 5, 0.00006, T0 + 1010, false},
    {"support/drafter", "small", 0, 0, 0, T0 + 1020, true},
};
static const struct call r3[] = {
    /* a run parked long ago, calling again later */
    {"support/triage", "small", 300, 30, 0.00036, T0 + 2000, false},
};
static const struct call r4[] = {
    /* agent only in the actor */
    {NULL, "small", 7, 3, 0.000013, T0 + 5050, false},
};

/* The five runs every usage test reads (r1-r4 above; run_5 made no call). */
static void put_runs(struct store *s)
{
    put_run(s, "run_1", "triage", STORE_RUN_SUCCEEDED, T0, T0 + 50, r1, 2);
    put_run(s, "run_2", "draft", STORE_RUN_SUCCEEDED, T0 + 1000, T0 + 1100, r2, 2);
    put_run(s, "run_3", "triage", STORE_RUN_NEEDS_RECONCILE, T0 - 100000, T0 - 99000, r3, 1);
    put_run(s, "run_4", "triage", STORE_RUN_FAILED, T0 + 5000, T0 + 5100, r4, 1);
    put_run(s, "run_5", "draft", STORE_RUN_SUCCEEDED, T0 + 6000, T0 + 6001, NULL, 0);
}

static char *home;
static struct engine *eng;

/* At exit, whichever tests ran: the engine stops, the folder goes. */
static void cleanup(void)
{
    engine_stop(eng);
    eng = NULL;
    if (!home) return;
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", home);
    free(home);
    home = NULL;
}

static struct engine *fixture(void)
{
    if (eng) return eng;
    char tmpl[] = "/tmp/keel-usage-XXXXXX";
    home = strdup(mkdtemp(tmpl));
    atexit(cleanup);
    char uri[4200];
    snprintf(uri, sizeof uri, "sqlite:%s/keel.db", home);
    struct store *s;
    struct keel_err err;
    keel_err_clear(&err);
    if (store_open(uri, NULL, &s, &err)) {
        fprintf(stderr, "store_open: %s\n", err.msg);
        return NULL;
    }
    put_runs(s);
    store_close(s);
    struct engine_opts o = {.data_dir = home, .workers = 1};
    if (engine_start(&o, &eng, &err)) {
        fprintf(stderr, "engine_start: %s\n", err.msg);
        return NULL;
    }
    return eng;
}

static struct json_value *query(struct arena *a, int64_t since, int64_t until, const char *wf,
                                const char *agent)
{
    struct engine_usage_query q = {since, until, wf, agent};
    struct json_value *out = NULL;
    struct keel_err err;
    keel_err_clear(&err);
    if (engine_usage(fixture(), &q, a, &out, &err)) {
        fprintf(stderr, "engine_usage: %s\n", err.msg);
        return NULL;
    }
    return out;
}

static double cost_of(const struct json_value *o)
{
    const struct json_value *v = json_get(o, "cost_usd");
    return json_is(v, JSON_NUMBER) ? v->u.n.d : -1;
}

static bool near(double a, double b)
{
    return fabs(a - b) <= 1e-15 + 1e-12 * fabs(b);
}

/* Checks one row (or the totals object). */
#define CHECK_SUMS(o, runs, calls, in, out, cost)                                                  \
    do {                                                                                           \
        const struct json_value *o_ = (o);                                                         \
        CHECK_INT(json_get_int(o_, "runs", -1), runs);                                             \
        CHECK_INT(json_get_int(o_, "model_calls", -1), calls);                                     \
        CHECK_INT(json_get_int(o_, "input_tokens", -1), in);                                       \
        CHECK_INT(json_get_int(o_, "output_tokens", -1), out);                                     \
        CHECK(near(cost_of(o_), cost));                                                            \
    } while (0)

static const struct json_value *row(const struct json_value *u, const char *group, size_t i)
{
    const struct json_value *g = json_get(u, group);
    return json_is(g, JSON_ARRAY) && i < g->len ? g->u.items[i] : NULL;
}

static size_t rows(const struct json_value *u, const char *group)
{
    const struct json_value *g = json_get(u, group);
    return json_is(g, JSON_ARRAY) ? g->len : 999;
}

TEST(usage_all_time)
{
    struct arena a;
    arena_init(&a);
    struct json_value *u = query(&a, 0, 0, NULL, NULL);
    REQUIRE(u);
    CHECK(json_is(json_get(u, "since"), JSON_NULL));
    CHECK(json_is(json_get(u, "until"), JSON_STRING));
    double total = 0.00012 + 0.0009 + 0.00006 + 0.00036 + 0.000013;
    CHECK_SUMS(u, 4, 6, 657, 68, total);
    /* By workflow, by cost: triage (runs 1, 3, 4), then draft (run 2). */
    REQUIRE(rows(u, "by_workflow") == 2);
    CHECK_STR(json_get_str(row(u, "by_workflow", 0), "workflow", ""), "triage");
    CHECK_SUMS(row(u, "by_workflow", 0), 3, 4, 607, 63, 0.00012 + 0.0009 + 0.00036 + 0.000013);
    CHECK_STR(json_get_str(row(u, "by_workflow", 1), "workflow", ""), "draft");
    CHECK_SUMS(row(u, "by_workflow", 1), 1, 2, 50, 5, 0.00006);
    /* By agent: the drafter spent more (0.00096 vs 0.000493). */
    REQUIRE(rows(u, "by_agent") == 2);
    CHECK_STR(json_get_str(row(u, "by_agent", 0), "agent", ""), "support/drafter");
    CHECK_SUMS(row(u, "by_agent", 0), 2, 3, 250, 25, 0.0009 + 0.00006);
    CHECK_STR(json_get_str(row(u, "by_agent", 1), "agent", ""), "support/triage");
    CHECK_SUMS(row(u, "by_agent", 1), 3, 3, 407, 43, 0.00012 + 0.00036 + 0.000013);
    /* By model: big (one call) costs more than all of small. */
    REQUIRE(rows(u, "by_model") == 2);
    CHECK_STR(json_get_str(row(u, "by_model", 0), "model", ""), "big");
    CHECK_SUMS(row(u, "by_model", 0), 1, 1, 200, 20, 0.0009);
    CHECK_STR(json_get_str(row(u, "by_model", 1), "model", ""), "small");
    CHECK_SUMS(row(u, "by_model", 1), 4, 5, 457, 48, 0.00012 + 0.00006 + 0.00036 + 0.000013);
    arena_cleanup(&a);
}

TEST(usage_window_bounds)
{
    struct arena a;
    arena_init(&a);
    /* [T0+10, T0+20): the first call of run 1 only (since inclusive,
     * until exclusive). */
    struct json_value *u = query(&a, T0 + 10, T0 + 20, NULL, NULL);
    REQUIRE(u);
    CHECK_SUMS(u, 1, 1, 100, 10, 0.00012);
    CHECK_STR(json_get_str(u, "since", ""), "2023-11-14T22:13:20.010Z");
    CHECK_STR(json_get_str(u, "until", ""), "2023-11-14T22:13:20.020Z");
    /* [T0+11, T0+21): the second only. */
    u = query(&a, T0 + 11, T0 + 21, NULL, NULL);
    REQUIRE(u);
    CHECK_SUMS(u, 1, 1, 200, 20, 0.0009);
    /* From T0+1500: run 3 (not ended, its updated time long before the
     * window) and run 4. */
    u = query(&a, T0 + 1500, 0, NULL, NULL);
    REQUIRE(u);
    CHECK_SUMS(u, 2, 2, 307, 33, 0.00036 + 0.000013);
    CHECK_STR(json_get_str(row(u, "by_workflow", 0), "workflow", ""), "triage");
    CHECK_INT(rows(u, "by_workflow"), 1);
    /* A window with no calls: zeros and empty lists. */
    u = query(&a, T0 + 3000, T0 + 5000, NULL, NULL);
    REQUIRE(u);
    CHECK_SUMS(u, 0, 0, 0, 0, 0);
    CHECK_INT(rows(u, "by_workflow"), 0);
    CHECK_INT(rows(u, "by_agent"), 0);
    CHECK_INT(rows(u, "by_model"), 0);
    /* Before anything happened. */
    u = query(&a, 1, T0 - 200000, NULL, NULL);
    REQUIRE(u);
    CHECK_SUMS(u, 0, 0, 0, 0, 0);
    arena_cleanup(&a);
}

TEST(usage_filters)
{
    struct arena a;
    arena_init(&a);
    struct json_value *u = query(&a, 0, 0, "draft", NULL);
    REQUIRE(u);
    CHECK_SUMS(u, 1, 2, 50, 5, 0.00006);
    CHECK_STR(json_get_str(u, "workflow", ""), "draft");
    u = query(&a, 0, 0, NULL, "support/drafter");
    REQUIRE(u);
    CHECK_SUMS(u, 2, 3, 250, 25, 0.00096);
    CHECK_INT(rows(u, "by_agent"), 1);
    CHECK_INT(rows(u, "by_workflow"), 2);
    CHECK_STR(json_get_str(u, "agent", ""), "support/drafter");
    /* "agent:" prefix accepted; the actor names the agent when the payload
     * does not (run 4). */
    u = query(&a, 0, 0, "triage", "agent:support/triage");
    REQUIRE(u);
    CHECK_SUMS(u, 3, 3, 407, 43, 0.00012 + 0.00036 + 0.000013);
    CHECK_STR(json_get_str(u, "agent", ""), "support/triage");
    /* Unknown names are not errors (they may be history): zeros. */
    u = query(&a, 0, 0, "nope", NULL);
    REQUIRE(u);
    CHECK_SUMS(u, 0, 0, 0, 0, 0);
    arena_cleanup(&a);
}

TEST(usage_bad_queries)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    keel_err_clear(&err);
    struct json_value *out = NULL;
    struct engine_usage_query q = {.since_ms = T0 + 10, .until_ms = T0 + 10};
    REQUIRE(fixture());
    CHECK_INT(engine_usage(eng, &q, &a, &out, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "is not before until");
    CHECK(out == NULL);
    q = (struct engine_usage_query){.since_ms = -5};
    CHECK_INT(engine_usage(eng, &q, &a, &out, &err), KEEL_EINVAL);
    q = (struct engine_usage_query){.workflow = ""};
    CHECK_INT(engine_usage(eng, &q, &a, &out, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "workflow filter");
    char big[300];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    q = (struct engine_usage_query){.agent = big};
    CHECK_INT(engine_usage(eng, &q, &a, &out, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "agent filter");
    arena_cleanup(&a);
}

TEST(usage_time_forms)
{
    const int64_t now = T0 + 123;
    struct keel_err err;
    keel_err_clear(&err);
    int64_t ms = -1;
    static const struct {
        const char *text;
        int64_t want;
    } ok[] = {
        {"2023-11-14T22:13:20Z", T0},
        {"2023-11-14T22:13:20.5Z", T0 + 500},
        {"2023-11-14T22:13:20.123456789Z", T0 + 123},
        {"2023-11-14t22:13:20z", T0},
        {"2023-11-14 22:13:20Z", T0},
        {"2023-11-15T00:13:20+02:00", T0},
        {"2023-11-14T20:43:20-01:30", T0},
        {"2023-11-14", T0 - (22 * 3600 + 13 * 60 + 20) * 1000LL},
        {"1970-01-01T00:00:00Z", 0},
        {"2024-02-29", 1709164800000LL},
        {"2000-03-01", 951868800000LL},
        {"now", now},
        {"-7d", now - 7 * 86400000LL},
        {"7d", now - 7 * 86400000LL},
        {"36h", now - 36 * 3600000LL},
        {"-1h30m", now - 5400000LL},
        {"500ms", now - 500},
        {"100000d", 0}, /* before the epoch: clamped */
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(ok); i++) {
        ms = -1;
        int rc = engine_usage_time(ok[i].text, now, &ms, &err);
        if (rc || ms != ok[i].want)
            fprintf(stderr, "  %s -> rc %d ms %lld (want %lld): %s\n", ok[i].text, rc,
                    (long long)ms, (long long)ok[i].want, rc ? err.msg : "");
        CHECK(rc == 0 && ms == ok[i].want);
    }
    static const char *const bad[] = {
        "",
        "yesterday",
        "2023-13-01",
        "2023-02-29",
        "2023-11-31",
        "2023-11-14T24:00:00Z",
        "2023-11-14T22:13Z",
        "2023-11-14T22:13:20",
        "2023-11-14T22:13:20.Z",
        "2023-11-14T22:13:20+2:00",
        "2023-11-14T22:13:20+24:00",
        "2023-11-14T22:13:20Zjunk",
        "23-11-14",
        "-",
        "--7d",
        "7x",
        "-now",
        "1969-12-31",
        "2023-11-14T22:61:00Z",
        "0x10",
        "2023-11-14T22:13:20.123456789012345678901234567890123456789012345Z",
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(bad); i++) {
        keel_err_clear(&err);
        ms = 42;
        int rc = engine_usage_time(bad[i], now, &ms, &err);
        if (rc != KEEL_EINVAL)
            fprintf(stderr, "  accepted bad time \"%s\" -> %lld\n", bad[i], (long long)ms);
        CHECK_INT(rc, KEEL_EINVAL);
        CHECK_INT(ms, 42);
        CHECK(strstr(err.msg, "RFC 3339") || strstr(err.msg, "1970"));
    }
    CHECK_INT(engine_usage_time(NULL, now, &ms, &err), KEEL_EINVAL);
}

/* A store written before schema 4 (no model_calls table: its calls exist
 * only as model.response events) answers exactly as a store written since:
 * opening it migrates and backfills the table from the payloads. */
TEST(usage_store_upgraded_from_schema_3)
{
    REQUIRE(fixture());
    char tmpl[] = "/tmp/keel-usage-old-XXXXXX";
    char *dir = mkdtemp(tmpl);
    REQUIRE(dir);
    char path[4200], uri[4300];
    snprintf(path, sizeof path, "%s/keel.db", dir);
    snprintf(uri, sizeof uri, "sqlite:%s", path);
    struct keel_err err;
    keel_err_clear(&err);
    struct store *s;
    REQUIRE(store_open(uri, NULL, &s, &err) == 0);
    put_runs(s);
    store_close(s);
    /* Schema 3, as a Keel before this one left it. */
    sqlite3 *db;
    REQUIRE(sqlite3_open(path, &db) == SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, "BEGIN; DROP TABLE model_calls; PRAGMA user_version=3; COMMIT;",
                           NULL, NULL, NULL),
              SQLITE_OK);
    sqlite3_close(db);

    struct engine_opts o = {.data_dir = dir, .workers = 1};
    struct engine *old = NULL;
    REQUIRE(engine_start(&o, &old, &err) == 0);
    struct arena a;
    arena_init(&a);
    /* The same queries on both stores give the same answers, field for
     * field (a fixed until, so the texts match too). */
    static const struct {
        int64_t since, until;
        const char *wf, *agent;
    } qs[] = {
        {0, T0 + 10000, NULL, NULL},         {T0 + 10, T0 + 20, NULL, NULL},
        {T0 + 1500, T0 + 10000, NULL, NULL}, {0, T0 + 10000, "draft", NULL},
        {0, T0 + 10000, NULL, "support/drafter"},
        {0, T0 + 10000, "triage", "agent:support/triage"},
    };
    for (size_t i = 0; i < KEEL_ARRAY_LEN(qs); i++) {
        struct json_value *want = query(&a, qs[i].since, qs[i].until, qs[i].wf, qs[i].agent);
        struct engine_usage_query q = {qs[i].since, qs[i].until, qs[i].wf, qs[i].agent};
        struct json_value *got = NULL;
        CHECK_INT(engine_usage(old, &q, &a, &got, &err), 0);
        REQUIRE(want && got);
        if (!json_equal(want, got)) fprintf(stderr, "  query %zu differs\n", i);
        CHECK(json_equal(want, got));
    }
    /* And the sums are the fixture's (not merely equal to each other). */
    struct engine_usage_query q = {0, T0 + 10000, NULL, NULL};
    struct json_value *got = NULL;
    REQUIRE(engine_usage(old, &q, &a, &got, &err) == 0);
    CHECK_SUMS(got, 4, 6, 657, 68, 0.00012 + 0.0009 + 0.00006 + 0.00036 + 0.000013);
    CHECK_STR(json_get_str(row(got, "by_agent", 1), "agent", ""), "support/triage");
    CHECK_SUMS(row(got, "by_agent", 1), 3, 3, 407, 43, 0.00012 + 0.00036 + 0.000013);
    arena_cleanup(&a);
    engine_stop(old);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
}
