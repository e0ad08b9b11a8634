/*
 * bench_usage.c — what a usage query (engine_usage, GET /v1/usage) costs
 * over a store of finished agent runs, next to what it cost before schema 4
 * and to the obvious alternative, in the same run on the same store:
 *
 *   after   engine_usage: store_usage_sum's indexed GROUP BYs over
 *           model_calls (one row per model.response event);
 *   before  the scan engine_usage made until schema 4, reproduced here
 *           (scan_usage): every run row, then the journal of each run that
 *           overlaps the window, parsing each model.response payload;
 *   peer    every run's whole journal as JSON (engine_run_events, what a
 *           client of /v1/runs/{id}/events does), summed by hand.
 *
 * "before" and "after" must agree (calls, runs, tokens, cost to 1e-12);
 * the bench says so, or fails.
 *
 * The store: RUNS runs of two workflows, one a minute, each with TURNS
 * agent turns of ~10 events (model.request with the messages added, a
 * ~1 KiB model.response, policy decision, tool call and result, state
 * update, step events) — realistic payload sizes, synthetic content.
 *
 * Figures: the whole history, the last 10% of the time span (most runs
 * ended before it) and the last 100 minutes (100 runs, at every size), each
 * as the best of REPEAT runs; for 1,000 and 10,000 runs unless --runs
 * names one size.
 *
 * Usage: bench_usage [--runs N] [--turns N] [--repeat N] [--reuse] [DATA_DIR]
 * DATA_DIR defaults to bench-usage-data in the current folder; it is
 * removed first, unless --reuse says it holds a store this program wrote
 * with the same --runs and --turns (for profiling the queries alone).
 */
#include "engine/engine.h"
#include "journal/journal.h"
#include "store/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1764000000000LL
static const char *hash64 = "00000000000000000000000000000000000000000000000000000000000000ab";

static const char *filler(struct arena *a, size_t n)
{
    char *s = arena_alloc(a, n + 1);
    for (size_t i = 0; i < n; i++)
        s[i] = "abcdefghij klmnopqrstuvwxyz"[i % 27];
    s[n] = '\0';
    return s;
}

static struct json_value *obj(struct arena *a, const char *k1, struct json_value *v1,
                              const char *k2, struct json_value *v2)
{
    struct json_value *o = json_object(a);
    if (k1) json_object_setc(a, o, k1, v1);
    if (k2) json_object_setc(a, o, k2, v2);
    return o;
}

static int append(struct journal_writer *w, const char *kind, const char *actor,
                  struct json_value *p, int64_t t)
{
    struct keel_err err;
    keel_err_clear(&err);
    int rc = journal_writer_append(w, kind, actor, p, t, NULL, &err);
    if (rc) fprintf(stderr, "append %s: %s\n", kind, err.msg);
    return rc;
}

static int populate(const char *dir, int runs, int turns, int64_t *span_end)
{
    char uri[4200];
    snprintf(uri, sizeof uri, "sqlite:%s/keel.db", dir);
    struct store_opts so = {.durability = STORE_DURABILITY_NORMAL};
    struct store *s;
    struct keel_err err;
    keel_err_clear(&err);
    if (store_open(uri, &so, &s, &err)) {
        fprintf(stderr, "store_open: %s\n", err.msg);
        return 1;
    }
    struct arena a;
    arena_init(&a);
    int rc = 0;
    for (int r = 0; r < runs && !rc; r++) {
        arena_reset(&a);
        char id[64];
        snprintf(id, sizeof id, "run_%08d", r);
        const char *wf = r % 3 ? "support-triage" : "billing";
        const char *agent = r % 2 ? "support/triage" : "support/drafter";
        const char *model = r % 5 ? "small" : "big";
        int64_t t = T0 + (int64_t)r * 60000;
        int64_t end = t + (int64_t)turns * 1000 + 200;
        struct store_run row = {.id = id,
                                .workflow = wf,
                                .workflow_hash = hash64,
                                .status = STORE_RUN_SUCCEEDED,
                                .input = "{}",
                                .identity = "admin",
                                .created_ms = t,
                                .updated_ms = end};
        if ((rc = store_run_create(s, &row, &err))) {
            fprintf(stderr, "run_create: %s\n", err.msg);
            break;
        }
        struct journal_writer *w;
        if ((rc = journal_writer_open(s, id, &w, &err))) break;
        const char *actor = arena_printf(&a, "agent:%s", agent);
        struct json_value *started =
            obj(&a, "workflow", json_cstr(&a, wf), "workflow_hash", json_cstr(&a, hash64));
        json_object_setc(&a, started, "input", json_object(&a));
        rc = append(w, "run.started", "system", started, t);
        for (int k = 0; k < turns && !rc; k++) {
            int64_t tk = t + 100 + (int64_t)k * 1000;
            struct json_value *p;
            const char *call = arena_printf(&a, "triage/0/m%d", k);
            p = obj(&a, "step", json_cstr(&a, "triage"), "call_id", json_cstr(&a, call));
            json_object_setc(&a, p, "model", json_cstr(&a, model));
            json_object_setc(&a, p, "agent", json_cstr(&a, agent));
            struct json_value *msgs = json_array(&a);
            json_array_push(
                &a, msgs,
                obj(&a, "role", json_cstr(&a, "tool"), "content", json_cstr(&a, filler(&a, 1500))));
            json_object_setc(&a, p, "messages_added", msgs);
            if ((rc = append(w, "model.request", actor, p, tk))) break;
            p = obj(&a, "step", json_cstr(&a, "triage"), "call_id", json_cstr(&a, call));
            json_object_setc(&a, p, "model", json_cstr(&a, model));
            json_object_setc(&a, p, "agent", json_cstr(&a, agent));
            json_object_setc(&a, p, "message",
                             obj(&a, "role", json_cstr(&a, "assistant"), "content",
                                 json_cstr(&a, filler(&a, 900))));
            json_object_setc(&a, p, "usage",
                             obj(&a, "input_tokens", json_int(&a, 1000 + k), "output_tokens",
                                 json_int(&a, 50 + r % 7)));
            json_object_setc(&a, p, "cost_usd",
                             json_double(&a, (1000 + k + 2.0 * (50 + r % 7)) / 1e6));
            if ((rc = append(w, "model.response", actor, p, tk + 100))) break;
            const char *tc = arena_printf(&a, "triage/0/t%d.0", k);
            p = obj(&a, "action", json_cstr(&a, "call_tool"), "resource",
                    json_cstr(&a, "crm/lookup_account"));
            json_object_setc(&a, p, "decision", json_cstr(&a, "allow"));
            json_object_setc(&a, p, "call_id", json_cstr(&a, tc));
            if ((rc = append(w, "policy.decision", "system", p, tk + 200))) break;
            p = obj(&a, "step", json_cstr(&a, "triage"), "call_id", json_cstr(&a, tc));
            json_object_setc(&a, p, "server", json_cstr(&a, "crm"));
            json_object_setc(&a, p, "tool", json_cstr(&a, "lookup_account"));
            json_object_setc(&a, p, "args", obj(&a, "id", json_cstr(&a, "A-100"), NULL, NULL));
            json_object_setc(&a, p, "idempotency_key", json_cstr(&a, hash64));
            if ((rc = append(w, "tool.call.started", actor, p, tk + 300))) break;
            p = obj(&a, "step", json_cstr(&a, "triage"), "call_id", json_cstr(&a, tc));
            json_object_setc(&a, p, "result",
                             obj(&a, "text", json_cstr(&a, filler(&a, 1000)), NULL, NULL));
            if ((rc = append(w, "tool.call.completed", actor, p, tk + 400))) break;
            p = obj(&a, "key", json_cstr(&a, "notes"), "value", json_cstr(&a, filler(&a, 200)));
            if ((rc = append(w, "state.updated", actor, p, tk + 500))) break;
            p = obj(&a, "step", json_cstr(&a, "triage"), "attempt", json_int(&a, 1));
            if ((rc = append(w, "step.started", "system", p, tk + 600))) break;
            if ((rc = append(w, "step.completed", "system", p, tk + 700))) break;
        }
        if (!rc) rc = append(w, "run.succeeded", "system", json_object(&a), end);
        journal_writer_free(w);
        *span_end = end;
    }
    arena_cleanup(&a);
    store_close(s);
    return rc;
}

/* The alternative: every run's whole journal as JSON, summed by hand. */
static int naive(struct engine *e, int runs, int64_t since, int64_t *calls, int64_t *tokens)
{
    *calls = *tokens = 0;
    struct keel_err err;
    keel_err_clear(&err);
    for (int r = 0; r < runs; r++) {
        struct arena a;
        arena_init(&a);
        char id[64];
        snprintf(id, sizeof id, "run_%08d", r);
        struct json_value *evs;
        if (engine_run_events(e, id, 1, 0, &a, &evs, &err)) {
            fprintf(stderr, "events: %s\n", err.msg);
            arena_cleanup(&a);
            return 1;
        }
        for (uint32_t i = 0; i < evs->len; i++) {
            const struct json_value *ev = evs->u.items[i];
            if (strcmp(json_get_str(ev, "kind", ""), "model.response")) continue;
            (void)since; /* the time text would be compared here; all pass */
            const struct json_value *u = json_get(json_get(ev, "payload"), "usage");
            (*calls)++;
            *tokens += json_get_int(u, "input_tokens", 0) + json_get_int(u, "output_tokens", 0);
        }
        arena_cleanup(&a);
    }
    return 0;
}

/* ---- before: the journal scan engine_usage made until schema 4 -------- */

/* Sums of one group (or the totals); costs with Neumaier's compensation. */
struct scan_sum {
    char name[STORE_ID_MAX + 1];
    int64_t runs, calls, in, out;
    double cost, carry;
    size_t last_run;
};

#define SCAN_GROUPS 16 /* distinct names per breakdown this store has at most */

struct scan {
    struct arena scratch;
    int64_t since, until;
    size_t run;
    const char *workflow;
    struct scan_sum total;
    struct scan_sum groups[3][SCAN_GROUPS];
    size_t n_groups[3];
};

static void scan_add(struct scan_sum *s, size_t run, int64_t in, int64_t out, double cost)
{
    if (s->last_run != run) {
        s->last_run = run;
        s->runs++;
    }
    s->calls++;
    s->in += in;
    s->out += out;
    double t = s->cost + cost;
    if (fabs(s->cost) >= fabs(cost))
        s->carry += (s->cost - t) + cost;
    else
        s->carry += (cost - t) + s->cost;
    s->cost = t;
}

static struct scan_sum *scan_group(struct scan *x, int g, const char *name)
{
    for (size_t i = 0; i < x->n_groups[g]; i++)
        if (!strcmp(x->groups[g][i].name, name)) return &x->groups[g][i];
    if (x->n_groups[g] == SCAN_GROUPS) abort(); /* not this store */
    struct scan_sum *s = &x->groups[g][x->n_groups[g]++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

static int scan_event(void *ctx, const struct journal_event *ev)
{
    struct scan *x = ctx;
    if (strcmp(ev->kind, "model.response") != 0) return 0;
    if (ev->time_ms < x->since || ev->time_ms >= x->until) return 0;
    arena_reset(&x->scratch);
    struct json_value *p = NULL;
    if (json_parse(&x->scratch, ev->payload, ev->payload_len, NULL, &p, NULL) != 0 ||
        !json_is(p, JSON_OBJECT))
        return 0;
    const char *agent = json_get_str(p, "agent", NULL);
    if (!agent && !strncmp(ev->actor, "agent:", 6)) agent = ev->actor + 6;
    if (!agent || !*agent) agent = "(unknown)";
    const char *model = json_get_str(p, "model", NULL);
    if (!model || !*model) model = "(unknown)";
    const struct json_value *u = json_get(p, "usage");
    int64_t in = json_get_int(u, "input_tokens", 0), out = json_get_int(u, "output_tokens", 0);
    const struct json_value *c = json_get(p, "cost_usd");
    double cost = json_is(c, JSON_NUMBER) && c->u.n.d > 0 ? c->u.n.d : 0;
    scan_add(&x->total, x->run, in > 0 ? in : 0, out > 0 ? out : 0, cost);
    const char *names[3] = {x->workflow, agent, model};
    for (int g = 0; g < 3; g++)
        scan_add(scan_group(x, g, names[g]), x->run, in > 0 ? in : 0, out > 0 ? out : 0, cost);
    return 0;
}

/* The whole scan: run rows a page at a time, then each overlapping run's
 * journal.  Fills *x (x->scratch initialized by the caller). */
static int scan_usage(struct store *s, int64_t since, int64_t until, struct scan *x)
{
    struct keel_err err;
    keel_err_clear(&err);
    x->since = since;
    x->until = until;
    x->run = 0;
    memset(&x->total, 0, sizeof x->total);
    memset(x->n_groups, 0, sizeof x->n_groups);
    struct arena page;
    arena_init(&page);
    char after[STORE_ID_MAX + 1] = "";
    int rc = 0;
    for (;;) {
        arena_reset(&page);
        struct store_run_filter f = {.after_id = after[0] ? after : NULL, .limit = STORE_LIST_MAX};
        struct store_run *runs = NULL;
        size_t n = 0;
        rc = store_run_list(s, &f, &page, &runs, &n, &err);
        if (rc || n == 0) break;
        for (size_t i = 0; i < n && !rc; i++) {
            const struct store_run *r = &runs[i];
            if (r->created_ms >= until) continue;
            if (store_run_status_is_final(r->status) && r->updated_ms < since) continue;
            x->run++;
            x->workflow = r->workflow;
            rc = journal_read(s, r->id, 1, scan_event, x, &err);
            if (rc == KEEL_ENOENT) rc = 0;
        }
        if (rc || n < STORE_LIST_MAX) break;
        snprintf(after, sizeof after, "%s", runs[n - 1].id);
    }
    arena_cleanup(&page);
    if (rc) fprintf(stderr, "scan: %s\n", err.msg);
    return rc;
}

static double usd(double cost, double carry)
{
    return round((cost + carry) * 1e12) / 1e12;
}

/* Does the engine's answer u equal the scan's x, totals and every row? */
static bool same_answer(const struct json_value *u, const struct scan *x)
{
    static const char *const lists[3] = {"by_workflow", "by_agent", "by_model"};
    static const char *const keys[3] = {"workflow", "agent", "model"};
    const struct scan_sum *t = &x->total;
    const struct json_value *c = json_get(u, "cost_usd");
    if (json_get_int(u, "runs", -1) != t->runs || json_get_int(u, "model_calls", -1) != t->calls ||
        json_get_int(u, "input_tokens", -1) != t->in ||
        json_get_int(u, "output_tokens", -1) != t->out || !json_is(c, JSON_NUMBER) ||
        c->u.n.d != usd(t->cost, t->carry))
        return false;
    for (int g = 0; g < 3; g++) {
        const struct json_value *arr = json_get(u, lists[g]);
        if (!json_is(arr, JSON_ARRAY) || arr->len != x->n_groups[g]) return false;
        for (uint32_t i = 0; i < arr->len; i++) {
            const struct json_value *o = arr->u.items[i];
            const struct scan_sum *s = NULL;
            for (size_t k = 0; k < x->n_groups[g] && !s; k++)
                if (!strcmp(x->groups[g][k].name, json_get_str(o, keys[g], "")))
                    s = &x->groups[g][k];
            c = json_get(o, "cost_usd");
            if (!s || json_get_int(o, "runs", -1) != s->runs ||
                json_get_int(o, "model_calls", -1) != s->calls ||
                json_get_int(o, "input_tokens", -1) != s->in ||
                json_get_int(o, "output_tokens", -1) != s->out || !json_is(c, JSON_NUMBER) ||
                c->u.n.d != usd(s->cost, s->carry))
                return false;
        }
    }
    return true;
}

static double ms_since(int64_t t0)
{
    return (double)(keel_mono_ns() - t0) / 1e6;
}

/* Builds (or reuses) a store of runs runs in dir and prints the figures. */
static int bench_size(const char *dir, int runs, int turns, int repeat, bool reuse)
{
    int64_t end = T0 + (int64_t)(runs - 1) * 60000 + (int64_t)turns * 1000 + 200;
    int64_t events = (int64_t)runs * (2 + 8 * turns), t = keel_mono_ns();
    if (!reuse) {
        char cmd[4300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
        if (system(cmd) != 0) return 1;
        int64_t last = 0;
        if (populate(dir, runs, turns, &last) || last != end) return 1;
    }
    printf("store: %d runs, %lld events (%d model calls each)%s in %.0f ms\n", runs,
           (long long)events, turns, reuse ? ", reused, opened" : ", written", ms_since(t));

    struct engine_opts o = {.data_dir = dir, .workers = 1};
    struct engine *e;
    struct keel_err err;
    keel_err_clear(&err);
    t = keel_mono_ns();
    if (engine_start(&o, &e, &err)) {
        fprintf(stderr, "engine_start: %s\n", err.msg);
        return 1;
    }
    /* With --reuse on a store of an older schema this includes the
     * migration (schema 4's backfill of model_calls). */
    printf("engine started (store opened) in %.0f ms\n", ms_since(t));
    /* The scan reads through a store of its own on the same file (the
     * engine's is internal); read-only, as the CLI opens it. */
    char uri[4200];
    snprintf(uri, sizeof uri, "sqlite:%s/keel.db", dir);
    struct store_opts ro = {.read_only = true};
    struct store *s;
    if (store_open(uri, &ro, &s, &err)) {
        fprintf(stderr, "store_open: %s\n", err.msg);
        engine_stop(e);
        return 1;
    }
    struct {
        const char *name;
        int64_t since;
    } windows[] = {
        {"whole history", 0},
        {"last 10% of the span", T0 + (end - T0) * 9 / 10},
        /* The same window at every size: what a dashboard asks for. */
        {"last 100 minutes", end - 100 * 60000},
    };
    int rc = 0;
    struct scan x;
    memset(&x, 0, sizeof x);
    arena_init(&x.scratch);
    for (size_t w = 0; w < KEEL_ARRAY_LEN(windows) && !rc; w++) {
        double best = 1e18, best_scan = 1e18;
        int64_t calls = 0, tokens = 0, runs_in = 0;
        struct arena a;
        arena_init(&a);
        struct json_value *u = NULL;
        for (int k = 0; k < repeat && !rc; k++) {
            arena_reset(&a);
            struct engine_usage_query q = {.since_ms = windows[w].since, .until_ms = end + 1};
            t = keel_mono_ns();
            if (engine_usage(e, &q, &a, &u, &err)) {
                fprintf(stderr, "engine_usage: %s\n", err.msg);
                rc = 1;
                break;
            }
            double ms = ms_since(t);
            if (ms < best) best = ms;
            calls = json_get_int(u, "model_calls", 0);
            tokens = json_get_int(u, "input_tokens", 0) + json_get_int(u, "output_tokens", 0);
            runs_in = json_get_int(u, "runs", 0);
            t = keel_mono_ns();
            if (scan_usage(s, windows[w].since, end + 1, &x)) {
                rc = 1;
                break;
            }
            ms = ms_since(t);
            if (ms < best_scan) best_scan = ms;
        }
        if (!rc) {
            bool same = same_answer(u, &x);
            printf("%s, %d runs:\n", windows[w].name, runs);
            printf("  after:  engine_usage (model_calls) %9.2f ms  (%lld runs counted, %lld calls, "
                   "%lld tokens)\n",
                   best, (long long)runs_in, (long long)calls, (long long)tokens);
            printf("  before: journal scan              %9.2f ms  (%.1fx the time; same answer: "
                   "%s)\n",
                   best_scan, best_scan / best, same ? "yes" : "NO");
            if (!same) rc = 1;
        }
        arena_cleanup(&a);
    }
    arena_cleanup(&x.scratch);
    store_close(s);
    double best = 1e18;
    int64_t calls = 0, tokens = 0;
    for (int k = 0; k < repeat && !rc; k++) {
        t = keel_mono_ns();
        if (naive(e, runs, 0, &calls, &tokens)) rc = 1;
        double ms = ms_since(t);
        if (ms < best) best = ms;
    }
    if (!rc)
        printf("peer: every journal as JSON, whole history %9.2f ms  (%lld calls, %lld tokens; "
               "%.0f events/s)\n",
               best, (long long)calls, (long long)tokens, (double)events / (best / 1e3));
    engine_stop(e);
    return rc;
}

int main(int argc, char **argv)
{
    int runs = 0, turns = 4, repeat = 3;
    bool reuse = false;
    const char *dir = "bench-usage-data";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--turns") && i + 1 < argc)
            turns = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reuse"))
            reuse = true;
        else if (argv[i][0] != '-')
            dir = argv[i];
        else {
            fprintf(stderr, "usage: bench_usage [--runs N] [--turns N] [--repeat N] [--reuse] "
                            "[DATA_DIR]\n");
            return 2;
        }
    }
    if (runs < 0 || runs > 1000000 || turns < 1 || turns > 1000 || repeat < 1) return 2;
    if (runs) return bench_size(dir, runs, turns, repeat, reuse);
    if (reuse) {
        fprintf(stderr, "bench_usage: --reuse needs --runs (the store holds one size)\n");
        return 2;
    }
    static const int sizes[] = {1000, 10000};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(sizes); i++)
        if (bench_size(dir, sizes[i], turns, repeat, false)) return 1;
    return 0;
}
