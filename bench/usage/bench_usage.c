/*
 * bench_usage.c — what a usage query (engine_usage, GET /v1/usage) costs
 * over a store of finished agent runs, next to the obvious alternative in
 * the same run on the same store: reading every run's whole journal as
 * JSON (engine_run_events, what a client of /v1/runs/{id}/events does) and
 * summing the model.response events itself.
 *
 * The store: RUNS runs of two workflows, one a minute, each with TURNS
 * agent turns of ~10 events (model.request with the messages added, a
 * ~1 KiB model.response, policy decision, tool call and result, state
 * update, step events) — realistic payload sizes, synthetic content.
 *
 * Figures: the whole history, then the last 10% of the time span (most
 * runs ended before it and are skipped on their row alone), each as the
 * best of REPEAT runs, with events and runs per second.
 *
 * Usage: bench_usage [--runs N] [--turns N] [--repeat N] [--reuse] [DATA_DIR]
 * DATA_DIR defaults to bench-usage-data in the current folder; it is
 * removed first, unless --reuse says it holds a store this program wrote
 * with the same --runs and --turns (for profiling the queries alone).
 */
#include "engine/engine.h"
#include "journal/journal.h"
#include "store/store.h"

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

static double ms_since(int64_t t0)
{
    return (double)(keel_mono_ns() - t0) / 1e6;
}

int main(int argc, char **argv)
{
    int runs = 2000, turns = 4, repeat = 3;
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
            fprintf(stderr, "usage: bench_usage [--runs N] [--turns N] [--repeat N] [DATA_DIR]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 1000000 || turns < 1 || turns > 1000 || repeat < 1) return 2;
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
    if (engine_start(&o, &e, &err)) {
        fprintf(stderr, "engine_start: %s\n", err.msg);
        return 1;
    }
    struct {
        const char *name;
        int64_t since;
        int64_t runs_in;
    } windows[] = {
        {"whole history", 0, runs},
        {"last 10% of the span", T0 + (end - T0) * 9 / 10, 0},
    };
    for (size_t w = 0; w < KEEL_ARRAY_LEN(windows); w++) {
        double best = 1e18;
        int64_t calls = 0, tokens = 0;
        for (int k = 0; k < repeat; k++) {
            struct arena a;
            arena_init(&a);
            struct engine_usage_query q = {.since_ms = windows[w].since, .until_ms = end + 1};
            struct json_value *u;
            t = keel_mono_ns();
            if (engine_usage(e, &q, &a, &u, &err)) {
                fprintf(stderr, "engine_usage: %s\n", err.msg);
                return 1;
            }
            double ms = ms_since(t);
            if (ms < best) best = ms;
            calls = json_get_int(u, "model_calls", 0);
            tokens = json_get_int(u, "input_tokens", 0) + json_get_int(u, "output_tokens", 0);
            windows[w].runs_in = json_get_int(u, "runs", 0);
            arena_cleanup(&a);
        }
        printf("engine_usage, %-22s %8.1f ms  (%lld runs counted, %lld calls, %lld tokens; "
               "%.0f events/s over the store)\n",
               windows[w].name, best, (long long)windows[w].runs_in, (long long)calls,
               (long long)tokens, (double)events / (best / 1e3));
    }
    double best = 1e18;
    int64_t calls = 0, tokens = 0;
    for (int k = 0; k < repeat; k++) {
        t = keel_mono_ns();
        if (naive(e, runs, 0, &calls, &tokens)) return 1;
        double ms = ms_since(t);
        if (ms < best) best = ms;
    }
    printf("peer: every journal as JSON  %8.1f ms  (%lld calls, %lld tokens; %.0f events/s)\n",
           best, (long long)calls, (long long)tokens, (double)events / (best / 1e3));
    engine_stop(e);
    return 0;
}
