/*
 * test_journal.c — the journal: the hash chain byte format, appends with
 * kinds and payload checks, writers racing on one run, many threads on many
 * runs, async pipelining, JSONL output, verification and tamper detection
 * (rows changed behind Keel's back with SQLite), reopening, and the state
 * fold (every reducer; snapshot fold == fold from scratch), and the usage
 * row each model.response hands the store on every append path.
 */
#include "journal/journal.h"
#include "test.h"
#include "json_fixture.h"
#include "store_fixture.h"

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

static void tmp_make(struct tmp *t)
{
    tmp_make_named(t, "journal");
}

static char *canon(struct arena *a, const struct json_value *v)
{
    struct buf b;
    buf_init(&b);
    json_write(&b, v, JSON_WRITE_CANONICAL, NULL);
    char *s = arena_strdup(a, b.data ? b.data : "");
    buf_cleanup(&b);
    return s;
}

static int append_text(struct journal_writer *w, const char *kind, const char *payload)
{
    struct keel_err err;
    int rc = journal_writer_append_text(w, kind, "system", payload, strlen(payload), 0, NULL, &err);
    if (rc) fprintf(stderr, "append %s: %s\n", kind, err.msg);
    return rc;
}

TEST(hash_format_is_as_documented)
{
    /* The example in journal.c: 64 zeros, then the fields joined by \n. */
    struct journal_event ev = {.run_id = "r", .seq = 1, .time_ms = 1000, .kind = "run.started",
                               .actor = "system", .payload = "{}", .payload_len = 2};
    memcpy(ev.prev_hash, journal_zero_hash, sizeof ev.prev_hash);
    char text[200];
    int n = snprintf(text, sizeof text, "%s\nr\n1\n1000\nrun.started\nsystem\n{}",
                     journal_zero_hash);
    CHECK_INT(n, 95);
    char expect[65], got[65];
    keel_sha256_hex(text, (size_t)n, expect);
    REQUIRE(journal_event_hash(&ev, got, NULL) == 0);
    CHECK_STR(got, expect);
    /* Known SHA-256 of those bytes, so a change of the format cannot pass
     * silently together with a change of the test's builder. */
    CHECK_STR(got, "dd79c3993a3c1e42edaf12e23076518fd734003a72aa90ab86958ad7729fb44a");
    ev.actor = "sys\ntem";
    struct keel_err err;
    CHECK_INT(journal_event_hash(&ev, got, &err), KEEL_EINVAL);
}

/* The hashed bytes are laid out without printf (and on the stack when they
 * fit): the extremes of seq and time_ms and a payload too large for the
 * stack buffer hash exactly as the printf-built specification. */
TEST(hash_format_extremes)
{
    static const int64_t nums[][2] = {
        {1, 0}, {9, -1}, {10, -1000}, {INT64_MAX, INT64_MIN}, {1234567890123, INT64_MAX},
    };
    static const size_t payload_sizes[] = {2, 2000, 2100, 70000};
    char *payload = malloc(70001);
    REQUIRE(payload);
    memset(payload, 'x', 70000);
    payload[70000] = '\0';
    struct buf text;
    buf_init(&text);
    for (size_t i = 0; i < KEEL_ARRAY_LEN(nums); i++) {
        for (size_t j = 0; j < KEEL_ARRAY_LEN(payload_sizes); j++) {
            struct journal_event ev = {.run_id = "run_x", .seq = nums[i][0],
                                       .time_ms = nums[i][1], .kind = "step.completed",
                                       .actor = "agent:support/triage", .payload = payload,
                                       .payload_len = payload_sizes[j]};
            memset(ev.prev_hash, 'a', JOURNAL_HASH_HEX);
            ev.prev_hash[JOURNAL_HASH_HEX] = '\0';
            buf_reset(&text);
            buf_printf(&text, "%s\nrun_x\n%lld\n%lld\nstep.completed\nagent:support/triage\n",
                       ev.prev_hash, (long long)ev.seq, (long long)ev.time_ms);
            buf_append(&text, payload, payload_sizes[j]);
            char expect[65], got[65];
            keel_sha256_hex(text.data, text.len, expect);
            REQUIRE(journal_event_hash(&ev, got, NULL) == 0);
            CHECK_STR(got, expect);
        }
    }
    buf_cleanup(&text);
    free(payload);
}

TEST(kinds_table)
{
    enum journal_kind k;
    struct keel_err err;
    for (int i = 0; i < JOURNAL_KIND_COUNT; i++) {
        const char *name = journal_kind_name((enum journal_kind)i);
        REQUIRE(name != NULL);
        CHECK_INT(journal_kind_parse(name, &k, &err), 0);
        CHECK_INT(k, i);
    }
    CHECK(journal_kind_name(JOURNAL_KIND_COUNT) == NULL);
    CHECK_INT(journal_kind_parse("step.exploded", &k, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "step.completed");
    CHECK_STR(journal_kind_required(JOURNAL_STEP_STARTED), "step,attempt");
}

TEST(append_checks_and_chain)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct journal_writer *w;
    REQUIRE(journal_writer_open(s, "run_1", &w, &err) == 0);
    CHECK_INT(journal_writer_seq(w), 0);
    CHECK_STR(journal_writer_hash(w), journal_zero_hash);
    struct arena a;
    arena_init(&a);

    /* Refusals leave the journal untouched. */
    CHECK_INT(journal_writer_append(w, "step.exploded", "system", NULL, 0, NULL, &err),
              KEEL_EINVAL);
    CHECK_INT(journal_writer_append(w, "step.started", "system", test_parse(&a, "{\"step\":\"a\"}"), 0,
                                    NULL, &err),
              KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "attempt");
    CHECK_INT(journal_writer_append(w, "step.started", "system", test_parse(&a, "[1]"), 0, NULL, &err),
              KEEL_EINVAL);
    CHECK_INT(journal_writer_append(w, "run.succeeded", "", NULL, 0, NULL, &err), KEEL_EINVAL);
    CHECK_INT(journal_writer_append_text(w, "run.succeeded", "system", "{bad", 4, 0, NULL, &err),
              KEEL_EINVAL);
    CHECK_INT(journal_writer_seq(w), 0);

    struct journal_appended app;
    REQUIRE(journal_writer_append(w, "run.started", "human:alice",
                                  test_parse(&a, "{\"workflow\":\"triage\",\"workflow_hash\":\"h\","
                                            "\"input\":{\"b\":2,\"a\":1}}"),
                                  1000, &app, &err) == 0);
    CHECK_INT(app.seq, 1);
    CHECK_INT(app.time_ms, 1000);
    char first_hash[65];
    memcpy(first_hash, app.hash, 65);
    REQUIRE(append_text(w, "step.started", "{\"step\":\"fetch\",\"attempt\":1}") == 0);
    REQUIRE(append_text(w, "step.completed",
                        "{\"step\":\"fetch\",\"attempt\":1,\"result\":{\"z\":1,\"y\":[1,2]}}") == 0);
    REQUIRE(journal_writer_append(w, "run.succeeded", "system", NULL, 0, &app, &err) == 0);
    CHECK_INT(app.seq, 4);
    CHECK_INT(journal_writer_seq(w), 4);
    CHECK_STR(journal_writer_hash(w), app.hash);

    /* Stored payloads are canonical (sorted keys, no spaces). */
    struct buf out;
    buf_init(&out);
    REQUIRE(journal_write_jsonl(s, "run_1", &out, &err) == 0);
    int lines = 0;
    for (size_t i = 0; i < out.len; i++) lines += out.data[i] == '\n';
    CHECK_INT(lines, 4);
    CHECK_CONTAINS(out.data, "\"input\":{\"a\":1,\"b\":2}");
    CHECK_CONTAINS(out.data, "\"result\":{\"y\":[1,2],\"z\":1}");
    CHECK_CONTAINS(out.data, "\"actor\":\"human:alice\"");
    CHECK_CONTAINS(out.data, "\"time\":1000,\"at\":\"1970-01-01T00:00:01.000Z\"");
    CHECK_CONTAINS(out.data, first_hash);
    /* Every line is JSON with the documented fields, chained. */
    char *line = out.data;
    char prev[65];
    memcpy(prev, journal_zero_hash, 65);
    for (int i = 1; i <= 4; i++) {
        char *nl = strchr(line, '\n');
        REQUIRE(nl);
        struct json_value *v = NULL;
        REQUIRE(json_parse(&a, line, (size_t)(nl - line), NULL, &v, &err) == 0);
        CHECK_STR(json_get_str(v, "run", ""), "run_1");
        CHECK_INT(json_get_int(v, "seq", 0), i);
        CHECK(json_is(json_get(v, "payload"), JSON_OBJECT));
        CHECK_STR(json_get_str(v, "prev_hash", ""), prev);
        /* The line alone suffices to re-verify the event. */
        struct buf pc;
        buf_init(&pc);
        json_write(&pc, json_get(v, "payload"), JSON_WRITE_CANONICAL, NULL);
        struct journal_event ev = {.run_id = json_get_str(v, "run", ""), .seq = i,
                                   .time_ms = json_get_int(v, "time", 0),
                                   .kind = json_get_str(v, "kind", ""),
                                   .actor = json_get_str(v, "actor", ""), .payload = pc.data,
                                   .payload_len = pc.len};
        memcpy(ev.prev_hash, prev, 65);
        char h[65];
        REQUIRE(journal_event_hash(&ev, h, &err) == 0);
        CHECK_STR(h, json_get_str(v, "hash", ""));
        memcpy(prev, h, 65);
        buf_cleanup(&pc);
        line = nl + 1;
    }

    struct journal_verify_report rep;
    REQUIRE(journal_verify(s, "run_1", &rep, &err) == 0);
    CHECK(rep.ok);
    CHECK_INT(rep.events, 4);
    CHECK_INT(rep.first_bad_seq, 0);
    CHECK_STR(rep.last_hash, app.hash);
    CHECK_INT(journal_verify(s, "ghost", &rep, &err), KEEL_ENOENT);
    buf_reset(&out);
    CHECK_INT(journal_write_jsonl(s, "ghost", &out, &err), KEEL_ENOENT);
    buf_cleanup(&out);
    journal_writer_free(w);
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}

TEST(two_writers_cannot_fork_a_run)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct journal_writer *w1, *w2;
    REQUIRE(journal_writer_open(s, "run_x", &w1, &err) == 0);
    REQUIRE(journal_writer_open(s, "run_x", &w2, &err) == 0);
    REQUIRE(append_text(w1, "run.cancelled", "{}") == 0);
    CHECK_INT(journal_writer_append(w2, "run.cancelled", "system", NULL, 0, NULL, &err),
              KEEL_ESTATE);
    CHECK_CONTAINS(err.msg, "reopen");
    /* The one-off form re-reads the tail, so it goes through. */
    struct journal_appended app;
    CHECK_INT(journal_append(s, "run_x", "run.cancelled", "human:bob", NULL, &app, &err), 0);
    CHECK_INT(app.seq, 2);
    struct journal_verify_report rep;
    REQUIRE(journal_verify(s, "run_x", &rep, &err) == 0);
    CHECK(rep.ok);
    CHECK_INT(rep.events, 2);
    journal_writer_free(w1);
    journal_writer_free(w2);
    store_close(s);
    tmp_remove(&t);
}

/* Many threads, each driving its own runs with a writer (the engine's way);
 * contended_run_stays_linear has threads racing on one run. */
enum { RUN_THREADS = 8, RUNS_PER_THREAD = 4, EVENTS_PER_RUN = 40, SHARED_THREADS = 4,
       SHARED_EACH = 25 };

struct worker {
    struct store *s;
    int index;
    int failures;
};

static void *run_worker(void *arg)
{
    struct worker *wk = arg;
    struct journal_writer *w[RUNS_PER_THREAD];
    struct keel_err err;
    for (int r = 0; r < RUNS_PER_THREAD; r++) {
        char id[32];
        snprintf(id, sizeof id, "run_%d_%d", wk->index, r);
        if (journal_writer_open(wk->s, id, &w[r], &err)) {
            wk->failures++;
            return NULL;
        }
    }
    struct arena a;
    arena_init(&a);
    for (int i = 0; i < EVENTS_PER_RUN; i++) {
        for (int r = 0; r < RUNS_PER_THREAD; r++) {
            struct json_value *p = json_object(&a);
            json_object_setc(&a, p, "step", json_cstr(&a, "s"));
            json_object_setc(&a, p, "attempt", json_int(&a, i));
            if (journal_writer_append(w[r], "step.completed", "agent:t/x", p, 0, NULL, &err))
                wk->failures++;
        }
        arena_reset(&a);
    }
    arena_cleanup(&a);
    for (int r = 0; r < RUNS_PER_THREAD; r++) journal_writer_free(w[r]);
    return NULL;
}

TEST(many_threads_many_runs)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    pthread_t th[RUN_THREADS];
    struct worker wk[RUN_THREADS];
    for (int i = 0; i < RUN_THREADS; i++) {
        wk[i] = (struct worker){.s = s, .index = i};
        pthread_create(&th[i], NULL, run_worker, &wk[i]);
    }
    for (int i = 0; i < RUN_THREADS; i++) pthread_join(th[i], NULL);
    int failures = 0;
    for (int i = 0; i < RUN_THREADS; i++) failures += wk[i].failures;
    CHECK_INT(failures, 0);
    for (int i = 0; i < RUN_THREADS; i++) {
        for (int r = 0; r < RUNS_PER_THREAD; r++) {
            char id[32];
            snprintf(id, sizeof id, "run_%d_%d", i, r);
            struct journal_verify_report rep;
            REQUIRE(journal_verify(s, id, &rep, &err) == 0);
            CHECK(rep.ok);
            CHECK_INT(rep.events, EVENTS_PER_RUN);
        }
    }
    struct store_stats st;
    store_get_stats(s, &st);
    CHECK(st.group_commits < st.appends);
    store_close(s);
    tmp_remove(&t);
}

static void *shared_named_worker(void *arg)
{
    struct worker *wk = arg;
    struct keel_err err;
    struct arena a;
    arena_init(&a);
    struct json_value *p = json_object(&a);
    json_object_setc(&a, p, "name", json_cstr(&a, "poke"));
    json_object_setc(&a, p, "from", json_int(&a, wk->index));
    for (int i = 0; i < SHARED_EACH; i++) {
        int rc, tries = 0;
        do {
            rc = journal_append(wk->s, "run_shared", "signal.received", "system", p, NULL, &err);
        } while (rc == KEEL_ESTATE && ++tries < 1000);
        if (rc) wk->failures++;
    }
    arena_cleanup(&a);
    return NULL;
}

TEST(contended_run_stays_linear)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    pthread_t th[SHARED_THREADS];
    struct worker wk[SHARED_THREADS];
    for (int i = 0; i < SHARED_THREADS; i++) {
        wk[i] = (struct worker){.s = s, .index = i};
        pthread_create(&th[i], NULL, shared_named_worker, &wk[i]);
    }
    for (int i = 0; i < SHARED_THREADS; i++) pthread_join(th[i], NULL);
    int failures = 0;
    for (int i = 0; i < SHARED_THREADS; i++) failures += wk[i].failures;
    CHECK_INT(failures, 0);
    struct journal_verify_report rep;
    REQUIRE(journal_verify(s, "run_shared", &rep, &err) == 0);
    CHECK(rep.ok);
    CHECK_INT(rep.events, SHARED_THREADS * SHARED_EACH);
    store_close(s);
    tmp_remove(&t);
}

struct async_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int failed;
    int64_t last_seq;
    bool in_order;
};

static void on_done(void *ctx, int rc, const struct journal_appended *app,
                    const struct keel_err *err)
{
    struct async_wait *w = ctx;
    pthread_mutex_lock(&w->mu);
    if (rc) {
        w->failed++;
    } else {
        if (app->seq != w->last_seq + 1) w->in_order = false;
        w->last_seq = app->seq;
    }
    w->done++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

TEST(async_pipelined_appends)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct journal_writer *w;
    REQUIRE(journal_writer_open(s, "run_async", &w, &err) == 0);
    struct async_wait aw = {.in_order = true};
    pthread_mutex_init(&aw.mu, NULL);
    pthread_cond_init(&aw.cv, NULL);
    struct arena a;
    arena_init(&a);
    enum { N = 200 };
    for (int i = 0; i < N; i++) {
        char actor[32];
        snprintf(actor, sizeof actor, "agent:t/%d", i); /* freed before the commit */
        struct json_value *p = json_object(&a);
        json_object_setc(&a, p, "step", json_cstr(&a, "s"));
        json_object_setc(&a, p, "attempt", json_int(&a, i));
        REQUIRE(journal_writer_append_async(w, "step.started", actor, p, 0, on_done, &aw, &err) ==
                0);
    }
    CHECK_INT(journal_writer_seq(w), N);
    journal_writer_free(w); /* queued events must not depend on the writer */
    pthread_mutex_lock(&aw.mu);
    while (aw.done < N) pthread_cond_wait(&aw.cv, &aw.mu);
    pthread_mutex_unlock(&aw.mu);
    CHECK_INT(aw.failed, 0);
    CHECK(aw.in_order);
    CHECK_INT(aw.last_seq, N);
    struct journal_verify_report rep;
    REQUIRE(journal_verify(s, "run_async", &rep, &err) == 0);
    CHECK(rep.ok);
    CHECK_INT(rep.events, N);
    struct store_stats st;
    store_get_stats(s, &st);
    /* Pipelined events of one run share commits. */
    CHECK(st.group_commits < (uint64_t)N);
    struct buf out;
    buf_init(&out);
    REQUIRE(journal_write_jsonl(s, "run_async", &out, &err) == 0);
    CHECK_CONTAINS(out.data, "\"actor\":\"agent:t/199\"");
    buf_cleanup(&out);
    pthread_mutex_destroy(&aw.mu);
    pthread_cond_destroy(&aw.cv);
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}

/* A model.response payload: agent (NULL: left out), model, tokens, cost. */
static struct json_value *response(struct arena *a, const char *agent, const char *model,
                                   int64_t in, int64_t out, double cost)
{
    struct json_value *p = json_object(a);
    json_object_setc(a, p, "step", json_cstr(a, "ask"));
    json_object_setc(a, p, "call_id", json_cstr(a, "ask/0/m0"));
    json_object_setc(a, p, "model", json_cstr(a, model));
    if (agent) json_object_setc(a, p, "agent", json_cstr(a, agent));
    struct json_value *u = json_object(a);
    json_object_setc(a, u, "input_tokens", json_int(a, in));
    json_object_setc(a, u, "output_tokens", json_int(a, out));
    json_object_setc(a, p, "usage", u);
    json_object_setc(a, p, "cost_usd", json_double(a, cost));
    return p;
}

/* Every append path hands the store a model.response's usage row, built
 * from the payload (the agent from the actor when the payload has none),
 * and keeps it alive until the commit: the async path's caller frees its
 * actor at once, a batch's items move as it grows.  The hash chain is the
 * same as without it (the row is not hashed). */
TEST(model_responses_carry_their_usage)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    static const char wfh[] = "1111111111111111111111111111111111111111111111111111111111111111";
    struct store_run run = {.id = "run_u", .workflow = "wf", .workflow_hash = wfh,
                            .input = "{}", .identity = "human:alice"};
    REQUIRE(store_run_create(s, &run, &err) == 0);
    struct journal_writer *w;
    REQUIRE(journal_writer_open(s, "run_u", &w, &err) == 0);
    struct arena a;
    arena_init(&a);
    /* Synchronous. */
    REQUIRE(journal_writer_append(w, "model.response", "agent:t/other",
                                  response(&a, "t/sync", "m1", 10, 1, 0.5), 1000, NULL,
                                  &err) == 0);
    struct async_wait aw = {.in_order = true};
    pthread_mutex_init(&aw.mu, NULL);
    pthread_cond_init(&aw.cv, NULL);
    /* Asynchronous, the agent only in the actor, which is gone at once. */
    char *actor = strdup("agent:t/async");
    REQUIRE(journal_writer_append_async(w, "model.response", actor,
                                        response(&a, NULL, "m2", 20, 2, 0.25), 2000, on_done,
                                        &aw, &err) == 0);
    memset(actor, 'x', strlen(actor));
    free(actor);
    /* A batch of 6 (its items are reallocated at 4): calls first and last. */
    struct journal_batch *bt = NULL;
    for (int i = 0; i < 6; i++) {
        char who[32];
        snprintf(who, sizeof who, "agent:t/b%d", i);
        if (i == 0 || i == 5) {
            REQUIRE(journal_batch_add(w, &bt, "model.response", who,
                                      response(&a, who + 6, "m3", 100 + i, i, 0.125), 3000 + i,
                                      NULL, NULL, &err) == 0);
        } else {
            REQUIRE(journal_batch_add(w, &bt, "step.started", who,
                                      test_parse(&a, "{\"step\":\"s\",\"attempt\":1}"), 3000 + i,
                                      NULL, NULL, &err) == 0);
        }
        memset(who, 'y', sizeof who - 1);
    }
    REQUIRE(journal_batch_submit(bt, on_done, &aw, &err) == 0);
    pthread_mutex_lock(&aw.mu);
    while (aw.done < 2) pthread_cond_wait(&aw.cv, &aw.mu);
    pthread_mutex_unlock(&aw.mu);
    CHECK_INT(aw.failed, 0);
    journal_writer_free(w);

    static const unsigned by_agent = STORE_USAGE_BY_AGENT | STORE_USAGE_BY_MODEL;
    struct store_usage_filter f = {.until_ms = 10000, .groupings = &by_agent, .n_groupings = 1};
    struct store_usage_sum *rows = NULL;
    size_t n = 0;
    REQUIRE(store_usage_sum(s, &f, &a, &rows, &n, &err) == 0);
    static const struct {
        const char *agent, *model;
        int64_t in, out;
        double cost;
    } want[] = {
        {"t/sync", "m1", 10, 1, 0.5},
        {"t/async", "m2", 20, 2, 0.25},
        {"t/b0", "m3", 100, 0, 0.125},
        {"t/b5", "m3", 105, 5, 0.125},
    };
    CHECK_INT(n, KEEL_ARRAY_LEN(want));
    for (size_t i = 0; i < KEEL_ARRAY_LEN(want); i++) {
        const struct store_usage_sum *r = NULL;
        for (size_t k = 0; k < n && !r; k++)
            if (rows[k].agent && !strcmp(rows[k].agent, want[i].agent)) r = &rows[k];
        CHECK(r != NULL);
        if (!r) continue;
        CHECK_STR(r->model, want[i].model);
        CHECK_INT(r->calls, 1);
        CHECK_INT(r->input_tokens, want[i].in);
        CHECK_INT(r->output_tokens, want[i].out);
        CHECK(r->cost_usd == want[i].cost);
    }
    struct journal_verify_report rep;
    REQUIRE(journal_verify(s, "run_u", &rep, &err) == 0);
    CHECK(rep.ok);
    CHECK_INT(rep.events, 8);
    pthread_mutex_destroy(&aw.mu);
    pthread_cond_destroy(&aw.cv);
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}

/* Runs stmt with sqlite3 behind Keel's back, on the events table (which
 * holds every event; events_index only points into it). */
static void sql(const char *path, const char *stmt)
{
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) abort();
    char *msg = NULL;
    if (sqlite3_exec(db, stmt, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "sql %s: %s\n", stmt, msg);
        abort();
    }
    sqlite3_close(db);
}

static void write_run(struct store *s, const char *run, int n)
{
    struct journal_writer *w;
    struct keel_err err;
    if (journal_writer_open(s, run, &w, &err)) abort();
    for (int i = 1; i <= n; i++) {
        char p[64];
        snprintf(p, sizeof p, "{\"step\":\"s%d\",\"attempt\":1}", i);
        if (append_text(w, "step.completed", p)) abort();
    }
    journal_writer_free(w);
}

TEST(tampering_is_detected)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct journal_verify_report rep;
    write_run(s, "run_p", 6); /* payload edited */
    write_run(s, "run_d", 6); /* row deleted */
    write_run(s, "run_h", 6); /* payload edited and its hash recomputed */
    write_run(s, "run_k", 6); /* kind edited */
    write_run(s, "run_t", 6); /* time edited */
    store_close(s);

    sql(t.path, "UPDATE events SET payload = '{\"attempt\":1,\"step\":\"evil\"}' "
                "WHERE run_id = 'run_p' AND seq = 3");
    sql(t.path, "DELETE FROM events WHERE run_id = 'run_d' AND seq = 4");
    sql(t.path, "UPDATE events SET kind = 'step.failed' WHERE run_id = 'run_k' AND seq = 6");
    sql(t.path, "UPDATE events SET time_ms = time_ms + 1 WHERE run_id = 'run_t' AND seq = 1");

    s = open_store(&t);
    REQUIRE(s);
    /* The forger rewrites event 2 of run_h and recomputes its hash: event 3's
     * prev_hash no longer matches. */
    struct arena a;
    arena_init(&a);
    struct journal_event ev = {.run_id = "run_h", .seq = 2, .kind = "step.completed",
                               .actor = "system", .payload = "{\"attempt\":1,\"step\":\"x\"}"};
    ev.payload_len = strlen(ev.payload);
    struct journal_writer *w;
    REQUIRE(journal_writer_open(s, "run_h", &w, &err) == 0); /* to learn event 1's hash */
    journal_writer_free(w);
    /* Read event 1 and 2 to get prev_hash and time. */
    struct buf out;
    buf_init(&out);
    REQUIRE(journal_write_jsonl(s, "run_h", &out, &err) == 0);
    char *l2 = strchr(out.data, '\n') + 1;
    struct json_value *v2 = NULL;
    REQUIRE(json_parse(&a, l2, (size_t)(strchr(l2, '\n') - l2), NULL, &v2, &err) == 0);
    ev.time_ms = json_get_int(v2, "time", 0);
    snprintf(ev.prev_hash, sizeof ev.prev_hash, "%s", json_get_str(v2, "prev_hash", ""));
    char forged[65];
    REQUIRE(journal_event_hash(&ev, forged, &err) == 0);
    char q[512];
    snprintf(q, sizeof q,
             "UPDATE events SET payload = '%s', hash = '%s' WHERE run_id = 'run_h' AND seq = 2",
             ev.payload, forged);
    store_close(s);
    sql(t.path, q);
    s = open_store(&t);
    REQUIRE(s);

    REQUIRE(journal_verify(s, "run_p", &rep, &err) == 0);
    CHECK(!rep.ok);
    CHECK_INT(rep.first_bad_seq, 3);
    CHECK_CONTAINS(rep.reason, "modified");
    REQUIRE(journal_verify(s, "run_d", &rep, &err) == 0);
    CHECK(!rep.ok);
    CHECK_INT(rep.first_bad_seq, 4);
    CHECK_CONTAINS(rep.reason, "missing");
    REQUIRE(journal_verify(s, "run_h", &rep, &err) == 0);
    CHECK(!rep.ok);
    CHECK_INT(rep.first_bad_seq, 3);
    CHECK_CONTAINS(rep.reason, "prev_hash");
    REQUIRE(journal_verify(s, "run_k", &rep, &err) == 0);
    CHECK(!rep.ok);
    CHECK_INT(rep.first_bad_seq, 6);
    REQUIRE(journal_verify(s, "run_t", &rep, &err) == 0);
    CHECK(!rep.ok);
    CHECK_INT(rep.first_bad_seq, 1);

    /* A payload that is not JSON any more still yields valid JSONL. */
    store_close(s);
    sql(t.path, "UPDATE events SET payload = '{not json' WHERE run_id = 'run_p' AND seq = 5");
    s = open_store(&t);
    REQUIRE(s);
    buf_reset(&out);
    REQUIRE(journal_write_jsonl(s, "run_p", &out, &err) == 0);
    CHECK_CONTAINS(out.data, "\"payload_invalid\":\"{not json\"");
    buf_cleanup(&out);
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}

TEST(reopen_continues_the_chain)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    write_run(s, "run_r", 3);
    store_close(s);
    s = open_store(&t);
    REQUIRE(s);
    struct journal_writer *w;
    REQUIRE(journal_writer_open(s, "run_r", &w, &err) == 0);
    CHECK_INT(journal_writer_seq(w), 3);
    REQUIRE(append_text(w, "run.succeeded", "{\"output\":1}") == 0);
    CHECK_INT(journal_writer_seq(w), 4);
    journal_writer_free(w);
    struct journal_verify_report rep;
    REQUIRE(journal_verify(s, "run_r", &rep, &err) == 0);
    CHECK(rep.ok);
    CHECK_INT(rep.events, 4);
    store_close(s);

    /* Normal durability is a separate, explicit option; the chain is the same. */
    struct store_opts normal = {.durability = STORE_DURABILITY_NORMAL};
    REQUIRE(store_open(t.uri, &normal, &s, &err) == 0);
    REQUIRE(journal_writer_open(s, "run_r", &w, &err) == 0);
    REQUIRE(append_text(w, "run.succeeded", "{}") == 0);
    journal_writer_free(w);
    REQUIRE(journal_verify(s, "run_r", &rep, &err) == 0);
    CHECK(rep.ok);
    CHECK_INT(rep.events, 5);
    store_close(s);
    tmp_remove(&t);
}

/* ---- fold -------------------------------------------------------------- */

static struct journal_event upd(int64_t seq, const char *payload)
{
    struct journal_event e = {.run_id = "r", .seq = seq, .kind = "state.updated",
                              .actor = "system", .payload = payload,
                              .payload_len = strlen(payload)};
    return e;
}

TEST(fold_reducers)
{
    struct arena a;
    arena_init(&a);
    struct keel_err err;
    struct journal_state_key keys[] = {
        {"ticket", JOURNAL_REDUCE_REPLACE, NULL},
        {"notes", JOURNAL_REDUCE_APPEND, NULL},
        {"meta", JOURNAL_REDUCE_MERGE, NULL},
        {"cost", JOURNAL_REDUCE_ADD, NULL},
        {"count", JOURNAL_REDUCE_ADD, test_parse(&a, "10")},
    };
    struct journal_reducers r = {keys, KEEL_ARRAY_LEN(keys), JOURNAL_REDUCE_REPLACE};
    struct journal_event evs[] = {
        upd(1, "{\"key\":\"ticket\",\"value\":{\"id\":1}}"),
        upd(2, "{\"key\":\"ticket\",\"value\":{\"id\":2}}"),
        upd(3, "{\"key\":\"notes\",\"value\":\"a\"}"),
        upd(4, "{\"key\":\"notes\",\"value\":[\"b\",\"c\"]}"),
        upd(5, "{\"key\":\"meta\",\"value\":{\"x\":1,\"y\":1}}"),
        upd(6, "{\"key\":\"meta\",\"value\":{\"y\":2}}"),
        upd(7, "{\"key\":\"cost\",\"value\":0.5}"),
        upd(8, "{\"key\":\"cost\",\"value\":0.25}"),
        upd(9, "{\"key\":\"count\",\"value\":5}"),
        upd(10, "{\"key\":\"free\",\"value\":true}"),
        upd(11, "{\"key\":\"free\",\"value\":[1],\"reducer\":\"append\"}"),
        {.run_id = "r", .seq = 12, .kind = "step.started", .actor = "system",
         .payload = "{\"step\":\"x\",\"attempt\":1}", .payload_len = 26},
    };
    struct json_value *state;
    /* "free" is replaced by true, then the payload's append meets a boolean. */
    CHECK_INT(journal_fold(&r, evs, KEEL_ARRAY_LEN(evs), NULL, &a, &state, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "event 11");
    evs[9] = upd(10, "{\"key\":\"free\",\"value\":[true]}");
    REQUIRE(journal_fold(&r, evs, KEEL_ARRAY_LEN(evs), NULL, &a, &state, &err) == 0);
    CHECK_STR(canon(&a, state), "{\"cost\":0.75,\"count\":15,\"free\":[true,1],"
                                "\"meta\":{\"x\":1,\"y\":2},\"notes\":[\"a\",\"b\",\"c\"],"
                                "\"ticket\":{\"id\":2}}");
    /* Inputs are not modified: a second fold gives the same answer. */
    struct json_value *again;
    REQUIRE(journal_fold(&r, evs, KEEL_ARRAY_LEN(evs), NULL, &a, &again, &err) == 0);
    CHECK_STR(canon(&a, again), canon(&a, state));

    struct journal_event bad_add = upd(1, "{\"key\":\"cost\",\"value\":\"x\"}");
    CHECK_INT(journal_fold(&r, &bad_add, 1, NULL, &a, &state, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "add");
    struct journal_event bad_merge = upd(1, "{\"key\":\"meta\",\"value\":3}");
    CHECK_INT(journal_fold(&r, &bad_merge, 1, NULL, &a, &state, &err), KEEL_EINVAL);
    struct journal_event bad_red = upd(1, "{\"key\":\"meta\",\"value\":3,\"reducer\":\"mul\"}");
    CHECK_INT(journal_fold(&r, &bad_red, 1, NULL, &a, &state, &err), KEEL_EINVAL);
    struct journal_event no_key = upd(1, "{\"value\":3}");
    CHECK_INT(journal_fold(&r, &no_key, 1, NULL, &a, &state, &err), KEEL_EINVAL);
    struct journal_event big = upd(1, "{\"key\":\"count\",\"value\":9223372036854775800}");
    REQUIRE(journal_fold(&r, &big, 1, NULL, &a, &state, &err) == 0);
    CHECK(json_get(state, "count")->u.n.d > 9.2e18); /* overflowed int64: as a double */

    enum journal_reducer red;
    CHECK_INT(journal_reducer_parse("merge", &red, &err), 0);
    CHECK_INT(red, JOURNAL_REDUCE_MERGE);
    CHECK_STR(journal_reducer_name(JOURNAL_REDUCE_ADD), "add");
    arena_cleanup(&a);
}

static unsigned lcg(unsigned *x)
{
    *x = *x * 1103515245u + 12345u;
    return (*x >> 16) & 0x7fff;
}

TEST(fold_with_snapshots_equals_fold_from_scratch)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct arena a;
    arena_init(&a);
    struct journal_state_key keys[] = {
        {"log", JOURNAL_REDUCE_APPEND, NULL},
        {"m", JOURNAL_REDUCE_MERGE, NULL},
        {"n", JOURNAL_REDUCE_ADD, test_parse(&a, "0")},
        {"last", JOURNAL_REDUCE_REPLACE, NULL},
    };
    struct journal_reducers r = {keys, KEEL_ARRAY_LEN(keys), JOURNAL_REDUCE_REPLACE};
    struct journal_writer *w;
    REQUIRE(journal_writer_open(s, "run_f", &w, &err) == 0);
    unsigned seed = 7;
    enum { N = 420 };
    for (int i = 1; i <= N; i++) {
        char p[160];
        unsigned k = lcg(&seed) % 5;
        if (k == 0) snprintf(p, sizeof p, "{\"key\":\"log\",\"value\":%d}", i);
        else if (k == 1)
            snprintf(p, sizeof p, "{\"key\":\"m\",\"value\":{\"k%u\":%d}}", lcg(&seed) % 7, i);
        else if (k == 2) snprintf(p, sizeof p, "{\"key\":\"n\",\"value\":%u}", lcg(&seed) % 100);
        else if (k == 3) snprintf(p, sizeof p, "{\"key\":\"last\",\"value\":[%d,\"x\"]}", i);
        else snprintf(p, sizeof p, "{\"step\":\"s\",\"attempt\":%d}", i);
        REQUIRE(append_text(w, k == 4 ? "step.started" : "state.updated", p) == 0);
        if (i % 60 == 0) {
            /* Read the state part-way: writes a snapshot every 50 events. */
            struct journal_state_opts o = {.snapshot_every = 50};
            struct json_value *st;
            int64_t at;
            REQUIRE(journal_state(s, "run_f", &r, &o, &a, &st, &at, &err) == 0);
            CHECK_INT(at, i);
        }
    }
    journal_writer_free(w);
    int64_t snap_seq = 0;
    const char *snap = NULL;
    REQUIRE(store_snapshot_get(s, "run_f", 0, &a, &snap_seq, &snap, &err) == 0);
    CHECK(snap_seq >= 360);

    for (int64_t upto = 0; upto <= N; upto += 35) {
        struct journal_state_opts scratch = {.upto_seq = upto, .no_snapshots = true,
                                             .snapshot_every = -1};
        struct journal_state_opts snapped = {.upto_seq = upto, .snapshot_every = -1};
        struct json_value *s1, *s2;
        int64_t at1, at2;
        REQUIRE(journal_state(s, "run_f", &r, &scratch, &a, &s1, &at1, &err) == 0);
        REQUIRE(journal_state(s, "run_f", &r, &snapped, &a, &s2, &at2, &err) == 0);
        CHECK_INT(at1, upto ? upto : N);
        CHECK_INT(at1, at2);
        CHECK_STR(canon(&a, s1), canon(&a, s2));
    }
    /* journal_snapshot writes one at the head; the state from it matches. */
    REQUIRE(journal_snapshot(s, "run_f", &r, &err) == 0);
    REQUIRE(store_snapshot_get(s, "run_f", 0, &a, &snap_seq, &snap, &err) == 0);
    CHECK_INT(snap_seq, N);
    struct json_value *full;
    struct journal_state_opts scratch = {.no_snapshots = true, .snapshot_every = -1};
    REQUIRE(journal_state(s, "run_f", &r, &scratch, &a, &full, NULL, &err) == 0);
    CHECK_STR(snap, canon(&a, full));
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}

TEST(compaction_keeps_every_event)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    /* Two runs, interleaved, through more than one compaction (4096 rows). */
    struct journal_writer *w1, *w2;
    REQUIRE(journal_writer_open(s, "run_c1", &w1, &err) == 0);
    REQUIRE(journal_writer_open(s, "run_c2", &w2, &err) == 0);
    struct async_wait aw = {.in_order = true};
    pthread_mutex_init(&aw.mu, NULL);
    pthread_cond_init(&aw.cv, NULL);
    struct arena a;
    arena_init(&a);
    enum { N = 4500 };
    struct async_wait aw2 = {.in_order = true};
    pthread_mutex_init(&aw2.mu, NULL);
    pthread_cond_init(&aw2.cv, NULL);
    for (int i = 0; i < N; i++) {
        arena_reset(&a);
        struct json_value *p = json_object(&a);
        json_object_setc(&a, p, "name", json_cstr(&a, "tick"));
        json_object_setc(&a, p, "i", json_int(&a, i));
        REQUIRE(journal_writer_append_async(w1, "signal.received", "system", p, 0, on_done, &aw,
                                            &err) == 0);
        REQUIRE(journal_writer_append_async(w2, "signal.received", "system", p, 0, on_done, &aw2,
                                            &err) == 0);
    }
    pthread_mutex_lock(&aw.mu);
    while (aw.done < N) pthread_cond_wait(&aw.cv, &aw.mu);
    pthread_mutex_unlock(&aw.mu);
    pthread_mutex_lock(&aw2.mu);
    while (aw2.done < N) pthread_cond_wait(&aw2.cv, &aw2.mu);
    pthread_mutex_unlock(&aw2.mu);
    CHECK_INT(aw.failed + aw2.failed, 0);
    CHECK(aw.in_order && aw2.in_order);
    /* Appends after compaction chain onto the moved events. */
    REQUIRE(append_text(w1, "run.succeeded", "{}") == 0);
    struct store_stats st;
    store_get_stats(s, &st);
    CHECK(st.compactions >= 1);
    journal_writer_free(w1);
    journal_writer_free(w2);
    store_close(s);

    /* Reopened (nothing cached): the tail comes from the database. */
    s = open_store(&t);
    REQUIRE(s);
    REQUIRE(journal_writer_open(s, "run_c2", &w2, &err) == 0);
    CHECK_INT(journal_writer_seq(w2), N);
    REQUIRE(append_text(w2, "run.succeeded", "{}") == 0);
    journal_writer_free(w2);
    const char *runs[] = {"run_c1", "run_c2"};
    for (int r = 0; r < 2; r++) {
        struct journal_verify_report rep;
        REQUIRE(journal_verify(s, runs[r], &rep, &err) == 0);
        CHECK(rep.ok);
        CHECK_INT(rep.events, N + 1);
    }
    /* Part of the journal is indexed, part in the log; a read from the
     * middle spans both. */
    sqlite3 *db;
    REQUIRE(sqlite3_open(t.path, &db) == SQLITE_OK);
    sqlite3_stmt *q;
    REQUIRE(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM events_index), "
                                   "(SELECT count(*) FROM events WHERE id > (SELECT upto FROM "
                                   "events_indexed))",
                               -1, &q, NULL) == SQLITE_OK);
    REQUIRE(sqlite3_step(q) == SQLITE_ROW);
    CHECK(sqlite3_column_int(q, 0) >= 4096);
    CHECK_INT(sqlite3_column_int(q, 0) + sqlite3_column_int(q, 1), 2 * (N + 1));
    sqlite3_finalize(q);
    /* Every index entry points at the row it names, and every row up to
     * events_indexed.upto has one. */
    REQUIRE(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM events_index i JOIN events e ON "
                                   "e.id = i.id AND e.run_id = i.run_id AND e.seq = i.seq), "
                                   "(SELECT count(*) FROM events_index), (SELECT count(*) FROM "
                                   "events WHERE id <= (SELECT upto FROM events_indexed))",
                               -1, &q, NULL) == SQLITE_OK);
    REQUIRE(sqlite3_step(q) == SQLITE_ROW);
    CHECK_INT(sqlite3_column_int(q, 0), sqlite3_column_int(q, 1));
    CHECK_INT(sqlite3_column_int(q, 0), sqlite3_column_int(q, 2));
    sqlite3_finalize(q);
    sqlite3_close(db);
    struct buf out;
    buf_init(&out);
    REQUIRE(journal_write_jsonl(s, "run_c1", &out, &err) == 0);
    int lines = 0;
    for (size_t i = 0; i < out.len; i++) lines += out.data[i] == '\n';
    CHECK_INT(lines, N + 1);
    buf_cleanup(&out);
    arena_cleanup(&a);
    pthread_mutex_destroy(&aw.mu);
    pthread_cond_destroy(&aw.cv);
    pthread_mutex_destroy(&aw2.mu);
    pthread_cond_destroy(&aw2.cv);
    store_close(s);
    tmp_remove(&t);
}

TEST(two_store_handles_on_one_file)
{
    /* Two handles stand for two processes: each has its own committer and
     * tail cache; a write by one must invalidate what the other cached. */
    struct tmp t;
    tmp_make(&t);
    struct store *a = open_store(&t), *b = open_store(&t);
    REQUIRE(a && b);
    struct keel_err err;
    struct journal_writer *wa, *wb;
    REQUIRE(journal_writer_open(a, "run_2p", &wa, &err) == 0);
    REQUIRE(append_text(wa, "run.cancelled", "{}") == 0);
    REQUIRE(append_text(wa, "run.cancelled", "{}") == 0);
    REQUIRE(journal_writer_open(b, "run_2p", &wb, &err) == 0);
    CHECK_INT(journal_writer_seq(wb), 2);
    REQUIRE(append_text(wb, "run.cancelled", "{}") == 0); /* seq 3 through b */
    /* a's committer cached tail 2; its writer also thinks 2.  Refused. */
    CHECK_INT(journal_writer_append(wa, "run.cancelled", "system", NULL, 0, NULL, &err),
              KEEL_ESTATE);
    journal_writer_free(wa);
    REQUIRE(journal_writer_open(a, "run_2p", &wa, &err) == 0);
    CHECK_INT(journal_writer_seq(wa), 3);
    REQUIRE(append_text(wa, "run.cancelled", "{}") == 0);
    struct journal_verify_report rep;
    REQUIRE(journal_verify(b, "run_2p", &rep, &err) == 0);
    CHECK(rep.ok);
    CHECK_INT(rep.events, 4);
    journal_writer_free(wa);
    journal_writer_free(wb);
    store_close(a);
    store_close(b);
    tmp_remove(&t);
}

struct nested {
    struct store *s;
    struct journal_writer *w;
    int rc_sync;
    int rc_async;
    sem_t done;
};

static void nested_second(void *ctx, int rc, const struct journal_appended *app,
                          const struct keel_err *err)
{
    struct nested *n = ctx;
    n->rc_async = rc;
    sem_post(&n->done);
}

static void nested_first(void *ctx, int rc, const struct journal_appended *app,
                         const struct keel_err *err)
{
    struct nested *n = ctx;
    struct keel_err e;
    /* A synchronous append here would wait for this thread: refused. */
    n->rc_sync = journal_append(n->s, "run_other", "run.cancelled", "system", NULL, NULL, &e);
    /* The next step of the run, queued from the callback: fine. */
    if (journal_writer_append_async(n->w, "run.cancelled", "system", NULL, 0, nested_second, n,
                                    &e) != 0)
        sem_post(&n->done);
}

TEST(callbacks_may_queue_but_not_wait)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct nested n = {.s = s, .rc_async = 99};
    sem_init(&n.done, 0, 0);
    REQUIRE(journal_writer_open(s, "run_n", &n.w, &err) == 0);
    REQUIRE(journal_writer_append_async(n.w, "run.cancelled", "system", NULL, 0, nested_first, &n,
                                        &err) == 0);
    sem_wait(&n.done);
    CHECK_INT(n.rc_sync, KEEL_EINTERNAL);
    CHECK_INT(n.rc_async, 0);
    struct journal_verify_report rep;
    REQUIRE(journal_verify(s, "run_n", &rep, &err) == 0);
    CHECK(rep.ok);
    CHECK_INT(rep.events, 2);
    journal_writer_free(n.w);
    sem_destroy(&n.done);
    store_close(s);
    tmp_remove(&t);
}

/* A child process appends to 8 runs from 8 threads and reports every
 * acknowledged append on a pipe; the parent kills it with SIGKILL in the
 * middle and checks, after reopening, that every acknowledged event is there
 * and every chain verifies.  (A process crash, not a power cut: what it
 * shows is that nothing is acknowledged before its commit.) */
enum { KILL_RUNS = 8 };

struct kill_worker {
    struct store *s;
    int index;
    int fd;
};

static void *kill_appender(void *arg)
{
    struct kill_worker *k = arg;
    char run[32];
    snprintf(run, sizeof run, "run_k%d", k->index);
    struct journal_writer *w;
    struct keel_err err;
    if (journal_writer_open(k->s, run, &w, &err)) _exit(3);
    for (;;) {
        struct journal_appended app;
        if (journal_writer_append_text(w, "signal.received", "system", "{\"name\":\"x\"}", 12, 0,
                                       &app, &err))
            _exit(4);
        int64_t msg[2] = {k->index, app.seq};
        if (write(k->fd, msg, sizeof msg) != sizeof msg) _exit(5);
    }
    return NULL;
}

TEST(acknowledged_appends_survive_kill)
{
    struct tmp t;
    tmp_make(&t);
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        struct store *s = open_store(&t);
        if (!s) _exit(2);
        pthread_t th[KILL_RUNS];
        struct kill_worker kw[KILL_RUNS];
        for (int i = 0; i < KILL_RUNS; i++) {
            kw[i] = (struct kill_worker){.s = s, .index = i, .fd = fds[1]};
            pthread_create(&th[i], NULL, kill_appender, &kw[i]);
        }
        for (int i = 0; i < KILL_RUNS; i++) pthread_join(th[i], NULL);
        _exit(0);
    }
    close(fds[1]);
    int64_t acked[KILL_RUNS] = {0};
    int64_t msg[2];
    int got = 0;
    while (got < 600 && read(fds[0], msg, sizeof msg) == sizeof msg) {
        if (msg[0] >= 0 && msg[0] < KILL_RUNS && msg[1] > acked[msg[0]]) acked[msg[0]] = msg[1];
        got++;
    }
    kill(pid, SIGKILL);
    while (read(fds[0], msg, sizeof msg) == sizeof msg)
        if (msg[0] >= 0 && msg[0] < KILL_RUNS && msg[1] > acked[msg[0]]) acked[msg[0]] = msg[1];
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status));
    CHECK_INT(got, 600);

    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    for (int i = 0; i < KILL_RUNS; i++) {
        char run[32];
        snprintf(run, sizeof run, "run_k%d", i);
        struct journal_verify_report rep;
        REQUIRE(journal_verify(s, run, &rep, &err) == 0);
        CHECK(rep.ok);
        CHECK(rep.events >= acked[i]); /* everything acknowledged is there */
        /* and the run goes on from where it stopped */
        struct journal_writer *w;
        REQUIRE(journal_writer_open(s, run, &w, &err) == 0);
        CHECK_INT(journal_writer_seq(w), rep.events);
        CHECK_INT(append_text(w, "run.cancelled", "{}"), 0);
        journal_writer_free(w);
    }
    store_close(s);
    tmp_remove(&t);
}
