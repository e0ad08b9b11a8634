/*
 * validate.c — walks a compiled schema over an instance.
 *
 * One pass, recording each failure as it is met (collect == true) with its
 * instance location, its keyword location (the evaluation path, through
 * $ref) and a message — recorded as facts (see "recording errors"), made
 * into text after the walk, or only when read if the caller asked for a
 * lazy result.  Subschemas whose failure is not an error —
 * branches of anyOf/oneOf, `not`, `if`, `contains` — run with collect ==
 * false, which stops at the first failing keyword and records nothing; a
 * failing anyOf/oneOf then walks its branches again to say why each failed.
 * So a valid instance records nothing and costs what a verdict-only walk
 * costs, and no validation allocates once the schema_result has warmed up:
 * paths and the dynamic scope are linked frames on the C stack, annotation
 * bitsets for unevaluated* come from the result's scratch block, and error
 * facts, their paths and their text reuse the result's buffers.
 * With max_errors the walk stops as soon as that many errors are kept.
 *
 * Annotations (which properties/items were evaluated) are tracked only
 * below a node that has unevaluatedProperties/unevaluatedItems: such a node
 * gives its keywords a fresh set `ev` for the instance; in-place
 * applicators (allOf, $ref, ...) pass the set down; anyOf/oneOf/if collect
 * into a temporary set merged only when their subschema passed, as the
 * spec drops annotations of failed subschemas.  ev == NULL means no one
 * asked, and nothing is tracked.
 *
 * Invariants: evaluation depth is capped (SCHEMA_MAX_EVAL_DEPTH), so a $ref
 * cycle that consumes no input fails cleanly; kept errors are capped
 * (SCHEMA_MAX_ERRORS); pattern matches run under a PCRE2 match limit.
 *
 * This file holds the walk itself (a node's keywords in order, the depth
 * cap, the dynamic scope, the annotation set of an unevaluated* node), the
 * scratch memory it draws from, and the entry points.  The keywords are in
 * validate_assert.c (those that assert) and validate_apply.c (those that
 * apply subschemas); recording and rendering errors in validate_errors.c;
 * validate_internal.h has what they share.
 */
#include "validate_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- scratch ---------------------------------------------------------------- */

/* See validate_internal.h: scratch from r's block, else the overflow arena. */
void *schema_scratch_alloc(struct vctx *c, size_t n)
{
    struct schema_result *r = c->r;
    n = (n + 7) & ~(size_t)7;
    if (r->scratch_used + n <= r->scratch_cap) {
        void *p = (char *)r->scratch + r->scratch_used;
        r->scratch_used += n;
        return p;
    }
    if (!c->overflow_used) {
        arena_init(&c->overflow);
        c->overflow_used = true;
    }
    c->want += n;
    return arena_alloc(&c->overflow, n);
}

static void scratch_finish(struct vctx *c)
{
    struct schema_result *r = c->r;
    r->scratch_used = 0;
    if (!c->overflow_used) return;
    arena_cleanup(&c->overflow);
    c->overflow_used = false;
    size_t cap = r->scratch_cap + c->want;
    if (cap < 4096) cap = 4096;
    if (cap > (64u << 20)) cap = 64u << 20; /* beyond this, keep using the overflow */
    if (cap > r->scratch_cap) {
        void *p = realloc(r->scratch, cap);
        if (p) {
            r->scratch = p;
            r->scratch_cap = cap;
        }
    }
    c->want = 0;
}

/* An empty annotation set for n members/items, in scratch. */
bool schema_eset_new(struct vctx *c, struct eset *e, uint32_t n)
{
    size_t words = ((size_t)n + 63) / 64;
    e->n = n;
    e->bits = schema_scratch_alloc(c, words * 8 + 8);
    memset(e->bits, 0, words * 8);
    return true;
}

/* ---- the walk ------------------------------------------------------------------- */

/* Evaluates n's keywords in order over inst (see the top of this file). */
bool schema_eval(const struct snode *n, const struct json_value *inst, struct vctx *c,
                 struct eset *ev)
{
    if (n->kind == SN_TRUE) return true;
    if (n->kind == SN_FALSE) {
        if (c->collect)
            schema_report_node(c, n, "is not allowed here (the schema is `false`)", true);
        return false;
    }
    if (c->depth >= SCHEMA_MAX_EVAL_DEPTH) {
        if (c->collect)
            schema_report_node(c, n,
                               "evaluation nests more than 2048 schemas deep here; the schema "
                               "probably loops through $ref without consuming input",
                               false);
        return false;
    }
    c->depth++;
    struct scope sc;
    const struct scope *saved_scope = c->scope;
    if (c->s->dynamic && (!c->scope || c->scope->res != n->res)) {
        sc.up = c->scope;
        sc.res = n->res;
        c->scope = &sc;
    }
    struct eset local, *use = ev;
    size_t smark = 0;
    if (n->uneval && (inst->type == JSON_OBJECT || inst->type == JSON_ARRAY)) {
        smark = c->r->scratch_used;
        schema_eset_new(c, &local, inst->len);
        use = &local;
    }
    bool ok = true;
    for (uint32_t i = 0; i < n->nops; i++) {
        const struct sop *op = &n->ops[i];
        if (!op->fn(op, inst, c, use)) {
            ok = false;
            if (stop(c)) break;
        }
    }
    if (use == &local) {
        eset_or(ev, &local);
        c->r->scratch_used = smark;
    }
    c->scope = saved_scope;
    c->depth--;
    return ok;
}

/* ---- entry points ---------------------------------------------------------------- */

void schema_result_init(struct schema_result *r)
{
    memset(r, 0, sizeof *r);
}

void schema_result_cleanup(struct schema_result *r)
{
    if (!r) return;
    free(r->errors);
    free(r->facts);
    free(r->segs);
    free(r->scratch);
    if (r->match_data) pcre2_match_data_free(r->match_data);
    buf_cleanup(&r->msgbuf);
    memset(r, 0, sizeof *r);
}

bool schema_validate_node(const struct schema *s, const struct snode *n,
                          const struct json_value *inst, struct schema_result *r)
{
    r->kept = 0;
    r->error_count = 0;
    r->scratch_used = 0;
    r->segs_used = 0;
    r->rendered = false;
    size_t limit = r->max_errors && r->max_errors < SCHEMA_MAX_ERRORS ? r->max_errors
                                                                      : SCHEMA_MAX_ERRORS;
    /* One pass that records failures as it meets them: a failure outside
     * anyOf/oneOf/not/if/contains (which evaluate their subschemas without
     * recording) is always a real error, so a valid instance records
     * nothing and costs what a verdict-only walk costs. */
    struct vctx c = {.s = s, .r = r, .limit = limit, .collect = true};
    bool ok = schema_eval(n, inst, &c, NULL);
    scratch_finish(&c);
    if (!ok && r->kept == 0) {
        struct vctx c3 = {.s = s, .r = r, .collect = true, .limit = limit};
        schema_report_node(&c3, n, "the value is invalid", false);
    }
    r->valid = ok;
    if (!r->lazy) schema_render_errors(r);
    return ok;
}

bool schema_validate(const struct schema *s, const struct json_value *instance,
                     struct schema_result *r)
{
    return schema_validate_node(s, s->root, instance, r);
}

