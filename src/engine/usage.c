/*
 * usage.c — model usage and cost summed across runs: engine_usage, behind
 * GET /v1/usage and `keel usage` (docs/api.md, docs/cli/usage.md).
 *
 * Every model call is journaled once as a model.response event carrying
 * {agent, model, usage: {input_tokens, output_tokens}, cost_usd} (the cost
 * was computed from the price table when the call was made, so a later
 * price change does not rewrite history).  This file sums those calls over
 * a time window, per workflow, per agent and per model.
 *
 * Cost of a query.  The store keeps a row per model.response event in
 * model_calls (time, agent, model, tokens, cost), written in the same
 * transaction as the event, so it always agrees with the journal; the
 * journal stays the record, model_calls is an index of it.  A query is one
 * store_usage_sum computing four groupings (totals, by workflow, by agent,
 * by model) from one range scan of the time index over the window, grouped
 * per run, agent and model, with a runs probe per run for the workflow.  So it
 * costs O(calls in the window), whatever the size of the store and of the
 * journals, and reads no payload (bench/usage, 10,000 runs of 4 calls: the
 * whole history in 86 ms, the last 100 minutes in 1.2 ms).  Until schema 4
 * it read every run row and the journal of every run that overlapped the
 * window, parsing each model.response payload (609 ms and 18.8 ms there).
 *
 * Invariants: a call is counted iff since <= event time < until (half-open,
 * so consecutive windows never count a call twice), its run row exists, and
 * it matches the filters; "runs" of a group counts the runs with at least
 * one counted call in that group; an agent, model or workflow that is empty
 * is reported (and filtered) as "(unknown)"; token sums are exact integers;
 * costs are summed with Neumaier's compensation (the store's keel_fsum, so
 * the order of the rows does not change the result beyond the last bit)
 * and shown rounded to 1e-12 dollars.
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
    const struct store_usage_sum *s;
};

/* The breakdowns, in the order the answer lists them: the list's name, the
 * key each of its rows is named by, and the store grouping that computes it. */
static const struct {
    const char *list, *key;
    unsigned grouping;
} breakdowns[] = {
    {"by_workflow", "workflow", STORE_USAGE_BY_WORKFLOW},
    {"by_agent", "agent", STORE_USAGE_BY_AGENT},
    {"by_model", "model", STORE_USAGE_BY_MODEL},
};

static const char *name_of(const struct store_usage_sum *s)
{
    const char *n = s->grouping == STORE_USAGE_BY_WORKFLOW ? s->workflow
                    : s->grouping == STORE_USAGE_BY_AGENT  ? s->agent
                                                           : s->model;
    return n && *n ? n : unknown_name;
}

/* The sum in dollars, rounded to 1e-12 (a millionth of a micro-dollar,
 * far below any price) so binary noise does not show as 0.004471999999999999. */
static double usd(const struct store_usage_sum *s)
{
    return round(s->cost_usd * 1e12) / 1e12;
}

static int by_cost_desc(const void *pa, const void *pb)
{
    const struct usage_sum *a = pa, *b = pb;
    double ca = usd(a->s), cb = usd(b->s);
    if (ca != cb) return ca > cb ? -1 : 1;
    int64_t ta = a->s->input_tokens + a->s->output_tokens;
    int64_t tb = b->s->input_tokens + b->s->output_tokens;
    if (ta != tb) return ta > tb ? -1 : 1;
    return strcmp(a->name, b->name);
}

static void put_sums(struct arena *a, struct json_value *o, const struct store_usage_sum *s)
{
    json_object_setc(a, o, "runs", json_int(a, s->runs));
    json_object_setc(a, o, "model_calls", json_int(a, s->calls));
    json_object_setc(a, o, "input_tokens", json_int(a, s->input_tokens));
    json_object_setc(a, o, "output_tokens", json_int(a, s->output_tokens));
    json_object_setc(a, o, "cost_usd", json_double(a, usd(s)));
}

/* The breakdown of grouping g among the store's rows, by cost. */
static struct json_value *group_json(struct arena *a, const struct store_usage_sum *rows, size_t n,
                                     unsigned g, const char *key)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += rows[i].grouping == g;
    struct usage_sum *v = k ? arena_alloc(a, k * sizeof *v) : NULL;
    k = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i].grouping == g) v[k++] = (struct usage_sum){name_of(&rows[i]), &rows[i]};
    if (k > 1) qsort(v, k, sizeof *v, by_cost_desc);
    struct json_value *arr = json_array(a);
    for (size_t i = 0; i < k; i++) {
        struct json_value *o = json_object(a);
        json_object_setc(a, o, key, json_cstr(a, v[i].name));
        put_sums(a, o, v[i].s);
        json_array_push(a, arr, o);
    }
    return arr;
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

    /* The totals (grouping 0: always exactly one row) and the three
     * breakdowns, from one read of the store. */
    static const unsigned groupings[] = {0, STORE_USAGE_BY_WORKFLOW, STORE_USAGE_BY_AGENT,
                                         STORE_USAGE_BY_MODEL};
    struct store_usage_filter f = {.since_ms = since,
                                   .until_ms = until,
                                   .workflow = q->workflow,
                                   .agent = agent,
                                   .unknown = unknown_name,
                                   .groupings = groupings,
                                   .n_groupings = KEEL_ARRAY_LEN(groupings)};
    struct store_usage_sum *rows = NULL;
    size_t n = 0;
    rc = store_usage_sum(e->store, &f, a, &rows, &n, err);
    if (rc) return rc;
    const struct store_usage_sum *total = NULL;
    for (size_t i = 0; i < n && !total; i++)
        if (rows[i].grouping == 0) total = &rows[i];
    if (!total) return keel_fail(err, KEEL_EINTERNAL, "usage: the store returned no totals row");

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
    put_sums(a, o, total);
    for (size_t i = 0; i < KEEL_ARRAY_LEN(breakdowns); i++)
        json_object_setc(a, o, breakdowns[i].list,
                         group_json(a, rows, n, breakdowns[i].grouping, breakdowns[i].key));
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
