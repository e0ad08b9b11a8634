/*
 * usage.c — model usage and cost summed across runs: engine_usage, behind
 * GET /v1/usage and `keel usage` (docs/api.md, docs/cli/usage.md).
 *
 * Every model call is journaled once as a model.response event carrying
 * {agent, model, usage: {input_tokens, output_tokens}, cost_usd} (the cost
 * was computed from the price table when the call was made, so a later
 * price change does not rewrite history).  This file sums those events over
 * a time window, per workflow, per agent and per model.  Nothing is cached:
 * the journal is the only record, and the answer is always consistent
 * with it.
 *
 * Cost of a query.  The store has neither a time filter on runs nor a way
 * to read events by kind, so the scan is:
 *   1. every run row (paged, STORE_LIST_MAX at a time; the workflow filter
 *      is the store's), keeping in memory only runs that can have a call
 *      in the window: created before its end, and not ended before its
 *      start (updated_ms of an ended run is its last status change, which
 *      follows its last event; a run that has not ended may still be
 *      calling models, so its updated_ms says nothing);
 *   2. the journal of each kept run, comparing the kind string before
 *      anything else: only model.response payloads in the window are
 *      parsed, each into a scratch arena reset per event, so memory stays
 *      bounded by the largest payload plus one entry per group.
 * So a query costs O(runs) row reads plus O(events of overlapping runs).
 *
 * Invariants: a call is counted iff since <= event time < until (half-open,
 * so consecutive windows never count a call twice) and it matches the
 * filters; "runs" of a group counts the runs with at least one counted call
 * in that group; token sums are exact integers; costs are summed with
 * Neumaier's compensation (so the order of the runs does not change the
 * result beyond the last bit) and shown rounded to 1e-12 dollars.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define USAGE_NAME_MAX STORE_ID_MAX /* a workflow, agent or model name, in bytes */
#define USAGE_TIME_TEXT_MAX 64      /* the longest time text engine_usage_time reads */

static const char *const unknown_name = "(unknown)";

/* One row of a breakdown (or the totals). */
struct usage_sum {
    const char *name;
    int64_t runs;
    int64_t calls;
    int64_t input_tokens;
    int64_t output_tokens;
    double cost, cost_carry; /* Neumaier: cost + cost_carry is the sum */
    size_t last_run;         /* ordinal of the last run counted in runs */
};

/* A breakdown: name -> row, and the rows in creation order. */
struct usage_group {
    struct strmap by_name;
    struct usage_sum **rows;
    size_t n, cap;
};

struct usage_scan {
    struct arena *a;      /* the answer's arena: rows and names live here */
    struct arena scratch; /* one payload at a time                        */
    int64_t since, until;
    const char *agent;    /* filter, without "agent:"; NULL: any          */
    const char *workflow; /* the current run's workflow                  */
    size_t run;           /* ordinal of the current run (1-based)        */
    struct usage_sum total;
    struct usage_group by_workflow, by_agent, by_model;
};

static void add_cost(struct usage_sum *s, double x)
{
    double t = s->cost + x;
    if ((s->cost >= 0 ? s->cost : -s->cost) >= (x >= 0 ? x : -x))
        s->cost_carry += (s->cost - t) + x;
    else
        s->cost_carry += (x - t) + s->cost;
    s->cost = t;
}

static void add_call(struct usage_sum *s, size_t run, int64_t in, int64_t out, double cost)
{
    if (s->last_run != run) {
        s->last_run = run;
        s->runs++;
    }
    s->calls++;
    s->input_tokens += in;
    s->output_tokens += out;
    add_cost(s, cost);
}

/* The row of name in g, created (zeroed, name copied into a) if new. */
static struct usage_sum *row_of(struct arena *a, struct usage_group *g, const char *name)
{
    size_t len = strnlen(name, USAGE_NAME_MAX);
    struct usage_sum *s = strmap_get(&g->by_name, name, len);
    if (s) return s;
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 16;
        struct usage_sum **rows = arena_alloc(a, cap * sizeof *rows);
        if (g->n) memcpy(rows, g->rows, g->n * sizeof *rows);
        g->rows = rows;
        g->cap = cap;
    }
    s = arena_zalloc(a, sizeof *s);
    s->name = arena_strndup(a, name, len);
    g->rows[g->n++] = s;
    strmap_put(&g->by_name, s->name, len, s);
    return s;
}

/* A non-negative integer field of the usage object (a damaged or foreign
 * value counts as 0 rather than making the sums negative). */
static int64_t tokens(const struct json_value *usage, const char *key)
{
    int64_t v = json_get_int(usage, key, 0);
    return v > 0 ? v : 0;
}

static int on_event(void *ctx, const struct journal_event *ev)
{
    struct usage_scan *x = ctx;
    /* Most events are not model responses: decide on the kind and the
     * time before touching the payload. */
    if (strcmp(ev->kind, "model.response") != 0) return 0;
    if (ev->time_ms < x->since || ev->time_ms >= x->until) return 0;
    arena_reset(&x->scratch);
    struct json_value *p = NULL;
    if (json_parse(&x->scratch, ev->payload, ev->payload_len, NULL, &p, NULL) != 0 ||
        !json_is(p, JSON_OBJECT)) {
        keel_log(KEEL_LOG_WARN, "usage: run %s event %lld: payload is not a JSON object; skipped",
                 ev->run_id, (long long)ev->seq);
        return 0;
    }
    /* The agent: the payload's, else the acting identity's. */
    const char *agent = json_get_str(p, "agent", NULL);
    if (!agent && ev->actor && !strncmp(ev->actor, "agent:", 6)) agent = ev->actor + 6;
    if (!agent || !*agent) agent = unknown_name;
    if (x->agent && strcmp(agent, x->agent) != 0) return 0;
    const char *model = json_get_str(p, "model", NULL);
    if (!model || !*model) model = unknown_name;
    const struct json_value *usage = json_get(p, "usage");
    int64_t in = tokens(usage, "input_tokens"), out = tokens(usage, "output_tokens");
    const struct json_value *c = json_get(p, "cost_usd");
    double cost = json_is(c, JSON_NUMBER) && c->u.n.d > 0 ? c->u.n.d : 0;

    add_call(&x->total, x->run, in, out, cost);
    add_call(row_of(x->a, &x->by_workflow, x->workflow), x->run, in, out, cost);
    add_call(row_of(x->a, &x->by_agent, agent), x->run, in, out, cost);
    add_call(row_of(x->a, &x->by_model, model), x->run, in, out, cost);
    return 0;
}

/* Can run r have a model call in [since, until)? */
static bool overlaps(const struct store_run *r, int64_t since, int64_t until)
{
    if (r->created_ms >= until) return false;
    if (store_run_status_is_final(r->status) && r->updated_ms < since) return false;
    return true;
}

/* The sum in dollars, rounded to 1e-12 (a millionth of a micro-dollar,
 * far below any price) so binary noise does not show as 0.004471999999999999. */
static double usd(const struct usage_sum *s)
{
    return round((s->cost + s->cost_carry) * 1e12) / 1e12;
}

static int by_cost_desc(const void *pa, const void *pb)
{
    const struct usage_sum *a = *(struct usage_sum *const *)pa, *b = *(struct usage_sum *const *)pb;
    double ca = usd(a), cb = usd(b);
    if (ca != cb) return ca > cb ? -1 : 1;
    int64_t ta = a->input_tokens + a->output_tokens, tb = b->input_tokens + b->output_tokens;
    if (ta != tb) return ta > tb ? -1 : 1;
    return strcmp(a->name, b->name);
}

static void put_sums(struct arena *a, struct json_value *o, const struct usage_sum *s)
{
    json_object_setc(a, o, "runs", json_int(a, s->runs));
    json_object_setc(a, o, "model_calls", json_int(a, s->calls));
    json_object_setc(a, o, "input_tokens", json_int(a, s->input_tokens));
    json_object_setc(a, o, "output_tokens", json_int(a, s->output_tokens));
    json_object_setc(a, o, "cost_usd", json_double(a, usd(s)));
}

static struct json_value *group_json(struct arena *a, struct usage_group *g, const char *key)
{
    if (g->n > 1) qsort(g->rows, g->n, sizeof *g->rows, by_cost_desc);
    struct json_value *arr = json_array(a);
    for (size_t i = 0; i < g->n; i++) {
        struct json_value *o = json_object(a);
        json_object_setc(a, o, key, json_cstr(a, g->rows[i]->name));
        put_sums(a, o, g->rows[i]);
        json_array_push(a, arr, o);
    }
    return arr;
}

static void scan_cleanup(struct usage_scan *x)
{
    arena_cleanup(&x->scratch);
    strmap_cleanup(&x->by_workflow.by_name);
    strmap_cleanup(&x->by_agent.by_name);
    strmap_cleanup(&x->by_model.by_name);
}

/* Checks a filter name: NULL is "no filter"; otherwise 1 to 127 bytes. */
static int check_name(const char *what, const char *s, struct keel_err *err)
{
    if (!s) return 0;
    size_t n = strnlen(s, USAGE_NAME_MAX);
    if (n == 0 || n >= USAGE_NAME_MAX)
        return keel_fail(err, KEEL_EINVAL, "the %s filter must be 1 to %d bytes (got %zu%s)", what,
                         USAGE_NAME_MAX - 1, n, n >= USAGE_NAME_MAX ? " or more" : "");
    return 0;
}

int engine_usage(struct engine *e, const struct engine_usage_query *q, struct arena *a,
                 struct json_value **out, struct keel_err *err)
{
    int64_t now = keel_wall_ms();
    int64_t since = q->since_ms, until = q->until_ms ? q->until_ms : now;
    if (since < 0 || until < 0)
        return keel_fail(err, KEEL_EINVAL, "usage window bounds must not be before 1970");
    if (since >= until) {
        char ts[32], tu[32];
        keel_format_time(since, ts);
        keel_format_time(until, tu);
        return keel_fail(err, KEEL_EINVAL,
                         "the usage window is empty: since (%s) is not before until (%s); "
                         "swap them or widen the window",
                         ts, tu);
    }
    const char *agent = q->agent;
    if (agent && !strncmp(agent, "agent:", 6)) agent += 6;
    int rc = check_name("workflow", q->workflow, err);
    if (!rc) rc = check_name("agent", agent, err);
    if (rc) return rc;

    struct usage_scan x;
    memset(&x, 0, sizeof x);
    x.a = a;
    arena_init(&x.scratch);
    x.since = since;
    x.until = until;
    x.agent = agent;
    x.total.name = "total";
    strmap_init(&x.by_workflow.by_name);
    strmap_init(&x.by_agent.by_name);
    strmap_init(&x.by_model.by_name);

    /* Pages of run rows; the page arena is reset per page, so the paging
     * key is copied out before. */
    struct arena page;
    arena_init(&page);
    char after[STORE_ID_MAX + 1] = "";
    for (;;) {
        arena_reset(&page);
        struct store_run_filter f = {
            .workflow = q->workflow, .after_id = after[0] ? after : NULL, .limit = STORE_LIST_MAX};
        struct store_run *runs = NULL;
        size_t n = 0;
        rc = store_run_list(e->store, &f, &page, &runs, &n, err);
        if (rc || n == 0) break;
        for (size_t i = 0; i < n && !rc; i++) {
            if (!overlaps(&runs[i], since, until)) continue;
            x.run++;
            x.workflow = runs[i].workflow && runs[i].workflow[0] ? runs[i].workflow : unknown_name;
            rc = journal_read(e->store, runs[i].id, 1, on_event, &x, err);
            if (rc == KEEL_ENOENT) rc = 0; /* a run without events yet */
        }
        if (rc || n < STORE_LIST_MAX) break;
        snprintf(after, sizeof after, "%s", runs[n - 1].id);
    }
    arena_cleanup(&page);
    if (rc) {
        scan_cleanup(&x);
        return rc;
    }

    struct json_value *o = json_object(a);
    char t[32];
    if (since > 0) {
        keel_format_time(since, t);
        json_object_setc(a, o, "since", json_cstr(a, t));
    } else {
        json_object_setc(a, o, "since", json_null(a));
    }
    keel_format_time(until, t);
    json_object_setc(a, o, "until", json_cstr(a, t));
    if (q->workflow) json_object_setc(a, o, "workflow", json_cstr(a, q->workflow));
    if (agent) json_object_setc(a, o, "agent", json_cstr(a, agent));
    put_sums(a, o, &x.total);
    json_object_setc(a, o, "by_workflow", group_json(a, &x.by_workflow, "workflow"));
    json_object_setc(a, o, "by_agent", group_json(a, &x.by_agent, "agent"));
    json_object_setc(a, o, "by_model", group_json(a, &x.by_model, "model"));
    scan_cleanup(&x);
    *out = o;
    return 0;
}

/* ---- time bounds ---------------------------------------------------------- */

/* Reads exactly n digits at *p into *v and advances *p. */
static bool digits(const char **p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') return false;
        x = x * 10 + (c - '0');
    }
    *p += n;
    *v = x;
    return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* full-date = YYYY "-" MM "-" DD
 * date-time = full-date ("T" / "t" / " ") HH ":" MM ":" SS ["." 1*DIGIT]
 *             ("Z" / "z" / ("+" / "-") HH ":" MM)                   (RFC 3339 §5.6)
 * Returns true with *ms set if s is one of the two, whole. */
static bool rfc3339(const char *s, int64_t *ms)
{
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0, off = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return false;
    if (*p) {
        if (*p != 'T' && *p != 't' && *p != ' ') return false;
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi) || *p++ != ':' ||
            !digits(&p, 2, &sec))
            return false;
        if (h > 23 || mi > 59 || sec > 60) return false; /* 60: a leap second */
        if (*p == '.') {
            p++;
            if (*p < '0' || *p > '9') return false;
            for (int i = 0; *p >= '0' && *p <= '9'; i++, p++)
                if (i < 3) frac_ms += (*p - '0') * (i == 0 ? 100 : i == 1 ? 10 : 1);
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, oh, om;
            if (!digits(&p, 2, &oh) || *p++ != ':' || !digits(&p, 2, &om) || oh > 23 || om > 59)
                return false;
            off = sign * (oh * 60 + om);
        } else {
            return false;
        }
        if (*p) return false;
    }
    int64_t secs =
        days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + mi * 60 + sec - (int64_t)off * 60;
    *ms = secs * 1000 + frac_ms;
    return true;
}

int engine_usage_time(const char *text, int64_t now_ms, int64_t *out_ms, struct keel_err *err)
{
    static const char *const forms =
        "write an RFC 3339 time (2026-11-20T08:00:00Z), a date (2026-11-20), \"now\", or "
        "how long ago (-7d, 36h, 1h30m)";
    size_t n = text ? strnlen(text, USAGE_TIME_TEXT_MAX + 1) : 0;
    if (n == 0) return keel_fail(err, KEEL_EINVAL, "empty time; %s", forms);
    if (n > USAGE_TIME_TEXT_MAX)
        return keel_fail(err, KEEL_EINVAL, "time \"%.24s...\" is too long; %s", text, forms);
    if (!strcmp(text, "now")) {
        *out_ms = now_ms;
        return 0;
    }
    int64_t ms;
    if (rfc3339(text, &ms)) {
        if (ms < 0)
            return keel_fail(err, KEEL_EINVAL, "time \"%s\" is before 1970; usage starts later",
                             text);
        *out_ms = ms;
        return 0;
    }
    /* A duration before now; "7d" and "-7d" both mean seven days ago. */
    const char *d = text[0] == '-' ? text + 1 : text;
    if (*d >= '0' && *d <= '9' && keel_parse_duration(d, &ms, NULL) == 0) {
        *out_ms = ms >= now_ms ? 0 : now_ms - ms;
        return 0;
    }
    return keel_fail(err, KEEL_EINVAL, "bad time \"%s\"; %s", text, forms);
}
