/*
 * condition.c — switch conditions: Cedar expressions (ARCHITECTURE.md, "One
 * expression language") over the run's input, state and the previous step's
 * result, parsed once at compile time by the policy part and evaluated by
 * the same interpreter that authorizes tool calls.
 *
 * Invariants: a compiled case holds its parsed expression (struct
 * policy_expr, freed by workflow_free); evaluation allocates only in the
 * caller's arena; a condition must yield a boolean — anything else is an
 * error naming the condition's position, never a silent "false".
 */
#include "internal.h"
#include "policy/policy.h"

#include <stdio.h>
#include <string.h>

/* Parses c->condition into c->expr; errors carry the file position. */
int workflow_condition_compile(struct workflow_switch_case *c, const char *file,
                               struct keel_err *err)
{
    struct policy_expr *e = NULL;
    int rc = policy_expr_parse(c->condition, file, c->line, c->column, &e, err);
    if (rc) return rc;
    c->expr = e;
    return 0;
}

/* Frees c->expr (owned by the compiled workflow). */
void workflow_condition_free(struct workflow_switch_case *c)
{
    policy_expr_free(c->expr);
    c->expr = NULL;
}

/* Allocates only in arena a; vars is borrowed. */
int workflow_condition_eval(const struct workflow_switch_case *c, const struct json_value *vars,
                            struct arena *a, bool *out, struct keel_err *err)
{
    if (!c->expr)
        return keel_fail(err, KEEL_EINTERNAL, "condition '%s' was not compiled", c->condition);
    struct json_value *r = NULL;
    int rc = policy_expr_eval(c->expr, vars, a, &r, err);
    if (rc) {
        keel_err_prefix(err, "condition '%s'", c->condition);
        return rc;
    }
    if (!json_is_bool(r))
        return keel_fail_at(err, KEEL_EINVAL, err ? err->file : NULL, c->line, c->column,
                            "condition '%s' gave a %s, not true or false", c->condition,
                            json_type_name(r));
    *out = r->type == JSON_TRUE;
    return 0;
}

/* Allocates only in arena a; vars is borrowed. */
int workflow_switch_next(const struct workflow_step *s, const struct json_value *vars,
                         struct arena *a, int *next, struct keel_err *err)
{
    if (s->kind != WORKFLOW_STEP_SWITCH)
        return keel_fail(err, KEEL_EINTERNAL, "step '%s' is not a switch", s->id);
    for (size_t i = 0; i < s->sw.ncases; i++) {
        bool hit = false;
        int rc = workflow_condition_eval(&s->sw.cases[i], vars, a, &hit, err);
        if (rc) {
            keel_err_prefix(err, "step '%s'", s->id);
            return rc;
        }
        if (hit) {
            *next = s->sw.cases[i].target;
            return 0;
        }
    }
    *next = s->sw.default_target;
    return 0;
}
