/*
 * explain_prov.c — provenance in the explain report: what a step read and
 * where each value came from, and why a switch went where it went.
 *
 * A step reads the paths its templates name (${state.x}, ${input.y},
 * ${result.z}) and its switch conditions read (input/state/result paths
 * outside string literals).  Each read gets its value at the step's start
 * and its provenance: for state.K, the record the last state.updated of K
 * left (explain_events.c keeps them in ctx.prov), whose source is the
 * writing step's tool result, model answer (with the tool results the agent
 * had read), approval, or, for a set step, the inputs of its template with
 * their own provenance; for result, the source of the previous step's
 * result; for input, the run's input.
 *
 * Invariants: a provenance record is built once, when its value is written,
 * and never changed afterwards, so a chain shows the run as it was then;
 * embedded chains stop at OBS_CHAIN_MAX levels (deeper ones become short
 * references); path lists are capped at 256 entries; every value copied is
 * capped (obs_clip).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

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

/* See obs.h; the array and its strings are new in arena a. */
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

/* A short reference to a provenance record (for timeline reads), in c->a. */
struct json_value *obs_prov_ref(struct ctx *c, const struct json_value *p)
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
        if (val) set_v(c, r, "value", obs_clip(c, val));
        else json_object_setc(c->a, r, "missing", json_bool(c->a, true));
        struct prov p = provenance_of(c, path, v);
        if (p.obj) set_v(c, r, "written_by", full ? p.obj : obs_prov_ref(c, p.obj));
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
        if (val) set_v(c, r, "value", obs_clip(c, val));
        struct prov p = provenance_of(c, path, v);
        if (p.obj) {
            if (p.depth >= OBS_CHAIN_MAX) {
                set_v(c, r, "written_by", obs_prov_ref(c, p.obj));
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
 * template inputs of the entry that wrote `key`.  The record is in c->a. */
struct prov obs_visit_source(struct ctx *c, struct visit *v, const char *key)
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

/* The reads of a step's templates (and a switch's conditions) at its start,
 * and for a set step the source of each entry (in c->a, kept in v). */
void obs_step_reads(struct ctx *c, struct visit *v)
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
    if (ws->kind == WORKFLOW_STEP_SET && ws->set.nentries) {
        v->set_src = arena_alloc(c->a, ws->set.nentries * sizeof *v->set_src);
        for (size_t i = 0; i < ws->set.nentries; i++) v->set_src[i] = set_source(c, v, i);
    }
}

/* ---- switches: why a switch went where it went -------------------------- */

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
                   (long long)json_get_int(t, "seq", 0), step, obs_cut(c->a, r, strlen(r), 110));
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
                       (long long)json_get_int(e, "seq", 0), obs_cut(c->a, r, strlen(r), 90));
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

/* Re-evaluates v's switch against the values it read, and records the
 * cases, the reads with their provenance, a full `cause` and a compact
 * `brief` (all in c->a) in v's entry, the report's switches and the
 * attention list.  A mismatch with the recorded next step is an anomaly. */
void obs_switch_cause(struct ctx *c, struct visit *v, const struct json_value *p)
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
                       json_get(r, "value") ? obs_preview(c->a, json_get(r, "value"), 80)
                                            : "(missing)");
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
                   json_get(r, "value") ? obs_preview(c->a, json_get(r, "value"), 40)
                                        : "(missing)");
        if (json_get(r, "written_by")) {
            buf_puts(&brief, " ← ");
            short_prov(c, &brief, json_get(r, "written_by"), 3);
        }
    }
    /* The condition last: the reads and their origin matter most on a
     * narrow screen; the timeline shows the condition too. */
    if (by_case) buf_printf(&brief, " [if %s]", cond);
    set_s(c, sw, "brief", brief.data);
    obs_attention(c, "switch", v->step, "%s", brief.data ? brief.data : "");
    buf_cleanup(&brief);
    buf_cleanup(&cause);
}

