/*
 * explain_text.c — the terminal rendering of an explain report
 * (obs_explain_text): a summary of at most OBS_SUMMARY_LINES lines, then the
 * timeline, one block per step visit.
 *
 * Invariants: the summary never exceeds OBS_SUMMARY_LINES newline-ended
 * lines whatever the report holds (lists are cut with a "… N more" line);
 * every value is shown compact and cut to a terminal-friendly width (the
 * complete values are in `--json`); any JSON value is accepted (missing
 * fields are skipped), so a report from a newer Keel still renders.
 */
#include "obs.h"

#include <stdio.h>
#include <string.h>

#define WIDTH_VALUE 160  /* bytes of a value shown inline          */
#define WIDTH_RESULT 480 /* bytes of a tool result or state value  */
#define WIDTH_LINE 240   /* bytes of a summary line, at most       */

struct out {
    struct buf *b;
    bool color;
    int width; /* terminal columns, or 0 when unknown */
};

static const char *s_(const struct json_value *o, const char *k, const char *d)
{
    return json_get_str(o, k, d);
}
static long long i_(const struct json_value *o, const char *k)
{
    return (long long)json_get_int(o, k, 0);
}
static double d_(const struct json_value *o, const char *k)
{
    const struct json_value *v = json_get(o, k);
    return json_is(v, JSON_NUMBER) ? v->u.n.d : 0;
}

/* Colours: one row per role, so the palette is a table. */
enum tone { TONE_NONE, TONE_BAD, TONE_GOOD, TONE_WARN, TONE_DIM, TONE_BOLD };
static const char *const tone_code[] = {
    [TONE_NONE] = "",         [TONE_BAD] = "\x1b[31m", [TONE_GOOD] = "\x1b[32m",
    [TONE_WARN] = "\x1b[33m", [TONE_DIM] = "\x1b[2m",  [TONE_BOLD] = "\x1b[1m",
};

static void tone(struct out *o, enum tone t, const char *text)
{
    if (o->color && t != TONE_NONE)
        buf_printf(o->b, "%s%s\x1b[0m", tone_code[t], text);
    else
        buf_puts(o->b, text);
}

/* The tone of a status or decision word. */
static enum tone tone_of(const char *word)
{
    static const struct {
        const char *word;
        enum tone t;
    } table[] = {
        {"succeeded", TONE_GOOD},
        {"completed", TONE_GOOD},
        {"ok", TONE_GOOD},
        {"allow", TONE_GOOD},
        {"approved", TONE_GOOD},
        {"failed", TONE_BAD},
        {"error", TONE_BAD},
        {"deny", TONE_BAD},
        {"denied", TONE_BAD},
        {"refused", TONE_BAD},
        {"cancelled", TONE_BAD},
        {"needs_reconcile", TONE_BAD},
        {"expired", TONE_BAD},
        {"waiting", TONE_WARN},
        {"approval", TONE_WARN},
        {"retrying", TONE_WARN},
        {"awaiting_approval", TONE_WARN},
        {"running", TONE_WARN},
    };
    for (size_t i = 0; word && i < KEEL_ARRAY_LEN(table); i++)
        if (!strcmp(table[i].word, word)) return table[i].t;
    return TONE_NONE;
}

/* Appends at most max bytes of s (UTF-8 safe), "…" if cut. */
static void put_cut(struct buf *b, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n <= max) {
        buf_puts(b, s);
        return;
    }
    while (max > 0 && ((unsigned char)s[max] & 0xC0) == 0x80)
        max--;
    buf_append(b, s, max);
    buf_puts(b, "\xE2\x80\xA6");
}

static void put_value(struct buf *b, const struct json_value *v, size_t max)
{
    struct buf t;
    buf_init(&t);
    if (v)
        json_write(&t, v, 0, NULL);
    else
        buf_puts(&t, "(unset)");
    /* Newlines inside strings are escaped by the writer; keep one line. */
    put_cut(b, t.data ? t.data : "", max);
    buf_cleanup(&t);
}

/* ---- summary ------------------------------------------------------------ */

/* Lines are built one at a time in `line`, then appended while the budget
 * lasts.  The budget counts screen rows: with a known width a line takes
 * ceil(columns / width) rows (a summary line may wrap to at most two), so
 * the summary fits OBS_SUMMARY_LINES rows of that terminal; with an unknown
 * width each line is one row, cut at WIDTH_LINE bytes. */
struct summary {
    struct out *o;
    struct buf line;
    int used;
    int budget;
};

/* Display columns of s: UTF-8 sequences count one, ANSI escapes none. */
static size_t columns(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == 0x1b) {
            while (p[1] && !(p[1] >= '@' && p[1] <= '~' && p[1] != '['))
                p++;
            if (p[1]) p++;
            continue;
        }
        if ((*p & 0xC0) != 0x80) n++;
    }
    return n;
}

/* Appends s cut to at most cols display columns ("…" included), keeping
 * ANSI escapes whole (and resetting the colour if cut inside one). */
static void put_cols(struct buf *b, const char *s, size_t cols, bool color)
{
    if (columns(s) <= cols) {
        buf_puts(b, s);
        return;
    }
    size_t n = 0;
    const char *p = s;
    while (*p) {
        if (*p == 0x1b) {
            const char *q = p;
            while (q[1] && !(q[1] >= '@' && q[1] <= '~' && q[1] != '['))
                q++;
            if (q[1]) q++;
            buf_append(b, p, (size_t)(q - p) + 1);
            p = q + 1;
            continue;
        }
        if (((unsigned char)*p & 0xC0) != 0x80) {
            if (n + 1 >= cols) break;
            n++;
        }
        buf_putc(b, *p++);
    }
    buf_puts(b, "\xE2\x80\xA6");
    if (color) buf_puts(b, "\x1b[0m");
}

/* Rows the next line may take: reserve rows for what must follow. */
static void emit_rows(struct summary *s, int max_rows)
{
    const char *line = s->line.data ? s->line.data : "";
    int left = s->budget - s->used;
    if (max_rows > left) max_rows = left;
    if (max_rows > 0) {
        int w = s->o->width;
        if (w > 0) {
            size_t cols = columns(line);
            size_t cap = (size_t)max_rows * (size_t)w;
            if (cols > cap) cols = cap;
            put_cols(s->o->b, line, cap, s->o->color);
            s->used += cols ? (int)((cols + (size_t)w - 1) / (size_t)w) : 1;
        } else {
            put_cut(s->o->b, line, WIDTH_LINE + 64);
            s->used++;
        }
        buf_putc(s->o->b, '\n');
    }
    buf_reset(&s->line);
}

static void emit(struct summary *s)
{
    emit_rows(s, 2);
}

static void summary_text(struct out *o, const struct json_value *r)
{
    const struct json_value *run = json_get(r, "run"), *sum = json_get(r, "summary");
    const struct json_value *n = json_get(sum, "counts");
    struct summary s = {.o = o, .budget = OBS_SUMMARY_LINES};
    /* The header lines come first; each may wrap once on a narrow screen. */
    buf_init(&s.line);
    /* 1: run, workflow, status, duration. */
    struct buf *l = &s.line;
    struct out lo = {l, o->color, 0};
    buf_puts(l, "Run ");
    tone(&lo, TONE_BOLD, s_(run, "id", "?"));
    buf_printf(l, " · workflow %s", s_(run, "workflow", "?"));
    const char *hash = s_(run, "workflow_hash", "");
    if (*hash) buf_printf(l, " (%.12s)", hash);
    buf_puts(l, " · ");
    tone(&lo, tone_of(s_(run, "status", "")), s_(run, "status", "?"));
    buf_printf(l, " · %lld events", i_(run, "events"));
    emit(&s);
    /* 2: the outcome. */
    buf_puts(l, "Outcome: ");
    put_cut(l, s_(sum, "outcome", ""), WIDTH_LINE);
    emit(&s);
    /* 3-4: counts. */
    buf_printf(l,
               "Steps: %lld visits, retries %lld, failures %lld · Tool calls made: %lld · Policy: "
               "%lld allowed, %lld denied, %lld needed approval · Refused: %lld",
               i_(n, "steps"), i_(n, "retries"), i_(n, "failures"), i_(n, "tool_calls"),
               i_(n, "allowed"), i_(n, "denied"), i_(n, "needed_approval"), i_(n, "refusals"));
    emit(&s);
    if (i_(n, "model_calls") || i_(n, "input_tokens")) {
        buf_printf(l, "Models: %lld calls, %lld tokens in, %lld out, $%.4f · rejected outputs %lld",
                   i_(n, "model_calls"), i_(n, "input_tokens"), i_(n, "output_tokens"),
                   d_(n, "cost_usd"), i_(n, "rejected_outputs"));
        emit(&s);
    }
    /* Identities: up to 3 lines. */
    const struct json_value *ag = json_get(sum, "agents");
    uint32_t na = json_is(ag, JSON_ARRAY) ? ag->len : 0;
    for (uint32_t i = 0; i < na && i < 3; i++) {
        const struct json_value *a = ag->u.items[i];
        buf_printf(
            l, "%s %s (credential: %s): %lld tool calls, %lld model calls, %lld+%lld tokens, $%.4f",
            i ? "       " : "Actors:", s_(a, "identity", "?"), s_(a, "credential", "?"),
            i_(a, "tool_calls"), i_(a, "model_calls"), i_(a, "input_tokens"),
            i_(a, "output_tokens"), d_(a, "cost_usd"));
        if (i == 2 && na > 3) buf_printf(l, " … and %u more", na - 3);
        emit(&s);
    }
    /* Approvals: up to 3 lines. */
    const struct json_value *aps = json_get(sum, "approvals");
    uint32_t np = json_is(aps, JSON_ARRAY) ? aps->len : 0;
    for (uint32_t i = 0; i < np && i < 3; i++) {
        const struct json_value *a = aps->u.items[i];
        buf_printf(l,
                   "%s %s (group %s, step %s): ", i ? "          " : "Approvals:", s_(a, "id", "?"),
                   s_(a, "group", "?"), s_(a, "step", "?"));
        tone(&(struct out){l, o->color, 0}, tone_of(s_(a, "decision", "")), s_(a, "decision", "?"));
        if (json_get(a, "by"))
            buf_printf(l, " by %s at %s", s_(a, "by", "?"), s_(a, "decided_at", "?"));
        const char *cm = s_(a, "comment", NULL);
        if (cm) {
            buf_puts(l, ": ");
            put_cut(l, cm, 60);
        }
        if (i == 2 && np > 3) buf_printf(l, " … and %u more", np - 3);
        emit(&s);
    }
    /* Attention: whatever lines are left, keeping the last for the
     * timeline header. */
    const struct json_value *at = json_get(sum, "attention");
    uint32_t nt = json_is(at, JSON_ARRAY) ? at->len : 0;
    long long omitted = i_(sum, "attention_omitted");
    if (nt) {
        buf_puts(l, "Look at first:");
        emit(&s);
    }
    for (uint32_t i = 0; i < nt; i++) {
        /* Rows left before the timeline header; with more items to come,
         * one more is kept for the "… more" line. */
        int left = s.budget - s.used - 1;
        bool more = i + 1 < nt || omitted;
        if (left <= 0) break;
        if (left == 1 && more) {
            buf_printf(l, "  … %lld more in the timeline below and in --json",
                       (long long)(nt - i) + omitted);
            emit_rows(&s, 1);
            break;
        }
        const struct json_value *a = at->u.items[i];
        const char *k = s_(a, "kind", "?");
        buf_printf(l, "  #%-4lld ", i_(a, "seq"));
        tone(&(struct out){l, o->color, 0}, !strcmp(k, "switch") ? TONE_WARN : TONE_BAD, k);
        buf_puts(l, ": ");
        put_cut(l, s_(a, "message", ""), WIDTH_LINE);
        emit_rows(&s, more ? (left - 1 < 2 ? left - 1 : 2) : (left < 2 ? left : 2));
    }
    uint32_t shown =
        json_is(json_get(r, "timeline"), JSON_ARRAY) ? json_get(r, "timeline")->len : 0;
    int64_t total = json_get_int(r, "timeline_total", shown),
            from = json_get_int(r, "timeline_from", 0);
    if (total == (int64_t)shown)
        buf_printf(l,
                   "Timeline (%u step visits; `keel explain RUN --json` has every value):", shown);
    else
        buf_printf(l, "Timeline (step visits %lld to %lld of %lld; --from N and --all for others):",
                   (long long)(shown ? from + 1 : from), (long long)(from + shown),
                   (long long)total);
    emit_rows(&s, 1);
    buf_cleanup(&s.line);
}

/* ---- timeline ----------------------------------------------------------- */

static void call_text(struct out *o, const struct json_value *call)
{
    struct buf *b = o->b;
    buf_printf(b, "    call %s %s ", s_(call, "call_id", "-"), s_(call, "tool", "?"));
    put_value(b, json_get(call, "args"), WIDTH_VALUE);
    const struct json_value *pol = json_get(call, "policy");
    if (pol) {
        buf_puts(b, "  policy ");
        tone(o, tone_of(s_(pol, "decision", "")), s_(pol, "decision", "?"));
        const struct json_value *ids = json_get(pol, "policies");
        if (json_is(ids, JSON_ARRAY) && ids->len) {
            buf_puts(b, " by ");
            put_value(b, ids, 60);
        }
        if (json_get(pol, "policy_hash")) buf_printf(b, " (set %.12s)", s_(pol, "policy_hash", ""));
        buf_printf(b, " #%lld", i_(pol, "seq"));
    }
    buf_printf(b, "  as %s\n", s_(call, "identity", "?"));
    const struct json_value *ap = json_get(call, "approval");
    if (ap) {
        buf_printf(b, "      approval %s (group %s): ", s_(ap, "id", "?"), s_(ap, "group", "?"));
        tone(o, tone_of(s_(ap, "decision", "")), s_(ap, "decision", "?"));
        if (json_get(ap, "by"))
            buf_printf(b, " by %s at %s", s_(ap, "by", "?"), s_(ap, "decided_at", "?"));
        buf_putc(b, '\n');
    }
    const struct json_value *rf = json_get(call, "refused");
    if (rf) {
        buf_puts(b, "      ");
        tone(o, TONE_BAD, "refused");
        buf_printf(b, " (%s) #%lld: ", s_(rf, "reason", "?"), i_(rf, "seq"));
        put_cut(b, s_(rf, "message", ""), WIDTH_VALUE);
        buf_putc(b, '\n');
    }
    if (json_get(call, "completed_seq")) {
        buf_puts(b, "      → ");
        const char *st = s_(call, "status", "?");
        tone(o, tone_of(st), st);
        buf_printf(b, " #%lld %lld ms: ", i_(call, "completed_seq"), i_(call, "duration_ms"));
        put_value(b, json_get(call, "error") ? json_get(call, "error") : json_get(call, "result"),
                  WIDTH_RESULT);
        buf_putc(b, '\n');
    } else if (json_get(call, "started_seq")) {
        buf_printf(b, "      → no result recorded (started #%lld)\n", i_(call, "started_seq"));
    }
}

static void model_text(struct out *o, const struct json_value *m)
{
    struct buf *b = o->b;
    buf_printf(b, "    model %s turn %lld %s", s_(m, "call_id", "?"), i_(m, "turn"),
               s_(m, "model", "?"));
    if (json_get(m, "provider")) buf_printf(b, " (%s)", s_(m, "provider", ""));
    buf_printf(b, " #%lld→#%lld %lld+%lld tokens $%.4f", i_(m, "request_seq"),
               i_(m, "response_seq"), i_(m, "input_tokens"), i_(m, "output_tokens"),
               d_(m, "cost_usd"));
    if (json_get(m, "purpose") && strcmp(s_(m, "purpose", ""), "turn") != 0)
        buf_printf(b, " [%s]", s_(m, "purpose", ""));
    buf_putc(b, '\n');
    const struct json_value *pr = json_get(m, "proposed");
    for (uint32_t i = 0; json_is(pr, JSON_ARRAY) && i < pr->len; i++) {
        buf_printf(b, "      proposes %s ", s_(pr->u.items[i], "tool", "?"));
        put_value(b, json_get(pr->u.items[i], "arguments"), WIDTH_VALUE / 2);
        buf_putc(b, '\n');
    }
    if (json_get(m, "text")) {
        buf_puts(b, "      says ");
        put_cut(b, s_(m, "text", ""), WIDTH_VALUE);
        buf_putc(b, '\n');
    }
    if (json_get(m, "error")) {
        buf_puts(b, "      ");
        tone(o, TONE_BAD, "error ");
        put_value(b, json_get(m, "error"), WIDTH_VALUE);
        buf_putc(b, '\n');
    }
}

static void visit_text(struct out *o, const struct json_value *e)
{
    struct buf *b = o->b;
    const struct json_value *actor = json_get(e, "actor");
    if (json_get(e, "end_seq"))
        buf_printf(b, "\n#%lld-#%lld ", i_(e, "start_seq"), i_(e, "end_seq"));
    else
        buf_printf(b, "\n#%lld-… ", i_(e, "start_seq"));
    tone(o, TONE_BOLD, s_(e, "step", "?"));
    buf_printf(b, " (%s", s_(e, "kind", "?"));
    if (i_(e, "visit")) buf_printf(b, ", visit %lld", i_(e, "visit") + 1);
    if (i_(e, "attempts") > 1) buf_printf(b, ", %lld attempts", i_(e, "attempts"));
    buf_printf(b, ") as %s [credential: %s] ", s_(actor, "identity", "?"),
               s_(actor, "credential", "?"));
    tone(o, tone_of(s_(e, "status", "")), s_(e, "status", "?"));
    buf_printf(b, "  %s\n", s_(e, "started", ""));

    const struct json_value *l = json_get(e, "state_read");
    for (uint32_t i = 0; json_is(l, JSON_ARRAY) && i < l->len; i++) {
        const struct json_value *r = l->u.items[i];
        buf_printf(b, "    reads  %s = ", s_(r, "path", "?"));
        put_value(b, json_get(r, "value"), WIDTH_VALUE);
        const struct json_value *wb = json_get(r, "written_by");
        if (wb && json_get(wb, "seq"))
            buf_printf(b, "  (from %s #%lld)", s_(wb, "step", "?"), i_(wb, "seq"));
        buf_putc(b, '\n');
    }
    l = json_get(e, "model_calls");
    for (uint32_t i = 0; json_is(l, JSON_ARRAY) && i < l->len; i++)
        model_text(o, l->u.items[i]);
    l = json_get(e, "calls");
    for (uint32_t i = 0; json_is(l, JSON_ARRAY) && i < l->len; i++)
        call_text(o, l->u.items[i]);
    l = json_get(e, "handoffs");
    for (uint32_t i = 0; json_is(l, JSON_ARRAY) && i < l->len; i++)
        buf_printf(b, "    handoff #%lld %s → %s\n", i_(l->u.items[i], "seq"),
                   s_(l->u.items[i], "from", "?"), s_(l->u.items[i], "to", "?"));
    l = json_get(e, "summaries");
    for (uint32_t i = 0; json_is(l, JSON_ARRAY) && i < l->len; i++)
        buf_printf(b, "    context summarized #%lld (%lld → %lld tokens)\n",
                   i_(l->u.items[i], "seq"), i_(l->u.items[i], "tokens_before"),
                   i_(l->u.items[i], "tokens_after"));
    l = json_get(e, "rejected_outputs");
    for (uint32_t i = 0; json_is(l, JSON_ARRAY) && i < l->len; i++) {
        buf_printf(b, "    output rejected #%lld: ", i_(l->u.items[i], "seq"));
        put_value(b, json_get(l->u.items[i], "errors"), WIDTH_VALUE);
        buf_putc(b, '\n');
    }
    l = json_get(e, "budget");
    for (uint32_t i = 0; json_is(l, JSON_ARRAY) && i < l->len; i++)
        buf_printf(b, "    %s #%lld\n", s_(l->u.items[i], "event", "budget"),
                   i_(l->u.items[i], "seq"));
    l = json_get(e, "approvals");
    for (uint32_t i = 0; json_is(l, JSON_ARRAY) && i < l->len; i++) {
        const struct json_value *ap = l->u.items[i];
        if (json_get(ap, "tool")) continue; /* shown under its call */
        buf_printf(b, "    approval %s (group %s) #%lld: ", s_(ap, "id", "?"), s_(ap, "group", "?"),
                   i_(ap, "requested_seq"));
        tone(o, tone_of(s_(ap, "decision", "")), s_(ap, "decision", "?"));
        if (json_get(ap, "by"))
            buf_printf(b, " by %s at %s", s_(ap, "by", "?"), s_(ap, "decided_at", "?"));
        buf_putc(b, '\n');
    }
    const struct json_value *sw = json_get(e, "switch");
    if (sw) {
        buf_puts(b, "    branch ");
        put_cut(b, s_(sw, "cause", ""), 600);
        buf_putc(b, '\n');
        if (json_get(sw, "mismatch")) {
            buf_puts(b, "    ");
            tone(o, TONE_BAD, s_(sw, "mismatch", ""));
            buf_putc(b, '\n');
        }
    }
    l = json_get(e, "state_written");
    for (uint32_t i = 0; json_is(l, JSON_ARRAY) && i < l->len; i++) {
        const struct json_value *w = l->u.items[i];
        buf_printf(b, "    writes %s (%s) #%lld: ", s_(w, "key", "?"), s_(w, "reducer", "replace"),
                   i_(w, "seq"));
        put_value(b, json_get(w, "before"), WIDTH_VALUE / 2);
        buf_puts(b, " → ");
        put_value(b, json_get(w, "after"), WIDTH_RESULT);
        buf_putc(b, '\n');
    }
    l = json_get(e, "errors");
    for (uint32_t i = 0; json_is(l, JSON_ARRAY) && i < l->len; i++) {
        const struct json_value *er = l->u.items[i];
        buf_printf(b, "    ");
        tone(o, TONE_BAD, "failed");
        buf_printf(b, " attempt %lld #%lld: %s ", i_(er, "attempt"), i_(er, "seq"),
                   s_(er, "code", ""));
        put_cut(b, s_(er, "message", ""), 300);
        if (json_get(er, "retry_at")) buf_puts(b, " (retry scheduled)");
        buf_putc(b, '\n');
    }
    const struct json_value *u = json_get(e, "usage");
    if (i_(u, "input_tokens") || i_(u, "output_tokens"))
        buf_printf(b, "    usage %lld+%lld tokens $%.4f\n", i_(u, "input_tokens"),
                   i_(u, "output_tokens"), d_(u, "cost_usd"));
}

void obs_explain_text(const struct json_value *report, struct buf *out, bool color)
{
    obs_explain_text_width(report, out, color, 0);
}

void obs_explain_text_width(const struct json_value *report, struct buf *out, bool color, int width)
{
    struct out o = {out, color, width > 0 && width < 20 ? 20 : width};
    summary_text(&o, report);
    const struct json_value *t = json_get(report, "timeline");
    for (uint32_t i = 0; json_is(t, JSON_ARRAY) && i < t->len; i++)
        visit_text(&o, t->u.items[i]);
    const struct json_value *next = json_get(report, "timeline_next");
    if (json_is(next, JSON_NUMBER)) {
        int64_t total = json_get_int(report, "timeline_total", 0),
                at = json_get_int(report, "timeline_next", 0);
        buf_printf(out, "\n… %lld more step visits: keel explain %s --from %lld (or --all)\n",
                   (long long)(total - at), json_get_str(json_get(report, "run"), "id", "RUN"),
                   (long long)at);
    }
    const struct json_value *an = json_get(report, "anomalies");
    if (json_is(an, JSON_ARRAY) && an->len) {
        buf_puts(out, "\nAnomalies in the journal:\n");
        for (uint32_t i = 0; i < an->len; i++)
            if (json_is(an->u.items[i], JSON_STRING))
                buf_printf(out, "  %s\n", an->u.items[i]->u.s.str);
    }
}
