/*
 * expr.c — Cedar expressions outside policies: the workflow engine's
 * `switch` conditions and `${...}` guards use the same evaluator as
 * authorization, over free variables (input, state, result) bound from
 * JSON.
 *
 * Invariants: a parsed expression owns one arena holding its AST; it is
 * immutable and may be evaluated concurrently from many threads (each call
 * allocates only in the caller's arena).
 */
#include "internal.h"
#include "../json/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct policy_expr {
    struct arena arena;
    struct policy_node *root;
    const char *file;
};

int policy_expr_parse(const char *text, const char *file, int line, int col,
                      struct policy_expr **out, struct keel_err *err)
{
    struct policy_expr *e = calloc(1, sizeof *e);
    if (!e) abort();
    arena_init(&e->arena);
    e->file = file ? arena_strdup(&e->arena, file) : NULL;
    int rc = policy_parse_expr(&e->arena, text, strlen(text), e->file, line, col, &e->root, err);
    if (rc < 0) {
        policy_expr_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

void policy_expr_free(struct policy_expr *e)
{
    if (!e) return;
    arena_cleanup(&e->arena);
    free(e);
}

/* Binds each member of vars (JSON null members are left out). */
static int bind(struct arena *a, const struct json_value *vars, struct policy_record *rec,
                struct keel_err *err)
{
    memset(rec, 0, sizeof *rec);
    if (!vars || json_is(vars, JSON_NULL)) return 0;
    if (!json_is(vars, JSON_OBJECT))
        return keel_fail(err, KEEL_EINVAL, "expression variables must be a JSON object");
    rec->fields = arena_alloc(a, (vars->len ? vars->len : 1) * sizeof *rec->fields);
    for (uint32_t i = 0; i < vars->len; i++) {
        const struct json_member *m = &vars->u.members[i];
        if (json_is(m->value, JSON_NULL)) continue;
        struct policy_field *f = &rec->fields[rec->len];
        f->key = m->key;
        f->key_len = m->key_len;
        if (policy_value_from_json_vars(a, m->value, &f->value, err) < 0) {
            keel_err_prefix(err, "variable `%s`", m->key);
            return KEEL_EINVAL;
        }
        rec->len++;
    }
    policy_record_sort(rec->fields, rec->len, NULL);
    return 0;
}

int policy_expr_eval_value(const struct policy_expr *e, const struct json_value *vars,
                           struct arena *a, struct policy_value *result, struct keel_err *err)
{
    struct policy_record rec;
    if (bind(a, vars, &rec, err) < 0) return KEEL_EINVAL;
    char msg[512];
    struct eval_ctx c = {.vars = &rec, .arena = a, .file = e->file, .msg = msg,
                         .msg_cap = sizeof msg};
    msg[0] = '\0';
    if (policy_eval(&c, e->root, result) < 0) {
        /* msg is "line:col: text"; split it into the position fields */
        int line = 0, col = 0, used = 0;
        if (sscanf(msg, "%d:%d: %n", &line, &col, &used) < 2) used = 0;
        return keel_fail_at(err, KEEL_EINVAL, e->file, line, col, "%s", msg + used);
    }
    return 0;
}

int policy_expr_eval(const struct policy_expr *e, const struct json_value *vars, struct arena *a,
                     struct json_value **result, struct keel_err *err)
{
    struct policy_value v;
    int rc = policy_expr_eval_value(e, vars, a, &v, err);
    if (rc < 0) return rc;
    *result = policy_value_to_json(a, &v);
    return 0;
}
