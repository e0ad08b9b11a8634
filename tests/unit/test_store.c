/*
 * test_store.c — the store interface on its SQLite implementation: runs,
 * statuses and leases, workflow versions, approvals (decide once, even under
 * concurrency), timers, idempotency, key/value, event continuity, atomic
 * append requests, reopening, read-only and foreign files, group commit,
 * model usage rows (model_calls: written with their events, summed,
 * backfilled by migration 4).
 */
#include "json/json.h"
#include "store/sqlite_internal.h" /* LOG_INDEX_ROWS */
#include "store/store.h"
#include "test.h"
#include "store_fixture.h"

#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>

static const char wf_hash[] = "1111111111111111111111111111111111111111111111111111111111111111";
static const char zeros[] = "0000000000000000000000000000000000000000000000000000000000000000";

static void tmp_make(struct tmp *t)
{
    tmp_make_named(t, "store");
}

static struct store_run make_run(const char *id, enum store_run_status st)
{
    struct store_run r = {
        .id = id,
        .workflow = "triage",
        .workflow_hash = wf_hash,
        .status = st,
        .input = "{\"ticket\":1}",
        .identity = "human:alice",
    };
    return r;
}

TEST(open_rejects_bad_uris)
{
    struct keel_err err;
    struct store *s = NULL;
    CHECK_INT(store_open("", NULL, &s, &err), KEEL_EINVAL);
    CHECK_INT(store_open("mysql://x", NULL, &s, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "sqlite:");
    CHECK_INT(store_open("postgres://localhost/keel", NULL, &s, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "PostgreSQL");
    CHECK_INT(store_open("sqlite:/nonexistent-dir-keel/x/keel.db", NULL, &s, &err), KEEL_EIO);
    CHECK_CONTAINS(err.msg, "/nonexistent-dir-keel/x/keel.db");
}

TEST(runs_create_get_status)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct store_run r = make_run("run_1", STORE_RUN_PENDING);
    r.created_ms = 1000;
    CHECK_INT(store_run_create(s, &r, &err), 0);
    CHECK_INT(store_run_create(s, &r, &err), KEEL_EEXIST);
    CHECK_CONTAINS(err.msg, "run_1");

    struct arena a;
    arena_init(&a);
    struct store_run got;
    REQUIRE(store_run_get(s, "run_1", &a, &got, &err) == 0);
    CHECK_STR(got.id, "run_1");
    CHECK_STR(got.workflow, "triage");
    CHECK_STR(got.workflow_hash, wf_hash);
    CHECK_STR(got.input, "{\"ticket\":1}");
    CHECK_STR(got.identity, "human:alice");
    CHECK_INT(got.status, STORE_RUN_PENDING);
    CHECK_INT(got.created_ms, 1000);
    CHECK_INT(got.updated_ms, 1000);
    CHECK(got.parent_id == NULL);
    CHECK(got.lease_owner == NULL);
    CHECK_INT(store_run_get(s, "nope", &a, &got, &err), KEEL_ENOENT);

    /* Compare-and-set transitions. */
    CHECK_INT(store_run_set_status(s, "run_1", STORE_RUN_MASK(STORE_RUN_PENDING),
                                   STORE_RUN_RUNNING, "started", 2000, &err),
              0);
    CHECK_INT(store_run_set_status(s, "run_1", STORE_RUN_MASK(STORE_RUN_PENDING),
                                   STORE_RUN_RUNNING, NULL, 2001, &err),
              KEEL_ESTATE);
    CHECK_CONTAINS(err.msg, "running");
    CHECK_INT(store_run_set_status(s, "run_1", STORE_RUN_MASK_ANY, STORE_RUN_FAILED, "boom", 3000,
                                   &err),
              0);
    CHECK_INT(store_run_set_status(s, "ghost", STORE_RUN_MASK_ANY, STORE_RUN_FAILED, NULL, 0, &err),
              KEEL_ENOENT);
    CHECK_INT(store_run_set_status(s, "run_1", 0, (enum store_run_status)42, NULL, 0, &err),
              KEEL_EINVAL);
    REQUIRE(store_run_get(s, "run_1", &a, &got, &err) == 0);
    CHECK_INT(got.status, STORE_RUN_FAILED);
    CHECK_STR(got.reason, "boom");
    CHECK_INT(got.updated_ms, 3000);
    CHECK(store_run_status_is_final(got.status));
    CHECK(!store_run_status_is_final(STORE_RUN_WAITING));

    /* Argument checks. */
    struct store_run bad = make_run("", STORE_RUN_PENDING);
    CHECK_INT(store_run_create(s, &bad, &err), KEEL_EINVAL);
    bad = make_run("x\ny", STORE_RUN_PENDING);
    CHECK_INT(store_run_create(s, &bad, &err), KEEL_EINVAL);
    bad = make_run("ok", STORE_RUN_PENDING);
    bad.workflow_hash = "abc";
    CHECK_INT(store_run_create(s, &bad, &err), KEEL_EINVAL);
    char long_id[STORE_ID_MAX + 2];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    bad = make_run(long_id, STORE_RUN_PENDING);
    CHECK_INT(store_run_create(s, &bad, &err), KEEL_ELIMIT);

    enum store_run_status st;
    CHECK_INT(store_run_status_parse("needs_reconcile", &st, &err), 0);
    CHECK_INT(st, STORE_RUN_NEEDS_RECONCILE);
    CHECK_INT(store_run_status_parse("done", &st, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "succeeded");
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}

TEST(runs_list_filter_and_page)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    const enum store_run_status sts[] = {STORE_RUN_PENDING, STORE_RUN_RUNNING, STORE_RUN_WAITING,
                                         STORE_RUN_SUCCEEDED, STORE_RUN_NEEDS_RECONCILE};
    for (int i = 0; i < 25; i++) {
        char id[32];
        snprintf(id, sizeof id, "run_%02d", i);
        struct store_run r = make_run(id, sts[i % 5]);
        if (i % 2) r.workflow = "other";
        if (i == 7) {
            r.parent_id = "run_03";
            r.parent_seq = 4;
        }
        REQUIRE(store_run_create(s, &r, &err) == 0);
    }
    struct arena a;
    arena_init(&a);
    struct store_run *runs;
    size_t n;
    REQUIRE(store_run_list(s, NULL, &a, &runs, &n, &err) == 0);
    CHECK_INT(n, 25);
    CHECK_STR(runs[0].id, "run_00");
    CHECK_STR(runs[24].id, "run_24");

    /* Paging, newest first, 10 at a time. */
    struct store_run_filter f = {.newest_first = true, .limit = 10};
    size_t total = 0;
    const char *last = NULL;
    for (int page = 0; page < 5; page++) {
        f.after_id = last;
        REQUIRE(store_run_list(s, &f, &a, &runs, &n, &err) == 0);
        if (n == 0) break;
        if (page == 0) CHECK_STR(runs[0].id, "run_24");
        total += n;
        last = runs[n - 1].id;
    }
    CHECK_INT(total, 25);
    CHECK_STR(last, "run_00");

    struct store_run_filter by = {.status_mask = STORE_RUN_MASK(STORE_RUN_RUNNING),
                                  .workflow = "other"};
    REQUIRE(store_run_list(s, &by, &a, &runs, &n, &err) == 0);
    /* running: i % 5 == 1 -> 1, 6, 11, 16, 21; odd: 1, 11, 21 */
    CHECK_INT(n, 3);
    for (size_t i = 0; i < n; i++) {
        CHECK_INT(runs[i].status, STORE_RUN_RUNNING);
        CHECK_STR(runs[i].workflow, "other");
    }
    struct store_run_filter forks = {.parent_id = "run_03"};
    REQUIRE(store_run_list(s, &forks, &a, &runs, &n, &err) == 0);
    CHECK_INT(n, 1);
    CHECK_STR(runs[0].id, "run_07");
    CHECK_INT(runs[0].parent_seq, 4);

    REQUIRE(store_list_unfinished_runs(s, NULL, 0, &a, &runs, &n, &err) == 0);
    CHECK_INT(n, 15); /* pending, running, waiting: 3 of every 5 */
    for (size_t i = 0; i < n; i++)
        CHECK(runs[i].status == STORE_RUN_PENDING || runs[i].status == STORE_RUN_RUNNING ||
              runs[i].status == STORE_RUN_WAITING);
    REQUIRE(store_list_unfinished_runs(s, "run_20", 2, &a, &runs, &n, &err) == 0);
    CHECK_INT(n, 2);
    CHECK_STR(runs[0].id, "run_21");
    CHECK_STR(runs[1].id, "run_22");
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}

TEST(leases)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct store_run r1 = make_run("run_a", STORE_RUN_PENDING);
    struct store_run r2 = make_run("run_b", STORE_RUN_RUNNING);
    REQUIRE(store_run_create(s, &r1, &err) == 0);
    REQUIRE(store_run_create(s, &r2, &err) == 0);

    CHECK_INT(store_run_claim(s, "run_a", "node1", 1000, 10000, &err), 0);
    CHECK_INT(store_run_claim(s, "run_a", "node2", 1000, 10500, &err), KEEL_EBUSY);
    CHECK_CONTAINS(err.msg, "node1");
    CHECK_INT(store_run_claim(s, "run_a", "node1", 1000, 10900, &err), 0); /* renewal */
    CHECK_INT(store_run_claim(s, "run_a", "node2", 1000, 11500, &err), KEEL_EBUSY);
    CHECK_INT(store_run_claim(s, "run_a", "node2", 1000, 11900, &err), 0); /* expired */
    CHECK_INT(store_run_claim(s, "ghost", "node2", 1000, 0, &err), KEEL_ENOENT);
    struct arena a;
    arena_init(&a);
    struct store_run got;
    REQUIRE(store_run_get(s, "run_a", &a, &got, &err) == 0);
    CHECK_STR(got.lease_owner, "node2");
    CHECK_INT(got.lease_expires_ms, 12900);
    CHECK_INT(store_run_release(s, "run_a", "node1", &err), 0); /* not the holder: no-op */
    REQUIRE(store_run_get(s, "run_a", &a, &got, &err) == 0);
    CHECK_STR(got.lease_owner, "node2");
    CHECK_INT(store_run_release(s, "run_a", "node2", &err), 0);
    REQUIRE(store_run_get(s, "run_a", &a, &got, &err) == 0);
    CHECK(got.lease_owner == NULL);

    /* claim_next: oldest unclaimed run with a matching status. */
    unsigned mask = STORE_RUN_MASK(STORE_RUN_PENDING) | STORE_RUN_MASK(STORE_RUN_RUNNING);
    CHECK_INT(store_run_claim_next(s, mask, "n1", 1000, 20000, &a, &got, &err), 0);
    CHECK_STR(got.id, "run_a");
    CHECK_STR(got.lease_owner, "n1");
    CHECK_INT(store_run_claim_next(s, mask, "n2", 1000, 20000, &a, &got, &err), 0);
    CHECK_STR(got.id, "run_b");
    CHECK_INT(store_run_claim_next(s, mask, "n3", 1000, 20000, &a, &got, &err), KEEL_ENOENT);
    CHECK_INT(store_run_claim_next(s, mask, "n3", 1000, 21000, &a, &got, &err), 0);
    CHECK_STR(got.id, "run_a");
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}

TEST(workflow_versions_are_immutable)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    const char *h2 = "2222222222222222222222222222222222222222222222222222222222222222";
    CHECK_INT(store_workflow_put(s, "triage", wf_hash, "name: triage\n", 100, &err), 0);
    CHECK_INT(store_workflow_put(s, "triage", wf_hash, "name: triage\n", 150, &err), 0);
    CHECK_INT(store_workflow_put(s, "triage", wf_hash, "name: other\n", 160, &err),
              KEEL_ECORRUPT);
    CHECK_INT(store_workflow_put(s, "triage", h2, "name: triage\nv: 2\n", 200, &err), 0);
    struct arena a;
    arena_init(&a);
    const char *body, *hash;
    REQUIRE(store_workflow_get(s, "triage", wf_hash, &a, &body, NULL, &err) == 0);
    CHECK_STR(body, "name: triage\n");
    REQUIRE(store_workflow_get(s, "triage", NULL, &a, &body, &hash, &err) == 0);
    CHECK_STR(body, "name: triage\nv: 2\n");
    CHECK_STR(hash, h2);
    CHECK_INT(store_workflow_get(s, "nope", NULL, &a, &body, &hash, &err), KEEL_ENOENT);
    CHECK_INT(store_workflow_get(s, "triage", zeros, &a, &body, &hash, &err), KEEL_ENOENT);
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}

struct decide_ctx {
    struct store *s;
    int wins;
    int conflicts;
    pthread_mutex_t mu;
    int who;
};

static void *decider(void *arg)
{
    struct decide_ctx *c = arg;
    pthread_mutex_lock(&c->mu);
    int me = c->who++;
    pthread_mutex_unlock(&c->mu);
    char by[32];
    snprintf(by, sizeof by, "human:u%d", me);
    struct keel_err err;
    int rc = store_approval_decide(c->s, "ap_race", me % 2 ? STORE_APPROVAL_APPROVED :
                                   STORE_APPROVAL_DENIED, by, NULL, 0, &err);
    pthread_mutex_lock(&c->mu);
    if (rc == 0) c->wins++;
    else if (rc == KEEL_ESTATE) c->conflicts++;
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

TEST(approvals_decide_once)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct store_approval ap = {
        .id = "ap_1",
        .run_id = "run_1",
        .step_id = "reply",
        .group = "support-leads",
        .request = "{\"args_digest\":\"abc\",\"tool\":\"mail/send\"}",
        .expires_ms = 99999,
    };
    CHECK_INT(store_approval_create(s, &ap, &err), 0);
    CHECK_INT(store_approval_create(s, &ap, &err), KEEL_EEXIST);
    ap.id = "ap_2";
    ap.group = "finance";
    CHECK_INT(store_approval_create(s, &ap, &err), 0);

    struct arena a;
    arena_init(&a);
    struct store_approval *list;
    size_t n;
    struct store_approval_filter pending = {.status_mask = 1u << STORE_APPROVAL_PENDING};
    REQUIRE(store_approval_list(s, &pending, &a, &list, &n, &err) == 0);
    CHECK_INT(n, 2);

    CHECK_INT(store_approval_decide(s, "ap_1", STORE_APPROVAL_APPROVED, "human:bob", "ok", 5000,
                                    &err),
              0);
    CHECK_INT(store_approval_decide(s, "ap_1", STORE_APPROVAL_DENIED, "human:carol", NULL, 6000,
                                    &err),
              KEEL_ESTATE);
    CHECK_CONTAINS(err.msg, "approved by human:bob");
    CHECK_INT(store_approval_decide(s, "ap_9", STORE_APPROVAL_DENIED, "human:carol", NULL, 0, &err),
              KEEL_ENOENT);
    CHECK_INT(store_approval_decide(s, "ap_2", STORE_APPROVAL_PENDING, "human:carol", NULL, 0,
                                    &err),
              KEEL_EINVAL);
    struct store_approval got;
    REQUIRE(store_approval_get(s, "ap_1", &a, &got, &err) == 0);
    CHECK_INT(got.status, STORE_APPROVAL_APPROVED);
    CHECK_STR(got.decided_by, "human:bob");
    CHECK_STR(got.comment, "ok");
    CHECK_INT(got.decided_ms, 5000);
    CHECK_INT(got.expires_ms, 99999);
    CHECK_STR(got.request, "{\"args_digest\":\"abc\",\"tool\":\"mail/send\"}");

    REQUIRE(store_approval_list(s, &pending, &a, &list, &n, &err) == 0);
    CHECK_INT(n, 1);
    CHECK_STR(list[0].id, "ap_2");
    struct store_approval_filter by_group = {.group = "support-leads"};
    REQUIRE(store_approval_list(s, &by_group, &a, &list, &n, &err) == 0);
    CHECK_INT(n, 1);
    CHECK_STR(list[0].id, "ap_1");

    /* Eight threads race to decide one approval: exactly one wins. */
    ap.id = "ap_race";
    REQUIRE(store_approval_create(s, &ap, &err) == 0);
    struct decide_ctx c = {.s = s};
    pthread_mutex_init(&c.mu, NULL);
    pthread_t th[8];
    for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, decider, &c);
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    CHECK_INT(c.wins, 1);
    CHECK_INT(c.conflicts, 7);
    pthread_mutex_destroy(&c.mu);
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}

TEST(timers_claim_due)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct store_timer t1 = {.id = "t1", .run_id = "run_1", .step_id = "wait", .due_ms = 1000,
                             .payload = "{\"n\":1}"};
    struct store_timer t2 = {.id = "t2", .run_id = "run_1", .due_ms = 3000};
    struct store_timer t3 = {.id = "t3", .run_id = "run_2", .due_ms = 2000};
    int64_t due;
    CHECK_INT(store_timer_next_due(s, &due, &err), KEEL_ENOENT);
    REQUIRE(store_timer_set(s, &t1, &err) == 0);
    REQUIRE(store_timer_set(s, &t2, &err) == 0);
    REQUIRE(store_timer_set(s, &t3, &err) == 0);
    REQUIRE(store_timer_next_due(s, &due, &err) == 0);
    CHECK_INT(due, 1000);

    struct arena a;
    arena_init(&a);
    struct store_timer *ts;
    size_t n;
    REQUIRE(store_timer_claim_due(s, 2500, "node1", 500, 0, &a, &ts, &n, &err) == 0);
    CHECK_INT(n, 2);
    CHECK_STR(ts[0].id, "t1");
    CHECK_STR(ts[0].step_id, "wait");
    CHECK_STR(ts[0].payload, "{\"n\":1}");
    CHECK_STR(ts[1].id, "t3");
    CHECK(ts[1].step_id == NULL);
    /* Claimed timers are not handed out again while the claim lasts ... */
    REQUIRE(store_timer_claim_due(s, 2600, "node2", 500, 0, &a, &ts, &n, &err) == 0);
    CHECK_INT(n, 0);
    /* ... and are, once it expired (the claimer crashed). */
    REQUIRE(store_timer_claim_due(s, 3000, "node2", 500, 1, &a, &ts, &n, &err) == 0);
    CHECK_INT(n, 1);
    CHECK_STR(ts[0].id, "t1");
    CHECK_STR(ts[0].claim_owner, "node2");
    CHECK_INT(store_timer_delete(s, "t1", &err), 0);
    CHECK_INT(store_timer_delete(s, "t1", &err), KEEL_ENOENT);
    size_t deleted = 0;
    CHECK_INT(store_timer_delete_run(s, "run_1", &deleted, &err), 0);
    CHECK_INT(deleted, 1);
    REQUIRE(store_timer_next_due(s, &due, &err) == 0);
    CHECK_INT(due, 2000);
    /* Re-setting a timer unclaims it. */
    t3.due_ms = 2100;
    REQUIRE(store_timer_set(s, &t3, &err) == 0);
    REQUIRE(store_timer_claim_due(s, 3000, "node3", 500, 0, &a, &ts, &n, &err) == 0);
    CHECK_INT(n, 1);
    CHECK_INT(ts[0].due_ms, 2100);
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}

TEST(idempotency_and_kv)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct arena a;
    arena_init(&a);
    const char *v = NULL;
    CHECK_INT(store_idem_put(s, "run_1/fetch/0", "run_1", "{\"ok\":true}", 0, &a, &v, &err), 0);
    CHECK_INT(store_idem_put(s, "run_1/fetch/0", "run_1", "{\"ok\":false}", 0, &a, &v, &err),
              KEEL_EEXIST);
    CHECK_STR(v, "{\"ok\":true}");
    REQUIRE(store_idem_get(s, "run_1/fetch/0", 0, &a, &v, &err) == 0);
    CHECK_STR(v, "{\"ok\":true}");
    int64_t now = keel_wall_ms();
    CHECK_INT(store_idem_put(s, "k2", NULL, "1", now + 1000, &a, NULL, &err), 0);
    CHECK_INT(store_idem_get(s, "k2", now + 2000, &a, &v, &err), KEEL_ENOENT);
    CHECK_CONTAINS(err.msg, "expired");
    size_t n = 0;
    CHECK_INT(store_idem_expire(s, now + 2000, &n, &err), 0);
    CHECK_INT(n, 1);
    CHECK_INT(store_idem_get(s, "nope", 0, &a, &v, &err), KEEL_ENOENT);

    CHECK_INT(store_kv_put(s, "node.id", "n1", &err), 0);
    CHECK_INT(store_kv_put(s, "node.id", "n2", &err), 0);
    REQUIRE(store_kv_get(s, "node.id", &a, &v, &err) == 0);
    CHECK_STR(v, "n2");
    CHECK_INT(store_kv_delete(s, "node.id", &err), 0);
    CHECK_INT(store_kv_get(s, "node.id", &a, &v, &err), KEEL_ENOENT);
    CHECK_INT(store_kv_delete(s, "node.id", &err), KEEL_ENOENT);
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}

/* Builds a store_event with fake but well-formed hashes: h(seq) = seq as a
 * 64-digit decimal, so prev of seq n is h(n-1). */
static void fake_hash(int64_t seq, char out[65])
{
    if (seq == 0) {
        memcpy(out, zeros, 65);
        return;
    }
    snprintf(out, 65, "%064lld", (long long)seq);
}

static struct store_event ev_at(const char *run, int64_t seq)
{
    struct store_event e = {.run_id = run, .seq = seq, .time_ms = 1000 + seq, .kind = "step.started",
                            .actor = "system", .payload = "{}", .payload_len = 2};
    fake_hash(seq - 1, e.prev_hash);
    fake_hash(seq, e.hash);
    return e;
}

static int count_events(void *ctx, const struct store_event *ev)
{
    int64_t *n = ctx;
    (*n)++;
    return ev->seq == *n ? 0 : 99;
}

TEST(events_continuity)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct store_event e1 = ev_at("r", 1), e2 = ev_at("r", 2), e3 = ev_at("r", 3);
    struct store_append req = {.events = &e1, .n_events = 1};
    CHECK_INT(store_append(s, &req, &err), 0);
    CHECK_INT(store_append(s, &req, &err), KEEL_EEXIST); /* seq 1 again */
    req.events = &e3;
    CHECK_INT(store_append(s, &req, &err), KEEL_ESTATE); /* gap */
    CHECK_CONTAINS(err.msg, "gap");
    struct store_event wrong = e2;
    wrong.prev_hash[0] = 'f';
    req.events = &wrong;
    CHECK_INT(store_append(s, &req, &err), KEEL_ESTATE); /* does not chain */
    CHECK_CONTAINS(err.msg, "prev_hash");
    struct store_event first_bad = ev_at("q", 1);
    first_bad.prev_hash[5] = '1';
    req.events = &first_bad;
    CHECK_INT(store_append(s, &req, &err), KEEL_ESTATE);
    /* Hashes must be exactly 64 lowercase hex characters. */
    const char *bad_hashes[] = {"A", "g", "-", " ", "\x80", ""};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(bad_hashes); i++) {
        struct store_event h = e2;
        if (*bad_hashes[i]) h.hash[63 - i] = *bad_hashes[i];
        else h.hash[40] = '\0'; /* short */
        req.events = &h;
        CHECK_INT(store_append(s, &req, &err), KEEL_EINVAL);
        CHECK_CONTAINS(err.msg, "64 lowercase hex");
    }

    /* A request is all or nothing: [e2, e3, bad e4] inserts none. */
    struct store_event batch[3] = {e2, e3, ev_at("r", 4)};
    batch[2].prev_hash[0] = 'f';
    req.events = batch;
    req.n_events = 3;
    CHECK_INT(store_append(s, &req, &err), KEEL_ESTATE);
    int64_t seq = -1;
    char hash[65];
    REQUIRE(store_events_tail(s, "r", &seq, hash, &err) == 0);
    CHECK_INT(seq, 1);
    batch[2] = ev_at("r", 4);
    CHECK_INT(store_append(s, &req, &err), 0);
    REQUIRE(store_events_tail(s, "r", &seq, hash, &err) == 0);
    CHECK_INT(seq, 4);
    CHECK_STR(hash, batch[2].hash);
    REQUIRE(store_events_tail(s, "empty", &seq, hash, &err) == 0);
    CHECK_INT(seq, 0);
    CHECK_STR(hash, zeros);

    int64_t n = 0;
    CHECK_INT(store_events_scan(s, "r", 1, 0, count_events, &n, &err), 0);
    CHECK_INT(n, 4);
    n = 1;
    CHECK_INT(store_events_scan(s, "r", 2, 2, count_events, &n, &err), 0);
    CHECK_INT(n, 3);

    /* Events, a status change and a snapshot in one transaction. */
    struct store_run r = make_run("r", STORE_RUN_RUNNING);
    REQUIRE(store_run_create(s, &r, &err) == 0);
    struct store_event e5 = ev_at("r", 5);
    e5.kind = "run.succeeded";
    struct store_append fin = {.events = &e5, .n_events = 1, .status_run_id = "r",
                               .status = STORE_RUN_SUCCEEDED, .status_reason = "done",
                               .snapshot_run_id = "r", .snapshot_seq = 5,
                               .snapshot_state = "{\"x\":1}"};
    CHECK_INT(store_append(s, &fin, &err), 0);
    struct arena a;
    arena_init(&a);
    struct store_run got;
    REQUIRE(store_run_get(s, "r", &a, &got, &err) == 0);
    CHECK_INT(got.status, STORE_RUN_SUCCEEDED);
    const char *state;
    REQUIRE(store_snapshot_get(s, "r", 0, &a, &seq, &state, &err) == 0);
    CHECK_INT(seq, 5);
    CHECK_STR(state, "{\"x\":1}");
    CHECK_INT(store_snapshot_get(s, "r", 4, &a, &seq, &state, &err), KEEL_ENOENT);
    /* A status change for an unknown run fails the whole request. */
    struct store_event e6 = ev_at("r", 6);
    struct store_append ghost = {.events = &e6, .n_events = 1, .status_run_id = "ghost"};
    CHECK_INT(store_append(s, &ghost, &err), KEEL_ENOENT);
    REQUIRE(store_events_tail(s, "r", &seq, hash, &err) == 0);
    CHECK_INT(seq, 5);
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}

struct group_ctx {
    struct store *s;
    int index;
    int per_thread;
    int failures;
};

static void *appender(void *arg)
{
    struct group_ctx *c = arg;
    char run[32];
    snprintf(run, sizeof run, "run_%d", c->index);
    for (int i = 1; i <= c->per_thread; i++) {
        struct store_event e = ev_at(run, i);
        struct store_append req = {.events = &e, .n_events = 1};
        struct keel_err err;
        if (store_append(c->s, &req, &err) != 0) c->failures++;
    }
    return NULL;
}

TEST(group_commit_groups)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    enum { THREADS = 16, PER = 50 };
    struct group_ctx ctx[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ctx[i] = (struct group_ctx){.s = s, .index = i, .per_thread = PER};
        pthread_create(&th[i], NULL, appender, &ctx[i]);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    int failures = 0;
    for (int i = 0; i < THREADS; i++) failures += ctx[i].failures;
    CHECK_INT(failures, 0);
    struct store_stats st;
    store_get_stats(s, &st);
    CHECK_INT(st.appends, THREADS * PER);
    CHECK_INT(st.events, THREADS * PER);
    CHECK(st.durable_commits);
    /* Sixteen threads waiting on fsyncs: commits must carry several appends. */
    fprintf(stderr, "group commit: %llu appends in %llu commits (max %llu per commit)\n",
            (unsigned long long)st.appends, (unsigned long long)st.group_commits,
            (unsigned long long)st.max_group);
    CHECK(st.group_commits < st.appends);
    CHECK(st.max_group > 1);
    struct keel_err err;
    for (int i = 0; i < THREADS; i++) {
        char run[32];
        snprintf(run, sizeof run, "run_%d", i);
        int64_t n = 0;
        CHECK_INT(store_events_scan(s, run, 1, 0, count_events, &n, &err), 0);
        CHECK_INT(n, PER);
    }
    store_close(s);
    tmp_remove(&t);
}

TEST(reopen_read_only_and_foreign_files)
{
    struct tmp t;
    tmp_make(&t);
    struct keel_err err;
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct store_run r = make_run("run_keep", STORE_RUN_WAITING);
    REQUIRE(store_run_create(s, &r, &err) == 0);
    store_close(s);

    /* Reopen: the data is there, the schema version was kept. */
    s = open_store(&t);
    REQUIRE(s);
    struct arena a;
    arena_init(&a);
    struct store_run got;
    CHECK_INT(store_run_get(s, "run_keep", &a, &got, &err), 0);
    CHECK_INT(got.status, STORE_RUN_WAITING);
    store_close(s);

    sqlite3 *db;
    REQUIRE(sqlite3_open(t.path, &db) == SQLITE_OK);
    sqlite3_stmt *st;
    REQUIRE(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    REQUIRE(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    CHECK_INT(sqlite3_column_int(st, 0), 4);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* Read-only: reads work, writes are refused with a clear message. */
    struct store_opts ro = {.read_only = true};
    REQUIRE(store_open(t.uri, &ro, &s, &err) == 0);
    CHECK_INT(store_run_get(s, "run_keep", &a, &got, &err), 0);
    struct store_run r2 = make_run("run_new", STORE_RUN_PENDING);
    CHECK_INT(store_run_create(s, &r2, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "read-only");
    struct store_event e = ev_at("run_keep", 1);
    struct store_append req = {.events = &e, .n_events = 1};
    CHECK_INT(store_append(s, &req, &err), KEEL_EINVAL);
    store_close(s);
    arena_cleanup(&a);

    /* A database that is not a Keel store is refused, not modified. */
    char other[400];
    snprintf(other, sizeof other, "%s/other.db", t.dir);
    REQUIRE(sqlite3_open(other, &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "CREATE TABLE x(y)", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    char uri[420];
    snprintf(uri, sizeof uri, "sqlite:%s", other);
    CHECK_INT(store_open(uri, NULL, &s, &err), KEEL_ECORRUPT);
    CHECK_CONTAINS(err.msg, "not a Keel store");
    unlink(other);
    tmp_remove(&t);
}

/* Runs sql on the database file behind the store's back (waiting for the
 * lock if the store, still open, is writing: its committer indexes the log
 * and its checkpointer runs on their own). */
static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK) abort();
    sqlite3_busy_timeout(db, 10000);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "raw_exec: %s\n", msg ? msg : "?");
        abort();
    }
    sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    if (sqlite3_open(path, &db) != SQLITE_OK) abort();
    sqlite3_busy_timeout(db, 10000);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "raw_int %s: %s\n", sql, sqlite3_errmsg(db));
        abort();
    }
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Schema 3 keeps every event in one rowid table and indexes it in batches;
 * schema 2 moved events from events_log into a WITHOUT ROWID events table.
 * A store written by schema 2, with events in both tables, opens migrated
 * and reads, continues and refuses exactly as before. */
TEST(events_table_migrates_from_schema_2)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    for (int64_t i = 1; i <= 4; i++) {
        struct store_event ea = ev_at("run_a", i), eb = ev_at("run_b", i);
        struct store_append ra = {.events = &ea, .n_events = 1};
        struct store_append rb = {.events = &eb, .n_events = 1};
        REQUIRE(store_append(s, &ra, &err) == 0);
        if (i <= 2) REQUIRE(store_append(s, &rb, &err) == 0);
    }
    store_close(s);
    /* Rebuild the schema-2 layout: events 1-3 in a WITHOUT ROWID events
     * table, the rest in events_log. */
    raw_exec(t.path,
             "BEGIN;"
             "CREATE TABLE events_v2 (run_id TEXT NOT NULL, seq INTEGER NOT NULL, time_ms "
             "INTEGER NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL, payload TEXT NOT NULL, "
             "prev_hash TEXT NOT NULL, hash TEXT NOT NULL, PRIMARY KEY (run_id, seq)) WITHOUT "
             "ROWID;"
             "CREATE TABLE events_log (id INTEGER PRIMARY KEY, run_id TEXT NOT NULL, seq INTEGER "
             "NOT NULL, time_ms INTEGER NOT NULL, kind TEXT NOT NULL, actor TEXT NOT NULL, "
             "payload TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);"
             "INSERT INTO events_v2 SELECT run_id, seq, time_ms, kind, actor, payload, "
             "prev_hash, hash FROM events WHERE seq <= 3;"
             "INSERT INTO events_log (run_id, seq, time_ms, kind, actor, payload, prev_hash, "
             "hash) SELECT run_id, seq, time_ms, kind, actor, payload, prev_hash, hash FROM "
             "events WHERE seq > 3 ORDER BY id;"
             "DROP TABLE events; DROP TABLE events_index; DROP TABLE events_indexed;"
             "DROP TABLE model_calls;"
             "ALTER TABLE events_v2 RENAME TO events;"
             "PRAGMA user_version=2;"
             "COMMIT;");
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM events"), 5);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM events_log"), 1);

    s = open_store(&t);
    REQUIRE(s);
    CHECK_INT(raw_int(t.path, "PRAGMA user_version"), 4);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM events"), 6);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM events_index i JOIN events e ON e.id = i.id "
                              "AND e.run_id = i.run_id AND e.seq = i.seq"),
              6);
    CHECK_INT(raw_int(t.path, "SELECT upto = (SELECT max(id) FROM events) FROM events_indexed"),
              1);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM sqlite_master WHERE name IN ('events_log', "
                              "'events_v2')"),
              0);
    int64_t n = 0;
    CHECK_INT(store_events_scan(s, "run_a", 1, 0, count_events, &n, &err), 0);
    CHECK_INT(n, 4);
    n = 0;
    CHECK_INT(store_events_scan(s, "run_b", 1, 0, count_events, &n, &err), 0);
    CHECK_INT(n, 2);
    int64_t seq = 0;
    char hash[STORE_HASH_HEX + 1];
    REQUIRE(store_events_tail(s, "run_b", &seq, hash, &err) == 0);
    CHECK_INT(seq, 2);
    /* The chain continues on the migrated rows; a taken seq is refused. */
    struct store_event e3 = ev_at("run_b", 3), again = ev_at("run_b", 2);
    struct store_append r3 = {.events = &e3, .n_events = 1};
    struct store_append r2 = {.events = &again, .n_events = 1};
    CHECK_INT(store_append(s, &r3, &err), 0);
    CHECK_INT(store_append(s, &r2, &err), KEEL_EEXIST);
    store_close(s);
    /* The index's primary key backs the committer's check. */
    sqlite3 *db;
    REQUIRE(sqlite3_open(t.path, &db) == SQLITE_OK);
    CHECK_INT(sqlite3_exec(db, "INSERT INTO events_index SELECT run_id, seq, id FROM events "
                               "WHERE run_id = 'run_a' AND seq = 1",
                           NULL, NULL, NULL) &
                  0xff,
              SQLITE_CONSTRAINT);
    sqlite3_close(db);
    tmp_remove(&t);
}

/* Indexing covers the whole log, whoever wrote it: an event another
 * connection added is indexed with the store's own (it is read back, and
 * the index matches the rows).  The store indexes its log at open, so the
 * first append starts a fresh log; N = LOG_INDEX_ROWS + 1 events reach the
 * mark. */
TEST(index_covers_events_written_by_another_connection)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct store_event first = ev_at("bulk", 1);
    struct store_append req = {.events = &first, .n_events = 1};
    REQUIRE(store_append(s, &req, &err) == 0);
    raw_exec(t.path, "INSERT INTO events (run_id, seq, time_ms, kind, actor, payload, prev_hash, "
                     "hash) VALUES ('sneak', 1, 1, 'step.started', 'system', '{}', "
                     "'0000000000000000000000000000000000000000000000000000000000000000', "
                     "'1111111111111111111111111111111111111111111111111111111111111111')");
    enum { N = LOG_INDEX_ROWS + 1 };
    struct store_event *batch = malloc((N - 1) * sizeof *batch);
    REQUIRE(batch);
    for (int i = 0; i < N - 1; i++) batch[i] = ev_at("bulk", i + 2);
    req.events = batch;
    req.n_events = N - 1;
    REQUIRE(store_append(s, &req, &err) == 0);
    store_close(s); /* the committer indexes the long log before it stops */
    free(batch);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM events WHERE id > (SELECT upto FROM "
                              "events_indexed)"),
              0);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM events_index i JOIN events e ON e.id = i.id "
                              "AND e.run_id = i.run_id AND e.seq = i.seq"),
              N + 1);
    s = open_store(&t);
    REQUIRE(s);
    int64_t n = 0;
    CHECK_INT(store_events_scan(s, "sneak", 1, 0, count_events, &n, &err), 0);
    CHECK_INT(n, 1);
    n = 0;
    CHECK_INT(store_events_scan(s, "bulk", 1, 0, count_events, &n, &err), 0);
    CHECK_INT(n, N);
    store_close(s);
    tmp_remove(&t);
}

TEST(durability_modes)
{
    struct tmp t;
    tmp_make(&t);
    struct keel_err err;
    struct store *s;
    struct store_opts normal = {.durability = STORE_DURABILITY_NORMAL};
    REQUIRE(store_open(t.uri, &normal, &s, &err) == 0);
    struct store_stats st;
    store_get_stats(s, &st);
    CHECK(!st.durable_commits);
    store_close(s);
    REQUIRE(store_open(t.uri, NULL, &s, &err) == 0);
    store_get_stats(s, &st);
    CHECK(st.durable_commits);
    CHECK_STR(store_backend(s), "sqlite");
    CHECK_STR(store_location(s), t.uri);
    store_close(s);
    struct store_opts bad = {.durability = (enum store_durability)7};
    CHECK_INT(store_open(t.uri, &bad, &s, &err), KEEL_EINVAL);
    tmp_remove(&t);
}

TEST(memory_store)
{
    struct keel_err err;
    struct store *s;
    REQUIRE(store_open("sqlite::memory:", NULL, &s, &err) == 0);
    struct store_run r = make_run("m1", STORE_RUN_PENDING);
    CHECK_INT(store_run_create(s, &r, &err), 0);
    struct store_event e = ev_at("m1", 1);
    struct store_append req = {.events = &e, .n_events = 1};
    CHECK_INT(store_append(s, &req, &err), 0);
    int64_t n = 0;
    CHECK_INT(store_events_scan(s, "m1", 1, 0, count_events, &n, &err), 0);
    CHECK_INT(n, 1);
    store_close(s);
}

struct outcome_rec {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int rc[8];
};

struct tagged_req {
    struct store_append req; /* first, so the callback can find the tag */
    int index;
};

static void record_done(struct store_append *req, int rc, const struct keel_err *err)
{
    struct outcome_rec *o = req->ctx;
    pthread_mutex_lock(&o->mu);
    o->rc[((struct tagged_req *)req)->index] = rc;
    if (rc) CHECK(err && err->msg[0]);
    o->done++;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

TEST(refused_requests_fail_alone)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct outcome_rec o = {.done = 0};
    pthread_mutex_init(&o.mu, NULL);
    pthread_cond_init(&o.cv, NULL);
    /* Queued back to back, so most share a group commit. */
    struct store_event evs[6] = {ev_at("a", 1), ev_at("b", 2) /* gap */, ev_at("c", 1),
                                 ev_at("a", 1) /* taken */, ev_at("a", 2), ev_at("c", 2)};
    evs[5].prev_hash[3] = '9'; /* does not link */
    struct tagged_req reqs[6];
    for (int i = 0; i < 6; i++) {
        reqs[i] = (struct tagged_req){
            .req = {.events = &evs[i], .n_events = 1, .done = record_done, .ctx = &o},
            .index = i};
        REQUIRE(store_append_async(s, &reqs[i].req, &err) == 0);
    }
    pthread_mutex_lock(&o.mu);
    while (o.done < 6) pthread_cond_wait(&o.cv, &o.mu);
    pthread_mutex_unlock(&o.mu);
    CHECK_INT(o.rc[0], 0);
    CHECK_INT(o.rc[1], KEEL_ESTATE);
    CHECK_INT(o.rc[2], 0);
    CHECK_INT(o.rc[3], KEEL_EEXIST);
    CHECK_INT(o.rc[4], 0);
    CHECK_INT(o.rc[5], KEEL_ESTATE);
    int64_t seq;
    char hash[65];
    REQUIRE(store_events_tail(s, "a", &seq, hash, &err) == 0);
    CHECK_INT(seq, 2);
    REQUIRE(store_events_tail(s, "b", &seq, hash, &err) == 0);
    CHECK_INT(seq, 0);
    REQUIRE(store_events_tail(s, "c", &seq, hash, &err) == 0);
    CHECK_INT(seq, 1);
    /* A request without a callback is refused up front. */
    struct store_append nocb = {.events = &evs[0], .n_events = 1};
    CHECK_INT(store_append_async(s, &nocb, &err), KEEL_EINVAL);
    pthread_mutex_destroy(&o.mu);
    pthread_cond_destroy(&o.cv);
    store_close(s);
    tmp_remove(&t);
}

/* store_append_eager on an idle store: committed on the caller's thread,
 * the callback run before it returns (a refusal too). */
struct eager_rec {
    int calls, rc;
    pthread_t thread;
};

static void eager_done(struct store_append *req, int rc, const struct keel_err *err)
{
    struct eager_rec *r = req->ctx;
    r->calls++;
    r->rc = rc;
    r->thread = pthread_self();
    if (rc) CHECK(err && err->msg[0]);
}

TEST(eager_append_commits_on_the_callers_thread_when_idle)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    keel_err_clear(&err);
    struct store_event e1 = ev_at("e", 1), gap = ev_at("e", 3);
    struct eager_rec r = {0};
    struct store_append req = {.events = &e1, .n_events = 1, .done = eager_done, .ctx = &r};
    REQUIRE(store_append_eager(s, &req, &err) == 0);
    CHECK_INT(r.calls, 1);
    CHECK_INT(r.rc, 0);
    CHECK(pthread_equal(r.thread, pthread_self()));
    int64_t seq;
    char hash[65];
    REQUIRE(store_events_tail(s, "e", &seq, hash, &err) == 0);
    CHECK_INT(seq, 1);
    struct store_append bad = {.events = &gap, .n_events = 1, .done = eager_done, .ctx = &r};
    REQUIRE(store_append_eager(s, &bad, &err) == 0);
    CHECK_INT(r.calls, 2);
    CHECK_INT(r.rc, KEEL_ESTATE);
    CHECK(pthread_equal(r.thread, pthread_self()));
    /* Malformed: refused up front, no callback. */
    struct store_append nocb = {.events = &e1, .n_events = 1};
    CHECK_INT(store_append_eager(s, &nocb, &err), KEEL_EINVAL);
    CHECK_INT(r.calls, 2);
    store_close(s);
    tmp_remove(&t);
}

/* ---- model usage (model_calls, schema 4) --------------------------------- */

/* A model call to append: event seq of run at time t, with its usage row. */
struct mcall {
    const char *run;
    int64_t seq, t;
    const char *agent, *model;
    int64_t in, out;
    double cost;
};

/* The model.response event of m, its usage row in *u (which must outlive
 * the append). */
static struct store_event mc_event(const struct mcall *m, struct store_usage *u)
{
    struct store_event e = ev_at(m->run, m->seq);
    e.time_ms = m->t;
    e.kind = "model.response";
    memset(u, 0, sizeof *u);
    snprintf(u->agent, sizeof u->agent, "%s", m->agent);
    snprintf(u->model, sizeof u->model, "%s", m->model);
    u->input_tokens = m->in;
    u->output_tokens = m->out;
    u->cost_usd = m->cost;
    e.usage = u;
    return e;
}

static int append_one(struct store *s, const struct store_event *e, struct keel_err *err)
{
    struct store_append req = {.events = e, .n_events = 1};
    return store_append(s, &req, err);
}

/* The usage row of a model.response is written with the event, in the
 * same transaction: a refused request writes neither, and a group that
 * fails on the usage row (here a conflicting row planted behind the
 * store's back) does not keep the event either. */
TEST(model_calls_written_with_their_events)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct store_usage u1, u2, u3;
    struct mcall c1 = {"m1", 2, 5000, "support/triage", "small", 100, 10, 0.00012};
    struct mcall c2 = {"m1", 3, 5100, "", "big", 7, 0, 0};
    struct store_event evs[2] = {ev_at("m1", 1), mc_event(&c1, &u1)};
    struct store_append req = {.events = evs, .n_events = 2};
    REQUIRE(store_append(s, &req, &err) == 0);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM model_calls"), 1);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM model_calls WHERE run_id = 'm1' AND seq = 2 "
                              "AND time_ms = 5000 AND agent = 'support/triage' AND model = "
                              "'small' AND input_tokens = 100 AND output_tokens = 10 AND "
                              "cost_usd = 0.00012"),
              1);

    /* Usage rows are checked like every other field. */
    struct store_event e = mc_event(&c2, &u2);
    e.usage = NULL;
    CHECK_INT(append_one(s, &e, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "without its usage row");
    e = ev_at("m1", 3);
    e.usage = &u1;
    CHECK_INT(append_one(s, &e, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "only model.response");
    e = mc_event(&c2, &u2);
    u2.input_tokens = -1;
    CHECK_INT(append_one(s, &e, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "non-negative");
    e = mc_event(&c2, &u2);
    u2.cost_usd = NAN;
    CHECK_INT(append_one(s, &e, &err), KEEL_EINVAL);
    e = mc_event(&c2, &u2);
    memset(u2.model, 'x', sizeof u2.model); /* not terminated */
    CHECK_INT(append_one(s, &e, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "not terminated");

    /* A refused request: [the call, a gap] writes neither. */
    struct store_event refused[2] = {mc_event(&c2, &u2), ev_at("m1", 9)};
    req = (struct store_append){.events = refused, .n_events = 2};
    CHECK_INT(store_append(s, &req, &err), KEEL_ESTATE);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM model_calls"), 1);

    /* A failed group: the usage row cannot be inserted, so the event,
     * inserted first in the same transaction, is rolled back with it. */
    raw_exec(t.path, "INSERT INTO model_calls VALUES ('m1', 3, 1, 'planted', 'x', 1, 1, 1)");
    e = mc_event(&c2, &u3);
    CHECK(append_one(s, &e, &err) != 0);
    int64_t seq = -1;
    char hash[STORE_HASH_HEX + 1];
    REQUIRE(store_events_tail(s, "m1", &seq, hash, &err) == 0);
    CHECK_INT(seq, 2);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM events WHERE run_id = 'm1'"), 2);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM model_calls WHERE agent = 'planted'"), 1);
    /* Without the planted row the same append goes through, row and all. */
    raw_exec(t.path, "DELETE FROM model_calls WHERE agent = 'planted'");
    CHECK_INT(append_one(s, &e, &err), 0);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM model_calls WHERE run_id = 'm1' AND seq = 3 "
                              "AND agent = '' AND model = 'big' AND input_tokens = 7"),
              1);
    store_close(s);
    tmp_remove(&t);
}

static const struct store_usage_sum *find_sum(const struct store_usage_sum *rows, size_t n,
                                              unsigned g, const char *wf, const char *agent,
                                              const char *model)
{
    for (size_t i = 0; i < n; i++) {
        const struct store_usage_sum *r = &rows[i];
        if (r->grouping != g) continue;
        if ((wf == NULL) != (r->workflow == NULL) || (wf && strcmp(wf, r->workflow))) continue;
        if ((agent == NULL) != (r->agent == NULL) || (agent && strcmp(agent, r->agent))) continue;
        if ((model == NULL) != (r->model == NULL) || (model && strcmp(model, r->model))) continue;
        return r;
    }
    return NULL;
}

static size_t count_grouping(const struct store_usage_sum *rows, size_t n, unsigned g)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += rows[i].grouping == g;
    return k;
}

#define CHECK_USAGE(r, runs_, calls_, in_, out_)                                                   \
    do {                                                                                           \
        const struct store_usage_sum *r_ = (r);                                                    \
        CHECK(r_ != NULL);                                                                         \
        if (r_) {                                                                                  \
            CHECK_INT(r_->runs, runs_);                                                            \
            CHECK_INT(r_->calls, calls_);                                                          \
            CHECK_INT(r_->input_tokens, in_);                                                      \
            CHECK_INT(r_->output_tokens, out_);                                                    \
        }                                                                                          \
    } while (0)

/* store_usage_sum: groupings, distinct runs per group, the half-open
 * window, the filters, the unknown name, calls of runs without a row, and
 * the compensated cost sum. */
TEST(usage_sum_groups_and_filters)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct store_run r1 = make_run("r1", STORE_RUN_SUCCEEDED);
    struct store_run r2 = make_run("r2", STORE_RUN_FAILED);
    struct store_run r3 = make_run("r3", STORE_RUN_RUNNING);
    r2.workflow = "reply";
    REQUIRE(store_run_create(s, &r1, &err) == 0);
    REQUIRE(store_run_create(s, &r2, &err) == 0);
    REQUIRE(store_run_create(s, &r3, &err) == 0);
    /* r3: ten calls of $0.1 to the same group as r1's first; summed
     * plainly, 0.1 eleven times is 1.0999999999999999. */
    struct mcall calls[16] = {
        {"r1", 1, 100, "a", "small", 10, 1, 0.1},  {"r1", 2, 200, "b", "big", 20, 2, 0.2},
        {"r2", 1, 150, "a", "small", 5, 1, 0.05},  {"r2", 2, 300, "", "", 1, 1, 0},
        {"ghost", 1, 120, "a", "small", 1000, 1000, 9}, /* no run row: not counted */
    };
    for (int i = 0; i < 10; i++)
        calls[5 + i] = (struct mcall){"r3", i + 1, 400 + i, "a", "small", 1, 0, 0.1};
    calls[15] = (struct mcall){"r1", 3, 1000, "a", "small", 99, 99, 99}; /* at until */
    for (size_t i = 0; i < KEEL_ARRAY_LEN(calls); i++) {
        struct store_usage u;
        struct store_event e = mc_event(&calls[i], &u);
        REQUIRE(append_one(s, &e, &err) == 0);
    }
    static const unsigned gs[] = {0, STORE_USAGE_BY_WORKFLOW, STORE_USAGE_BY_AGENT,
                                  STORE_USAGE_BY_MODEL, STORE_USAGE_BY_ALL};
    struct store_usage_filter f = {.since_ms = 0, .until_ms = 1000, .unknown = "(unknown)",
                                   .groupings = gs, .n_groupings = 5};
    struct arena a;
    arena_init(&a);
    struct store_usage_sum *rows = NULL;
    size_t n = 0;
    REQUIRE(store_usage_sum(s, &f, &a, &rows, &n, &err) == 0);
    const struct store_usage_sum *tot = find_sum(rows, n, 0, NULL, NULL, NULL);
    CHECK_USAGE(tot, 3, 14, 46, 5);
    CHECK(tot && fabs(tot->cost_usd - 1.35) < 1e-12);
    CHECK_INT(count_grouping(rows, n, STORE_USAGE_BY_WORKFLOW), 2);
    CHECK_USAGE(find_sum(rows, n, 1, "triage", NULL, NULL), 2, 12, 40, 3);
    CHECK_USAGE(find_sum(rows, n, 1, "reply", NULL, NULL), 1, 2, 6, 2);
    CHECK_INT(count_grouping(rows, n, STORE_USAGE_BY_AGENT), 3);
    CHECK_USAGE(find_sum(rows, n, 2, NULL, "a", NULL), 3, 12, 25, 2);
    CHECK_USAGE(find_sum(rows, n, 2, NULL, "b", NULL), 1, 1, 20, 2);
    CHECK_USAGE(find_sum(rows, n, 2, NULL, "(unknown)", NULL), 1, 1, 1, 1);
    CHECK_INT(count_grouping(rows, n, STORE_USAGE_BY_MODEL), 3);
    CHECK_USAGE(find_sum(rows, n, 4, NULL, NULL, "small"), 3, 12, 25, 2);
    CHECK_USAGE(find_sum(rows, n, 4, NULL, NULL, "(unknown)"), 1, 1, 1, 1);
    CHECK_INT(count_grouping(rows, n, STORE_USAGE_BY_ALL), 4);
    const struct store_usage_sum *tas = find_sum(rows, n, 7, "triage", "a", "small");
    CHECK_USAGE(tas, 2, 11, 20, 1);
    /* Compensated: exactly the double nearest 1.1 (Python's math.fsum). */
    CHECK(tas && tas->cost_usd == 1.1);
    CHECK_USAGE(find_sum(rows, n, 7, "reply", "(unknown)", "(unknown)"), 1, 1, 1, 1);

    /* [150, 300): r2's first call and r1's second; 300 is out. */
    f.since_ms = 150;
    f.until_ms = 300;
    REQUIRE(store_usage_sum(s, &f, &a, &rows, &n, &err) == 0);
    CHECK_USAGE(find_sum(rows, n, 0, NULL, NULL, NULL), 2, 2, 25, 3);
    /* Filters: the unknown name filters too; workflow and agent combine. */
    f = (struct store_usage_filter){.until_ms = 1000, .agent = "(unknown)", .unknown = "(unknown)"};
    REQUIRE(store_usage_sum(s, &f, &a, &rows, &n, &err) == 0);
    CHECK_INT(n, 1);
    CHECK_USAGE(find_sum(rows, n, 7, "reply", "(unknown)", "(unknown)"), 1, 1, 1, 1);
    f = (struct store_usage_filter){.until_ms = 1000, .workflow = "reply", .agent = "a",
                                    .groupings = gs, .n_groupings = 1};
    REQUIRE(store_usage_sum(s, &f, &a, &rows, &n, &err) == 0);
    CHECK_USAGE(find_sum(rows, n, 0, NULL, NULL, NULL), 1, 1, 5, 1);
    /* Without an unknown name, empty names come back empty. */
    f = (struct store_usage_filter){.until_ms = 1000, .workflow = "reply"};
    REQUIRE(store_usage_sum(s, &f, &a, &rows, &n, &err) == 0);
    CHECK_INT(n, 2);
    CHECK_USAGE(find_sum(rows, n, 7, "reply", "", ""), 1, 1, 1, 1);
    /* An empty window: the totals row, zeros; no group rows. */
    f = (struct store_usage_filter){.since_ms = 5000, .until_ms = 6000, .groupings = gs,
                                    .n_groupings = 2};
    REQUIRE(store_usage_sum(s, &f, &a, &rows, &n, &err) == 0);
    CHECK_INT(n, 1);
    CHECK_USAGE(find_sum(rows, n, 0, NULL, NULL, NULL), 0, 0, 0, 0);
    CHECK(rows[0].cost_usd == 0);

    /* Bad queries. */
    f = (struct store_usage_filter){.since_ms = 10, .until_ms = 5};
    CHECK_INT(store_usage_sum(s, &f, &a, &rows, &n, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "since must not be after until");
    static const unsigned bad_g[] = {8};
    f = (struct store_usage_filter){.until_ms = 5, .groupings = bad_g, .n_groupings = 1};
    CHECK_INT(store_usage_sum(s, &f, &a, &rows, &n, &err), KEEL_EINVAL);
    static const unsigned twice[] = {STORE_USAGE_BY_AGENT, 0, STORE_USAGE_BY_AGENT};
    f = (struct store_usage_filter){.until_ms = 5, .groupings = twice, .n_groupings = 3};
    CHECK_INT(store_usage_sum(s, &f, &a, &rows, &n, &err), KEEL_EINVAL);
    CHECK_CONTAINS(err.msg, "twice");
    unsigned many[STORE_USAGE_GROUPINGS_MAX + 1] = {0};
    f = (struct store_usage_filter){.until_ms = 5, .groupings = many,
                                    .n_groupings = KEEL_ARRAY_LEN(many)};
    CHECK_INT(store_usage_sum(s, &f, &a, &rows, &n, &err), KEEL_ELIMIT);
    f = (struct store_usage_filter){.until_ms = 5, .workflow = "x\ny"};
    CHECK_INT(store_usage_sum(s, &f, &a, &rows, &n, &err), KEEL_EINVAL);
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}

/* store_usage_of: the rule an append and the backfill share. */
TEST(usage_of_payloads)
{
    static const struct {
        const char *payload, *actor;
        const char *agent, *model;
        int64_t in, out;
        double cost;
    } cases[] = {
        {"{\"agent\":\"t/a\",\"model\":\"m\",\"usage\":{\"input_tokens\":3,\"output_tokens\":4},"
         "\"cost_usd\":0.5}",
         "agent:t/other", "t/a", "m", 3, 4, 0.5},
        /* No agent in the payload: the actor's; the actor is not an agent: "". */
        {"{\"model\":\"m\"}", "agent:t/b", "t/b", "m", 0, 0, 0},
        {"{\"model\":\"m\"}", "system", "", "m", 0, 0, 0},
        /* An empty payload agent stays empty; a non-string agent falls back. */
        {"{\"agent\":\"\",\"model\":\"m\"}", "agent:t/b", "", "m", 0, 0, 0},
        {"{\"agent\":7,\"model\":[]}", "agent:t/b", "t/b", "", 0, 0, 0},
        /* Damaged numbers count as 0. */
        {"{\"usage\":{\"input_tokens\":-5,\"output_tokens\":2.5},\"cost_usd\":\"0.1\"}", NULL,
         "", "", 0, 0, 0},
        {"{\"usage\":{\"input_tokens\":2.0,\"output_tokens\":1e2},\"cost_usd\":-1}", NULL, "",
         "", 2, 100, 0},
        {"{\"usage\":[1],\"cost_usd\":1e999}", NULL, "", "", 0, 0, 0},
        {"[1,2]", "agent:t/b", "", "", 0, 0, 0},
    };
    struct arena a;
    arena_init(&a);
    for (size_t i = 0; i < KEEL_ARRAY_LEN(cases); i++) {
        struct json_value *v = NULL;
        REQUIRE(json_parse(&a, cases[i].payload, strlen(cases[i].payload), NULL, &v, NULL) == 0);
        struct store_usage u;
        memset(&u, 0x5a, sizeof u);
        store_usage_of(v, cases[i].actor, &u);
        CHECK_STR(u.agent, cases[i].agent);
        CHECK_STR(u.model, cases[i].model);
        CHECK_INT(u.input_tokens, cases[i].in);
        CHECK_INT(u.output_tokens, cases[i].out);
        CHECK(u.cost_usd == cases[i].cost);
    }
    /* Names are cut to STORE_ID_MAX bytes. */
    char text[400];
    snprintf(text, sizeof text, "{\"model\":\"%0300d\"}", 7);
    struct json_value *v = NULL;
    REQUIRE(json_parse(&a, text, strlen(text), NULL, &v, NULL) == 0);
    struct store_usage u;
    store_usage_of(v, NULL, &u);
    CHECK_INT(strlen(u.model), STORE_ID_MAX);
    arena_cleanup(&a);
}

/* Migration 4 fills model_calls from the model.response events already
 * stored, by the same rule as an append (store_usage_of on the payload). */
TEST(model_calls_backfilled_by_migration_4)
{
    struct tmp t;
    tmp_make(&t);
    struct store *s = open_store(&t);
    REQUIRE(s);
    struct keel_err err;
    struct store_run r = make_run("old", STORE_RUN_SUCCEEDED);
    REQUIRE(store_run_create(s, &r, &err) == 0);
    static const char *const payloads[] = {
        "{}",
        ("{\"agent\":\"support/triage\",\"call_id\":\"c1\",\"cost_usd\":0.00012,\"model\":"
         "\"small\",\"step\":\"s\",\"usage\":{\"input_tokens\":100,\"output_tokens\":10}}"),
        "{\"call_id\":\"c2\",\"step\":\"s\",\"usage\":{\"input_tokens\":-5,\"output_tokens\":3}}",
        "[\"not an object\"]",
    };
    struct store_usage u = {.agent = "whatever was appended", .model = "is rebuilt"};
    for (int64_t i = 0; i < 4; i++) {
        struct store_event e = ev_at("old", i + 1);
        e.time_ms = 7000 + i;
        e.payload = payloads[i];
        e.payload_len = strlen(payloads[i]);
        if (i) {
            e.kind = "model.response";
            e.actor = "agent:team/x";
            e.usage = &u;
        }
        REQUIRE(append_one(s, &e, &err) == 0);
    }
    store_close(s);
    /* Back to schema 3. */
    raw_exec(t.path, "BEGIN; DROP TABLE model_calls; PRAGMA user_version=3; COMMIT;");

    s = open_store(&t);
    REQUIRE(s);
    CHECK_INT(raw_int(t.path, "PRAGMA user_version"), 4);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM model_calls"), 2);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM model_calls WHERE run_id = 'old' AND seq = 2 "
                              "AND time_ms = 7001 AND agent = 'support/triage' AND model = "
                              "'small' AND input_tokens = 100 AND output_tokens = 10 AND "
                              "cost_usd = 0.00012"),
              1);
    CHECK_INT(raw_int(t.path, "SELECT count(*) FROM model_calls WHERE run_id = 'old' AND seq = 3 "
                              "AND agent = 'team/x' AND model = '' AND input_tokens = 0 AND "
                              "output_tokens = 3 AND cost_usd = 0"),
              1);
    /* The migrated store sums and keeps appending rows. */
    struct store_usage u5 = {.agent = "team/x", .model = "big", .input_tokens = 1};
    struct mcall c5 = {"old", 5, 7010, "team/x", "big", 1, 0, 0};
    struct store_event e5 = mc_event(&c5, &u5);
    CHECK_INT(append_one(s, &e5, &err), 0);
    struct arena a;
    arena_init(&a);
    struct store_usage_sum *rows = NULL;
    size_t n = 0;
    static const unsigned total = 0;
    struct store_usage_filter f = {.until_ms = 8000, .groupings = &total, .n_groupings = 1};
    REQUIRE(store_usage_sum(s, &f, &a, &rows, &n, &err) == 0);
    REQUIRE(n == 1);
    CHECK_USAGE(&rows[0], 1, 3, 101, 13);
    arena_cleanup(&a);
    store_close(s);
    tmp_remove(&t);
}
