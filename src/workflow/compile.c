/*
 * compile.c — a loaded workflow document into a struct workflow: the step
 * table, resolved control flow, compiled templates and conditions, and the
 * version hash.  See docs/workflows.md for the format this enforces.
 *
 * Passes (each reports every problem it finds, then we stop before the next
 * pass if there were any, so later passes can trust earlier ones):
 *   1. top level: name, identity, input, state declarations;
 *   2. steps, shape: ids unique, exactly one kind per step (the step-kind
 *      table below), only the fields that kind allows, targets named;
 *   3. control flow: every next/goto/default names a step; predecessors are
 *      computed to decide where ${result} is defined;
 *   4. kind-specific compile (one function per row of the table): durations,
 *      retry, templates, conditions, state keys written.
 *
 * ${result} rule: result is the output of the step that ran just before.  It
 * may be used in a step only when every way into that step comes from a
 * step that yields a result (tool, agent, approval) — so never in the first
 * step, and never after a set or a switch.  In a step's compensate args it is
 * that step's own result.
 *
 * Invariants: the compiled workflow owns a deep copy of the document in its
 * arena; every pointer in it points into that arena.  Nothing is returned
 * unless no problem was found.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cc {
    struct workflow *wf;
    struct arena *a;
    const char *file;
    struct workflow_diags *diags;
    struct keel_err first;
    int nerr;
    struct strmap ids;    /* step id -> step index + 1 */
    struct strmap state;  /* state key -> struct workflow_state_key* */
    const char **targets; /* per step: explicit next/goto id, or NULL */
    const struct json_value **target_vals;
    bool *has_start_pred;
    int *npred;
    int *npred_result;
};

static int problem(struct cc *c, const struct json_value *v, const char *path, int code,
                   const char *fmt, ...) KEEL_PRINTF(5, 6);
static int problem(struct cc *c, const struct json_value *v, const char *path, int code,
                   const char *fmt, ...)
{
    struct keel_err e;
    keel_err_clear(&e);
    e.code = code;
    snprintf(e.file, sizeof e.file, "%s", c->file ? c->file : "");
    e.line = v ? v->line : 0;
    e.column = v ? v->column : 0;
    snprintf(e.path, sizeof e.path, "%s", path ? path : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.msg, sizeof e.msg, fmt, ap);
    va_end(ap);
    if (c->nerr++ == 0) c->first = e;
    if (c->diags) workflow_diags_add(c->diags, &e);
    return code;
}

/* Reports an error from a helper that filled a struct keel_err. */
static int problem_err(struct cc *c, const struct json_value *v, const char *path,
                       const struct keel_err *e)
{
    struct keel_err x = *e;
    if (!x.file[0]) snprintf(x.file, sizeof x.file, "%s", c->file ? c->file : "");
    if (!x.line && v) {
        x.line = v->line;
        x.column = v->column;
    }
    if (!x.path[0]) snprintf(x.path, sizeof x.path, "%s", path ? path : "");
    if (!x.code) x.code = KEEL_EINVAL;
    if (c->nerr++ == 0) c->first = x;
    if (c->diags) workflow_diags_add(c->diags, &x);
    return x.code;
}

/* ---- small readers --------------------------------------------------------- */

static bool valid_name(const char *s, size_t len, bool slash_ok)
{
    if (len == 0 || len > 128) return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '-' || ch == '.' || (slash_ok && ch == '/');
        if (!ok) return false;
    }
    return true;
}

static const char *get_string(struct cc *c, const struct json_value *v, const char *path,
                              const char *what)
{
    if (!json_is(v, JSON_STRING)) {
        problem(c, v, path, KEEL_EINVAL, "%s must be a string, not %s", what, json_type_name(v));
        return NULL;
    }
    if (strlen(v->u.s.str) != v->len) {
        problem(c, v, path, KEEL_EINVAL, "%s contains a NUL character", what);
        return NULL;
    }
    return v->u.s.str;
}

/* Durations are strings with units ("30s", "72h"); capped at one year. */
static int get_duration(struct cc *c, const struct json_value *v, const char *path,
                        int64_t *out)
{
    if (!json_is(v, JSON_STRING))
        return problem(c, v, path, KEEL_EINVAL,
                       "duration must be a string with a unit, like \"30s\", \"5m\" or \"72h\"");
    struct keel_err e;
    keel_err_clear(&e);
    int64_t ms;
    if (keel_parse_duration(v->u.s.str, &ms, &e)) return problem_err(c, v, path, &e);
    if (ms <= 0) return problem(c, v, path, KEEL_EINVAL, "duration must be positive");
    if (ms > 366LL * 86400000)
        return problem(c, v, path, KEEL_EINVAL, "duration \"%s\" is longer than a year",
                       v->u.s.str);
    *out = ms;
    return 0;
}

static int budget_fail(const struct json_value *v, const char *file, const char *path,
                       struct keel_err *err, const char *msg)
{
    keel_fail(err, KEEL_EINVAL, "%s", msg);
    snprintf(err->file, sizeof err->file, "%s", file ? file : "");
    err->line = v ? v->line : 0;
    err->column = v ? v->column : 0;
    snprintf(err->path, sizeof err->path, "%s", path);
    return KEEL_EINVAL;
}

int workflow_budget_parse(const struct json_value *v, const char *file, const char *path,
                          struct workflow_budget *out, struct keel_err *err)
{
    char p[KEEL_ERR_PATH_MAX];
    struct workflow_budget b = {0};
    if (!json_is(v, JSON_OBJECT))
        return budget_fail(v, file, path, err,
                           "budget must be a mapping {tokens: N, usd: X, approvers: group}");
    for (uint32_t i = 0; i < v->len; i++) {
        const struct json_member *m = &v->u.members[i];
        snprintf(p, sizeof p, "%s/%s", path, m->key);
        if (!strcmp(m->key, "tokens")) {
            if (!json_is_integer(m->value) || !(m->value->nflags & JSON_NUM_I64) ||
                m->value->u.n.i < 1)
                return budget_fail(m->value, file, p, err,
                                   "budget tokens must be a positive integer (input + output "
                                   "tokens of every model call)");
            b.tokens = m->value->u.n.i;
        } else if (!strcmp(m->key, "usd")) {
            if (!json_is(m->value, JSON_NUMBER) || !(m->value->u.n.d > 0) ||
                m->value->u.n.d > 1e9)
                return budget_fail(m->value, file, p, err,
                                   "budget usd must be a positive number of US dollars");
            b.usd = m->value->u.n.d;
        } else if (!strcmp(m->key, "approvers")) {
            if (!json_is(m->value, JSON_STRING) || !m->value->len)
                return budget_fail(m->value, file, p, err,
                                   "budget approvers must name a group of humans who may "
                                   "extend the budget");
            b.approvers = m->value->u.s.str;
        } else {
            char msg[KEEL_ERR_MSG_MAX];
            snprintf(msg, sizeof msg, "unknown field '%s' in a budget (allowed: tokens, usd, "
                     "approvers)", m->key);
            return budget_fail(m->value, file, p, err, msg);
        }
    }
    if (!b.tokens && !(b.usd > 0))
        return budget_fail(v, file, path, err, "a budget needs tokens:, usd: or both");
    *out = b;
    return 0;
}

/* Checks that obj has only the listed keys. */
static void check_fields(struct cc *c, const struct json_value *obj, const char *path,
                         const char *const *allowed, const char *what)
{
    for (uint32_t i = 0; i < obj->len; i++) {
        const char *k = obj->u.members[i].key;
        bool ok = false;
        for (size_t j = 0; allowed[j]; j++)
            if (!strcmp(allowed[j], k)) ok = true;
        if (ok) continue;
        char list[512] = "";
        size_t n = 0;
        for (size_t j = 0; allowed[j] && n < sizeof list; j++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", j ? ", " : "", allowed[j]);
        char p[KEEL_ERR_PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", path, k);
        problem(c, obj->u.members[i].value, p, KEEL_EINVAL,
                "unknown field '%s' in %s; expected one of: %s", k, what, list);
    }
}

/* ---- state keys referenced by templates -------------------------------------- */

struct refcheck {
    struct cc *c;
    const char *path;
};

static int check_ref(const struct workflow_ref *r, void *ctx)
{
    struct refcheck *rc = ctx;
    if (r->root != WORKFLOW_VAR_STATE || !r->first) return 0;
    if (!strmap_get(&rc->c->state, r->first, r->first_len))
        problem(rc->c, r->where, rc->path, KEEL_EINVAL,
                "'${%s}' reads state key '%.*s', which is not declared; add it under state: "
                "with a reducer",
                r->text, (int)r->first_len, r->first);
    return 0;
}

static struct workflow_template *template(struct cc *c, const struct workflow_step *s,
                                          const struct json_value *v, const char *path,
                                          bool own_result)
{
    unsigned allowed = WORKFLOW_VAR_INPUT | WORKFLOW_VAR_STATE;
    if (own_result || (s && s->result_available)) allowed |= WORKFLOW_VAR_RESULT;
    struct workflow_template *t = NULL;
    struct keel_err e;
    keel_err_clear(&e);
    if (workflow_template_compile(c->a, v, allowed, c->file, path, &t, &e)) {
        problem_err(c, v, path, &e);
        return NULL;
    }
    struct refcheck rc = {c, path};
    workflow_template_each_ref(t, check_ref, &rc);
    return t;
}

static int check_state_key(struct cc *c, const struct json_value *v, const char *path,
                           const char *key, const char *what)
{
    if (strmap_get(&c->state, key, strlen(key))) return 0;
    return problem(c, v, path, KEEL_EINVAL,
                   "%s writes state key '%s', which is not declared; add it under state: with "
                   "a reducer (replace, append, merge or add)",
                   what, key);
}

static int parse_call(struct cc *c, const struct json_value *v, const char *path,
                      struct workflow_call *call)
{
    const char *name = get_string(c, v, path, "tool");
    if (!name) return KEEL_EINVAL;
    const char *slash = strchr(name, '/');
    if (!slash || slash == name || !slash[1] || strchr(slash + 1, '/') ||
        !valid_name(name, (size_t)(slash - name), false) ||
        !valid_name(slash + 1, strlen(slash + 1), false))
        return problem(c, v, path, KEEL_EINVAL,
                       "tool '%s' must be written server/tool, e.g. helpdesk/get_ticket", name);
    call->server = arena_strndup(c->a, name, (size_t)(slash - name));
    call->tool = slash + 1;
    return 0;
}

/* ---- reducer types: what can be checked before a run ------------------------------ */

/* What each reducer needs of the state value it updates (old) and of a
 * value written into it; -1 is "anything". */
static const struct {
    const char *wants;
    int old_type, value_type;
} reducer_types[] = {
    [WORKFLOW_REDUCER_REPLACE] = {"any value", -1, -1},
    [WORKFLOW_REDUCER_APPEND] = {"an array", JSON_ARRAY, -1},
    [WORKFLOW_REDUCER_MERGE] = {"an object", JSON_OBJECT, JSON_OBJECT},
    [WORKFLOW_REDUCER_ADD] = {"a number", JSON_NUMBER, JSON_NUMBER},
};

static const char *reducer_wants(enum workflow_reducer r)
{
    return reducer_types[r].wants;
}

static bool reducer_accepts_old(enum workflow_reducer r, const struct json_value *v)
{
    return reducer_types[r].old_type < 0 || v->type == reducer_types[r].old_type;
}

static bool reducer_accepts_value(enum workflow_reducer r, const struct json_value *v)
{
    return reducer_types[r].value_type < 0 || v->type == reducer_types[r].value_type;
}

/* ---- step kinds ------------------------------------------------------------ */

#define SP(...) (snprintf(p, sizeof p, __VA_ARGS__), p)

static int compile_tool(struct cc *c, struct workflow_step *s, const struct json_value *o,
                        const char *sp)
{
    char p[KEEL_ERR_PATH_MAX];
    parse_call(c, json_get(o, "tool"), SP("%s/tool", sp), &s->call);
    const struct json_value *args = json_get(o, "args");
    if (args) {
        if (!json_is(args, JSON_OBJECT))
            problem(c, args, SP("%s/args", sp), KEEL_EINVAL,
                    "args must be a mapping of argument names to values");
        else
            s->call.args = template(c, s, args, SP("%s/args", sp), false);
    }
    const struct json_value *comp = json_get(o, "compensate");
    if (comp) {
        if (!json_is(comp, JSON_OBJECT)) {
            problem(c, comp, SP("%s/compensate", sp), KEEL_EINVAL,
                    "compensate must be a mapping {tool: server/tool, args: {...}}");
        } else {
            static const char *const fields[] = {"tool", "args", NULL};
            char cp[KEEL_ERR_PATH_MAX];
            snprintf(cp, sizeof cp, "%s/compensate", sp);
            check_fields(c, comp, cp, fields, "compensate");
            s->compensate = arena_zalloc(c->a, sizeof *s->compensate);
            const struct json_value *t = json_get(comp, "tool");
            if (!t)
                problem(c, comp, cp, KEEL_EINVAL, "compensate needs a tool: server/tool");
            else
                parse_call(c, t, SP("%s/tool", cp), s->compensate);
            const struct json_value *ca = json_get(comp, "args");
            if (ca) {
                if (!json_is(ca, JSON_OBJECT))
                    problem(c, ca, SP("%s/args", cp), KEEL_EINVAL, "args must be a mapping");
                else
                    s->compensate->args = template(c, s, ca, SP("%s/args", cp), true);
            }
        }
    }
    return 0;
}

static int compile_approval(struct cc *c, struct workflow_step *s, const struct json_value *o,
                            const char *sp)
{
    static const char *const fields[] = {"group", "message", "timeout", "on_timeout", NULL};
    static const struct {
        const char *name;
        enum workflow_on_timeout v;
    } outcomes[] = {{"deny", WORKFLOW_ON_TIMEOUT_DENY},
                    {"approve", WORKFLOW_ON_TIMEOUT_APPROVE},
                    {"fail", WORKFLOW_ON_TIMEOUT_FAIL}};
    char p[KEEL_ERR_PATH_MAX], ap[KEEL_ERR_PATH_MAX];
    const struct json_value *a = json_get(o, "approval");
    snprintf(ap, sizeof ap, "%s/approval", sp);
    if (!json_is(a, JSON_OBJECT))
        return problem(c, a, ap, KEEL_EINVAL,
                       "approval must be a mapping {group, message, timeout, on_timeout}");
    check_fields(c, a, ap, fields, "approval");
    const struct json_value *g = json_get(a, "group");
    if (!g) {
        problem(c, a, ap, KEEL_EINVAL, "approval needs a group: the approvers who may decide");
    } else if ((s->approval.group = get_string(c, g, SP("%s/group", ap), "group")) &&
               !valid_name(g->u.s.str, g->len, true)) {
        problem(c, g, p, KEEL_EINVAL, "group '%s' must be letters, digits, '.', '_', '-', '/'",
                g->u.s.str);
    }
    const struct json_value *m = json_get(a, "message");
    if (m) {
        if (!json_is(m, JSON_STRING))
            problem(c, m, SP("%s/message", ap), KEEL_EINVAL, "message must be a string");
        else
            s->approval.message = template(c, s, m, SP("%s/message", ap), false);
    }
    const struct json_value *t = json_get(a, "timeout");
    if (t) get_duration(c, t, SP("%s/timeout", ap), &s->approval.timeout_ms);
    const struct json_value *ot = json_get(a, "on_timeout");
    if (ot && get_string(c, ot, SP("%s/on_timeout", ap), "on_timeout")) {
        bool found = false;
        for (size_t i = 0; i < KEEL_ARRAY_LEN(outcomes); i++)
            if (!strcmp(outcomes[i].name, ot->u.s.str)) {
                s->approval.on_timeout = outcomes[i].v;
                found = true;
            }
        if (!found)
            problem(c, ot, p, KEEL_EINVAL, "on_timeout '%s' must be deny, approve or fail",
                    ot->u.s.str);
        if (!t) problem(c, ot, p, KEEL_EINVAL, "on_timeout needs a timeout: in the approval");
    }
    return 0;
}

/* Scans a Cedar expression for identifiers that start a path (not after a
 * '.' and outside string literals), and checks the roots we can judge
 * without the Cedar parser: ${result} availability and declared state keys. */
static void scan_condition(struct cc *c, const struct workflow_step *s, const struct json_value *v,
                           const char *path)
{
    const char *t = v->u.s.str;
    size_t n = v->len;
    /* Point at the identifier itself when the text is on one line. */
    bool one_line = !memchr(t, '\n', n);
    int base = v->column + ((v->nflags & WORKFLOW_STR_QUOTED) ? 1 : 0);
    struct json_value at = *v;
    for (size_t i = 0; i < n;) {
        char ch = t[i];
        if (ch == '"') {
            for (i++; i < n && t[i] != '"'; i++)
                if (t[i] == '\\') i++;
            i++;
            continue;
        }
        bool start = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
        if (!start) {
            i++;
            continue;
        }
        size_t b = i;
        while (i < n && ((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= 'A' && t[i] <= 'Z') ||
                         (t[i] >= '0' && t[i] <= '9') || t[i] == '_'))
            i++;
        size_t k = b;
        while (k > 0 && (t[k - 1] == ' ' || t[k - 1] == '\t')) k--;
        bool after_dot = k > 0 && t[k - 1] == '.';
        if (after_dot) continue;
        size_t len = i - b;
        if (one_line) at.column = base + (int)b;
        if (len == 6 && !memcmp(t + b, "result", 6) && !s->result_available)
            problem(c, &at, path, KEEL_EINVAL,
                    "condition uses result, but no step result is available here (result is "
                    "the output of the step that ran just before; it is defined only when "
                    "every way into this step comes from a tool, agent or approval step)");
        if (len == 5 && !memcmp(t + b, "state", 5) && i < n && t[i] == '.') {
            size_t kb = i + 1, ke = kb;
            while (ke < n && ((t[ke] >= 'a' && t[ke] <= 'z') || (t[ke] >= 'A' && t[ke] <= 'Z') ||
                              (t[ke] >= '0' && t[ke] <= '9') || t[ke] == '_'))
                ke++;
            if (ke > kb && !strmap_get(&c->state, t + kb, ke - kb))
                problem(c, &at, path, KEEL_EINVAL,
                        "condition reads state key '%.*s', which is not declared; add it under "
                        "state: with a reducer",
                        (int)(ke - kb), t + kb);
        }
    }
}

static int compile_switch(struct cc *c, struct workflow_step *s, const struct json_value *o,
                          const char *sp)
{
    static const char *const fields[] = {"if", "goto", NULL};
    char p[KEEL_ERR_PATH_MAX];
    const struct json_value *cases = json_get(o, "switch");
    for (size_t i = 0; i < s->sw.ncases; i++) {
        struct workflow_switch_case *k = &s->sw.cases[i];
        const struct json_value *cv = cases->u.items[i];
        char cp[KEEL_ERR_PATH_MAX];
        snprintf(cp, sizeof cp, "%s/switch/%zu", sp, i);
        if (!json_is(cv, JSON_OBJECT)) continue; /* reported in pass 2 */
        check_fields(c, cv, cp, fields, "a switch case");
        const struct json_value *cond = json_get(cv, "if");
        if (!cond) {
            problem(c, cv, cp, KEEL_EINVAL, "switch case needs if: <Cedar condition>");
            continue;
        }
        if (json_is_bool(cond)) {
            k->condition = cond->type == JSON_TRUE ? "true" : "false";
        } else if (!(k->condition = get_string(c, cond, SP("%s/if", cp), "if"))) {
            continue;
        } else if (!*k->condition) {
            problem(c, cond, p, KEEL_EINVAL, "empty condition");
            continue;
        }
        k->line = cond->line;
        /* Quoted YAML scalars start one column before their text. */
        k->column = cond->column + ((cond->type == JSON_STRING && (cond->nflags & WORKFLOW_STR_QUOTED)) ? 1 : 0);
        if (cond->type == JSON_STRING) scan_condition(c, s, cond, SP("%s/if", cp));
        struct keel_err e;
        keel_err_clear(&e);
        if (workflow_condition_compile(k, c->file, &e)) problem_err(c, cond, SP("%s/if", cp), &e);
    }
    return 0;
}

static int compile_set(struct cc *c, struct workflow_step *s, const struct json_value *o,
                       const char *sp)
{
    char p[KEEL_ERR_PATH_MAX];
    const struct json_value *set = json_get(o, "set");
    if (!json_is(set, JSON_OBJECT) || set->len == 0)
        return problem(c, set, SP("%s/set", sp), KEEL_EINVAL,
                       "set must be a non-empty mapping of state keys to values");
    s->set.nentries = set->len;
    s->set.entries = arena_zalloc(c->a, set->len * sizeof *s->set.entries);
    for (uint32_t i = 0; i < set->len; i++) {
        const struct json_member *m = &set->u.members[i];
        SP("%s/set/%s", sp, m->key);
        s->set.entries[i].key = m->key;
        if (check_state_key(c, m->value, p, m->key, "set")) continue;
        s->set.entries[i].value = template(c, s, m->value, p, false);
        const struct workflow_state_key *k = strmap_get(&c->state, m->key, m->key_len);
        /* Without references the rendered value has the source's type. */
        if (s->set.entries[i].value && !workflow_template_vars(s->set.entries[i].value) &&
            !reducer_accepts_value(k->reducer, m->value))
            problem(c, m->value, p, KEEL_EINVAL,
                    "set writes a %s to '%s', but its reducer %s needs %s", json_type_name(m->value),
                    m->key, workflow_reducer_name(k->reducer), reducer_wants(k->reducer));
    }
    return 0;
}

static int compile_end(struct cc *c, struct workflow_step *s, const struct json_value *o,
                       const char *sp)
{
    static const char *const fields[] = {"message", "output", NULL};
    const char *kw = workflow_step_kind_name(s->kind);
    char p[KEEL_ERR_PATH_MAX], kp[KEEL_ERR_PATH_MAX];
    const struct json_value *v = json_get(o, kw);
    snprintf(kp, sizeof kp, "%s/%s", sp, kw);
    const struct json_value *msg = NULL, *out = NULL;
    if (json_is(v, JSON_STRING)) {
        msg = v;
    } else if (json_is(v, JSON_OBJECT)) {
        check_fields(c, v, kp, fields, kw);
        msg = json_get(v, "message");
        out = json_get(v, "output");
    } else if (!json_is(v, JSON_NULL) && !json_is(v, JSON_TRUE)) {
        return problem(c, v, kp, KEEL_EINVAL,
                       "%s must be true, a message string, or a mapping {message, output}", kw);
    }
    if (msg) {
        if (!json_is(msg, JSON_STRING))
            problem(c, msg, SP("%s/message", kp), KEEL_EINVAL, "message must be a string");
        else
            s->end.message = template(c, s, msg, msg == v ? kp : SP("%s/message", kp), false);
    }
    if (out) s->end.output = template(c, s, out, SP("%s/output", kp), false);
    return 0;
}

static void string_list(struct cc *c, const struct json_value *v, const char *path,
                        const char ***out, size_t *n, bool tool_names)
{
    char p[KEEL_ERR_PATH_MAX];
    if (!json_is(v, JSON_ARRAY)) {
        problem(c, v, path, KEEL_EINVAL, "must be a list of strings");
        return;
    }
    *out = arena_zalloc(c->a, (v->len ? v->len : 1) * sizeof **out);
    *n = v->len;
    for (uint32_t i = 0; i < v->len; i++) {
        SP("%s/%u", path, i);
        const char *s = get_string(c, v->u.items[i], p, "item");
        if (s && tool_names) {
            struct workflow_call call;
            if (parse_call(c, v->u.items[i], p, &call)) s = NULL;
        }
        (*out)[i] = s;
    }
}

static int compile_agent(struct cc *c, struct workflow_step *s, const struct json_value *o,
                         const char *sp)
{
    char p[KEEL_ERR_PATH_MAX];
    const struct json_value *a = json_get(o, "agent");
    if ((s->agent.agent = get_string(c, a, SP("%s/agent", sp), "agent")) &&
        (!strchr(a->u.s.str, '/') || !valid_name(a->u.s.str, a->len, true)))
        problem(c, a, p, KEEL_EINVAL, "agent '%s' must be an identity written team/name",
                a->u.s.str);
    const struct json_value *pr = json_get(o, "prompt");
    if (!pr)
        problem(c, o, sp, KEEL_EINVAL, "agent step needs a prompt:");
    else if (!json_is(pr, JSON_STRING))
        problem(c, pr, SP("%s/prompt", sp), KEEL_EINVAL, "prompt must be a string");
    else
        s->agent.prompt = template(c, s, pr, SP("%s/prompt", sp), false);
    const struct json_value *tools = json_get(o, "tools");
    if (tools) string_list(c, tools, SP("%s/tools", sp), &s->agent.tools, &s->agent.ntools, true);
    const struct json_value *ho = json_get(o, "handoff");
    if (ho) {
        string_list(c, ho, SP("%s/handoff", sp), &s->agent.handoff, &s->agent.nhandoff, false);
        for (size_t i = 0; i < s->agent.nhandoff; i++) {
            const char *h = s->agent.handoff[i];
            if (h && (!strchr(h, '/') || !valid_name(h, strlen(h), true)))
                problem(c, ho->u.items[i], SP("%s/handoff/%zu", sp, i), KEEL_EINVAL,
                        "handoff target '%s' must be an agent identity written team/name", h);
            else if (h && s->agent.agent && !strcmp(h, s->agent.agent))
                problem(c, ho->u.items[i], SP("%s/handoff/%zu", sp, i), KEEL_EINVAL,
                        "agent '%s' cannot hand off to itself", h);
        }
    }
    const struct json_value *v;
    if ((v = json_get(o, "instructions")))
        s->agent.instructions = get_string(c, v, SP("%s/instructions", sp), "instructions");
    if ((v = json_get(o, "model")))
        s->agent.model = get_string(c, v, SP("%s/model", sp), "model");
    if ((v = json_get(o, "tag"))) s->agent.tag = get_string(c, v, SP("%s/tag", sp), "tag");
    const struct json_value *out = json_get(o, "output");
    if (out) {
        if (!json_is(out, JSON_OBJECT) && !json_is_bool(out))
            problem(c, out, SP("%s/output", sp), KEEL_EINVAL,
                    "output must be a JSON Schema (a mapping)");
        else
            workflow_schema_compile_at(out, c->file, SP("%s/output", sp),
                                       &s->agent.output_schema, c->diags, &c->first, &c->nerr);
        s->agent.output = out;
    }
    s->agent.output_retries = 2;
    if ((v = json_get(o, "output_retries"))) {
        if (!json_is_integer(v) || !(v->nflags & JSON_NUM_I64) || v->u.n.i < 0 || v->u.n.i > 20)
            problem(c, v, SP("%s/output_retries", sp), KEEL_EINVAL,
                    "output_retries must be an integer from 0 to 20");
        else
            s->agent.output_retries = (int)v->u.n.i;
    }
    s->agent.max_turns = 10;
    const struct json_value *mt = json_get(o, "max_turns");
    if (mt) {
        if (!json_is_integer(mt) || !(mt->nflags & JSON_NUM_I64) || mt->u.n.i < 1 ||
            mt->u.n.i > 1000)
            problem(c, mt, SP("%s/max_turns", sp), KEEL_EINVAL,
                    "max_turns must be an integer from 1 to 1000");
        else
            s->agent.max_turns = (int)mt->u.n.i;
    }
    return 0;
}

#define COMMON "id", "description"
static const char *const tool_fields[] = {COMMON, "tool", "args", "save", "next", "goto",
                                          "retry", "timeout", "compensate", NULL};
static const char *const approval_fields[] = {COMMON, "approval", "save", "next", "goto", NULL};
static const char *const switch_fields[] = {COMMON, "switch", "default", NULL};
static const char *const set_fields[] = {COMMON, "set", "next", "goto", NULL};
static const char *const succeed_fields[] = {COMMON, "succeed", NULL};
static const char *const fail_fields[] = {COMMON, "fail", NULL};
static const char *const agent_fields[] = {
    COMMON,   "agent",   "prompt",    "tools", "output",         "save",  "next",
    "goto",   "retry",   "timeout",   "max_turns", "instructions", "model", "tag",
    "handoff", "output_retries", NULL};

/* The step-kind table: adding a kind is adding a row (and an enum value). */
static const struct step_kind {
    const char *name; /* the key that makes a step this kind */
    enum workflow_step_kind kind;
    const char *const *fields;
    int (*compile)(struct cc *c, struct workflow_step *s, const struct json_value *o,
                   const char *path);
    bool yields_result; /* ${result} is defined after it  */
    bool flows_on;      /* continues to next (not switch/succeed/fail) */
} step_kinds[] = {
    {"tool", WORKFLOW_STEP_TOOL, tool_fields, compile_tool, true, true},
    {"approval", WORKFLOW_STEP_APPROVAL, approval_fields, compile_approval, true, true},
    {"switch", WORKFLOW_STEP_SWITCH, switch_fields, compile_switch, false, false},
    {"set", WORKFLOW_STEP_SET, set_fields, compile_set, false, true},
    {"succeed", WORKFLOW_STEP_SUCCEED, succeed_fields, compile_end, false, false},
    {"fail", WORKFLOW_STEP_FAIL, fail_fields, compile_end, false, false},
    {"agent", WORKFLOW_STEP_AGENT, agent_fields, compile_agent, true, true},
};

static const struct step_kind *kind_row(enum workflow_step_kind k)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(step_kinds); i++)
        if (step_kinds[i].kind == k) return &step_kinds[i];
    return NULL;
}

/* Returns a static string. */
const char *workflow_step_kind_name(enum workflow_step_kind k)
{
    const struct step_kind *r = kind_row(k);
    return r ? r->name : "?";
}

static bool is_field_of_any_kind(const char *key)
{
    for (size_t i = 0; i < KEEL_ARRAY_LEN(step_kinds); i++)
        for (size_t j = 0; step_kinds[i].fields[j]; j++)
            if (!strcmp(step_kinds[i].fields[j], key)) return true;
    return false;
}

/* ---- passes ------------------------------------------------------------------ */

static void compile_top(struct cc *c, const struct json_value *doc)
{
    static const char *const fields[] = {"name",  "description", "input", "identity",
                                         "state", "steps",       "budget", NULL};
    struct workflow *wf = c->wf;
    check_fields(c, doc, "", fields, "a workflow");
    const struct json_value *name = json_get(doc, "name");
    if (!name) {
        problem(c, doc, "", KEEL_EINVAL, "the workflow needs a name: (e.g. name: support-triage)");
    } else if ((wf->name = get_string(c, name, "/name", "name")) &&
               !valid_name(name->u.s.str, name->len, false)) {
        problem(c, name, "/name", KEEL_EINVAL,
                "name '%s' must be 1-128 letters, digits, '.', '_' or '-'", name->u.s.str);
    }
    const struct json_value *d = json_get(doc, "description");
    if (d) wf->description = get_string(c, d, "/description", "description");
    const struct json_value *id = json_get(doc, "identity");
    if (id && (wf->identity = get_string(c, id, "/identity", "identity")) &&
        (!strchr(id->u.s.str, '/') || !valid_name(id->u.s.str, id->len, true)))
        problem(c, id, "/identity", KEEL_EINVAL,
                "identity '%s' must be an agent identity written team/name (declared under "
                "agents: in keel.yaml)",
                id->u.s.str);
    const struct json_value *bu = json_get(doc, "budget");
    if (bu) {
        struct keel_err e;
        keel_err_clear(&e);
        if (workflow_budget_parse(bu, c->file, "/budget", &wf->budget, &e))
            problem_err(c, bu, "/budget", &e);
    }
    const struct json_value *in = json_get(doc, "input");
    if (in) {
        if (!json_is(in, JSON_OBJECT) && !json_is_bool(in))
            problem(c, in, "/input", KEEL_EINVAL,
                    "input must be a JSON Schema (a mapping like {type: object, properties: ...})");
        else
            workflow_schema_compile_at(in, c->file, "/input", &wf->input, c->diags, &c->first,
                                       &c->nerr);
        wf->input_schema = in;
    }
    const struct json_value *st = json_get(doc, "state");
    if (st && !json_is(st, JSON_OBJECT)) {
        problem(c, st, "/state", KEEL_EINVAL,
                "state must be a mapping of keys to {reducer: replace|append|merge|add}");
    } else if (st) {
        wf->nstate = st->len;
        wf->state = arena_zalloc(c->a, (st->len ? st->len : 1) * sizeof *wf->state);
        for (uint32_t i = 0; i < st->len; i++) {
            const struct json_member *m = &st->u.members[i];
            struct workflow_state_key *k = &wf->state[i];
            char p[KEEL_ERR_PATH_MAX];
            snprintf(p, sizeof p, "/state/%s", m->key);
            k->name = m->key;
            if (!valid_name(m->key, m->key_len, false) || strchr(m->key, '.'))
                problem(c, m->value, p, KEEL_EINVAL,
                        "state key '%s' must be letters, digits, '_' or '-'", m->key);
            strmap_put(&c->state, m->key, m->key_len, k);
            const struct json_value *r = m->value;
            if (json_is(r, JSON_OBJECT)) {
                static const char *const kf[] = {"reducer", "initial", "description", "schema",
                                                 NULL};
                check_fields(c, r, p, kf, "a state key");
                k->initial = json_get(r, "initial");
                const struct json_value *ks = json_get(r, "schema");
                if (ks) {
                    snprintf(p, sizeof p, "/state/%s/schema", m->key);
                    if (!json_is(ks, JSON_OBJECT) && !json_is_bool(ks))
                        problem(c, ks, p, KEEL_EINVAL,
                                "schema of state key '%s' must be a JSON Schema (a mapping)",
                                m->key);
                    else if (workflow_schema_compile_at(ks, c->file, p, &k->schema, c->diags,
                                                        &c->first, &c->nerr) == 0 &&
                             k->initial) {
                        struct keel_err ve;
                        keel_err_clear(&ve);
                        if (workflow_state_check(k, k->initial, &ve)) {
                            snprintf(p, sizeof p, "/state/%s/initial", m->key);
                            problem(c, k->initial, p, KEEL_ESCHEMA, "%s", ve.msg);
                        }
                    }
                    k->schema_doc = ks;
                }
                snprintf(p, sizeof p, "/state/%s", m->key);
                r = json_get(r, "reducer");
                snprintf(p, sizeof p, "/state/%s/reducer", m->key);
                if (!r) {
                    problem(c, m->value, p, KEEL_EINVAL,
                            "state key '%s' needs a reducer: replace, append, merge or add",
                            m->key);
                    continue;
                }
            }
            if (!json_is(r, JSON_STRING)) {
                problem(c, r, p, KEEL_EINVAL,
                        "state key '%s': reducer must be replace, append, merge or add", m->key);
                continue;
            }
            struct keel_err e;
            keel_err_clear(&e);
            if (workflow_reducer_parse(r->u.s.str, &k->reducer, &e)) {
                problem_err(c, r, p, &e);
            } else if (k->initial && !reducer_accepts_old(k->reducer, k->initial)) {
                snprintf(p, sizeof p, "/state/%s/initial", m->key);
                problem(c, k->initial, p, KEEL_EINVAL,
                        "initial value of '%s' is a %s, but its reducer %s needs %s", m->key,
                        json_type_name(k->initial), workflow_reducer_name(k->reducer),
                        reducer_wants(k->reducer));
            }
        }
    }
}

/* Pass 2: shapes, ids, kinds; fills steps[i].id/kind/position and targets. */
static void compile_shapes(struct cc *c, const struct json_value *steps)
{
    struct workflow *wf = c->wf;
    for (uint32_t i = 0; i < steps->len; i++) {
        const struct json_value *o = steps->u.items[i];
        struct workflow_step *s = &wf->steps[i];
        char sp[KEEL_ERR_PATH_MAX], p[KEEL_ERR_PATH_MAX];
        snprintf(sp, sizeof sp, "/steps/%u", i);
        s->index = (int)i;
        s->line = o->line;
        s->column = o->column;
        s->kind = WORKFLOW_STEP_KIND_COUNT;
        s->next = WORKFLOW_END;
        s->sw.default_target = WORKFLOW_END;
        s->retry = (struct workflow_retry){1, 1000, 60000, 2.0};
        if (!json_is(o, JSON_OBJECT)) {
            problem(c, o, sp, KEEL_EINVAL, "a step must be a mapping with an id and a kind");
            continue;
        }
        const struct json_value *id = json_get(o, "id");
        if (!id) {
            problem(c, o, sp, KEEL_EINVAL, "step %u has no id:", i + 1);
        } else if ((s->id = get_string(c, id, SP("%s/id", sp), "id"))) {
            if (!valid_name(id->u.s.str, id->len, false))
                problem(c, id, p, KEEL_EINVAL, "step id '%s' must be letters, digits, '.', '_' or '-'",
                        s->id);
            uintptr_t prev = (uintptr_t)strmap_get(&c->ids, s->id, id->len);
            if (prev) {
                problem(c, id, p, KEEL_EINVAL,
                        "duplicate step id '%s' (first used by step %u at line %d); step ids "
                        "must be unique",
                        s->id, (unsigned)prev, wf->steps[prev - 1].line);
            } else {
                strmap_put(&c->ids, s->id, id->len, (void *)(uintptr_t)(i + 1));
            }
        }
        const struct step_kind *kind = NULL;
        for (size_t k = 0; k < KEEL_ARRAY_LEN(step_kinds); k++) {
            if (!json_get(o, step_kinds[k].name)) continue;
            if (kind) {
                problem(c, json_get(o, step_kinds[k].name), SP("%s/%s", sp, step_kinds[k].name),
                        KEEL_EINVAL,
                        "step '%s' has both '%s' and '%s'; a step does exactly one thing",
                        s->id ? s->id : "?", kind->name, step_kinds[k].name);
                continue;
            }
            kind = &step_kinds[k];
        }
        if (!kind) {
            const struct json_member *unknown = NULL;
            for (uint32_t m = 0; m < o->len && !unknown; m++)
                if (!is_field_of_any_kind(o->u.members[m].key)) unknown = &o->u.members[m];
            if (unknown)
                problem(c, unknown->value, SP("%s/%s", sp, unknown->key), KEEL_EINVAL,
                        "unknown step kind '%s'; a step is one of: tool, approval, switch, set, "
                        "succeed, fail, agent",
                        unknown->key);
            else
                problem(c, o, sp, KEEL_EINVAL,
                        "step '%s' has no kind; add one of: tool, approval, switch, set, "
                        "succeed, fail, agent",
                        s->id ? s->id : "?");
            continue;
        }
        s->kind = kind->kind;
        check_fields(c, o, sp, kind->fields, kind->name);
        const struct json_value *d = json_get(o, "description");
        if (d) s->description = get_string(c, d, SP("%s/description", sp), "description");
        const struct json_value *nx = json_get(o, "next"), *gt = json_get(o, "goto");
        if (nx && gt) problem(c, gt, SP("%s/goto", sp), KEEL_EINVAL, "use next: or goto:, not both");
        if (!nx) nx = gt;
        if (nx) {
            c->targets[i] = get_string(c, nx, SP("%s/%s", sp, nx == gt ? "goto" : "next"), "next");
            c->target_vals[i] = nx;
        }
        if (kind->kind == WORKFLOW_STEP_SWITCH) {
            const struct json_value *cases = json_get(o, "switch");
            if (!json_is(cases, JSON_ARRAY) || cases->len == 0) {
                problem(c, cases, SP("%s/switch", sp), KEEL_EINVAL,
                        "switch must be a non-empty list of cases {if: <condition>, goto: <step>}");
            } else {
                s->sw.ncases = cases->len;
                s->sw.cases = arena_zalloc(c->a, cases->len * sizeof *s->sw.cases);
                for (uint32_t k = 0; k < cases->len; k++) {
                    const struct json_value *cv = cases->u.items[k];
                    s->sw.cases[k].target = WORKFLOW_END;
                    SP("%s/switch/%u", sp, k);
                    if (!json_is(cv, JSON_OBJECT)) {
                        problem(c, cv, p, KEEL_EINVAL,
                                "switch case must be a mapping {if: <condition>, goto: <step>}");
                        continue;
                    }
                    const struct json_value *g = json_get(cv, "goto");
                    if (!g)
                        problem(c, cv, p, KEEL_EINVAL, "switch case needs goto: <step id>");
                    else
                        s->sw.cases[k].target_id = get_string(c, g, SP("%s/switch/%u/goto", sp, k), "goto");
                }
            }
            const struct json_value *df = json_get(o, "default");
            if (df) s->sw.default_id = get_string(c, df, SP("%s/default", sp), "default");
        }
    }
}

static int resolve_target(struct cc *c, const char *id, const struct json_value *v,
                          const char *path)
{
    uintptr_t idx = (uintptr_t)strmap_get(&c->ids, id, strlen(id));
    if (idx) return (int)idx - 1;
    char list[256] = "";
    size_t n = 0;
    for (size_t i = 0; i < c->wf->nsteps && n < sizeof list - 8; i++)
        if (c->wf->steps[i].id)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "",
                                  c->wf->steps[i].id);
    problem(c, v, path, KEEL_EINVAL, "goto target '%s' is not a step in this workflow; steps are: %s",
            id, list);
    return WORKFLOW_END;
}

static void add_edge(struct cc *c, int from, int to)
{
    if (to == WORKFLOW_END) return;
    c->npred[to]++;
    const struct step_kind *k = kind_row(c->wf->steps[from].kind);
    if (k && k->yields_result) c->npred_result[to]++;
}

/* Pass 3: targets to indices, predecessors, ${result} availability. */
static void compile_flow(struct cc *c, const struct json_value *steps)
{
    struct workflow *wf = c->wf;
    int n = (int)wf->nsteps;
    for (int i = 0; i < n; i++) {
        struct workflow_step *s = &wf->steps[i];
        const struct step_kind *k = kind_row(s->kind);
        char p[KEEL_ERR_PATH_MAX];
        int fall = i + 1 < n ? i + 1 : WORKFLOW_END;
        if (s->kind == WORKFLOW_STEP_SWITCH) {
            const struct json_value *o = steps->u.items[i];
            for (size_t j = 0; j < s->sw.ncases; j++) {
                struct workflow_switch_case *cs = &s->sw.cases[j];
                if (!cs->target_id) continue;
                snprintf(p, sizeof p, "/steps/%d/switch/%zu/goto", i, j);
                cs->target = resolve_target(c, cs->target_id, json_get(json_get(o, "switch")->u.items[j], "goto"), p);
                add_edge(c, i, cs->target);
            }
            s->sw.default_target = fall;
            if (s->sw.default_id) {
                snprintf(p, sizeof p, "/steps/%d/default", i);
                s->sw.default_target = resolve_target(c, s->sw.default_id, json_get(o, "default"), p);
            }
            add_edge(c, i, s->sw.default_target);
            continue;
        }
        if (!k || !k->flows_on) continue;
        s->next = fall;
        if (c->targets[i]) {
            snprintf(p, sizeof p, "/steps/%d/%s", i, json_get(steps->u.items[i], "next") ? "next" : "goto");
            s->next = resolve_target(c, c->targets[i], c->target_vals[i], p);
        }
        add_edge(c, i, s->next);
    }
    for (int i = 0; i < n; i++) {
        bool start = i == 0;
        wf->steps[i].result_available =
            !start && c->npred[i] > 0 && c->npred[i] == c->npred_result[i];
    }
}

/* Pass 4: per-kind compile and shared fields. */
static void compile_steps(struct cc *c, const struct json_value *steps)
{
    struct workflow *wf = c->wf;
    bool any_tool = false;
    uint32_t first_tool = 0;
    for (uint32_t i = 0; i < steps->len; i++) {
        struct workflow_step *s = &wf->steps[i];
        const struct json_value *o = steps->u.items[i];
        const struct step_kind *k = kind_row(s->kind);
        char sp[KEEL_ERR_PATH_MAX], p[KEEL_ERR_PATH_MAX];
        snprintf(sp, sizeof sp, "/steps/%u", i);
        if (!k) continue;
        if (s->kind == WORKFLOW_STEP_TOOL && !any_tool) {
            any_tool = true;
            first_tool = i;
        }
        k->compile(c, s, o, sp);
        const struct json_value *save = json_get(o, "save");
        if (save && (s->save = get_string(c, save, SP("%s/save", sp), "save")))
            check_state_key(c, save, p, s->save, "save");
        const struct json_value *to = json_get(o, "timeout");
        if (to) get_duration(c, to, SP("%s/timeout", sp), &s->timeout_ms);
        const struct json_value *r = json_get(o, "retry");
        if (!r) continue;
        char rp[KEEL_ERR_PATH_MAX];
        snprintf(rp, sizeof rp, "%s/retry", sp);
        const struct json_value *att = r;
        if (json_is(r, JSON_OBJECT)) {
            static const char *const rf[] = {"attempts", "backoff", NULL};
            check_fields(c, r, rp, rf, "retry");
            att = json_get(r, "attempts");
            const struct json_value *b = json_get(r, "backoff");
            if (b && !json_is(b, JSON_OBJECT)) {
                problem(c, b, SP("%s/backoff", rp), KEEL_EINVAL,
                        "backoff must be a mapping {initial: 1s, max: 1m, multiplier: 2}");
            } else if (b) {
                static const char *const bf[] = {"initial", "max", "multiplier", NULL};
                char bp[KEEL_ERR_PATH_MAX];
                snprintf(bp, sizeof bp, "%s/backoff", rp);
                check_fields(c, b, bp, bf, "backoff");
                const struct json_value *x;
                if ((x = json_get(b, "initial"))) get_duration(c, x, SP("%s/initial", bp), &s->retry.initial_ms);
                if ((x = json_get(b, "max"))) get_duration(c, x, SP("%s/max", bp), &s->retry.max_ms);
                if ((x = json_get(b, "multiplier"))) {
                    if (!json_is(x, JSON_NUMBER) || x->u.n.d < 1.0 || x->u.n.d > 10.0)
                        problem(c, x, SP("%s/multiplier", bp), KEEL_EINVAL,
                                "multiplier must be a number from 1 to 10");
                    else
                        s->retry.multiplier = x->u.n.d;
                }
                if (s->retry.max_ms < s->retry.initial_ms)
                    problem(c, b, bp, KEEL_EINVAL, "backoff max is shorter than initial");
            }
        }
        if (att) {
            if (!json_is_integer(att) || !(att->nflags & JSON_NUM_I64) || att->u.n.i < 1 ||
                att->u.n.i > 100)
                problem(c, att, att == r ? rp : SP("%s/attempts", rp), KEEL_EINVAL,
                        "retry attempts must be an integer from 1 to 100 (tries in all, 1 = no "
                        "retry)");
            else
                s->retry.attempts = (int)att->u.n.i;
        }
    }
    if (any_tool && !wf->identity)
        problem(c, json_get(steps->u.items[first_tool], "tool"), "/identity", KEEL_EINVAL,
                "this workflow has tool steps but no identity:; add identity: team/name (the "
                "agent identity its tool calls act as)");
}

/* Returns a new workflow; free with workflow_free (see workflow.h). */
static int cmp_step_id(const void *a, const void *b)
{
    const struct workflow_step *x = *(const struct workflow_step *const *)a;
    const struct workflow_step *y = *(const struct workflow_step *const *)b;
    return strcmp(x->id, y->id);
}

/* Steps sorted by id, for workflow_step_find (called for every event the
 * engine folds: a linear search made a step's cost grow with the
 * workflow).  Ids are unique and present once compiled. */
static void index_steps(struct workflow *wf)
{
    const struct workflow_step **by = arena_alloc(&wf->arena, (wf->nsteps + 1) * sizeof *by);
    for (size_t i = 0; i < wf->nsteps; i++) by[i] = &wf->steps[i];
    qsort(by, wf->nsteps, sizeof *by, cmp_step_id);
    wf->steps_by_id = by;
}

int workflow_compile(const struct json_value *doc, const char *file, struct workflow **out,
                     struct workflow_diags *diags, struct keel_err *err)
{
    struct workflow *wf = calloc(1, sizeof *wf);
    if (!wf) return keel_fail(err, KEEL_ENOMEM, "out of memory");
    arena_init(&wf->arena);
    struct cc c = {.wf = wf, .a = &wf->arena, .diags = diags};
    c.file = wf->file = file ? arena_strdup(&wf->arena, file) : NULL;
    keel_err_clear(&c.first);
    strmap_init(&c.ids);
    strmap_init(&c.state);
    if (!json_is(doc, JSON_OBJECT)) {
        problem(&c, doc, "", KEEL_EINVAL,
                "a workflow file must be a mapping with name:, steps: and the rest; found %s",
                doc ? json_type_name(doc) : "nothing");
        goto done;
    }
    wf->doc = doc = json_clone(&wf->arena, doc);
    compile_top(&c, doc);
    const struct json_value *steps = json_get(doc, "steps");
    if (!steps) {
        problem(&c, doc, "/steps", KEEL_EINVAL, "the workflow needs steps: (a list of steps)");
        goto done;
    }
    if (!json_is(steps, JSON_ARRAY) || steps->len == 0) {
        problem(&c, steps, "/steps", KEEL_EINVAL, "steps must be a non-empty list of steps");
        goto done;
    }
    if (steps->len > WORKFLOW_MAX_STEPS) {
        problem(&c, steps, "/steps", KEEL_ELIMIT, "%u steps; the limit is %d", steps->len,
                WORKFLOW_MAX_STEPS);
        goto done;
    }
    wf->nsteps = steps->len;
    wf->steps = arena_zalloc(&wf->arena, steps->len * sizeof *wf->steps);
    c.targets = arena_zalloc(&wf->arena, steps->len * sizeof *c.targets);
    c.target_vals = arena_zalloc(&wf->arena, steps->len * sizeof *c.target_vals);
    c.npred = arena_zalloc(&wf->arena, steps->len * sizeof *c.npred);
    c.npred_result = arena_zalloc(&wf->arena, steps->len * sizeof *c.npred_result);
    compile_shapes(&c, steps);
    if (c.nerr) goto done;
    compile_flow(&c, steps);
    if (c.nerr) goto done;
    compile_steps(&c, steps);
    if (c.nerr) goto done;
    struct keel_err e;
    keel_err_clear(&e);
    if (json_digest(doc, wf->hash, &e)) problem_err(&c, doc, "", &e);
    if (!c.nerr && workflow_schema_check(doc, c.file, diags, &c.first)) c.nerr++;
    if (!c.nerr) index_steps(wf);
done:
    strmap_cleanup(&c.ids);
    strmap_cleanup(&c.state);
    if (c.nerr) {
        if (err) *err = c.first;
        int code = c.first.code ? c.first.code : KEEL_EINVAL;
        workflow_free(wf);
        return code;
    }
    *out = wf;
    return 0;
}

/* Returns a new workflow (see workflow.h). */
int workflow_load(const char *text, size_t len, const char *file, struct workflow **out,
                  struct workflow_diags *diags, struct keel_err *err)
{
    struct arena a;
    arena_init(&a);
    struct json_value *doc = NULL;
    struct keel_err e;
    keel_err_clear(&e);
    int rc = workflow_doc_parse(&a, text, len, file, &doc, &e);
    if (rc) {
        if (!e.file[0] && file) snprintf(e.file, sizeof e.file, "%s", file);
        if (diags) workflow_diags_add(diags, &e);
        if (err) *err = e;
    } else {
        rc = workflow_compile(doc, file, out, diags, err);
    }
    arena_cleanup(&a);
    return rc;
}

/* Returns a new workflow (see workflow.h). */
int workflow_load_file(const char *path, struct workflow **out, struct workflow_diags *diags,
                       struct keel_err *err)
{
    struct buf b;
    buf_init(&b);
    struct keel_err e;
    keel_err_clear(&e);
    int rc = keel_read_file(path, WORKFLOW_MAX_FILE, &b, &e);
    if (rc) {
        if (!e.file[0]) snprintf(e.file, sizeof e.file, "%s", path);
        if (diags) workflow_diags_add(diags, &e);
        if (err) *err = e;
    } else {
        rc = workflow_load(b.data ? b.data : "", b.len, path, out, diags, err);
    }
    buf_cleanup(&b);
    return rc;
}

/* Frees wf and everything it owns (arena, conditions, input schema); NULL is a no-op. */
void workflow_free(struct workflow *wf)
{
    if (!wf) return;
    for (size_t i = 0; wf->steps && i < wf->nsteps; i++) {
        for (size_t k = 0; k < wf->steps[i].sw.ncases; k++)
            workflow_condition_free(&wf->steps[i].sw.cases[k]);
        workflow_schema_free(wf->steps[i].agent.output_schema);
    }
    for (size_t i = 0; wf->state && i < wf->nstate; i++) workflow_schema_free(wf->state[i].schema);
    workflow_schema_free(wf->input);
    arena_cleanup(&wf->arena);
    free(wf);
}

/* Borrowed from wf. */
const struct workflow_step *workflow_step_find(const struct workflow *wf, const char *id)
{
    if (!id) return NULL;
    if (!wf->steps_by_id) { /* not compiled by workflow_compile */
        for (size_t i = 0; i < wf->nsteps; i++)
            if (wf->steps[i].id && !strcmp(wf->steps[i].id, id)) return &wf->steps[i];
        return NULL;
    }
    size_t lo = 0, hi = wf->nsteps;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(wf->steps_by_id[mid]->id, id);
        if (c == 0) return wf->steps_by_id[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Borrowed from wf. */
const struct workflow_state_key *workflow_state_find(const struct workflow *wf, const char *name)
{
    for (size_t i = 0; i < wf->nstate; i++)
        if (!strcmp(wf->state[i].name, name)) return &wf->state[i];
    return NULL;
}

/* Pure; nothing allocated. */
int64_t workflow_retry_delay_ms(const struct workflow_retry *r, int attempt)
{
    if (attempt < 2) return 0;
    double d = (double)r->initial_ms;
    for (int i = 2; i < attempt && d < (double)r->max_ms; i++) d *= r->multiplier;
    if (d > (double)r->max_ms) d = (double)r->max_ms;
    return (int64_t)d;
}

/* ---- diagnostics ---------------------------------------------------------------- */

/* d is caller-allocated; release with workflow_diags_cleanup. */
void workflow_diags_init(struct workflow_diags *d)
{
    memset(d, 0, sizeof *d);
}

/* Frees the items d owns; d may be reused after workflow_diags_init. */
void workflow_diags_cleanup(struct workflow_diags *d)
{
    if (!d) return;
    free(d->items);
    memset(d, 0, sizeof *d);
}

/* Copies e into d. */
void workflow_diags_add(struct workflow_diags *d, const struct keel_err *e)
{
    if (!d) return;
    if (d->len >= WORKFLOW_MAX_DIAGS) {
        d->truncated = true;
        return;
    }
    if (d->len == d->cap) {
        size_t ncap = d->cap ? d->cap * 2 : 8;
        struct keel_err *n = realloc(d->items, ncap * sizeof *n);
        if (!n) {
            d->truncated = true;
            return;
        }
        d->items = n;
        d->cap = ncap;
    }
    d->items[d->len++] = *e;
}
