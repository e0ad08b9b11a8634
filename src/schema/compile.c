/*
 * compile.c — turns a schema document into the node graph of internal.h.
 *
 * Steps (schema_compile):
 *   1. Unless disabled, validate the document against the built-in
 *      draft 2020-12 metaschema, so a typo such as "type": "strng" is
 *      reported at compile time with its location.
 *   2. Copy the document into the schema's arena and scan it for $id,
 *      $anchor and $dynamicAnchor (into maps private to this compilation).
 *   3. Compile the root node.  Each schema object becomes one node whose
 *      operations come from the keyword table below, in table order
 *      (cheap assertions first, unevaluated* last).  `$ref` targets are
 *      compiled on demand and memoised by JSON value, so cycles terminate
 *      and a shared definition is compiled once.
 *   4. Close the $dynamicAnchor sets: every resource that may appear in a
 *      dynamic scope gets the nodes for the anchor names any $dynamicRef
 *      uses, so validation needs no lookups by name in maps.
 *
 * Invariants: a keyword whose value has the wrong JSON type is ignored
 * (the metaschema check reports it when enabled); every size comes from the
 * document and is capped (SCHEMA_MAX_NODES, SCHEMA_MAX_DEPTH).
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>


struct cctx {
    struct schema *s;
    struct schema_registry *reg;
    struct rmaps local;
    struct strmap memo;    /* json_value* -> snode*       */
    struct strmap resmap;  /* resource uri -> sresource*   */
    struct sresource **resources;
    size_t nres, res_cap;
    const char **dyn_names;
    size_t ndyn, dyn_cap;
    struct keel_err *err;
    size_t nodes;
};

/* What a keyword compiler sees. */
struct ncomp {
    struct snode *node;
    const struct json_value *obj;
    const char *base;
    unsigned vocab;
    int depth;
    const struct sop *props, *pats;
};

typedef int (*kw_compile_fn)(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                             struct sop *op);

struct kwdef {
    const char *name;
    unsigned vocab;
    kw_compile_fn compile;
    sop_fn fn;
};

static struct snode *compile_node(struct cctx *cc, const struct json_value *v, const char *base_hint,
                                  const char *abs_hint, unsigned vocab, int depth);

static int fail_at(struct cctx *cc, struct ncomp *nc, const char *kw, int code, const char *fmt,
                   ...) KEEL_PRINTF(5, 6);
static int fail_at(struct cctx *cc, struct ncomp *nc, const char *kw, int code, const char *fmt,
                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    keel_vfail(cc->err, code, fmt, ap);
    va_end(ap);
    if (cc->err) {
        const char *abs = nc && nc->node->abs ? nc->node->abs : "";
        const char *h = strchr(abs, '#');
        snprintf(cc->err->path, sizeof cc->err->path, "%s/%s", h ? h + 1 : "", kw ? kw : "");
    }
    return code;
}

/* ---- helpers ------------------------------------------------------------- */

static struct snode *sub(struct cctx *cc, struct ncomp *nc, const struct json_value *v,
                         const char *kw, const char *key, long idx)
{
    char hint[1024];
    if (key) snprintf(hint, sizeof hint, "%s/%s/%s", nc->node->abs, kw, key);
    else if (idx >= 0) snprintf(hint, sizeof hint, "%s/%s/%ld", nc->node->abs, kw, idx);
    else snprintf(hint, sizeof hint, "%s/%s", nc->node->abs, kw);
    return compile_node(cc, v, nc->base, hint, nc->vocab, nc->depth + 1);
}

static bool is_schema(const struct json_value *v)
{
    return v && (v->type == JSON_OBJECT || v->type == JSON_TRUE || v->type == JSON_FALSE);
}

/* Non-negative integer keyword values (1.0 counts); huge ones saturate. */
static bool count_of(const struct json_value *v, int64_t *out)
{
    if (!json_is_integer(v)) return false;
    if (v->nflags & JSON_NUM_I64) {
        if (v->u.n.i < 0) return false;
        *out = v->u.n.i;
        return true;
    }
    if (v->u.n.d < 0) return false;
    *out = INT64_MAX;
    return true;
}

static void track_code(struct cctx *cc, pcre2_code *c)
{
    struct schema *s = cc->s;
    if (s->ncodes == s->codes_cap) {
        s->codes_cap = s->codes_cap ? s->codes_cap * 2 : 8;
        s->codes = realloc(s->codes, s->codes_cap * sizeof *s->codes);
        if (!s->codes) abort();
    }
    s->codes[s->ncodes++] = c;
}

/* Property names of an object keyword, and a hash table over them so that
 * looking up an instance member costs one hash and usually one compare. */
static void names_of(struct cctx *cc, const struct json_value *obj, struct sop *op)
{
    struct arena *a = &cc->s->arena;
    op->nsubs = obj->len;
    op->names = arena_alloc(a, (obj->len + 1) * sizeof *op->names);
    op->name_lens = arena_alloc(a, (obj->len + 1) * sizeof *op->name_lens);
    uint32_t size = 8;
    while (size < 2 * obj->len) size *= 2;
    op->slots = arena_zalloc(a, size * sizeof *op->slots);
    op->slot_mask = size - 1;
    for (uint32_t i = 0; i < obj->len; i++) {
        op->names[i] = obj->u.members[i].key;
        op->name_lens[i] = obj->u.members[i].key_len;
        uint32_t h = schema_name_hash(op->names[i], op->name_lens[i]) & op->slot_mask;
        while (op->slots[h]) h = (h + 1) & op->slot_mask;
        op->slots[h] = i + 1;
    }
}

/* ---- keyword compilers --------------------------------------------------- */

static struct snode *resolve_ref(struct cctx *cc, struct ncomp *nc, const char *kw,
                                 const char *ref, const char **anchor_out);

static int c_ref(struct cctx *cc, struct ncomp *nc, const struct json_value *val, struct sop *op)
{
    if (!json_is(val, JSON_STRING)) return 0;
    op->sub = resolve_ref(cc, nc, "$ref", val->u.s.str, NULL);
    return op->sub ? 1 : KEEL_EINVAL;
}

static int c_dynamic_ref(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                         struct sop *op)
{
    if (!json_is(val, JSON_STRING)) return 0;
    const char *anchor = NULL;
    op->sub = resolve_ref(cc, nc, "$dynamicRef", val->u.s.str, &anchor);
    if (!op->sub) return KEEL_EINVAL;
    /* Dynamic only if the static target carries a $dynamicAnchor of the
     * same name (draft 2020-12 "bookending"); otherwise it is a $ref. */
    if (anchor && op->sub->dyn_anchor && !strcmp(op->sub->dyn_anchor, anchor)) {
        op->str = arena_strdup(&cc->s->arena, anchor);
        bool known = false;
        for (size_t i = 0; i < cc->ndyn; i++)
            if (!strcmp(cc->dyn_names[i], op->str)) known = true;
        if (!known) {
            if (cc->ndyn == cc->dyn_cap) {
                cc->dyn_cap = cc->dyn_cap ? cc->dyn_cap * 2 : 4;
                cc->dyn_names = realloc(cc->dyn_names, cc->dyn_cap * sizeof *cc->dyn_names);
                if (!cc->dyn_names) abort();
            }
            cc->dyn_names[cc->ndyn++] = op->str;
        }
    }
    return 1;
}

static const struct {
    const char *name;
    uint32_t bit;
} type_names[] = {
    {"null", T_NULL},     {"boolean", T_BOOLEAN}, {"object", T_OBJECT},   {"array", T_ARRAY},
    {"number", T_NUMBER}, {"string", T_STRING},   {"integer", T_INTEGER},
};

static uint32_t type_bit(const struct json_value *v)
{
    if (!json_is(v, JSON_STRING)) return 0;
    for (size_t i = 0; i < KEEL_ARRAY_LEN(type_names); i++)
        if (!strcmp(v->u.s.str, type_names[i].name)) return type_names[i].bit;
    return 0;
}

static int c_type(struct cctx *cc, struct ncomp *nc, const struct json_value *val, struct sop *op)
{
    uint32_t mask = 0;
    if (json_is(val, JSON_STRING)) {
        mask = type_bit(val);
        if (!mask)
            return fail_at(cc, nc, "type", KEEL_EINVAL,
                           "unknown type '%s'; use one of null, boolean, object, array, number, "
                           "string, integer",
                           val->u.s.str);
    } else if (json_is(val, JSON_ARRAY)) {
        for (uint32_t i = 0; i < val->len; i++) {
            uint32_t b = type_bit(val->u.items[i]);
            if (!b)
                return fail_at(cc, nc, "type", KEEL_EINVAL,
                               "`type` item %u is not one of null, boolean, object, array, "
                               "number, string, integer",
                               i);
            mask |= b;
        }
    } else {
        return 0;
    }
    op->types = mask;
    return 1;
}

static int c_value(struct cctx *cc, struct ncomp *nc, const struct json_value *val, struct sop *op)
{
    op->val = val;
    return 1;
}

static int c_enum(struct cctx *cc, struct ncomp *nc, const struct json_value *val, struct sop *op)
{
    if (!json_is(val, JSON_ARRAY)) return 0;
    op->val = val;
    return 1;
}

static int c_number(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                    struct sop *op)
{
    if (!json_is(val, JSON_NUMBER)) return 0;
    if (op->fn == op_multiple_of && json_number_cmp(val, json_int(&cc->s->arena, 0)) <= 0)
        return fail_at(cc, nc, "multipleOf", KEEL_EINVAL,
                       "`multipleOf` must be greater than 0; got %s", val->u.n.text);
    op->val = val;
    return 1;
}

static int c_count(struct cctx *cc, struct ncomp *nc, const struct json_value *val, struct sop *op)
{
    if (!count_of(val, &op->n)) {
        if (json_is(val, JSON_NUMBER))
            return fail_at(cc, nc, op->kw, KEEL_EINVAL,
                           "`%s` must be a non-negative integer; got %s", op->kw, val->u.n.text);
        return 0;
    }
    return 1;
}

static int c_unique(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                    struct sop *op)
{
    return val->type == JSON_TRUE ? 1 : 0;
}

static int c_pattern(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                     struct sop *op)
{
    if (!json_is(val, JSON_STRING)) return 0;
    struct keel_err e;
    pcre2_code *re = schema_regex_compile(val->u.s.str, val->len, &e);
    if (!re) return fail_at(cc, nc, "pattern", KEEL_EINVAL, "`pattern` %s", e.msg);
    track_code(cc, re);
    op->res = arena_alloc(&cc->s->arena, sizeof *op->res);
    op->res[0] = re;
    op->sources = arena_alloc(&cc->s->arena, sizeof *op->sources);
    op->sources[0] = val->u.s.str;
    op->nsubs = 1;
    return 1;
}

static int c_format(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                    struct sop *op)
{
    if (!json_is(val, JSON_STRING)) return 0;
    bool assert = cc->s->opts.format_assert || (nc->vocab & VOC_FORMAT_ASSERTION);
    if (!assert) return 0;
    op->format = schema_format_find(val->u.s.str);
    if (!op->format) return 0; /* unknown: an annotation */
    op->str = val->u.s.str;
    return 1;
}

static int c_content(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                     struct sop *op)
{
    if (!cc->s->opts.content_assert || !json_is(val, JSON_STRING)) return 0;
    /* One op covers both keywords; it is attached to contentMediaType if
     * present, otherwise to contentEncoding. */
    if (!strcmp(op->kw, "contentEncoding") && json_get(nc->obj, "contentMediaType")) return 0;
    const struct json_value *enc = json_get(nc->obj, "contentEncoding");
    const struct json_value *mt = json_get(nc->obj, "contentMediaType");
    op->str = json_is(enc, JSON_STRING) ? enc->u.s.str : NULL;
    op->val = json_is(mt, JSON_STRING) ? mt : NULL;
    return 1;
}

static int c_required(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                      struct sop *op)
{
    if (!json_is(val, JSON_ARRAY)) return 0;
    struct arena *a = &cc->s->arena;
    op->names = arena_alloc(a, (val->len + 1) * sizeof *op->names);
    op->name_lens = arena_alloc(a, (val->len + 1) * sizeof *op->name_lens);
    uint32_t n = 0;
    for (uint32_t i = 0; i < val->len; i++) {
        const struct json_value *it = val->u.items[i];
        if (!json_is(it, JSON_STRING)) continue;
        op->names[n] = it->u.s.str;
        op->name_lens[n++] = it->len;
    }
    op->nsubs = n;
    return n ? 1 : 0;
}

static int c_dep_required(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                          struct sop *op)
{
    if (!json_is(val, JSON_OBJECT)) return 0;
    struct arena *a = &cc->s->arena;
    names_of(cc, val, op);
    op->name_lists = arena_alloc(a, (val->len + 1) * sizeof *op->name_lists);
    op->list_lens = arena_alloc(a, (val->len + 1) * sizeof *op->list_lens);
    for (uint32_t i = 0; i < val->len; i++) {
        const struct json_value *arr = val->u.members[i].value;
        uint32_t n = 0;
        op->name_lists[i] = NULL;
        if (json_is(arr, JSON_ARRAY)) {
            op->name_lists[i] = arena_alloc(a, (arr->len + 1) * sizeof(char *));
            for (uint32_t j = 0; j < arr->len; j++)
                if (json_is(arr->u.items[j], JSON_STRING))
                    op->name_lists[i][n++] = arr->u.items[j]->u.s.str;
        }
        op->list_lens[i] = n;
    }
    return 1;
}

static int c_schema_array(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                          struct sop *op)
{
    if (!json_is(val, JSON_ARRAY)) return 0;
    op->nsubs = val->len;
    op->subs = arena_alloc(&cc->s->arena, (val->len + 1) * sizeof *op->subs);
    for (uint32_t i = 0; i < val->len; i++) {
        op->subs[i] = sub(cc, nc, val->u.items[i], op->kw, NULL, (long)i);
        if (!op->subs[i]) return KEEL_EINVAL;
    }
    return 1;
}

static int c_single(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                    struct sop *op)
{
    if (!is_schema(val)) return 0;
    op->sub = sub(cc, nc, val, op->kw, NULL, -1);
    return op->sub ? 1 : KEEL_EINVAL;
}

static int c_if(struct cctx *cc, struct ncomp *nc, const struct json_value *val, struct sop *op)
{
    if (!is_schema(val)) return 0;
    const struct json_value *t = json_get(nc->obj, "then"), *e = json_get(nc->obj, "else");
    op->sub = sub(cc, nc, val, "if", NULL, -1);
    if (!op->sub) return KEEL_EINVAL;
    if (is_schema(t) && !(op->sub2 = sub(cc, nc, t, "then", NULL, -1))) return KEEL_EINVAL;
    if (is_schema(e) && !(op->sub3 = sub(cc, nc, e, "else", NULL, -1))) return KEEL_EINVAL;
    return 1;
}

/* properties and dependentSchemas: names -> subschemas. */
static int c_schema_map(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                        struct sop *op)
{
    if (!json_is(val, JSON_OBJECT)) return 0;
    names_of(cc, val, op);
    op->subs = arena_alloc(&cc->s->arena, (val->len + 1) * sizeof *op->subs);
    for (uint32_t i = 0; i < val->len; i++) {
        const struct json_member *m = &val->u.members[i];
        char key[512];
        struct buf kb;
        buf_init(&kb);
        json_pointer_append(&kb, m->key, m->key_len);
        snprintf(key, sizeof key, "%s", kb.data + 1);
        buf_cleanup(&kb);
        op->subs[i] = sub(cc, nc, m->value, op->kw, key, -1);
        if (!op->subs[i]) return KEEL_EINVAL;
    }
    if (op->fn == op_properties) nc->props = op;
    return 1;
}

/* The pre-2019 `dependencies` keyword, still common in the wild: each
 * member is either a list of names (dependentRequired) or a schema
 * (dependentSchemas). */
static int c_dependencies(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                          struct sop *op)
{
    if (!json_is(val, JSON_OBJECT)) return 0;
    int rc = c_dep_required(cc, nc, val, op);
    if (rc <= 0) return rc;
    op->subs = arena_zalloc(&cc->s->arena, (val->len + 1) * sizeof *op->subs);
    for (uint32_t i = 0; i < val->len; i++) {
        const struct json_member *m = &val->u.members[i];
        if (!is_schema(m->value)) continue;
        struct buf kb;
        buf_init(&kb);
        json_pointer_append(&kb, m->key, m->key_len);
        op->subs[i] = sub(cc, nc, m->value, op->kw, kb.data + 1, -1);
        buf_cleanup(&kb);
        if (!op->subs[i]) return KEEL_EINVAL;
    }
    return 1;
}

static int c_pattern_properties(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                                struct sop *op)
{
    if (!json_is(val, JSON_OBJECT)) return 0;
    struct arena *a = &cc->s->arena;
    op->nsubs = val->len;
    op->subs = arena_alloc(a, (val->len + 1) * sizeof *op->subs);
    op->res = arena_alloc(a, (val->len + 1) * sizeof *op->res);
    op->sources = arena_alloc(a, (val->len + 1) * sizeof *op->sources);
    for (uint32_t i = 0; i < val->len; i++) {
        const struct json_member *m = &val->u.members[i];
        struct keel_err e;
        op->res[i] = schema_regex_compile(m->key, m->key_len, &e);
        if (!op->res[i])
            return fail_at(cc, nc, "patternProperties", KEEL_EINVAL, "pattern '%s': %s", m->key,
                           e.msg);
        track_code(cc, op->res[i]);
        op->sources[i] = m->key;
        struct buf kb;
        buf_init(&kb);
        json_pointer_append(&kb, m->key, m->key_len);
        op->subs[i] = sub(cc, nc, m->value, op->kw, kb.data + 1, -1);
        buf_cleanup(&kb);
        if (!op->subs[i]) return KEEL_EINVAL;
    }
    nc->pats = op;
    return 1;
}

static int c_additional(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                        struct sop *op)
{
    if (!is_schema(val)) return 0;
    op->props = nc->props;
    op->pats = nc->pats;
    op->sub = sub(cc, nc, val, op->kw, NULL, -1);
    return op->sub ? 1 : KEEL_EINVAL;
}

static int c_items(struct cctx *cc, struct ncomp *nc, const struct json_value *val, struct sop *op)
{
    if (!is_schema(val)) return 0;
    const struct json_value *pre = json_get(nc->obj, "prefixItems");
    op->n = json_is(pre, JSON_ARRAY) && (nc->vocab & VOC_APPLICATOR) ? pre->len : 0;
    op->sub = sub(cc, nc, val, "items", NULL, -1);
    return op->sub ? 1 : KEEL_EINVAL;
}

static int c_contains(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                      struct sop *op)
{
    if (!is_schema(val)) return 0;
    op->n = 1;
    op->n2 = -1;
    if (nc->vocab & VOC_VALIDATION) {
        int64_t k;
        if (count_of(json_get(nc->obj, "minContains"), &k)) op->n = k, op->flag = true;
        if (count_of(json_get(nc->obj, "maxContains"), &k)) op->n2 = k;
    }
    op->sub = sub(cc, nc, val, "contains", NULL, -1);
    return op->sub ? 1 : KEEL_EINVAL;
}

static int c_uneval(struct cctx *cc, struct ncomp *nc, const struct json_value *val,
                    struct sop *op)
{
    if (!is_schema(val)) return 0;
    op->sub = sub(cc, nc, val, op->kw, NULL, -1);
    if (!op->sub) return KEEL_EINVAL;
    nc->node->uneval = true;
    return 1;
}

/* Precomputes the keyword location tokens of op, so that the validator's
 * paths are one pre-escaped segment per step: "/properties/a~1b" rather
 * than a keyword and a key escaped again for every error.  The key of a
 * subschema is its name (properties, dependentSchemas, dependencies), its
 * pattern (patternProperties) or its index (allOf, anyOf, oneOf,
 * prefixItems). */
static void op_tokens(struct arena *a, struct sop *op)
{
    op->tok = arena_printf(a, "/%s", op->kw); /* no ~ or / in keywords */
    if (!op->subs || !op->nsubs) return;
    op->sub_toks = arena_alloc(a, op->nsubs * sizeof *op->sub_toks);
    op->sub_tok_lens = arena_alloc(a, op->nsubs * sizeof *op->sub_tok_lens);
    struct buf b;
    buf_init(&b);
    for (uint32_t i = 0; i < op->nsubs; i++) {
        buf_reset(&b);
        buf_puts(&b, op->tok);
        if (op->names)
            json_pointer_append(&b, op->names[i], op->name_lens[i]);
        else if (op->sources)
            json_pointer_append(&b, op->sources[i], strlen(op->sources[i]));
        else
            buf_printf(&b, "/%u", i);
        op->sub_toks[i] = arena_strndup(a, b.data, b.len);
        op->sub_tok_lens[i] = (uint32_t)b.len;
    }
    buf_cleanup(&b);
}

/* The keyword table, in evaluation order.  Keywords not listed here are
 * annotations (title, default, ...) or are read by a sibling's compiler
 * (then/else by if, minContains/maxContains by contains). */
static const struct kwdef kwdefs[] = {
    {"type", VOC_VALIDATION, c_type, op_type},
    {"const", VOC_VALIDATION, c_value, op_const},
    {"enum", VOC_VALIDATION, c_enum, op_enum},
    {"multipleOf", VOC_VALIDATION, c_number, op_multiple_of},
    {"maximum", VOC_VALIDATION, c_number, op_maximum},
    {"exclusiveMaximum", VOC_VALIDATION, c_number, op_exclusive_maximum},
    {"minimum", VOC_VALIDATION, c_number, op_minimum},
    {"exclusiveMinimum", VOC_VALIDATION, c_number, op_exclusive_minimum},
    {"maxLength", VOC_VALIDATION, c_count, op_max_length},
    {"minLength", VOC_VALIDATION, c_count, op_min_length},
    {"pattern", VOC_VALIDATION, c_pattern, op_pattern},
    {"format", VOC_FORMAT_ANNOTATION | VOC_FORMAT_ASSERTION, c_format, op_format},
    {"contentEncoding", VOC_CONTENT, c_content, op_content},
    {"contentMediaType", VOC_CONTENT, c_content, op_content},
    {"maxItems", VOC_VALIDATION, c_count, op_max_items},
    {"minItems", VOC_VALIDATION, c_count, op_min_items},
    {"uniqueItems", VOC_VALIDATION, c_unique, op_unique_items},
    {"maxProperties", VOC_VALIDATION, c_count, op_max_properties},
    {"minProperties", VOC_VALIDATION, c_count, op_min_properties},
    {"required", VOC_VALIDATION, c_required, op_required},
    {"dependentRequired", VOC_VALIDATION, c_dep_required, op_dependent_required},
    {"$ref", VOC_CORE, c_ref, op_ref},
    {"$dynamicRef", VOC_CORE, c_dynamic_ref, op_dynamic_ref},
    {"allOf", VOC_APPLICATOR, c_schema_array, op_all_of},
    {"anyOf", VOC_APPLICATOR, c_schema_array, op_any_of},
    {"oneOf", VOC_APPLICATOR, c_schema_array, op_one_of},
    {"not", VOC_APPLICATOR, c_single, op_not},
    {"if", VOC_APPLICATOR, c_if, op_if},
    {"dependentSchemas", VOC_APPLICATOR, c_schema_map, op_dependent_schemas},
    {"dependencies", VOC_APPLICATOR, c_dependencies, op_dependencies},
    {"properties", VOC_APPLICATOR, c_schema_map, op_properties},
    {"patternProperties", VOC_APPLICATOR, c_pattern_properties, op_pattern_properties},
    {"additionalProperties", VOC_APPLICATOR, c_additional, op_additional_properties},
    {"propertyNames", VOC_APPLICATOR, c_single, op_property_names},
    {"prefixItems", VOC_APPLICATOR, c_schema_array, op_prefix_items},
    {"items", VOC_APPLICATOR, c_items, op_items},
    {"contains", VOC_APPLICATOR, c_contains, op_contains},
    {"unevaluatedItems", VOC_UNEVALUATED, c_uneval, op_unevaluated_items},
    {"unevaluatedProperties", VOC_UNEVALUATED, c_uneval, op_unevaluated_properties},
};

/* ---- vocabularies ---------------------------------------------------------- */

static const struct {
    const char *uri;
    unsigned bit;
} vocab_uris[] = {
    {"https://json-schema.org/draft/2020-12/vocab/core", VOC_CORE},
    {"https://json-schema.org/draft/2020-12/vocab/applicator", VOC_APPLICATOR},
    {"https://json-schema.org/draft/2020-12/vocab/unevaluated", VOC_UNEVALUATED},
    {"https://json-schema.org/draft/2020-12/vocab/validation", VOC_VALIDATION},
    {"https://json-schema.org/draft/2020-12/vocab/meta-data", VOC_METADATA},
    {"https://json-schema.org/draft/2020-12/vocab/format-annotation", VOC_FORMAT_ANNOTATION},
    {"https://json-schema.org/draft/2020-12/vocab/content", VOC_CONTENT},
    {"https://json-schema.org/draft/2020-12/vocab/format-assertion", VOC_FORMAT_ASSERTION},
};

/* The vocabularies a schema resource with "$schema": uri may use, from its
 * metaschema's $vocabulary.  Unknown metaschemas enable everything. */
static int vocab_for(struct cctx *cc, struct ncomp *nc, const char *uri, unsigned *out)
{
    struct arena *a = &cc->s->arena;
    char *u = uri_strip_fragment(a, uri);
    struct keel_err e;
    const struct json_value *meta = reg_resource(cc->reg, &cc->local, u, &e);
    const struct json_value *voc = meta ? json_get(meta, "$vocabulary") : NULL;
    if (!json_is(voc, JSON_OBJECT)) {
        *out = VOC_ALL_STANDARD;
        return 0;
    }
    unsigned mask = 0;
    for (uint32_t i = 0; i < voc->len; i++) {
        const struct json_member *m = &voc->u.members[i];
        bool known = false;
        for (size_t k = 0; k < KEEL_ARRAY_LEN(vocab_uris); k++)
            if (!strcmp(m->key, vocab_uris[k].uri)) mask |= vocab_uris[k].bit, known = true;
        if (!known && m->value->type == JSON_TRUE)
            return fail_at(cc, nc, "$schema", KEEL_EINVAL,
                           "metaschema %s requires vocabulary %s, which Keel does not know; "
                           "mark it false in $vocabulary or drop it",
                           u, m->key);
    }
    *out = mask | VOC_CORE;
    return 0;
}

/* ---- nodes ------------------------------------------------------------------ */

static struct sresource *resource_for(struct cctx *cc, const char *abs)
{
    const char *h = strchr(abs, '#');
    size_t n = h ? (size_t)(h - abs) : strlen(abs);
    struct sresource *r = strmap_get(&cc->resmap, abs, n);
    if (r) return r;
    r = arena_zalloc(&cc->s->arena, sizeof *r);
    r->uri = arena_strndup(&cc->s->arena, abs, n);
    strmap_put(&cc->resmap, abs, n, r);
    if (cc->nres == cc->res_cap) {
        cc->res_cap = cc->res_cap ? cc->res_cap * 2 : 8;
        cc->resources = realloc(cc->resources, cc->res_cap * sizeof *cc->resources);
        if (!cc->resources) abort();
    }
    cc->resources[cc->nres++] = r;
    return r;
}

static struct snode *compile_node(struct cctx *cc, const struct json_value *v, const char *base_hint,
                                  const char *abs_hint, unsigned vocab, int depth)
{
    struct snode *n = strmap_get(&cc->memo, (const char *)&v, sizeof v);
    if (n) return n;
    if (depth > SCHEMA_MAX_DEPTH) {
        keel_fail(cc->err, KEEL_ELIMIT,
                  "schema nesting deeper than %d levels at %s; flatten it with $defs and $ref",
                  SCHEMA_MAX_DEPTH, abs_hint);
        return NULL;
    }
    if (++cc->nodes > SCHEMA_MAX_NODES) {
        keel_fail(cc->err, KEEL_ELIMIT, "schema has more than %d subschemas", SCHEMA_MAX_NODES);
        return NULL;
    }
    struct arena *a = &cc->s->arena;
    n = arena_zalloc(a, sizeof *n);
    strmap_put(&cc->memo, (const char *)&v, sizeof v, n);
    const struct vinfo *vi = reg_info(cc->reg, &cc->local, v);
    const char *base = vi ? vi->base : base_hint;
    n->abs = vi ? vi->abs : arena_strdup(a, abs_hint);
    n->abs_shown = n->abs;
    if (!strncmp(n->abs, SCHEMA_SENTINEL_BASE "#", sizeof SCHEMA_SENTINEL_BASE))
        n->abs_shown = n->abs + sizeof SCHEMA_SENTINEL_BASE - 1;
    n->res = resource_for(cc, n->abs);
    if (v->type == JSON_TRUE) {
        n->kind = SN_TRUE;
        return n;
    }
    if (v->type != JSON_OBJECT) {
        if (v->type == JSON_FALSE) {
            n->kind = SN_FALSE;
            return n;
        }
        keel_fail(cc->err, KEEL_EINVAL,
                  "a schema must be an object or a boolean; found %s at %s", json_type_name(v),
                  n->abs);
        const char *h = strchr(n->abs, '#');
        if (cc->err) snprintf(cc->err->path, sizeof cc->err->path, "%s", h ? h + 1 : "");
        return NULL;
    }
    n->kind = SN_OBJECT;
    struct ncomp nc = {.node = n, .obj = v, .base = base, .vocab = vocab, .depth = depth};
    const struct json_value *sv = json_get(v, "$schema");
    if (json_is(sv, JSON_STRING) && vocab_for(cc, &nc, sv->u.s.str, &nc.vocab) < 0) return NULL;
    const struct json_value *da = json_get(v, "$dynamicAnchor");
    if (json_is(da, JSON_STRING)) n->dyn_anchor = da->u.s.str;
    n->ops = arena_zalloc(a, (v->len + 1) * sizeof *n->ops);
    for (size_t k = 0; k < KEEL_ARRAY_LEN(kwdefs); k++) {
        const struct kwdef *d = &kwdefs[k];
        if (!(d->vocab & nc.vocab)) continue;
        const struct json_value *val = json_get(v, d->name);
        if (!val) continue;
        struct sop *op = &n->ops[n->nops];
        op->fn = d->fn;
        op->kw = d->name;
        op->kw_len = (uint32_t)strlen(d->name);
        op->abs_kw = arena_printf(a, "%s/%s", n->abs_shown, d->name); /* no ~ or / in names */
        op->owner = n;
        int rc = d->compile(cc, &nc, val, op);
        if (rc < 0) return NULL;
        if (rc > 0) {
            op_tokens(a, op);
            schema_op_messages(a, op);
            n->nops++;
        }
        else memset(op, 0, sizeof *op);
    }
    return n;
}

static struct snode *resolve_ref(struct cctx *cc, struct ncomp *nc, const char *kw,
                                 const char *ref, const char **anchor_out)
{
    struct arena *a = &cc->s->arena;
    char *full = uri_resolve(a, nc->base, ref);
    char *hash = strchr(full, '#');
    const char *frag = hash ? hash + 1 : "";
    char *docuri = uri_strip_fragment(a, full);
    struct keel_err e;
    keel_err_clear(&e);
    const struct json_value *root = reg_resource(cc->reg, &cc->local, docuri, &e);
    if (!root) {
        fail_at(cc, nc, kw, e.code ? e.code : KEEL_ENOENT,
                "cannot resolve %s '%s': %s%s", kw, ref,
                e.code ? e.msg : "no schema is registered as ",
                e.code ? "" : docuri);
        if (!e.code && cc->err) {
            size_t l = strlen(cc->err->msg);
            snprintf(cc->err->msg + l, sizeof cc->err->msg - l,
                     "; add it to the registry (or map its prefix with --remote URI=DIR)");
        }
        return NULL;
    }
    const struct json_value *target = NULL;
    const struct vinfo *rvi = reg_info(cc->reg, &cc->local, root);
    const char *tbase = rvi ? rvi->base : docuri;
    if (!*frag) {
        target = root;
    } else if (frag[0] == '/') {
        size_t fl = strlen(frag), ol;
        char *dec = arena_alloc(a, fl + 1);
        if (!uri_percent_decode(frag, fl, dec, &ol)) {
            fail_at(cc, nc, kw, KEEL_EINVAL, "%s '%s': bad %%-escape in the fragment", kw, ref);
            return NULL;
        }
        dec[ol] = 0;
        target = json_pointer_get(root, dec);
    } else {
        target = reg_anchor(cc->reg, &cc->local, docuri, frag, false);
        if (anchor_out) *anchor_out = frag;
    }
    if (!target) {
        fail_at(cc, nc, kw, KEEL_ENOENT,
                "cannot resolve %s '%s': %s has no %s '%s'; check the spelling against its $defs "
                "and anchors",
                kw, ref, docuri, frag[0] == '/' ? "location" : "anchor", frag);
        return NULL;
    }
    unsigned vocab = VOC_ALL_STANDARD;
    return compile_node(cc, target, tbase, full, vocab, nc->depth + 1);
}

/* Gives every resource the nodes of the dynamic anchors that $dynamicRef
 * may look for; compiling those may add resources, so repeat to a fixpoint. */
static int close_dynamic(struct cctx *cc)
{
    bool changed = true;
    while (changed) {
        changed = false;
        for (size_t r = 0; r < cc->nres; r++) {
            struct sresource *res = cc->resources[r];
            for (size_t d = 0; d < cc->ndyn; d++) {
                bool have = false;
                for (uint32_t k = 0; k < res->ndyn; k++)
                    if (!strcmp(res->dyn_names[k], cc->dyn_names[d])) have = true;
                if (have) continue;
                const struct json_value *t =
                    reg_anchor(cc->reg, &cc->local, res->uri, cc->dyn_names[d], true);
                if (!t) continue;
                char hint[1024];
                snprintf(hint, sizeof hint, "%s#%s", res->uri, cc->dyn_names[d]);
                struct snode *n = compile_node(cc, t, res->uri, hint, VOC_ALL_STANDARD, 0);
                if (!n) return KEEL_EINVAL;
                struct arena *a = &cc->s->arena;
                const char **nn = arena_alloc(a, (res->ndyn + 1) * sizeof *nn);
                struct snode **nd = arena_alloc(a, (res->ndyn + 1) * sizeof *nd);
                if (res->ndyn) {
                    memcpy(nn, res->dyn_names, res->ndyn * sizeof *nn);
                    memcpy(nd, res->dyn_nodes, res->ndyn * sizeof *nd);
                }
                nn[res->ndyn] = cc->dyn_names[d];
                nd[res->ndyn] = n;
                res->dyn_names = nn;
                res->dyn_nodes = nd;
                res->ndyn++;
                changed = true;
            }
        }
    }
    return 0;
}

/* ---- the metaschema check ------------------------------------------------- */

static int meta_check(struct schema_registry *reg, const struct json_value *doc,
                      struct keel_err *err)
{
    const struct json_value *sv = json_get(doc, "$schema");
    if (sv && !(json_is(sv, JSON_STRING) && (!strcmp(sv->u.s.str, SCHEMA_META_URI) ||
                                             !strcmp(sv->u.s.str, SCHEMA_META_URI "#"))))
        return 0; /* another dialect: its own metaschema is not ours to enforce */
    if (!reg->meta) {
        if (reg->compiling_meta) return 0;
        reg->compiling_meta = true;
        struct rdoc *d = strmap_get(&reg->docs, SCHEMA_META_URI, strlen(SCHEMA_META_URI));
        struct schema_opts o = {.no_meta_check = true};
        int rc = d ? schema_compile(reg, d->root, SCHEMA_META_URI, &o, &reg->meta, err)
                   : keel_fail(err, KEEL_EINTERNAL, "built-in metaschema missing");
        reg->compiling_meta = false;
        if (rc < 0) return rc;
    }
    struct schema_result r;
    schema_result_init(&r);
    int rc = 0;
    if (!schema_validate(reg->meta, doc, &r) && r.kept) {
        /* The deepest error is usually the one to fix; among those, a
         * concrete one beats an anyOf/oneOf summary. */
        const struct schema_error *e = NULL;
        size_t best = 0;
        for (size_t i = 0; i < r.kept; i++) {
            const struct schema_error *x = &r.errors[i];
            const char *k = strrchr(x->keyword_location, '/');
            bool summary = k && (!strcmp(k, "/anyOf") || !strcmp(k, "/oneOf"));
            size_t score = strlen(x->instance_location) * 2 + !summary;
            if (!e || score > best) e = x, best = score;
        }
        rc = keel_fail(err, KEEL_EINVAL, "not a valid draft 2020-12 schema at '%s': %s",
                       e->instance_location, e->message);
        if (err) snprintf(err->path, sizeof err->path, "%s", e->instance_location);
    }
    schema_result_cleanup(&r);
    return rc;
}

/* ---- public ----------------------------------------------------------------- */

int schema_compile(struct schema_registry *reg, const struct json_value *doc, const char *base_uri,
                   const struct schema_opts *opts, struct schema **out, struct keel_err *err)
{
    if (!doc || !out) return keel_fail(err, KEEL_EINVAL, "schema_compile: NULL argument");
    if (base_uri && !uri_is_absolute(base_uri))
        return keel_fail(err, KEEL_EINVAL, "base URI '%s' is not absolute", base_uri);
    struct schema *s = calloc(1, sizeof *s);
    if (!s) return keel_fail(err, KEEL_ENOMEM, "out of memory");
    arena_init(&s->arena);
    if (opts) s->opts = *opts;
    if (!reg) {
        reg = s->owned_reg = schema_registry_new();
        if (!reg) {
            free(s);
            return keel_fail(err, KEEL_ENOMEM, "out of memory");
        }
    }
    int rc = 0;
    if (!s->opts.no_meta_check) rc = meta_check(reg, doc, err);
    if (rc < 0) {
        schema_free(s);
        return rc;
    }
    struct json_value *root = json_clone(&s->arena, doc);
    const char *base = uri_strip_fragment(&s->arena, base_uri ? base_uri : SCHEMA_SENTINEL_BASE);
    struct cctx cc = {.s = s, .reg = reg, .err = err};
    rmaps_init(&cc.local, &s->arena);
    strmap_init(&cc.memo);
    strmap_init(&cc.resmap);
    rc = reg_scan_root(&cc.local, root, base, err);
    if (rc == 0) {
        s->root = compile_node(&cc, root, base, base, VOC_ALL_STANDARD, 0);
        if (!s->root) rc = err && err->code ? err->code : KEEL_EINVAL;
    }
    if (rc == 0) rc = close_dynamic(&cc);
    s->dynamic = cc.ndyn > 0;
    rmaps_cleanup(&cc.local);
    strmap_cleanup(&cc.memo);
    strmap_cleanup(&cc.resmap);
    free(cc.resources);
    free(cc.dyn_names);
    if (rc == 0) {
        s->mctx = pcre2_match_context_create(NULL);
        if (!s->mctx) rc = keel_fail(err, KEEL_ENOMEM, "out of memory");
        else {
            pcre2_set_match_limit(s->mctx, SCHEMA_REGEX_MATCH_LIMIT);
            pcre2_set_depth_limit(s->mctx, 10000);
            pcre2_set_heap_limit(s->mctx, 64 * 1024); /* KiB: 64 MiB of backtracking frames */
        }
    }
    if (rc < 0) {
        schema_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void schema_free(struct schema *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->ncodes; i++) pcre2_code_free(s->codes[i]);
    free(s->codes);
    if (s->mctx) pcre2_match_context_free(s->mctx);
    schema_registry_free(s->owned_reg);
    arena_cleanup(&s->arena);
    free(s);
}
