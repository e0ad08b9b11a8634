/*
 * validate_apply.c — the keywords that apply subschemas: to items
 * (prefixItems, items, contains, unevaluatedItems), to members
 * (properties, patternProperties, additionalProperties, propertyNames,
 * dependentSchemas, dependencies, unevaluatedProperties), and in place
 * ($ref, $dynamicRef, allOf, anyOf, oneOf, not, if/then/else).
 *
 * Each is a sop_fn called by the walk (validate.c).  Subschemas whose
 * failure is not an error (anyOf/oneOf branches, not, if, contains) run
 * with c->collect false, which records nothing and stops at the first
 * failing keyword; a failing anyOf/oneOf walks its branches again to say
 * why each failed.  Annotations for unevaluated* flow through `ev`: items
 * and members evaluated here are marked in it; anyOf/oneOf/if evaluate
 * into a temporary set merged only when their subschema passed.
 *
 * Invariants: every subschema call pushes its keyword path segment and
 * every item/member its instance segment, popped on return (frames on the
 * C stack); temporary annotation sets are released (scratch_used reset)
 * before the keyword returns.
 */
#include "validate_internal.h"

#include <string.h>

/* ---- arrays ------------------------------------------------------------------- */

bool op_prefix_items(const struct sop *op, const struct json_value *inst, struct vctx *c,
                     struct eset *ev)
{
    if (inst->type != JSON_ARRAY) return true;
    bool ok = true;
    uint32_t n = inst->len < op->nsubs ? inst->len : op->nsubs;
    for (uint32_t i = 0; i < n; i++) {
        eset_mark(ev, i);
        PUSH_IDX(ipath, seg, i);
        bool r = eval_at_sub(op, i, inst->u.items[i], c, NULL);
        POP(ipath, seg);
        if (!r) {
            ok = false;
            if (stop(c)) return false;
        }
    }
    return ok;
}

bool op_items(const struct sop *op, const struct json_value *inst, struct vctx *c, struct eset *ev)
{
    if (inst->type != JSON_ARRAY) return true;
    bool ok = true;
    for (uint32_t i = (uint32_t)op->n; i < inst->len; i++) {
        eset_mark(ev, i);
        PUSH_IDX(ipath, seg, i);
        bool r = eval_at(op, op->sub, inst->u.items[i], c, NULL);
        POP(ipath, seg);
        if (!r) {
            ok = false;
            if (stop(c)) return false;
        }
    }
    return ok;
}

bool op_contains(const struct sop *op, const struct json_value *inst, struct vctx *c,
                 struct eset *ev)
{
    if (inst->type != JSON_ARRAY) return true;
    bool collect = c->collect;
    c->collect = false;
    int64_t count = 0;
    for (uint32_t i = 0; i < inst->len; i++) {
        PUSH_IDX(ipath, seg, i);
        bool r = eval_at(op, op->sub, inst->u.items[i], c, NULL);
        POP(ipath, seg);
        if (r) {
            count++;
            eset_mark(ev, i);
            if (!ev && op->n2 < 0 && count >= op->n) break;
        }
    }
    c->collect = collect;
    if (count < op->n) {
        schema_report(c, op,
                      "must contain at least %lld item%s matching the `contains` schema; %lld do",
                      (long long)op->n, op->n == 1 ? "" : "s", (long long)count);
        return false;
    }
    if (op->n2 >= 0 && count > op->n2) {
        schema_report(c, op,
                      "must contain at most %lld item%s matching the `contains` schema; %lld do",
                      (long long)op->n2, op->n2 == 1 ? "" : "s", (long long)count);
        return false;
    }
    return true;
}

bool op_unevaluated_items(const struct sop *op, const struct json_value *inst, struct vctx *c,
                          struct eset *ev)
{
    if (inst->type != JSON_ARRAY) return true;
    bool ok = true;
    for (uint32_t i = 0; i < inst->len; i++) {
        if (eset_has(ev, i)) continue;
        PUSH_IDX(ipath, seg, i);
        bool r;
        if (op->sub->kind == SN_FALSE) {
            r = false;
            schema_report(c, op, "is not allowed: no schema in `prefixItems`, `items` or "
                                 "`contains` covers it");
        } else {
            r = eval_at(op, op->sub, inst->u.items[i], c, NULL);
        }
        POP(ipath, seg);
        if (!r) {
            ok = false;
            if (stop(c)) return false;
        }
    }
    /* These are evaluated now, for enclosing unevaluatedItems. */
    for (uint32_t i = 0; ev && i < inst->len; i++) eset_mark(ev, i);
    return ok;
}

/* ---- objects ------------------------------------------------------------------ */

/* Position (0-based) of key in a names op, or -1. */
static inline long find_name(const struct sop *op, const char *key, uint32_t len)
{
    if (op->nsubs <= 8) { /* a few names: comparing lengths first beats hashing the key */
        for (uint32_t i = 0; i < op->nsubs; i++)
            if (op->name_lens[i] == len && same_key(op->names[i], key, len)) return (long)i;
        return -1;
    }
    uint32_t h = schema_name_hash(key, len) & op->slot_mask;
    for (uint32_t k; (k = op->slots[h]) != 0; h = (h + 1) & op->slot_mask)
        if (op->name_lens[k - 1] == len && same_key(op->names[k - 1], key, len)) return (long)k - 1;
    return -1;
}

bool op_properties(const struct sop *op, const struct json_value *inst, struct vctx *c,
                   struct eset *ev)
{
    if (inst->type != JSON_OBJECT) return true;
    bool ok = true;
    uint64_t bits = 0;
    for (uint32_t j = 0; j < inst->len; j++) {
        const struct json_member *m = &inst->u.members[j];
        long i = find_name(op, m->key, m->key_len);
        if (i < 0) continue;
        bits |= j < 64 ? (uint64_t)1 << j : 0;
        eset_mark(ev, j);
        PUSH_KEY(ipath, seg, m->key, m->key_len);
        bool r = eval_at_sub(op, (uint32_t)i, m->value, c, NULL);
        POP(ipath, seg);
        if (!r) {
            ok = false;
            if (stop(c)) return false;
        }
    }
    if (inst->len <= 64) {
        c->memo_inst = inst;
        c->memo_props = op;
        c->memo_bits = bits;
    }
    return ok;
}

bool op_dependent_schemas(const struct sop *op, const struct json_value *inst, struct vctx *c,
                          struct eset *ev)
{
    if (inst->type != JSON_OBJECT) return true;
    bool ok = true;
    for (uint32_t i = 0; i < op->nsubs; i++) {
        if (!json_getn(inst, op->names[i], op->name_lens[i])) continue;
        if (!eval_at_sub(op, i, inst, c, ev)) {
            ok = false;
            if (stop(c)) return false;
        }
    }
    return ok;
}

bool op_dependencies(const struct sop *op, const struct json_value *inst, struct vctx *c,
                     struct eset *ev)
{
    if (inst->type != JSON_OBJECT) return true;
    bool ok = true;
    for (uint32_t i = 0; i < op->nsubs; i++) {
        if (!json_getn(inst, op->names[i], op->name_lens[i])) continue;
        if (op->subs[i]) {
            if (!eval_at_sub(op, i, inst, c, ev)) {
                ok = false;
                if (stop(c)) return false;
            }
            continue;
        }
        if (!schema_require_dependents(op, i, inst, c, &ok)) return false;
    }
    return ok;
}

bool op_pattern_properties(const struct sop *op, const struct json_value *inst, struct vctx *c,
                           struct eset *ev)
{
    if (inst->type != JSON_OBJECT) return true;
    bool ok = true;
    for (uint32_t j = 0; j < inst->len; j++) {
        const struct json_member *m = &inst->u.members[j];
        for (uint32_t i = 0; i < op->nsubs; i++) {
            int mt = schema_regex_test(c, op->res[i], m->key, m->key_len);
            if (mt == 0) continue;
            PUSH_KEY(ipath, seg, m->key, m->key_len);
            bool r;
            if (mt < 0) {
                r = false;
                schema_report(c, op,
                              "could not be matched against pattern %s within the match limit",
                              op->sources[i]);
            } else {
                eset_mark(ev, j);
                r = eval_at_sub(op, i, m->value, c, NULL);
            }
            POP(ipath, seg);
            if (!r) {
                ok = false;
                if (stop(c)) return false;
            }
        }
    }
    return ok;
}

/* known: the memo of op_properties applies (bits are its answer for m). */
static bool covered(const struct sop *op, struct vctx *c, const struct json_member *m, bool known,
                    bool bit)
{
    if (known ? bit : op->props && find_name(op->props, m->key, m->key_len) >= 0) return true;
    if (op->pats)
        for (uint32_t i = 0; i < op->pats->nsubs; i++)
            if (schema_regex_test(c, op->pats->res[i], m->key, m->key_len) != 0) return true;
    return false;
}

bool op_additional_properties(const struct sop *op, const struct json_value *inst, struct vctx *c,
                              struct eset *ev)
{
    if (inst->type != JSON_OBJECT) return true;
    bool ok = true;
    bool known = op->props && c->memo_inst == inst && c->memo_props == op->props;
    uint64_t bits = c->memo_bits; /* nested evaluations below may replace the memo */
    for (uint32_t j = 0; j < inst->len; j++) {
        const struct json_member *m = &inst->u.members[j];
        if (covered(op, c, m, known, bits >> (j & 63) & 1)) continue;
        eset_mark(ev, j);
        PUSH_KEY(ipath, seg, m->key, m->key_len);
        bool r;
        if (op->sub->kind == SN_FALSE) {
            r = false;
            schema_report_text(c, op, NULL, op->msg);
        } else {
            r = eval_at(op, op->sub, m->value, c, NULL);
        }
        POP(ipath, seg);
        if (!r) {
            ok = false;
            if (stop(c)) return false;
        }
    }
    return ok;
}

bool op_property_names(const struct sop *op, const struct json_value *inst, struct vctx *c,
                       struct eset *ev)
{
    if (inst->type != JSON_OBJECT) return true;
    bool ok = true;
    for (uint32_t j = 0; j < inst->len; j++) {
        const struct json_member *m = &inst->u.members[j];
        struct json_value key = {.type = JSON_STRING, .len = m->key_len};
        key.u.s.str = m->key;
        PUSH_KEY(ipath, seg, m->key, m->key_len);
        bool r = eval_at(op, op->sub, &key, c, NULL);
        POP(ipath, seg);
        if (!r) {
            ok = false;
            if (stop(c)) return false;
        }
    }
    return ok;
}

bool op_unevaluated_properties(const struct sop *op, const struct json_value *inst,
                               struct vctx *c, struct eset *ev)
{
    if (inst->type != JSON_OBJECT) return true;
    bool ok = true;
    for (uint32_t j = 0; j < inst->len; j++) {
        if (eset_has(ev, j)) continue;
        const struct json_member *m = &inst->u.members[j];
        PUSH_KEY(ipath, seg, m->key, m->key_len);
        bool r;
        if (op->sub->kind == SN_FALSE) {
            r = false;
            schema_report(c, op, "is not an allowed property (no schema here evaluates it, and "
                                 "unevaluatedProperties is false)");
        } else {
            r = eval_at(op, op->sub, m->value, c, NULL);
        }
        POP(ipath, seg);
        if (!r) {
            ok = false;
            if (stop(c)) return false;
        }
    }
    for (uint32_t j = 0; ev && j < inst->len; j++) eset_mark(ev, j);
    return ok;
}

/* ---- in-place applicators -------------------------------------------------------- */

bool op_ref(const struct sop *op, const struct json_value *inst, struct vctx *c, struct eset *ev)
{
    return eval_at(op, op->sub, inst, c, ev);
}

bool op_dynamic_ref(const struct sop *op, const struct json_value *inst, struct vctx *c,
                    struct eset *ev)
{
    const struct snode *target = op->sub;
    if (op->str) {
        /* The outermost resource in the dynamic scope with this anchor wins. */
        for (const struct scope *s = c->scope; s; s = s->up)
            for (uint32_t k = 0; k < s->res->ndyn; k++)
                if (!strcmp(s->res->dyn_names[k], op->str)) target = s->res->dyn_nodes[k];
    }
    return eval_at(op, target, inst, c, ev);
}

bool op_all_of(const struct sop *op, const struct json_value *inst, struct vctx *c,
               struct eset *ev)
{
    bool ok = true;
    for (uint32_t i = 0; i < op->nsubs; i++) {
        if (!eval_at_sub(op, i, inst, c, ev)) {
            ok = false;
            if (stop(c)) return false;
        }
    }
    return ok;
}

/* Evaluates subschema i into a temporary annotation set, merged into ev
 * only when it passes. */
static bool eval_branch(const struct sop *op, uint32_t i, const struct json_value *inst,
                        struct vctx *c, struct eset *ev)
{
    if (!ev) return eval_at_sub(op, i, inst, c, NULL);
    size_t smark = c->r->scratch_used;
    struct eset tmp;
    schema_eset_new(c, &tmp, ev->n);
    bool r = eval_at_sub(op, i, inst, c, &tmp);
    if (r) eset_or(ev, &tmp);
    c->r->scratch_used = smark;
    return r;
}

/* Records why each branch failed: the branches ran without recording (so
 * a passing branch costs nothing extra), and only a failing anyOf/oneOf
 * is walked again for its details.  Not in first-error mode, where the
 * summary is the one error. */
static void branch_details(const struct sop *op, const struct json_value *inst, struct vctx *c)
{
    if (!c->collect || c->limit == 1) return;
    for (uint32_t i = 0; i < op->nsubs && !stop(c); i++)
        eval_at_sub(op, i, inst, c, NULL);
}

bool op_any_of(const struct sop *op, const struct json_value *inst, struct vctx *c,
               struct eset *ev)
{
    bool any = false;
    bool collect = c->collect;
    c->collect = false;
    for (uint32_t i = 0; i < op->nsubs; i++) {
        if (eval_branch(op, i, inst, c, ev)) {
            any = true;
            if (!ev) break;
        }
    }
    c->collect = collect;
    if (any) return true;
    branch_details(op, inst, c);
    schema_report_text(c, op, NULL, op->msg);
    return false;
}

bool op_one_of(const struct sop *op, const struct json_value *inst, struct vctx *c,
               struct eset *ev)
{
    int count = 0;
    uint32_t first = 0, second = 0;
    bool collect = c->collect;
    c->collect = false;
    for (uint32_t i = 0; i < op->nsubs; i++) {
        if (eval_branch(op, i, inst, c, ev)) {
            if (count == 0) first = i;
            else second = i;
            if (++count > 1) break;
        }
    }
    c->collect = collect;
    if (count == 1) return true;
    if (count > 1) {
        schema_report(c, op, "must match exactly one schema in `oneOf`, but matches both %u and %u",
                      first, second);
    } else {
        branch_details(op, inst, c);
        schema_report_text(c, op, NULL, op->msg);
    }
    return false;
}

bool op_not(const struct sop *op, const struct json_value *inst, struct vctx *c, struct eset *ev)
{
    bool collect = c->collect;
    c->collect = false;
    bool r = eval_at(op, op->sub, inst, c, NULL);
    c->collect = collect;
    if (!r) return true;
    schema_report_text(c, op, NULL, op->msg);
    return false;
}

bool op_if(const struct sop *op, const struct json_value *inst, struct vctx *c, struct eset *ev)
{
    bool collect = c->collect;
    c->collect = false;
    size_t smark = c->r->scratch_used;
    struct eset tmp;
    if (ev) schema_eset_new(c, &tmp, ev->n);
    bool r = eval_at(op, op->sub, inst, c, ev ? &tmp : NULL);
    if (r && ev) eset_or(ev, &tmp);
    c->r->scratch_used = smark;
    c->collect = collect;
    const struct snode *next = r ? op->sub2 : op->sub3;
    if (!next) return true;
    PUSH_KEY(kpath, k, r ? "/then" : "/else", 5);
    bool ok = schema_eval(next, inst, c, ev);
    POP(kpath, k);
    return ok;
}

