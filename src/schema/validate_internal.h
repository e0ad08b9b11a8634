/*
 * validate_internal.h — what the validate*.c files of src/schema/ share:
 * the walk's context, its path frames and annotation sets, and the calls
 * between the walk (validate.c), the keywords (validate_assert.c,
 * validate_apply.c) and the recording of errors (validate_errors.c).
 * Nothing outside those files includes it.
 *
 * The small helpers every keyword runs on its fast path (stop, the path
 * frames, the annotation bits, the subschema calls) are inline here, so
 * splitting the validator into files costs no call on that path.
 */
#ifndef KEEL_SCHEMA_VALIDATE_INTERNAL_H
#define KEEL_SCHEMA_VALIDATE_INTERNAL_H

#include "internal.h"

#include <stdarg.h>

/* A set of evaluated members or items (annotations for unevaluated*), in
 * the result's scratch block. */
struct eset {
    uint64_t *bits;
    uint32_t n;
};

/* A step of a path, linked on the C stack.  Instance paths: a member key
 * (escaped when rendered) or, with key NULL, an array index.  Keyword
 * paths: always key, a pre-escaped token such as "/properties/a~1b". */
struct pathseg {
    const struct pathseg *up;
    const char *key;
    uint32_t len;
    uint32_t idx;
};

/* The dynamic scope: the schema resources the walk has entered, innermost
 * first, linked on the C stack (kept only when some $dynamicRef needs it). */
struct scope {
    const struct scope *up;
    const struct sresource *res;
};

/* One validation walk: the schema, the result it records into, and where
 * the walk is (depth, paths, dynamic scope). */
struct vctx {
    const struct schema *s;
    struct schema_result *r;
    bool collect;
    int depth;
    const struct scope *scope;
    const struct pathseg *ipath;
    const struct pathseg *kpath;
    bool overflow_used;
    struct arena overflow; /* scratch that did not fit r->scratch */
    size_t want;
    size_t limit; /* errors to keep (r->max_errors or SCHEMA_MAX_ERRORS) */
    /* Which members of memo_inst (an object of at most 64 members) have a
     * name in the properties op memo_props: set by op_properties, read by
     * its sibling additionalProperties, so that each key is looked up once.
     * A pure function of the two pointers, so an older entry is never
     * wrong; it starts empty for every validation. */
    const struct json_value *memo_inst;
    const struct sop *memo_props;
    uint64_t memo_bits;
};

/* True when evaluation may stop at a failure: in the fast pass, or once
 * the collect pass has kept as many errors as the caller wants. */
static inline bool stop(const struct vctx *c)
{
    return !c->collect || c->r->kept >= c->limit;
}

#define PUSH_KEY(field, seg, k, l)                                                                  \
    struct pathseg seg = {.up = c->field, .key = (k), .len = (uint32_t)(l)};                        \
    c->field = &seg
#define PUSH_IDX(field, seg, i)                                                                     \
    struct pathseg seg = {.up = c->field, .key = NULL, .idx = (uint32_t)(i)};                       \
    c->field = &seg
#define POP(field, seg) c->field = seg.up

/* The `type` bit of a JSON value's type (integers are numbers here). */
static inline uint32_t type_bit(uint8_t t)
{
    static const uint32_t bits[] = {
        [JSON_NULL] = T_NULL,     [JSON_FALSE] = T_BOOLEAN, [JSON_TRUE] = T_BOOLEAN,
        [JSON_NUMBER] = T_NUMBER, [JSON_STRING] = T_STRING, [JSON_ARRAY] = T_ARRAY,
        [JSON_OBJECT] = T_OBJECT,
    };
    return bits[t];
}

/* ---- scratch and annotation sets (validate.c) ---- */

/* n bytes (8-aligned) from the result's scratch block, or from an overflow
 * arena once the block is full (the block grows after the walk).  Valid
 * until the walk ends or c->r->scratch_used is set back below it. */
void *schema_scratch_alloc(struct vctx *c, size_t n);
/* Makes e an empty set for n members/items, in scratch (as above). */
bool schema_eset_new(struct vctx *c, struct eset *e, uint32_t n);

static inline void eset_mark(struct eset *e, uint32_t i)
{
    if (e && i < e->n) e->bits[i / 64] |= (uint64_t)1 << (i % 64);
}

static inline bool eset_has(const struct eset *e, uint32_t i)
{
    return e && i < e->n && (e->bits[i / 64] >> (i % 64) & 1);
}

static inline void eset_or(struct eset *dst, const struct eset *src)
{
    if (!dst || !src) return;
    size_t words = ((size_t)(dst->n < src->n ? dst->n : src->n) + 63) / 64;
    for (size_t i = 0; i < words; i++) dst->bits[i] |= src->bits[i];
}

/* ---- the walk (validate.c) ---- */

/* Evaluates node n over inst; false if it fails.  Annotations go to ev
 * (NULL: nobody asked). */
bool schema_eval(const struct snode *n, const struct json_value *inst, struct vctx *c,
                 struct eset *ev);

/* Evaluates the single subschema n of op at keyword location .../<kw>.
 * Keyword path segments are pre-escaped tokens (sop.tok, sop.sub_toks). */
static inline bool eval_at(const struct sop *op, const struct snode *n,
                           const struct json_value *inst, struct vctx *c, struct eset *ev)
{
    PUSH_KEY(kpath, k, op->tok, op->kw_len + 1);
    bool ok = schema_eval(n, inst, c, ev);
    POP(kpath, k);
    return ok;
}

/* Evaluates subschema i of op (subs[i]) at .../<kw>/<name or index>. */
static inline bool eval_at_sub(const struct sop *op, uint32_t i, const struct json_value *inst,
                               struct vctx *c, struct eset *ev)
{
    PUSH_KEY(kpath, k, op->sub_toks[i], op->sub_tok_lens[i]);
    bool ok = schema_eval(op->subs[i], inst, c, ev);
    POP(kpath, k);
    return ok;
}

/* ---- keywords (validate_assert.c, validate_apply.c) ---- */

/* 1 match, 0 no match, -1 the match limit was hit. */
int schema_regex_test(struct vctx *c, pcre2_code *re, const char *s, size_t len);

/* Checks that inst (which has op->names[i]) has every name in
 * op->name_lists[i], recording an error for each missing one; *ok becomes
 * false at the first.  Returns false when the walk must stop there. */
bool schema_require_dependents(const struct sop *op, uint32_t i, const struct json_value *inst,
                               struct vctx *c, bool *ok);

static inline bool same_key(const char *a, const char *b, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        if (a[i] != b[i]) return false;
    return true;
}

/* ---- recording errors (validate_errors.c) ---- */

/* Records an error at the current location for keyword op; the message
 * is the subject, a space and fmt with its arguments (all of which must
 * outlive the result: literals, schema or instance strings). */
void schema_report(struct vctx *c, const struct sop *op, const char *fmt, ...) KEEL_PRINTF(3, 4);
/* Like schema_report, with the instance value appended as "; got `...`". */
void schema_report_got(struct vctx *c, const struct sop *op, const struct json_value *inst,
                       const char *fmt, ...) KEEL_PRINTF(4, 5);
/* Records an error whose message is the subject, a space and text (which
 * must outlive the result: a literal or op->msg), then "; got `...`" when
 * inst is given. */
void schema_report_text(struct vctx *c, const struct sop *op, const struct json_value *inst,
                        const char *text);
/* Records a `type` failure: op->msg, then the instance's type. */
void schema_report_type(struct vctx *c, const struct sop *op, const struct json_value *inst);
/* Records a node-level error (no keyword) with a fixed text. */
void schema_report_node(struct vctx *c, const struct snode *n, const char *text, bool subject);
/* Fills r->errors[0 .. kept) from the recorded facts (their strings live in
 * r->msgbuf, valid until the next validation with r or its cleanup). */
void schema_render_errors(struct schema_result *r);

#endif
