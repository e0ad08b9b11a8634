/*
 * explain.c — builds the explain report of a run from its journal
 * (docs/explain.md documents the report; obs.h the contract).
 *
 * One pass over the events, in seq order, with one handler per event kind
 * (kind_table).  The pass keeps:
 *   - the state, folded with journal_fold_event exactly as the engine folds
 *     it (reducers from the pinned workflow version, else the one named in
 *     each state.updated), so "the value at that point" is what the engine
 *     saw;
 *   - the current step visit (a step.started with attempt 1 opens one; a
 *     retry continues it), holding the timeline entry being filled;
 *   - the provenance of every state key: the state.updated that last wrote
 *     it and the step's source behind it (a tool result, a model answer and
 *     the tool results the agent had read, an approval, or a set step's
 *     template inputs with their own provenance);
 *   - the source of the last step's result (what `result.x` reads);
 *   - counters for the summary and per acting identity.
 *
 * Invariants: the caller's events are never modified (the fold parses each
 * state.updated payload into the arena again, and values shown in the report
 * are copies, so a later append/merge into the state cannot change an
 * earlier entry); every value copied into the report is capped at
 * OBS_VALUE_MAX bytes; provenance chains embedded in switch causes stop at
 * OBS_CHAIN_MAX levels; nothing outside the journal, the run object and the
 * workflow version is read (so nothing secret can enter the report).
 */
#include "obs.h"

#include "journal/journal.h"
#include "workflow/workflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- small JSON helpers ------------------------------------------------- */

struct ctx;
static struct json_value *obj(struct ctx *c);
static void set_s(struct ctx *c, struct json_value *o, const char *k, const char *s);
static void set_i(struct ctx *c, struct json_value *o, const char *k, int64_t i);
static void set_v(struct ctx *c, struct json_value *o, const char *k, struct json_value *v);

/* A provenance record: the JSON object and how many levels it nests. */
struct prov {
    struct json_value *obj;
    int depth;
};

/* Usage of one acting identity. */
struct agent_stats {
    const char *name;
    int64_t tool_calls, model_calls, input_tokens, output_tokens;
    double cost;
    struct agent_stats *next;
};

/* One visit of one step (a step.started with attempt 1, and its retries). */
struct visit {
    struct json_value *entry; /* the timeline entry */
    const char *step;
    const struct workflow_step *ws; /* NULL without a workflow version */
    const char *kind;
    int number;
    int attempts;
    bool closed;
    const char *identity;
    struct json_value *reads, *writes, *calls, *model_calls, *approvals, *errors, *handoffs,
        *summaries, *rejected, *budget;
    struct json_value *pending_call; /* policy-decided tool-step call not started yet */
    struct json_value *last_tool;    /* {seq, tool, call_id, result} of the last result */
    struct json_value *last_model;   /* the last model.response's call record */
    struct json_value *evidence;     /* tool results received in this visit */
    struct json_value *approval;     /* the last approval asked in this visit */
    struct json_value *prev_result;  /* `result` as the step saw it */
    struct prov prev_result_src;
    struct prov *set_src;            /* set steps: the source of each entry */
    int64_t input_tokens, output_tokens;
    double cost;
};

struct ctx {
    struct arena *a;
    const struct workflow *wf;
    struct journal_reducers reducers;
    const char *run_id;
    struct json_value *input, *state;
    struct json_value *last_result;
    struct prov last_result_src;
    struct strmap prov;      /* state key -> struct prov *            */
    struct strmap visit_n;   /* step id -> visits so far (as intptr)  */
    struct strmap calls;     /* call_id -> call record                */
    struct strmap mcalls;    /* model call_id -> model call record    */
    struct strmap approvals; /* approval id -> approval record        */
    struct visit *cur;
    struct agent_stats *agents;
    struct json_value *timeline, *attention, *approval_list, *switches, *anomalies;
    int64_t attention_omitted;
    /* counters */
    int64_t steps, tool_calls, allowed, denied, need_approval, refusals, retries, model_calls,
        input_tokens, output_tokens, rejected, failures;
    double cost;
    /* run facts from the journal */
    const char *workflow, *workflow_hash;
    int64_t first_ms, last_ms, final_ms;
    const char *final_kind;
    struct json_value *final_payload;
    int64_t final_seq;
    struct json_value *waiting; /* the open run.waiting payload, or NULL */
    /* the event being handled */
    int64_t seq;
    int64_t time_ms;
    const char *time_text;
    const char *actor;
};

static struct json_value *obj(struct ctx *c)
{
    return json_object(c->a);
}
static void set_s(struct ctx *c, struct json_value *o, const char *k, const char *s)
{
    if (s) json_object_setc(c->a, o, k, json_cstr(c->a, s));
}
static void set_i(struct ctx *c, struct json_value *o, const char *k, int64_t i)
{
    json_object_setc(c->a, o, k, json_int(c->a, i));
}
static void set_d(struct ctx *c, struct json_value *o, const char *k, double d)
{
    if (d != d || d - d != 0) d = 0;
    json_object_setc(c->a, o, k, json_double(c->a, d));
}
static void set_v(struct ctx *c, struct json_value *o, const char *k, struct json_value *v)
{
    if (v) json_object_setc(c->a, o, k, v);
}
static const char *str(const struct json_value *o, const char *k)
{
    const struct json_value *v = json_get(o, k);
    return json_is(v, JSON_STRING) ? v->u.s.str : NULL;
}
static double num(const struct json_value *o, const char *k)
{
    const struct json_value *v = json_get(o, k);
    return json_is(v, JSON_NUMBER) ? v->u.n.d : 0;
}

/* Cuts s to at most max bytes without splitting a UTF-8 sequence, adding
 * "…" when something was cut.  Returns a string in the arena. */
static const char *cut(struct arena *a, const char *s, size_t len, size_t max)
{
    if (len <= max) return arena_strndup(a, s, len);
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    char *out = arena_alloc(a, n + 4);
    memcpy(out, s, n);
    memcpy(out + n, "\xE2\x80\xA6", 4);
    return out;
}

/* Compact JSON of v, cut to max bytes. */
/* Writes the compact JSON of v to b, stopping once b holds more than
 * limit bytes, so a huge value (an append-reduced list of a long run) costs
 * O(limit) here, not O(its size).  Returns false if it stopped early. */
static bool bounded_write(struct buf *b, const struct json_value *v, size_t limit, int depth)
{
    if (b->len > limit) return false;
    if (!v) {
        buf_puts(b, "null");
        return true;
    }
    if (depth > 64) {
        buf_puts(b, "\"…\"");
        return true;
    }
    if (json_is(v, JSON_STRING)) {
        size_t room = limit - b->len + 1, n = v->len;
        if (n > room) {
            n = room;
            while (n > 0 && ((unsigned char)v->u.s.str[n] & 0xC0) == 0x80) n--;
        }
        json_write_string(b, v->u.s.str, n);
        return n == v->len;
    }
    if (json_is(v, JSON_ARRAY)) {
        buf_putc(b, '[');
        for (uint32_t i = 0; i < v->len; i++) {
            if (i) buf_putc(b, ',');
            if (!bounded_write(b, v->u.items[i], limit, depth + 1)) return false;
        }
        buf_putc(b, ']');
        return b->len <= limit;
    }
    if (json_is(v, JSON_OBJECT)) {
        buf_putc(b, '{');
        for (uint32_t i = 0; i < v->len; i++) {
            if (i) buf_putc(b, ',');
            json_write_string(b, v->u.members[i].key, v->u.members[i].key_len);
            buf_putc(b, ':');
            if (!bounded_write(b, v->u.members[i].value, limit, depth + 1)) return false;
        }
        buf_putc(b, '}');
        return b->len <= limit;
    }
    json_write(b, v, 0, NULL);
    return b->len <= limit;
}

/* Compact JSON of v, cut to max bytes. */
static const char *preview(struct arena *a, const struct json_value *v, size_t max)
{
    if (!v) return "null";
    struct buf b;
    buf_init(&b);
    bounded_write(&b, v, max + 1, 0);
    const char *s = cut(a, b.data ? b.data : "", b.len, max);
    buf_cleanup(&b);
    return s;
}

/* A copy of v for the report, or {truncated, larger_than, preview} when its
 * compact JSON is larger than OBS_VALUE_MAX.  NULL stays NULL. */
static struct json_value *clip(struct ctx *c, const struct json_value *v)
{
    if (!v) return NULL;
    struct buf b;
    buf_init(&b);
    struct json_value *out;
    if (bounded_write(&b, v, OBS_VALUE_MAX, 0)) {
        out = json_clone(c->a, v);
    } else {
        out = obj(c);
        json_object_setc(c->a, out, "truncated", json_bool(c->a, true));
        set_i(c, out, "larger_than", OBS_VALUE_MAX);
        set_s(c, out, "preview", cut(c->a, b.data, b.len, OBS_PREVIEW_MAX));
    }
    buf_cleanup(&b);
    return out;
}

/* "agent:support/triage" -> "support/triage"; other actors as they are. */
static const char *identity_of(const char *actor)
{
    if (actor && !strncmp(actor, "agent:", 6)) return actor + 6;
    return actor;
}

/* Parses "2026-11-25T19:31:26.123Z" (or an integer) to ms; 0 if unknown. */
static int64_t time_ms_of(const struct json_value *t)
{
    if (json_is(t, JSON_NUMBER)) return (int64_t)t->u.n.d;
    if (!json_is(t, JSON_STRING)) return 0;
    int y, mo, d, h, mi, s, ms = 0, n = 0;
    if (sscanf(t->u.s.str, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6)
        return 0;
    const char *p = t->u.s.str + n;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++)
            if (digits++ < 3) ms = ms * 10 + (*p - '0');
        while (digits > 0 && digits < 3) ms *= 10, digits++;
    }
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* ---- paths: what templates and conditions read -------------------------- */

static bool ident_start(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
}
static bool ident_char(char ch)
{
    return ident_start(ch) || (ch >= '0' && ch <= '9');
}

static void push_unique(struct arena *a, struct json_value *arr, const char *s, size_t len)
{
    for (uint32_t i = 0; i < arr->len; i++)
        if (arr->u.items[i]->len == len && !memcmp(arr->u.items[i]->u.s.str, s, len)) return;
    if (arr->len < 256) json_array_push(a, arr, json_string(a, s, len));
}

struct json_value *obs_condition_paths(const char *cond, struct arena *a)
{
    struct json_value *out = json_array(a);
    if (!cond) return out;
    struct buf path;
    buf_init(&path);
    size_t n = strlen(cond);
    for (size_t i = 0; i < n;) {
        char ch = cond[i];
        if (ch == '"') { /* skip a string literal, escapes included */
            for (i++; i < n && cond[i] != '"'; i++)
                if (cond[i] == '\\' && i + 1 < n) i++;
            i++;
            continue;
        }
        if (!ident_start(ch) || (i > 0 && (ident_char(cond[i - 1]) || cond[i - 1] == '.' ||
                                           cond[i - 1] == ':'))) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && ident_char(cond[j])) j++;
        size_t wl = j - i;
        bool root = (wl == 5 && !memcmp(cond + i, "input", 5)) ||
                    (wl == 5 && !memcmp(cond + i, "state", 5)) ||
                    (wl == 6 && !memcmp(cond + i, "result", 6));
        if (!root) {
            i = j;
            continue;
        }
        buf_reset(&path);
        buf_append(&path, cond + i, wl);
        /* .name and ["name"] accessors (not method calls like .contains(). */
        for (;;) {
            if (j < n && cond[j] == '.' && j + 1 < n && ident_start(cond[j + 1])) {
                size_t k = j + 1;
                while (k < n && ident_char(cond[k])) k++;
                if (k < n && cond[k] == '(') break; /* a method: x.contains(...) */
                buf_append(&path, cond + j, k - j);
                j = k;
            } else if (j + 1 < n && cond[j] == '[' && cond[j + 1] == '"') {
                size_t k = j + 2;
                while (k < n && cond[k] != '"' && cond[k] != '\\') k++;
                if (k + 1 >= n || cond[k] != '"' || cond[k + 1] != ']') break;
                buf_putc(&path, '.');
                buf_append(&path, cond + j + 2, k - j - 2);
                j = k + 2;
            } else {
                break;
            }
        }
        push_unique(a, out, path.data, path.len);
        i = j;
    }
    buf_cleanup(&path);
    return out;
}

/* Collects the ${...} references of a template source value. */
static void template_paths(struct arena *a, const struct json_value *v, struct json_value *out,
                           int depth)
{
    if (!v || depth > 64) return;
    if (json_is(v, JSON_STRING)) {
        const char *s = v->u.s.str;
        for (size_t i = 0; i + 1 < v->len; i++) {
            if (s[i] == '$' && s[i + 1] == '$') {
                i++;
                continue;
            }
            if (s[i] != '$' || s[i + 1] != '{') continue;
            size_t j = i + 2;
            while (j < v->len && s[j] != '}') j++;
            if (j >= v->len) break;
            size_t b = i + 2, e = j;
            while (b < e && s[b] == ' ') b++;
            while (e > b && s[e - 1] == ' ') e--;
            if (e > b) push_unique(a, out, s + b, e - b);
            i = j;
        }
    } else if (json_is(v, JSON_ARRAY)) {
        for (uint32_t i = 0; i < v->len; i++) template_paths(a, v->u.items[i], out, depth + 1);
    } else if (json_is(v, JSON_OBJECT)) {
        for (uint32_t i = 0; i < v->len; i++)
            template_paths(a, v->u.members[i].value, out, depth + 1);
    }
}

static void template_paths_of(struct arena *a, const struct workflow_template *t,
                              struct json_value *out)
{
    if (t) template_paths(a, workflow_template_source(t), out, 0);
}

/* Resolves "state.a.b[0]" against vars; NULL if it names nothing. */
static const struct json_value *resolve(const struct json_value *vars, const char *path)
{
    const struct json_value *v = vars;
    const char *p = path;
    while (*p && v) {
        if (*p == '.') {
            p++;
            continue;
        }
        if (*p == '[') {
            char *end;
            long idx = strtol(p + 1, &end, 10);
            if (*end != ']' || !json_is(v, JSON_ARRAY) || idx < 0 || (uint32_t)idx >= v->len)
                return NULL;
            v = v->u.items[idx];
            p = end + 1;
            continue;
        }
        size_t n = strcspn(p, ".[");
        v = json_getn(v, p, n);
        p += n;
    }
    return v;
}

/* The state key a path reads ("state.ticket.subject" -> "ticket"). */
static const char *state_key_of(struct arena *a, const char *path)
{
    if (strncmp(path, "state.", 6) != 0) return NULL;
    const char *k = path + 6;
    return arena_strndup(a, k, strcspn(k, ".["));
}

/* ---- provenance --------------------------------------------------------- */

/* A short reference to a provenance record (for timeline reads). */
static struct json_value *prov_ref(struct ctx *c, const struct json_value *p)
{
    if (!p) return NULL;
    struct json_value *r = obj(c);
    static const char *const keep[] = {"origin", "key", "seq", "step", "visit", "reducer"};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(keep); i++) set_v(c, r, keep[i], json_get(p, keep[i]));
    const struct json_value *src = json_get(p, "source");
    static const char *const skeep[] = {"kind", "tool", "model", "approval"};
    if (src) {
        struct json_value *s = obj(c);
        for (size_t i = 0; i < KEEL_ARRAY_LEN(skeep); i++)
            set_v(c, s, skeep[i], json_get(src, skeep[i]));
        set_v(c, r, "source", s);
    }
    return r;
}

/* Where `path` got its value from, at this point of the run. */
static struct prov provenance_of(struct ctx *c, const char *path, const struct visit *v)
{
    struct prov none = {NULL, 0};
    if (!strncmp(path, "state.", 6) || !strcmp(path, "state")) {
        const char *key = state_key_of(c->a, path);
        struct prov *p = key ? strmap_get(&c->prov, key, strlen(key)) : NULL;
        if (p) return *p;
        struct json_value *o = obj(c);
        set_s(c, o, "origin", key && c->wf && workflow_state_find(c->wf, key) &&
                                      workflow_state_find(c->wf, key)->initial
                                  ? "initial"
                                  : "unset");
        set_s(c, o, "key", key);
        return (struct prov){o, 1};
    }
    if (!strncmp(path, "input", 5)) {
        struct json_value *o = obj(c);
        set_s(c, o, "origin", "input");
        return (struct prov){o, 1};
    }
    if (!strncmp(path, "result", 6)) return v ? v->prev_result_src : none;
    return none;
}

/* The reads of one path list against vars, each with its value and where
 * it came from (short references; full=true embeds the chain). */
static void add_reads(struct ctx *c, struct visit *v, const struct json_value *paths,
                      const struct json_value *vars, struct json_value *out, bool full)
{
    for (uint32_t i = 0; paths && i < paths->len; i++) {
        const char *path = paths->u.items[i]->u.s.str;
        bool dup = false;
        for (uint32_t k = 0; k < out->len && !dup; k++)
            dup = !strcmp(json_get_str(out->u.items[k], "path", ""), path);
        if (dup) continue;
        struct json_value *r = obj(c);
        set_s(c, r, "path", path);
        const struct json_value *val = resolve(vars, path);
        if (val) set_v(c, r, "value", clip(c, val));
        else json_object_setc(c->a, r, "missing", json_bool(c->a, true));
        struct prov p = provenance_of(c, path, v);
        if (p.obj) set_v(c, r, "written_by", full ? p.obj : prov_ref(c, p.obj));
        json_array_push(c->a, out, r);
    }
}

static struct json_value *vars_now(struct ctx *c, struct visit *v)
{
    struct json_value *o = obj(c);
    set_v(c, o, "input", c->input);
    set_v(c, o, "state", c->state);
    set_v(c, o, "result", v ? v->prev_result : c->last_result);
    return o;
}

/* The source of set entry i of v's step: its template inputs, resolved
 * against the state at the step's start (the engine renders every entry
 * before journaling any), each with the chain of what wrote it, embedded up
 * to OBS_CHAIN_MAX levels since a set step only moves values: the cause is
 * whatever wrote them. */
static struct prov set_source(struct ctx *c, struct visit *v, size_t i)
{
    struct json_value *s = obj(c);
    int depth = 1;
    set_s(c, s, "step", v->step);
    set_i(c, s, "visit", v->number);
    set_s(c, s, "kind", "set");
    struct json_value *paths = json_array(c->a);
    template_paths_of(c->a, v->ws->set.entries[i].value, paths);
    struct json_value *vars = vars_now(c, v);
    struct json_value *inputs = json_array(c->a);
    for (uint32_t k = 0; k < paths->len; k++) {
        const char *path = paths->u.items[k]->u.s.str;
        struct json_value *r = obj(c);
        set_s(c, r, "path", path);
        const struct json_value *val = resolve(vars, path);
        if (val) set_v(c, r, "value", clip(c, val));
        struct prov p = provenance_of(c, path, v);
        if (p.obj) {
            if (p.depth >= OBS_CHAIN_MAX) {
                set_v(c, r, "written_by", prov_ref(c, p.obj));
            } else {
                set_v(c, r, "written_by", p.obj);
                if (p.depth + 1 > depth) depth = p.depth + 1;
            }
        }
        json_array_push(c->a, inputs, r);
    }
    set_v(c, s, "inputs", inputs);
    return (struct prov){s, depth};
}

/* What the visit's output came from: its tool result, its model answer and
 * the tool results the agent had read, its approval, or (set steps) the
 * template inputs of the entry that wrote `key`. */
static struct prov visit_source(struct ctx *c, struct visit *v, const char *key)
{
    struct json_value *s = obj(c);
    int depth = 1;
    set_s(c, s, "step", v->step);
    set_i(c, s, "visit", v->number);
    if (v->last_model) {
        set_s(c, s, "kind", "agent");
        set_s(c, s, "agent", v->identity);
        struct json_value *m = obj(c);
        set_v(c, m, "seq", json_get(v->last_model, "response_seq"));
        set_v(c, m, "call_id", json_get(v->last_model, "call_id"));
        set_v(c, m, "model", json_get(v->last_model, "model"));
        set_v(c, m, "agent", json_get(v->last_model, "agent"));
        set_v(c, s, "model", m);
        set_v(c, s, "evidence", json_clone(c->a, v->evidence));
    } else if (v->last_tool) {
        set_s(c, s, "kind", "tool");
        set_v(c, s, "tool", v->last_tool);
    } else if (v->approval) {
        set_s(c, s, "kind", "approval");
        struct json_value *ap = obj(c);
        static const char *const keep[] = {"id", "decision", "by", "decided_seq", "decided_at"};
        for (size_t i = 0; i < KEEL_ARRAY_LEN(keep); i++)
            set_v(c, ap, keep[i], json_get(v->approval, keep[i]));
        set_v(c, s, "approval", ap);
    } else if (v->ws && v->ws->kind == WORKFLOW_STEP_SET && key && v->set_src) {
        for (size_t i = 0; i < v->ws->set.nentries; i++)
            if (!strcmp(v->ws->set.entries[i].key, key)) return v->set_src[i];
        set_s(c, s, "kind", "set");
    } else {
        set_s(c, s, "kind", v->kind ? v->kind : "unknown");
    }
    return (struct prov){s, depth};
}

/* ---- identities --------------------------------------------------------- */

static struct agent_stats *agent(struct ctx *c, const char *name)
{
    if (!name || !*name) name = "system";
    for (struct agent_stats *s = c->agents; s; s = s->next)
        if (!strcmp(s->name, name)) return s;
    struct agent_stats *s = arena_zalloc(c->a, sizeof *s);
    s->name = arena_strdup(c->a, name);
    /* Append, so identities list in order of first appearance. */
    struct agent_stats **tail = &c->agents;
    while (*tail) tail = &(*tail)->next;
    *tail = s;
    return s;
}

/* ---- attention ---------------------------------------------------------- */

static void attention(struct ctx *c, const char *what, const char *step, const char *fmt, ...)
    KEEL_PRINTF(4, 5);
static void attention(struct ctx *c, const char *what, const char *step, const char *fmt, ...)
{
    if (c->attention->len >= OBS_ATTENTION_MAX) {
        c->attention_omitted++;
        return;
    }
    struct buf b;
    buf_init(&b);
    va_list ap;
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    struct json_value *o = obj(c);
    set_s(c, o, "kind", what);
    set_i(c, o, "seq", c->seq);
    set_s(c, o, "step", step);
    set_s(c, o, "message", cut(c->a, b.data ? b.data : "", b.len, 4 * OBS_PREVIEW_MAX));
    json_array_push(c->a, c->attention, o);
    buf_cleanup(&b);
}

/* ---- visits ------------------------------------------------------------- */

static const char *kind_of(const struct workflow_step *ws)
{
    return ws ? workflow_step_kind_name(ws->kind) : NULL;
}

/* The reads of a step's templates (and a switch's conditions) at its start. */
static void step_reads(struct ctx *c, struct visit *v)
{
    const struct workflow_step *ws = v->ws;
    if (!ws) return;
    struct json_value *paths = json_array(c->a);
    template_paths_of(c->a, ws->call.args, paths);
    template_paths_of(c->a, ws->approval.message, paths);
    for (size_t i = 0; i < ws->set.nentries; i++)
        template_paths_of(c->a, ws->set.entries[i].value, paths);
    template_paths_of(c->a, ws->end.message, paths);
    template_paths_of(c->a, ws->end.output, paths);
    template_paths_of(c->a, ws->agent.prompt, paths);
    for (size_t i = 0; i < ws->sw.ncases; i++) {
        struct json_value *cp = obs_condition_paths(ws->sw.cases[i].condition, c->a);
        for (uint32_t k = 0; k < cp->len; k++)
            push_unique(c->a, paths, cp->u.items[k]->u.s.str, cp->u.items[k]->len);
    }
    add_reads(c, v, paths, vars_now(c, v), v->reads, false);
}

static struct json_value *arr_in(struct ctx *c, struct json_value *entry, const char *k)
{
    struct json_value *a = json_array(c->a);
    set_v(c, entry, k, a);
    return a;
}

static struct visit *open_visit(struct ctx *c, const char *step, int attempt)
{
    struct visit *v = arena_zalloc(c->a, sizeof *v);
    v->step = arena_strdup(c->a, step ? step : "?");
    v->ws = c->wf && step ? workflow_step_find(c->wf, step) : NULL;
    v->kind = kind_of(v->ws);
    intptr_t n = (intptr_t)strmap_get(&c->visit_n, v->step, strlen(v->step));
    strmap_put(&c->visit_n, v->step, strlen(v->step), (void *)(n + 1));
    v->number = (int)n;
    v->attempts = attempt > 0 ? attempt : 1;
    v->prev_result = c->last_result;
    v->prev_result_src = c->last_result_src;
    v->evidence = json_array(c->a);
    v->identity = "system";
    if (v->ws && v->ws->kind == WORKFLOW_STEP_TOOL && c->wf->identity) v->identity = c->wf->identity;
    if (v->ws && v->ws->kind == WORKFLOW_STEP_AGENT && v->ws->agent.agent)
        v->identity = v->ws->agent.agent;
    struct json_value *e = v->entry = obj(c);
    set_s(c, e, "step", v->step);
    set_s(c, e, "kind", v->kind ? v->kind : "unknown");
    set_i(c, e, "visit", v->number);
    set_i(c, e, "start_seq", c->seq);
    set_s(c, e, "started", c->time_text);
    v->reads = arr_in(c, e, "state_read");
    v->writes = arr_in(c, e, "state_written");
    v->calls = arr_in(c, e, "calls");
    v->model_calls = arr_in(c, e, "model_calls");
    v->approvals = arr_in(c, e, "approvals");
    v->errors = arr_in(c, e, "errors");
    v->handoffs = arr_in(c, e, "handoffs");
    v->summaries = arr_in(c, e, "summaries");
    v->rejected = arr_in(c, e, "rejected_outputs");
    v->budget = arr_in(c, e, "budget");
    json_array_push(c->a, c->timeline, e);
    c->steps++;
    c->cur = v;
    step_reads(c, v);
    if (v->ws && v->ws->kind == WORKFLOW_STEP_SET && v->ws->set.nentries) {
        v->set_src = arena_alloc(c->a, v->ws->set.nentries * sizeof *v->set_src);
        for (size_t i = 0; i < v->ws->set.nentries; i++) v->set_src[i] = set_source(c, v, i);
    }
    return v;
}

/* The visit an event of `step` belongs to: the current one, or a new one
 * when the journal names a step nobody started (a damaged or foreign
 * journal: reported, not fatal). */
static struct visit *visit_for(struct ctx *c, const char *step)
{
    struct visit *v = c->cur;
    if (v && (!step || !strcmp(step, v->step))) return v;
    if (!step) return NULL;
    v = open_visit(c, step, 1);
    json_array_push(c->a, c->anomalies,
                    json_cstr(c->a, arena_printf(c->a, "event #%lld names step '%s' without a "
                                                       "step.started",
                                                 (long long)c->seq, step)));
    return v;
}

static void close_visit(struct ctx *c, struct visit *v, const char *status)
{
    set_i(c, v->entry, "end_seq", c->seq);
    set_s(c, v->entry, "ended", c->time_text);
    set_s(c, v->entry, "status", status);
    v->closed = true;
}

/* ---- calls -------------------------------------------------------------- */

static struct json_value *new_call(struct ctx *c, struct visit *v, const char *call_id)
{
    struct json_value *call = obj(c);
    set_s(c, call, "call_id", call_id);
    set_s(c, call, "status", "decided");
    if (call_id) strmap_put(&c->calls, call_id, strlen(call_id), call);
    if (v) json_array_push(c->a, v->calls, call);
    return call;
}

static struct json_value *find_call(struct ctx *c, const char *call_id)
{
    return call_id ? strmap_get(&c->calls, call_id, strlen(call_id)) : NULL;
}

/* "crm__lookup_account" (the providers' tool name) -> "crm/lookup_account". */
static const char *tool_name(struct arena *a, const char *name)
{
    const char *sep = name ? strstr(name, "__") : NULL;
    if (!sep) return name;
    return arena_printf(a, "%.*s/%s", (int)(sep - name), name, sep + 2);
}

/* An agent's call that never started has no args in the journal but in
 * the model answer that proposed it: copy them from there. */
static void proposed_args(struct ctx *c, struct visit *v, struct json_value *call,
                          const char *tool_call_id)
{
    if (!v || !v->last_model || !tool_call_id || json_get(call, "args")) return;
    const struct json_value *pr = json_get(v->last_model, "proposed");
    for (uint32_t i = 0; json_is(pr, JSON_ARRAY) && i < pr->len; i++)
        if (!strcmp(json_get_str(pr->u.items[i], "id", ""), tool_call_id)) {
            set_v(c, call, "args", json_get(pr->u.items[i], "arguments"));
            set_v(c, call, "proposed_by", json_get(v->last_model, "call_id"));
            return;
        }
}

/* ---- event handlers (one per kind, in kind_table) ----------------------- */

typedef void (*handler_fn)(struct ctx *c, const struct json_value *p);

static void on_run_started(struct ctx *c, const struct json_value *p)
{
    if (!c->workflow) c->workflow = str(p, "workflow");
    if (!c->workflow_hash) c->workflow_hash = str(p, "workflow_hash");
    if (!c->input && json_get(p, "input")) c->input = json_get(p, "input");
}

static void on_run_waiting(struct ctx *c, const struct json_value *p)
{
    c->waiting = json_clone(c->a, p);
    set_i(c, c->waiting, "seq", c->seq);
    set_s(c, c->waiting, "since", c->time_text);
    if (c->cur && !c->cur->closed) set_s(c, c->cur->entry, "status", "waiting");
}

static void on_run_resumed(struct ctx *c, const struct json_value *p)
{
    c->waiting = NULL;
    if (c->cur && !c->cur->closed) set_s(c, c->cur->entry, "status", "running");
}

static void on_final(struct ctx *c, const struct json_value *p, const char *kind)
{
    c->final_kind = kind;
    c->final_payload = (struct json_value *)p;
    c->final_ms = c->time_ms;
    c->final_seq = c->seq;
    c->waiting = NULL;
}

static void on_run_succeeded(struct ctx *c, const struct json_value *p)
{
    on_final(c, p, "succeeded");
    if (c->cur && !c->cur->closed) close_visit(c, c->cur, "completed"); /* a succeed step */
}

static void on_run_failed(struct ctx *c, const struct json_value *p)
{
    on_final(c, p, "failed");
    const struct json_value *e = json_get(p, "error");
    attention(c, "run_failed", str(p, "step"), "the run failed%s%s: %s %s",
              str(p, "step") ? " at step " : "", str(p, "step") ? str(p, "step") : "",
              json_get_str(e, "code", ""), json_get_str(e, "message", ""));
    if (c->cur && !c->cur->closed) close_visit(c, c->cur, "failed");
}

static void on_run_cancelled(struct ctx *c, const struct json_value *p)
{
    on_final(c, p, "cancelled");
    attention(c, "cancelled", NULL, "cancelled by %s: %s", json_get_str(p, "by", "?"),
              json_get_str(p, "reason", ""));
    if (c->cur && !c->cur->closed) close_visit(c, c->cur, "cancelled");
}

static void on_needs_reconcile(struct ctx *c, const struct json_value *p)
{
    on_final(c, p, "needs_reconcile");
    attention(c, "needs_reconcile", str(p, "step"),
              "call %s to %s started but has no recorded result: %s",
              json_get_str(p, "call_id", "?"), json_get_str(p, "tool", "?"),
              json_get_str(p, "reason", ""));
    struct json_value *call = find_call(c, str(p, "call_id"));
    if (call) set_s(c, call, "status", "needs_reconcile");
    if (c->cur && !c->cur->closed) close_visit(c, c->cur, "needs_reconcile");
}

static void on_step_started(struct ctx *c, const struct json_value *p)
{
    const char *step = str(p, "step");
    int attempt = (int)json_get_int(p, "attempt", 1);
    struct visit *v = c->cur;
    if (attempt > 1 && v && step && !strcmp(v->step, step) && !v->closed) {
        v->attempts = attempt;
        c->retries++;
        set_s(c, v->entry, "status", "running");
        return;
    }
    if (v && !v->closed) close_visit(c, v, "abandoned");
    open_visit(c, step, attempt);
}

static void on_step_completed(struct ctx *c, const struct json_value *p);
static void on_step_failed(struct ctx *c, const struct json_value *p)
{
    struct visit *v = visit_for(c, str(p, "step"));
    if (!v) return;
    const struct json_value *e = json_get(p, "error");
    struct json_value *o = obj(c);
    set_i(c, o, "seq", c->seq);
    set_i(c, o, "attempt", json_get_int(p, "attempt", v->attempts));
    set_v(c, o, "code", json_get(e, "code"));
    set_v(c, o, "message", json_get(e, "message"));
    set_v(c, o, "retry_at", json_get(p, "retry_at"));
    json_array_push(c->a, v->errors, o);
    bool retry = json_get(p, "retry_at") != NULL;
    c->failures++;
    attention(c, "step_failed", v->step, "step %s attempt %lld failed%s: %s %s", v->step,
              (long long)json_get_int(p, "attempt", v->attempts), retry ? " (retrying)" : "",
              json_get_str(e, "code", ""), json_get_str(e, "message", ""));
    if (retry) set_s(c, v->entry, "status", "retrying");
    else close_visit(c, v, "failed");
}

static void on_tool_call_started(struct ctx *c, const struct json_value *p)
{
    struct visit *v = visit_for(c, str(p, "step"));
    const char *call_id = str(p, "call_id");
    struct json_value *call = find_call(c, call_id);
    /* A retry sends the same call id again: the attempt is a new record
     * (the one the gate just decided for, if any). */
    if (call && json_get(call, "started_seq")) call = NULL;
    if (!call && v && v->pending_call) {
        call = v->pending_call;
        set_s(c, call, "call_id", call_id);
        if (call_id) strmap_put(&c->calls, call_id, strlen(call_id), call);
    }
    if (!call) call = new_call(c, v, call_id);
    if (v) v->pending_call = NULL;
    if (v) set_i(c, call, "attempt", v->attempts);
    const char *server = str(p, "server"), *tool = str(p, "tool");
    const char *qualified = server && tool && !strchr(tool, '/')
                                ? arena_printf(c->a, "%s/%s", server, tool)
                                : tool;
    set_s(c, call, "tool", qualified);
    set_v(c, call, "args", clip(c, json_get(p, "args")));
    const char *who = str(p, "agent") ? str(p, "agent") : identity_of(c->actor);
    if (v && (!who || !strcmp(who, "system"))) who = v->identity;
    set_s(c, call, "identity", who);
    set_s(c, call, "credential", "none brokered");
    set_v(c, call, "tool_call_id", json_get(p, "tool_call_id"));
    set_i(c, call, "started_seq", c->seq);
    set_s(c, call, "started", c->time_text);
    set_s(c, call, "status", "open");
    c->tool_calls++;
    agent(c, who)->tool_calls++;
    /* A call that started was allowed, directly or after an approval
     * (counted as needing one when the gate asked). */
    const char *d = json_get_str(json_get(call, "policy"), "decision", "");
    if (strcmp(d, "approval") != 0) c->allowed++;
    if (!json_get(call, "policy") && v)
        set_s(c, call, "policy_note", "no policy.decision journaled for this call");
}

static void on_tool_call_completed(struct ctx *c, const struct json_value *p)
{
    struct visit *v = visit_for(c, str(p, "step"));
    const char *call_id = str(p, "call_id");
    struct json_value *call = find_call(c, call_id);
    if (!call) call = new_call(c, v, call_id);
    const struct json_value *res = json_get(p, "result"), *e = json_get(p, "error");
    set_v(c, call, "result", clip(c, res));
    set_v(c, call, "error", clip(c, e));
    set_v(c, call, "duration_ms", json_get(p, "duration_ms"));
    set_i(c, call, "completed_seq", c->seq);
    set_s(c, call, "completed", c->time_text);
    set_s(c, call, "status", e ? "error" : "ok");
    if (!v) return;
    struct json_value *t = obj(c);
    set_i(c, t, "seq", c->seq);
    set_v(c, t, "tool", json_get(call, "tool"));
    set_s(c, t, "call_id", call_id);
    set_v(c, t, "tool_call_id", json_get(call, "tool_call_id"));
    set_s(c, t, "result", preview(c->a, res ? res : e, OBS_PREVIEW_MAX));
    if (e) json_object_setc(c->a, t, "error", json_bool(c->a, true));
    v->last_tool = t;
    json_array_push(c->a, v->evidence, t);
}

static void on_policy_decision(struct ctx *c, const struct json_value *p)
{
    struct visit *v = visit_for(c, str(p, "step"));
    const char *call_id = str(p, "call_id");
    struct json_value *call = find_call(c, call_id);
    if (call && json_get(call, "started_seq")) call = NULL; /* a retry's new gate */
    if (!call && !call_id && v && v->pending_call) call = v->pending_call;
    if (!call) {
        call = new_call(c, v, call_id);
        if (!call_id && v) v->pending_call = call;
    }
    const char *res = str(p, "resource");
    if (res && !json_get(call, "tool")) {
        /* Tool::"server/tool" -> server/tool */
        const char *q = strchr(res, '"');
        set_s(c, call, "tool", q ? arena_strndup(c->a, q + 1, strcspn(q + 1, "\"")) : res);
    }
    const char *who = str(p, "agent") ? str(p, "agent") : identity_of(c->actor);
    if (v && (!who || !strcmp(who, "system"))) who = v->identity;
    if (!json_get(call, "identity")) set_s(c, call, "identity", who);
    set_s(c, call, "credential", "none brokered");
    set_v(c, call, "tool_call_id", json_get(p, "tool_call_id"));
    if (!json_get(call, "args") && json_get(p, "args")) set_v(c, call, "args", clip(c, json_get(p, "args")));
    proposed_args(c, v, call, str(p, "tool_call_id"));
    struct json_value *d = obj(c);
    static const char *const keep[] = {"decision", "action", "resource", "policies",
                                       "policy_hash", "group", "reasons", "errors"};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(keep); i++) set_v(c, d, keep[i], clip(c, json_get(p, keep[i])));
    set_i(c, d, "seq", c->seq);
    const struct json_value *prev = json_get(call, "policy");
    if (prev) {
        /* The gate runs again after an approval: keep every decision. */
        struct json_value *all = json_get(call, "decisions");
        if (!all) {
            all = json_array(c->a);
            json_array_push(c->a, all, (struct json_value *)prev);
            set_v(c, call, "decisions", all);
        }
        json_array_push(c->a, all, d);
    }
    /* An approval-gated call keeps its first ("approval") decision. */
    if (!prev || strcmp(json_get_str(prev, "decision", ""), "approval") != 0)
        set_v(c, call, "policy", d);
    const char *decision = json_get_str(p, "decision", "");
    if (!strcmp(decision, "deny")) {
        set_s(c, call, "status", "denied");
        c->denied++;
        const struct json_value *pol = json_get(p, "policies");
        attention(c, "denied", v ? v->step : NULL, "policy denied %s calling %s (%s)",
                  who ? who : "?", json_get_str(call, "tool", "?"),
                  json_is(pol, JSON_ARRAY) && pol->len ? preview(c->a, pol, 80)
                                                       : "no permit applies");
    } else if (!strcmp(decision, "approval") && !prev) {
        set_s(c, call, "status", "awaiting_approval");
        c->need_approval++;
    }
}

static void on_approval_requested(struct ctx *c, const struct json_value *p)
{
    struct visit *v = visit_for(c, str(p, "step"));
    struct json_value *ap = obj(c);
    const char *id = str(p, "approval_id");
    set_s(c, ap, "id", id);
    set_v(c, ap, "step", json_get(p, "step"));
    set_v(c, ap, "group", json_get(p, "group"));
    set_v(c, ap, "tool", json_get(p, "tool"));
    set_v(c, ap, "policy_hash", json_get(p, "policy"));
    set_v(c, ap, "args_digest", json_get(p, "args_digest"));
    set_v(c, ap, "message", clip(c, json_get(p, "message")));
    set_i(c, ap, "requested_seq", c->seq);
    set_s(c, ap, "requested_at", c->time_text);
    set_v(c, ap, "expires_ms", json_get(p, "expires_ms"));
    set_s(c, ap, "decision", "pending");
    if (id) strmap_put(&c->approvals, id, strlen(id), ap);
    json_array_push(c->a, c->approval_list, ap);
    if (!v) return;
    json_array_push(c->a, v->approvals, ap);
    v->approval = ap;
    /* A policy approval belongs to the call the gate stopped. */
    struct json_value *call = v->pending_call;
    if (!call && v->calls->len) call = v->calls->u.items[v->calls->len - 1];
    if (call && json_get(p, "tool") && !json_get(call, "started_seq")) set_v(c, call, "approval", ap);
}

static void on_approval_decided(struct ctx *c, const struct json_value *p)
{
    const char *id = str(p, "approval_id");
    struct json_value *ap = id ? strmap_get(&c->approvals, id, strlen(id)) : NULL;
    if (!ap) {
        ap = obj(c);
        set_s(c, ap, "id", id);
        json_array_push(c->a, c->approval_list, ap);
        if (c->cur) json_array_push(c->a, c->cur->approvals, ap);
    }
    const char *decision = json_get_str(p, "decision", "?");
    const char *by = str(p, "by") ? str(p, "by") : c->actor;
    set_s(c, ap, "decision", decision);
    set_s(c, ap, "by", by);
    set_v(c, ap, "comment", clip(c, json_get(p, "comment")));
    set_i(c, ap, "decided_seq", c->seq);
    set_s(c, ap, "decided_at", c->time_text);
    struct visit *v = c->cur;
    if (v && v->ws && v->ws->kind == WORKFLOW_STEP_APPROVAL) v->identity = by;
    if (v && !v->ws && !v->calls->len && !v->model_calls->len) v->identity = by;
    if (strcmp(decision, "approved") != 0)
        attention(c, "approval", json_get_str(ap, "step", NULL), "approval %s %s by %s%s%s",
                  id ? id : "?", decision, by ? by : "?",
                  str(p, "comment") ? ": " : "", str(p, "comment") ? str(p, "comment") : "");
}

static void on_state_updated(struct ctx *c, const struct json_value *p)
{
    const char *key = str(p, "key");
    if (!key) return;
    struct visit *v = c->cur && !c->cur->closed ? c->cur : NULL;
    struct json_value *w = obj(c);
    set_s(c, w, "key", key);
    set_i(c, w, "seq", c->seq);
    set_v(c, w, "reducer", json_get(p, "reducer"));
    set_v(c, w, "before", clip(c, json_get(c->state, key)));
    if (!json_get(c->state, key)) json_object_setc(c->a, w, "before_unset", json_bool(c->a, true));
    /* Fold exactly as the engine does: journal_fold_event on the payload. */
    struct buf text;
    buf_init(&text);
    json_write(&text, p, JSON_WRITE_CANONICAL, NULL);
    struct journal_event ev = {.run_id = c->run_id ? c->run_id : "",
                               .seq = c->seq,
                               .time_ms = c->time_ms,
                               .kind = "state.updated",
                               .actor = c->actor ? c->actor : "system",
                               .payload = text.data ? text.data : "{}",
                               .payload_len = text.len};
    struct keel_err ferr;
    keel_err_clear(&ferr);
    if (journal_fold_event(&c->reducers, c->a, c->state, &ev, &ferr) != 0) {
        set_s(c, w, "error", ferr.msg);
        json_array_push(c->a, c->anomalies, json_cstr(c->a, ferr.msg));
    }
    buf_cleanup(&text);
    set_v(c, w, "after", clip(c, json_get(c->state, key)));
    /* Provenance: the state.updated and, behind it, the step's source. */
    struct prov *pr = arena_zalloc(c->a, sizeof *pr);
    struct json_value *po = obj(c);
    set_s(c, po, "origin", "step");
    set_s(c, po, "key", key);
    set_i(c, po, "seq", c->seq);
    set_v(c, po, "reducer", json_get(p, "reducer"));
    set_s(c, po, "at", c->time_text);
    int depth = 1;
    if (v) {
        set_s(c, po, "step", v->step);
        set_i(c, po, "visit", v->number);
        struct prov src = visit_source(c, v, key);
        set_v(c, po, "source", src.obj);
        depth = src.depth + 1;
    } else {
        struct json_value *s = obj(c);
        set_s(c, s, "kind", "outside a step");
        set_s(c, s, "actor", c->actor);
        set_v(c, po, "source", s);
    }
    pr->obj = po;
    pr->depth = depth;
    strmap_put(&c->prov, key, strlen(key), pr);
    set_v(c, w, "written_by", prov_ref(c, po));
    if (v) json_array_push(c->a, v->writes, w);
}

/* ---- switches ----------------------------------------------------------- */

/* Appends "path = value ← origin" for one read to b (depth levels). */
static void describe_prov(struct ctx *c, struct buf *b, const struct json_value *p, int depth);

static void describe_source(struct ctx *c, struct buf *b, const struct json_value *src, int depth)
{
    const char *kind = json_get_str(src, "kind", "?");
    const struct json_value *t = json_get(src, "tool");
    const struct json_value *m = json_get(src, "model");
    if (!strcmp(kind, "tool") && t) {
        buf_printf(b, " from tool result %s (#%lld, call %s): %s", json_get_str(t, "tool", "?"),
                   (long long)json_get_int(t, "seq", 0), json_get_str(t, "call_id", "?"),
                   json_get_str(t, "result", ""));
    } else if (!strcmp(kind, "agent") && m) {
        buf_printf(b, " from the answer of agent %s (model.response #%lld, model %s)",
                   json_get_str(src, "agent", "?"), (long long)json_get_int(m, "seq", 0),
                   json_get_str(m, "model", "?"));
        const struct json_value *ev = json_get(src, "evidence");
        if (json_is(ev, JSON_ARRAY) && ev->len) {
            buf_puts(b, ", which had read");
            for (uint32_t i = 0; i < ev->len && i < 4; i++) {
                const struct json_value *e = ev->u.items[i];
                buf_printf(b, "%s %s (#%lld): %s", i ? ";" : "", json_get_str(e, "tool", "?"),
                           (long long)json_get_int(e, "seq", 0), json_get_str(e, "result", ""));
            }
            if (ev->len > 4) buf_printf(b, "; and %u more", ev->len - 4);
        } else {
            buf_puts(b, ", which had read no tool result");
        }
    } else if (!strcmp(kind, "approval")) {
        const struct json_value *ap = json_get(src, "approval");
        buf_printf(b, " from approval %s %s by %s", json_get_str(ap, "id", "?"),
                   json_get_str(ap, "decision", "?"), json_get_str(ap, "by", "?"));
    } else if (!strcmp(kind, "set")) {
        const struct json_value *in = json_get(src, "inputs");
        buf_puts(b, " from its template");
        for (uint32_t i = 0; json_is(in, JSON_ARRAY) && i < in->len && i < 3; i++) {
            const struct json_value *r = in->u.items[i];
            buf_printf(b, "%s %s", i ? ";" : "", json_get_str(r, "path", "?"));
            const struct json_value *wb = json_get(r, "written_by");
            if (wb && depth > 1) {
                buf_puts(b, " [");
                describe_prov(c, b, wb, depth - 1);
                buf_puts(b, "]");
            }
        }
    }
}

static void describe_prov(struct ctx *c, struct buf *b, const struct json_value *p, int depth)
{
    const char *origin = json_get_str(p, "origin", "?");
    if (!strcmp(origin, "input")) {
        buf_puts(b, "the run's input");
        return;
    }
    if (!strcmp(origin, "initial") || !strcmp(origin, "unset")) {
        buf_printf(b, "state.%s %s", json_get_str(p, "key", "?"),
                   !strcmp(origin, "initial") ? "still at its initial value" : "never written");
        return;
    }
    if (json_get(p, "key"))
        buf_printf(b, "state.%s written by step %s (state.updated #%lld)", json_get_str(p, "key", "?"),
                   json_get_str(p, "step", "?"), (long long)json_get_int(p, "seq", 0));
    else
        buf_printf(b, "the result of step %s", json_get_str(p, "step", "?"));
    const struct json_value *src = json_get(p, "source");
    if (src) describe_source(c, b, src, depth);
    else if (json_get(p, "kind")) describe_source(c, b, p, depth);
}

/* The compact chain for the summary: "step triage #30 ← agent x
 * (model.response #29) ← read crm/lookup_account #21: {...}". */
static void short_prov(struct ctx *c, struct buf *b, const struct json_value *p, int depth)
{
    const char *origin = json_get_str(p, "origin", "?");
    if (!strcmp(origin, "input")) {
        buf_puts(b, "run input");
        return;
    }
    if (!strcmp(origin, "initial") || !strcmp(origin, "unset")) {
        buf_puts(b, !strcmp(origin, "initial") ? "initial value" : "never written");
        return;
    }
    const char *step = json_get_str(p, "step", "?");
    const struct json_value *src = json_get(p, "source");
    const char *kind = json_get_str(src, "kind", "");
    const struct json_value *t = json_get(src, "tool");
    if (!strcmp(kind, "tool") && t) {
        const char *r = json_get_str(t, "result", "");
        buf_printf(b, "tool %s #%lld (step %s): %s", json_get_str(t, "tool", "?"),
                   (long long)json_get_int(t, "seq", 0), step, cut(c->a, r, strlen(r), 110));
    } else if (!strcmp(kind, "agent")) {
        buf_printf(b, "agent %s (step %s, model.response #%lld)", json_get_str(src, "agent", "?"),
                   step, (long long)json_get_int(json_get(src, "model"), "seq", 0));
        const struct json_value *ev = json_get(src, "evidence");
        uint32_t n = json_is(ev, JSON_ARRAY) ? ev->len : 0;
        if (n) {
            /* The last result read is the freshest evidence of the answer. */
            const struct json_value *e = ev->u.items[n - 1];
            const char *r = json_get_str(e, "result", "");
            buf_printf(b, " ← read %s #%lld: %s", json_get_str(e, "tool", "?"),
                       (long long)json_get_int(e, "seq", 0), cut(c->a, r, strlen(r), 90));
            if (n > 1) buf_printf(b, " (+%u more)", n - 1);
        } else {
            buf_puts(b, " ← no tool result read");
        }
    } else if (!strcmp(kind, "approval")) {
        const struct json_value *ap = json_get(src, "approval");
        buf_printf(b, "approval %s %s by %s (step %s)", json_get_str(ap, "id", "?"),
                   json_get_str(ap, "decision", "?"), json_get_str(ap, "by", "?"), step);
    } else if (!strcmp(kind, "set")) {
        const struct json_value *in = json_get(src, "inputs");
        const struct json_value *first = json_is(in, JSON_ARRAY) && in->len ? in->u.items[0] : NULL;
        buf_printf(b, "set step %s #%lld", step, (long long)json_get_int(p, "seq", 0));
        if (first) {
            buf_printf(b, " from %s", json_get_str(first, "path", "?"));
            const struct json_value *wb = json_get(first, "written_by");
            if (wb && depth > 1) {
                buf_puts(b, " ← ");
                short_prov(c, b, wb, depth - 1);
            }
        }
    } else {
        buf_printf(b, "%s %s #%lld", !strcmp(origin, "result") ? "result of step" : "step", step,
                   (long long)json_get_int(p, "seq", 0));
    }
}

static void on_switch_completed(struct ctx *c, struct visit *v, const struct json_value *p)
{
    const char *recorded = json_get_str(p, "next", NULL);
    struct json_value *sw = obj(c);
    set_s(c, sw, "step", v->step);
    set_i(c, sw, "seq", c->seq);
    set_s(c, sw, "next", recorded && *recorded ? recorded : "(end)");
    struct buf cause;
    buf_init(&cause);
    const struct workflow_step *ws = v->ws;
    if (!ws) {
        set_s(c, sw, "evaluated", "no");
        buf_printf(&cause, "%s → %s (recorded; the workflow version is not available, so the "
                           "conditions were not re-evaluated)",
                   v->step, recorded && *recorded ? recorded : "(end)");
    } else {
        struct json_value *vars = vars_now(c, v);
        struct json_value *cases = json_array(c->a);
        struct json_value *paths = json_array(c->a);
        int matched = -1;
        for (size_t i = 0; i < ws->sw.ncases && matched < 0; i++) {
            const struct workflow_switch_case *k = &ws->sw.cases[i];
            struct json_value *co = obj(c);
            set_i(c, co, "case", (int64_t)i + 1);
            set_s(c, co, "if", k->condition);
            set_s(c, co, "goto", k->target_id);
            bool hit = false;
            struct keel_err eerr;
            keel_err_clear(&eerr);
            if (workflow_condition_eval(k, vars, c->a, &hit, &eerr) != 0) {
                set_s(c, co, "error", eerr.msg);
            } else {
                json_object_setc(c->a, co, "value", json_bool(c->a, hit));
                if (hit) matched = (int)i;
            }
            struct json_value *cp = obs_condition_paths(k->condition, c->a);
            for (uint32_t j = 0; j < cp->len; j++)
                push_unique(c->a, paths, cp->u.items[j]->u.s.str, cp->u.items[j]->len);
            json_array_push(c->a, cases, co);
        }
        set_v(c, sw, "cases", cases);
        const char *target = matched >= 0 ? ws->sw.cases[matched].target_id : ws->sw.default_id;
        int tidx = matched >= 0 ? ws->sw.cases[matched].target : ws->sw.default_target;
        if (!target) target = tidx >= 0 && (size_t)tidx < c->wf->nsteps ? c->wf->steps[tidx].id
                                                                         : "(end)";
        set_s(c, sw, "evaluated", "yes");
        set_s(c, sw, "evaluated_next", target);
        if (matched >= 0) {
            set_i(c, sw, "matched_case", matched + 1);
            set_s(c, sw, "condition", ws->sw.cases[matched].condition);
        } else {
            set_s(c, sw, "condition", "default");
        }
        const char *rec = recorded && *recorded ? recorded : "(end)";
        if (strcmp(rec, target) != 0) {
            set_s(c, sw, "mismatch", arena_printf(c->a, "the journal recorded %s, re-evaluation "
                                                        "gives %s",
                                                  rec, target));
            json_array_push(c->a, c->anomalies,
                            json_cstr(c->a, arena_printf(c->a, "switch %s at #%lld: recorded %s, "
                                                               "re-evaluated %s",
                                                         v->step, (long long)c->seq, rec, target)));
        }
        struct json_value *reads = json_array(c->a);
        add_reads(c, v, paths, vars, reads, true);
        set_v(c, sw, "reads", reads);
        if (matched >= 0)
            buf_printf(&cause, "%s → %s because %s", v->step, rec, ws->sw.cases[matched].condition);
        else
            buf_printf(&cause, "%s → %s by default: no case held", v->step, rec);
        for (uint32_t i = 0; i < reads->len; i++) {
            const struct json_value *r = reads->u.items[i];
            buf_printf(&cause, "; %s = %s", json_get_str(r, "path", "?"),
                       json_get(r, "value") ? preview(c->a, json_get(r, "value"), 80) : "(missing)");
            const struct json_value *wb = json_get(r, "written_by");
            if (wb) {
                buf_puts(&cause, ": ");
                describe_prov(c, &cause, wb, 3);
            }
        }
    }
    set_s(c, sw, "cause", cause.data);
    set_v(c, v->entry, "switch", sw);
    json_array_push(c->a, c->switches, sw);
    /* The summary's form: short, the chain compact. */
    struct buf brief;
    buf_init(&brief);
    const char *went = recorded && *recorded ? recorded : "(end)";
    const struct json_value *reads = json_get(sw, "reads");
    const char *cond = json_get_str(sw, "condition", NULL);
    bool by_case = ws && cond && strcmp(cond, "default") != 0;
    buf_printf(&brief, "%s → %s%s", v->step, went,
               !ws ? " (recorded; not re-evaluated without the workflow version)"
               : by_case ? "" : " by default");
    /* When a case held, its own reads are the cause; by default, all. */
    const struct json_value *only =
        ws && cond && strcmp(cond, "default") != 0 ? obs_condition_paths(cond, c->a) : NULL;
    int shown = 0;
    for (uint32_t i = 0; json_is(reads, JSON_ARRAY) && i < reads->len; i++) {
        const struct json_value *r = reads->u.items[i];
        bool keep = !only;
        for (uint32_t k = 0; only && k < only->len && !keep; k++)
            keep = !strcmp(only->u.items[k]->u.s.str, json_get_str(r, "path", ""));
        if (!keep) continue;
        buf_printf(&brief, "%s %s=%s", shown++ ? " |" : ":", json_get_str(r, "path", "?"),
                   json_get(r, "value") ? preview(c->a, json_get(r, "value"), 40) : "(missing)");
        if (json_get(r, "written_by")) {
            buf_puts(&brief, " ← ");
            short_prov(c, &brief, json_get(r, "written_by"), 3);
        }
    }
    /* The condition last: the reads and their origin matter most on a
     * narrow screen; the timeline shows the condition too. */
    if (by_case) buf_printf(&brief, " [if %s]", cond);
    set_s(c, sw, "brief", brief.data);
    attention(c, "switch", v->step, "%s", brief.data ? brief.data : "");
    buf_cleanup(&brief);
    buf_cleanup(&cause);
}

static void on_step_completed(struct ctx *c, const struct json_value *p)
{
    struct visit *v = visit_for(c, str(p, "step"));
    if (!v) return;
    const struct json_value *res = json_get(p, "result");
    set_v(c, v->entry, "result", clip(c, res));
    set_v(c, v->entry, "next", json_get(p, "next"));
    bool is_switch = v->ws ? v->ws->kind == WORKFLOW_STEP_SWITCH
                           : (!res && !v->calls->len && !v->model_calls->len &&
                              !v->writes->len && !v->approvals->len && str(p, "next") &&
                              *str(p, "next"));
    if (!v->ws && is_switch) {
        v->kind = "switch";
        set_s(c, v->entry, "kind", "switch");
        set_s(c, v->entry, "kind_inferred", "yes");
    }
    if (is_switch) on_switch_completed(c, v, p);
    close_visit(c, v, "completed");
    /* What `result` means for the next step, and where it came from. */
    c->last_result = (struct json_value *)res;
    c->last_result_src = res ? visit_source(c, v, NULL) : (struct prov){NULL, 0};
    if (c->last_result_src.obj) {
        struct json_value *w = obj(c);
        set_s(c, w, "origin", "result");
        set_s(c, w, "step", v->step);
        set_i(c, w, "seq", c->seq);
        set_v(c, w, "source", c->last_result_src.obj);
        c->last_result_src.obj = w;
        c->last_result_src.depth++;
    }
}

static struct json_value *model_call_for(struct ctx *c, struct visit *v, const char *call_id)
{
    struct json_value *m = call_id ? strmap_get(&c->mcalls, call_id, strlen(call_id)) : NULL;
    if (m) return m;
    m = obj(c);
    set_s(c, m, "call_id", call_id);
    if (call_id) strmap_put(&c->mcalls, call_id, strlen(call_id), m);
    if (v) json_array_push(c->a, v->model_calls, m);
    return m;
}

static void on_model_request(struct ctx *c, const struct json_value *p)
{
    struct visit *v = visit_for(c, str(p, "step"));
    struct json_value *m = model_call_for(c, v, str(p, "call_id"));
    set_i(c, m, "request_seq", c->seq);
    set_s(c, m, "requested", c->time_text);
    static const char *const keep[] = {"turn", "model", "agent", "purpose", "route_rule",
                                       "estimated_tokens"};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(keep); i++) set_v(c, m, keep[i], json_get(p, keep[i]));
    const struct json_value *tools = json_get(p, "tools");
    if (json_is(tools, JSON_ARRAY)) set_i(c, m, "tools_offered", tools->len);
    if (v && str(p, "agent")) v->identity = str(p, "agent");
}

static void on_model_response(struct ctx *c, const struct json_value *p)
{
    struct visit *v = visit_for(c, str(p, "step"));
    struct json_value *m = model_call_for(c, v, str(p, "call_id"));
    set_i(c, m, "response_seq", c->seq);
    set_s(c, m, "responded", c->time_text);
    static const char *const keep[] = {"turn", "model", "agent", "provider", "provider_model",
                                       "stop_reason", "attempts", "error"};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(keep); i++)
        if (json_get(p, keep[i])) set_v(c, m, keep[i], clip(c, json_get(p, keep[i])));
    const struct json_value *u = json_get(p, "usage");
    int64_t in = json_get_int(u, "input_tokens", 0), out = json_get_int(u, "output_tokens", 0);
    double cost = num(p, "cost_usd");
    set_i(c, m, "input_tokens", in);
    set_i(c, m, "output_tokens", out);
    set_d(c, m, "cost_usd", cost);
    const struct json_value *msg = json_get(p, "message");
    const struct json_value *content = json_get(msg, "content");
    if (json_is(content, JSON_STRING) && content->len)
        set_s(c, m, "text", cut(c->a, content->u.s.str, content->len, OBS_PREVIEW_MAX));
    const struct json_value *tcs = json_get(msg, "tool_calls");
    struct json_value *proposed = json_array(c->a);
    for (uint32_t i = 0; json_is(tcs, JSON_ARRAY) && i < tcs->len; i++) {
        const struct json_value *tc = tcs->u.items[i];
        struct json_value *o = obj(c);
        set_v(c, o, "id", json_get(tc, "id"));
        set_s(c, o, "tool", tool_name(c->a, str(tc, "name")));
        set_v(c, o, "arguments", clip(c, json_get(tc, "arguments")));
        json_array_push(c->a, proposed, o);
    }
    set_v(c, m, "proposed", proposed);
    if (!json_get(m, "refusals")) set_v(c, m, "refusals", json_array(c->a));
    const char *who = str(p, "agent") ? str(p, "agent") : v ? v->identity : identity_of(c->actor);
    if (v && str(p, "agent")) v->identity = str(p, "agent");
    c->model_calls++;
    c->input_tokens += in;
    c->output_tokens += out;
    c->cost += cost;
    struct agent_stats *s = agent(c, who);
    s->model_calls++;
    s->input_tokens += in;
    s->output_tokens += out;
    s->cost += cost;
    if (v) {
        v->input_tokens += in;
        v->output_tokens += out;
        v->cost += cost;
        if (!json_get(p, "error") && strcmp(json_get_str(m, "purpose", "turn"), "summary") != 0) {
            v->last_model = m;
            /* The evidence the next answer will rest on starts from what the
             * agent has read so far; nothing to reset here. */
        }
    }
    if (json_get(p, "error")) {
        const struct json_value *e = json_get(p, "error");
        attention(c, "model_error", v ? v->step : NULL, "model call %s failed: %s %s",
                  json_get_str(p, "call_id", "?"), json_get_str(e, "code", ""),
                  json_get_str(e, "message", ""));
    }
}

static void on_tool_call_refused(struct ctx *c, const struct json_value *p)
{
    struct visit *v = visit_for(c, str(p, "step"));
    const char *call_id = str(p, "call_id");
    struct json_value *call = find_call(c, call_id);
    if (!call) call = new_call(c, v, call_id);
    if (!json_get(call, "tool")) set_v(c, call, "tool", json_get(p, "tool"));
    const char *who = str(p, "agent") ? str(p, "agent") : v ? v->identity : identity_of(c->actor);
    if (!json_get(call, "identity")) set_s(c, call, "identity", who);
    set_v(c, call, "tool_call_id", json_get(p, "tool_call_id"));
    proposed_args(c, v, call, str(p, "tool_call_id"));
    struct json_value *r = obj(c);
    set_i(c, r, "seq", c->seq);
    set_v(c, r, "reason", json_get(p, "reason"));
    set_v(c, r, "message", clip(c, json_get(p, "message")));
    set_v(c, call, "refused", r);
    set_s(c, call, "status", "refused");
    c->refusals++;
    /* The model call that proposed it: the last answer of this visit. */
    if (v && v->last_model) {
        struct json_value *ref = obj(c);
        set_i(c, ref, "seq", c->seq);
        set_v(c, ref, "tool_call_id", json_get(p, "tool_call_id"));
        set_v(c, ref, "tool", json_get(p, "tool"));
        set_v(c, ref, "reason", json_get(p, "reason"));
        struct json_value *list = json_get(v->last_model, "refusals");
        if (!list) set_v(c, v->last_model, "refusals", list = json_array(c->a));
        json_array_push(c->a, list, ref);
    }
    attention(c, "refused", v ? v->step : NULL, "refused %s's call to %s (%s): %s",
              who ? who : "?", json_get_str(p, "tool", "?"), json_get_str(p, "reason", "?"),
              json_get_str(p, "message", ""));
}

static void on_output_rejected(struct ctx *c, const struct json_value *p)
{
    struct visit *v = visit_for(c, str(p, "step"));
    struct json_value *r = obj(c);
    set_i(c, r, "seq", c->seq);
    set_v(c, r, "call_id", json_get(p, "call_id"));
    set_v(c, r, "turn", json_get(p, "turn"));
    set_v(c, r, "agent", json_get(p, "agent"));
    set_v(c, r, "errors", clip(c, json_get(p, "errors")));
    set_v(c, r, "message", clip(c, json_get(p, "message")));
    if (v) json_array_push(c->a, v->rejected, r);
    c->rejected++;
    const struct json_value *e = json_get(p, "errors");
    attention(c, "output_rejected", v ? v->step : NULL, "output of %s (call %s) rejected: %s",
              json_get_str(p, "agent", v ? v->identity : "?"), json_get_str(p, "call_id", "?"),
              preview(c->a, e, 200));
}

static void on_context_summarized(struct ctx *c, const struct json_value *p)
{
    struct visit *v = visit_for(c, str(p, "step"));
    struct json_value *s = obj(c);
    set_i(c, s, "seq", c->seq);
    static const char *const keep[] = {"call_id", "agent", "through_turn", "tokens_before",
                                       "tokens_after", "model", "usage", "cost_usd"};
    for (size_t i = 0; i < KEEL_ARRAY_LEN(keep); i++) set_v(c, s, keep[i], json_get(p, keep[i]));
    const struct json_value *sum = json_get(p, "summary");
    if (json_is(sum, JSON_STRING)) set_s(c, s, "summary", cut(c->a, sum->u.s.str, sum->len, OBS_PREVIEW_MAX));
    if (v) json_array_push(c->a, v->summaries, s);
    /* Count its usage unless its model call was journaled (and counted). */
    const char *cid = str(p, "call_id");
    const struct json_value *m = cid ? strmap_get(&c->mcalls, cid, strlen(cid)) : NULL;
    if (!m || !json_get(m, "response_seq")) {
        const struct json_value *u = json_get(p, "usage");
        int64_t in = json_get_int(u, "input_tokens", 0), out = json_get_int(u, "output_tokens", 0);
        double cost = num(p, "cost_usd");
        c->input_tokens += in;
        c->output_tokens += out;
        c->cost += cost;
        struct agent_stats *st = agent(c, str(p, "agent") ? str(p, "agent") : v ? v->identity : NULL);
        st->input_tokens += in;
        st->output_tokens += out;
        st->cost += cost;
        if (v) {
            v->input_tokens += in;
            v->output_tokens += out;
            v->cost += cost;
        }
    }
}

static void on_handoff(struct ctx *c, const struct json_value *p)
{
    struct visit *v = visit_for(c, str(p, "step"));
    struct json_value *h = obj(c);
    set_i(c, h, "seq", c->seq);
    set_v(c, h, "from", json_get(p, "from"));
    set_v(c, h, "to", json_get(p, "to"));
    set_v(c, h, "note", clip(c, json_get(p, "note")));
    if (!v) return;
    json_array_push(c->a, v->handoffs, h);
    if (str(p, "to")) v->identity = str(p, "to");
}

static void on_budget(struct ctx *c, const struct json_value *p, bool exceeded)
{
    struct visit *v = visit_for(c, str(p, "step"));
    struct json_value *b = json_clone(c->a, p);
    set_i(c, b, "seq", c->seq);
    set_s(c, b, "event", exceeded ? "budget.exceeded" : "budget.extended");
    if (v) json_array_push(c->a, v->budget, b);
    if (exceeded)
        attention(c, "budget", v ? v->step : NULL, "%s budget%s%s exceeded: limit %s, used %s",
                  json_get_str(p, "scope", "?"), str(p, "agent") ? " of " : "",
                  str(p, "agent") ? str(p, "agent") : "", preview(c->a, json_get(p, "limit"), 80),
                  preview(c->a, json_get(p, "used"), 80));
}
static void on_budget_exceeded(struct ctx *c, const struct json_value *p)
{
    on_budget(c, p, true);
}
static void on_budget_extended(struct ctx *c, const struct json_value *p)
{
    on_budget(c, p, false);
}

static void on_compensation(struct ctx *c, const struct json_value *p)
{
    struct visit *v = visit_for(c, str(p, "step"));
    if (!v) return;
    struct json_value *o = json_clone(c->a, p);
    set_i(c, o, "seq", c->seq);
    struct json_value *list = json_get(v->entry, "compensations");
    if (!list) set_v(c, v->entry, "compensations", list = json_array(c->a));
    json_array_push(c->a, list, o);
}

static void on_nothing(struct ctx *c, const struct json_value *p)
{
}

static const struct {
    const char *kind;
    handler_fn fn;
} kind_table[] = {
    {"run.started", on_run_started},
    {"run.waiting", on_run_waiting},
    {"run.resumed", on_run_resumed},
    {"run.succeeded", on_run_succeeded},
    {"run.failed", on_run_failed},
    {"run.cancelled", on_run_cancelled},
    {"run.needs_reconcile", on_needs_reconcile},
    {"step.started", on_step_started},
    {"step.completed", on_step_completed},
    {"step.failed", on_step_failed},
    {"tool.call.started", on_tool_call_started},
    {"tool.call.completed", on_tool_call_completed},
    {"policy.decision", on_policy_decision},
    {"approval.requested", on_approval_requested},
    {"approval.decided", on_approval_decided},
    {"state.updated", on_state_updated},
    {"timer.set", on_nothing},
    {"timer.fired", on_nothing},
    {"signal.received", on_nothing},
    {"model.request", on_model_request},
    {"model.response", on_model_response},
    {"compensation.started", on_compensation},
    {"compensation.completed", on_compensation},
    {"tool.call.refused", on_tool_call_refused},
    {"agent.output.rejected", on_output_rejected},
    {"context.summarized", on_context_summarized},
    {"agent.handoff", on_handoff},
    {"budget.exceeded", on_budget_exceeded},
    {"budget.extended", on_budget_extended},
};

/* ---- the report --------------------------------------------------------- */

static void finish_visits(struct ctx *c)
{
    for (uint32_t i = 0; i < c->timeline->len; i++) {
        struct json_value *e = c->timeline->u.items[i];
        if (!json_get(e, "status")) set_s(c, e, "status", "running");
    }
}

/* Writes each visit's attempts, identity and usage (kept in struct visit
 * while the pass runs; the entry objects are final only at the end). */
static void visit_totals(struct ctx *c, struct visit *v)
{
    set_i(c, v->entry, "attempts", v->attempts);
    struct json_value *actor = obj(c);
    set_s(c, actor, "identity", v->identity);
    set_s(c, actor, "credential", "none brokered");
    set_v(c, v->entry, "actor", actor);
    struct json_value *u = obj(c);
    set_i(c, u, "input_tokens", v->input_tokens);
    set_i(c, u, "output_tokens", v->output_tokens);
    set_d(c, u, "cost_usd", v->cost);
    set_v(c, v->entry, "usage", u);
}

static const char *duration_text(struct arena *a, int64_t ms)
{
    if (ms < 1000) return arena_printf(a, "%lld ms", (long long)ms);
    if (ms < 120000) return arena_printf(a, "%.1f s", (double)ms / 1000);
    if (ms < 7200000) return arena_printf(a, "%.1f min", (double)ms / 60000);
    if (ms < 172800000) return arena_printf(a, "%.1f h", (double)ms / 3600000);
    return arena_printf(a, "%.1f days", (double)ms / 86400000);
}

static const char *outcome(struct ctx *c, const char *status, int64_t duration)
{
    const char *d = duration_text(c->a, duration);
    const char *last = c->cur ? c->cur->step : NULL;
    if (!strcmp(status, "succeeded"))
        return arena_printf(c->a, "Succeeded after %lld step visit%s in %s.", (long long)c->steps,
                            c->steps == 1 ? "" : "s", d);
    if (!strcmp(status, "failed")) {
        const struct json_value *e = json_get(c->final_payload, "error");
        return arena_printf(c->a, "Failed at step %s after %s: %s",
                            json_get_str(c->final_payload, "step", last ? last : "?"), d,
                            cut(c->a, json_get_str(e, "message", "no message"),
                                strlen(json_get_str(e, "message", "no message")), 300));
    }
    if (!strcmp(status, "cancelled"))
        return arena_printf(c->a, "Cancelled by %s after %s (%s).",
                            json_get_str(c->final_payload, "by", "?"), d,
                            json_get_str(c->final_payload, "reason", "no reason given"));
    if (!strcmp(status, "needs_reconcile"))
        return arena_printf(c->a, "Needs reconciling: call %s to %s at step %s started but has no "
                                  "recorded result; check the tool's side, then cancel the run.",
                            json_get_str(c->final_payload, "call_id", "?"),
                            json_get_str(c->final_payload, "tool", "?"),
                            json_get_str(c->final_payload, "step", "?"));
    if (c->waiting && !strcmp(json_get_str(c->waiting, "reason", ""), "approval")) {
        const char *id = json_get_str(c->waiting, "approval_id", "?");
        const struct json_value *ap = strmap_get(&c->approvals, id, strlen(id));
        return arena_printf(c->a, "Waiting since %s for approval %s (group %s) at step %s.",
                            json_get_str(c->waiting, "since", "?"), id,
                            json_get_str(ap, "group", "?"), last ? last : "?");
    }
    if (c->waiting)
        return arena_printf(c->a, "Waiting (%s) at step %s since %s.",
                            json_get_str(c->waiting, "reason", "?"), last ? last : "?",
                            json_get_str(c->waiting, "since", "?"));
    return arena_printf(c->a, "Running: at step %s after %s.", last ? last : "(none yet)", d);
}

int obs_explain(const struct json_value *run, const struct json_value *events,
                const struct workflow *wf, struct arena *a, struct json_value **out,
                struct keel_err *err)
{
    if (!json_is(events, JSON_ARRAY))
        return keel_fail(err, KEEL_EINVAL, "explain: the events must be an array");
    struct ctx c0 = {.a = a, .wf = wf};
    struct ctx *c = &c0;
    strmap_init(&c->prov);
    strmap_init(&c->visit_n);
    strmap_init(&c->calls);
    strmap_init(&c->mcalls);
    strmap_init(&c->approvals);
    c->timeline = json_array(a);
    c->attention = json_array(a);
    c->approval_list = json_array(a);
    c->switches = json_array(a);
    c->anomalies = json_array(a);
    c->run_id = str(run, "id");
    c->workflow = str(run, "workflow");
    c->workflow_hash = str(run, "workflow_hash");
    c->input = json_get(run, "input");
    if (wf) {
        struct journal_state_key *keys = arena_zalloc(a, (wf->nstate + 1) * sizeof *keys);
        for (size_t i = 0; i < wf->nstate; i++)
            keys[i] = (struct journal_state_key){.key = wf->state[i].name,
                                                 .reducer = (enum journal_reducer)wf->state[i].reducer,
                                                 .initial = wf->state[i].initial};
        c->reducers = (struct journal_reducers){.keys = keys, .n = wf->nstate};
    }
    c->state = journal_state_initial(&c->reducers, a);
    /* Index each visit so totals can be written at the end. */
    struct visit **visits = NULL;
    size_t nvisits = 0, cap = 0;

    for (uint32_t i = 0; i < events->len; i++) {
        const struct json_value *ev = events->u.items[i];
        const char *kind = str(ev, "kind");
        const struct json_value *p = json_get(ev, "payload");
        if (!json_is(p, JSON_OBJECT)) p = json_object(a);
        c->seq = json_get_int(ev, "seq", (int64_t)i + 1);
        c->time_ms = time_ms_of(json_get(ev, "time"));
        c->time_text = str(ev, "time");
        if (!c->time_text && c->time_ms) {
            char t[32];
            keel_format_time(c->time_ms, t);
            c->time_text = arena_strdup(a, t);
        }
        c->actor = str(ev, "actor");
        if (c->time_ms && !c->first_ms) c->first_ms = c->time_ms;
        if (c->time_ms) c->last_ms = c->time_ms;
        struct visit *before = c->cur;
        size_t k = 0;
        for (; kind && k < KEEL_ARRAY_LEN(kind_table); k++)
            if (!strcmp(kind_table[k].kind, kind)) break;
        if (kind && k < KEEL_ARRAY_LEN(kind_table)) {
            kind_table[k].fn(c, p);
        } else {
            json_array_push(a, c->anomalies,
                            json_cstr(a, arena_printf(a, "event #%lld has an unknown kind '%s'",
                                                      (long long)c->seq, kind ? kind : "")));
        }
        if (c->cur && c->cur != before) {
            if (nvisits == cap) {
                cap = cap ? 2 * cap : 16;
                struct visit **nv = arena_alloc(a, cap * sizeof *nv);
                if (nvisits) memcpy(nv, visits, nvisits * sizeof *nv);
                visits = nv;
            }
            visits[nvisits++] = c->cur;
        }
    }
    for (size_t i = 0; i < nvisits; i++) visit_totals(c, visits[i]);
    finish_visits(c);

    /* run */
    struct json_value *r = obj(c);
    set_s(c, r, "id", c->run_id);
    set_s(c, r, "workflow", c->workflow);
    set_s(c, r, "workflow_hash", c->workflow_hash);
    const char *status = str(run, "status");
    if (!status) status = c->final_kind ? c->final_kind : c->waiting ? "waiting" : "running";
    set_s(c, r, "status", status);
    set_v(c, r, "input", clip(c, c->input));
    set_s(c, r, "created", str(run, "created"));
    if (!json_get(r, "created") && c->first_ms) {
        char t[32];
        keel_format_time(c->first_ms, t);
        set_s(c, r, "created", t);
    }
    if (c->final_ms) {
        char t[32];
        keel_format_time(c->final_ms, t);
        set_s(c, r, "ended", t);
    }
    int64_t end_ms = c->final_ms ? c->final_ms : c->last_ms;
    int64_t duration = c->first_ms && end_ms >= c->first_ms ? end_ms - c->first_ms : 0;
    set_i(c, r, "duration_ms", duration);
    set_i(c, r, "events", events->len);
    if (str(run, "error")) set_s(c, r, "error", str(run, "error"));
    else if (c->final_kind && !strcmp(c->final_kind, "failed"))
        set_v(c, r, "error", json_get(json_get(c->final_payload, "error"), "message"));
    if (c->final_kind && !strcmp(c->final_kind, "succeeded"))
        set_v(c, r, "output", clip(c, json_get(c->final_payload, "output")));
    set_s(c, r, "started_by", str(run, "started_by"));
    json_object_setc(a, r, "workflow_version_available", json_bool(a, wf != NULL));

    /* summary */
    struct json_value *s = obj(c);
    set_s(c, s, "outcome", outcome(c, status, duration));
    struct json_value *n = obj(c);
    set_i(c, n, "steps", c->steps);
    set_i(c, n, "tool_calls", c->tool_calls);
    set_i(c, n, "allowed", c->allowed);
    set_i(c, n, "denied", c->denied);
    set_i(c, n, "needed_approval", c->need_approval);
    set_i(c, n, "refusals", c->refusals);
    set_i(c, n, "retries", c->retries);
    set_i(c, n, "failures", c->failures);
    set_i(c, n, "rejected_outputs", c->rejected);
    set_i(c, n, "model_calls", c->model_calls);
    set_i(c, n, "input_tokens", c->input_tokens);
    set_i(c, n, "output_tokens", c->output_tokens);
    set_d(c, n, "cost_usd", c->cost);
    set_i(c, n, "approvals", c->approval_list->len);
    set_v(c, s, "counts", n);
    struct json_value *ag = json_array(a);
    for (struct agent_stats *st = c->agents; st; st = st->next) {
        struct json_value *o = obj(c);
        set_s(c, o, "identity", st->name);
        set_s(c, o, "credential", "none brokered");
        set_i(c, o, "tool_calls", st->tool_calls);
        set_i(c, o, "model_calls", st->model_calls);
        set_i(c, o, "input_tokens", st->input_tokens);
        set_i(c, o, "output_tokens", st->output_tokens);
        set_d(c, o, "cost_usd", st->cost);
        json_array_push(a, ag, o);
    }
    set_v(c, s, "agents", ag);
    set_v(c, s, "approvals", c->approval_list);
    set_v(c, s, "attention", c->attention);
    if (c->attention_omitted) set_i(c, s, "attention_omitted", c->attention_omitted);
    if (c->waiting) set_v(c, s, "waiting", c->waiting);

    /* provenance of every state key, as it stands at the end */
    struct json_value *pv = obj(c);
    for (size_t i = 0; i < c->prov.cap; i++)
        if (c->prov.slots[i].key) {
            struct prov *p = c->prov.slots[i].value;
            json_object_set(a, pv, c->prov.slots[i].key, c->prov.slots[i].key_len, p->obj);
        }

    struct json_value *report = obj(c);
    set_v(c, report, "run", r);
    set_v(c, report, "summary", s);
    set_v(c, report, "timeline", c->timeline);
    set_v(c, report, "switches", c->switches);
    set_v(c, report, "state", clip(c, c->state));
    set_v(c, report, "provenance", pv);
    if (c->anomalies->len) set_v(c, report, "anomalies", c->anomalies);

    strmap_cleanup(&c->prov);
    strmap_cleanup(&c->visit_n);
    strmap_cleanup(&c->calls);
    strmap_cleanup(&c->mcalls);
    strmap_cleanup(&c->approvals);
    *out = report;
    return 0;
}
