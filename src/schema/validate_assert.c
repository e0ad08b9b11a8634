/*
 * validate_assert.c — the keywords that assert something of the instance
 * itself, without subschemas: type, const, enum; the numeric limits and
 * multipleOf; string length, pattern, format and content; the sizes of
 * arrays and objects, uniqueItems, required and dependentRequired.
 *
 * Each is a sop_fn called by the walk (validate.c) with the keyword's
 * compiled op: it returns true when the instance passes (or is of a type
 * the keyword does not apply to) and, on failure, records an error through
 * schema_report* (which records nothing when c->collect is false).
 *
 * Invariants: numbers compare exactly (as decimals when their doubles are
 * equal); lengths count UTF-8 characters; uniqueItems costs O(n log n)
 * past 16 items; patterns run under the schema's PCRE2 match limit, and
 * hitting it is a failure that says so; content is decoded into memory
 * freed before returning.
 */
#include "validate_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- assertions: any type ------------------------------------------------------- */

bool op_type(const struct sop *op, const struct json_value *inst, struct vctx *c, struct eset *ev)
{
    uint32_t t = type_bit(inst->type);
    if (op->types & t) return true;
    if ((op->types & T_INTEGER) && json_is_integer(inst)) return true;
    if (c->collect) schema_report_type(c, op, inst);
    return false;
}

bool op_const(const struct sop *op, const struct json_value *inst, struct vctx *c, struct eset *ev)
{
    if (json_equal(inst, op->val)) return true;
    schema_report_text(c, op, inst, op->msg);
    return false;
}

bool op_enum(const struct sop *op, const struct json_value *inst, struct vctx *c, struct eset *ev)
{
    const struct json_value *e = op->val;
    if (inst->type == JSON_STRING) { /* the usual enum: strings, equal when their bytes are */
        for (uint32_t i = 0; i < e->len; i++) {
            const struct json_value *x = e->u.items[i];
            if (x->type == JSON_STRING && x->len == inst->len &&
                !memcmp(x->u.s.str, inst->u.s.str, inst->len))
                return true;
        }
    } else {
        for (uint32_t i = 0; i < e->len; i++)
            if (json_equal(inst, e->u.items[i])) return true;
    }
    schema_report_text(c, op, inst, op->msg);
    return false;
}

/* ---- numbers ------------------------------------------------------------------ */

/* Exact comparison.  Rounding to the nearest double is monotonic, so when
 * the doubles differ they order the exact values too; only equal doubles
 * need the exact decimal comparison. */
static int num_cmp(const struct json_value *a, const struct json_value *b)
{
    if ((a->nflags & b->nflags & JSON_NUM_I64)) return (a->u.n.i > b->u.n.i) - (a->u.n.i < b->u.n.i);
    if (a->u.n.d < b->u.n.d) return -1;
    if (a->u.n.d > b->u.n.d) return 1;
    return json_number_cmp(a, b);
}

bool op_multiple_of(const struct sop *op, const struct json_value *inst, struct vctx *c,
                    struct eset *ev)
{
    if (inst->type != JSON_NUMBER) return true;
    const struct json_value *m = op->val;
    bool good;
    bool okp = true;
    if ((inst->nflags & m->nflags & JSON_NUM_I64) && m->u.n.i > 0)
        good = inst->u.n.i % m->u.n.i == 0;
    else
        good = json_number_is_multiple(inst, m, &okp);
    if (!okp) {
        if (c->collect)
            schema_report_got(c, op, inst, "cannot be checked against multipleOf %s exactly "
                                           "(too many digits); use a simpler multipleOf",
                              m->u.n.text);
        return false;
    }
    if (good) return true;
    schema_report_text(c, op, inst, op->msg);
    return false;
}

#define NUM_OP(fname, test)                                                                         \
    bool fname(const struct sop *op, const struct json_value *inst, struct vctx *c, struct eset *ev) \
    {                                                                                               \
        if (inst->type != JSON_NUMBER) return true;                                                 \
        int r = num_cmp(inst, op->val);                                                             \
        if (test) return true;                                                                      \
        schema_report_text(c, op, inst, op->msg);                                                   \
        return false;                                                                               \
    }
NUM_OP(op_maximum, r <= 0)
NUM_OP(op_exclusive_maximum, r < 0)
NUM_OP(op_minimum, r >= 0)
NUM_OP(op_exclusive_minimum, r > 0)

/* ---- strings ------------------------------------------------------------------ */

static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

bool op_max_length(const struct sop *op, const struct json_value *inst, struct vctx *c,
                   struct eset *ev)
{
    if (inst->type != JSON_STRING || (int64_t)inst->len <= op->n) return true;
    size_t n = utf8_chars(inst->u.s.str, inst->len);
    if ((int64_t)n <= op->n) return true;
    schema_report(c, op, "must be at most %lld characters long; it has %zu", (long long)op->n, n);
    return false;
}

bool op_min_length(const struct sop *op, const struct json_value *inst, struct vctx *c,
                   struct eset *ev)
{
    if (inst->type != JSON_STRING || (int64_t)inst->len / 4 >= op->n) return true;
    size_t n = utf8_chars(inst->u.s.str, inst->len);
    if ((int64_t)n >= op->n) return true;
    schema_report(c, op, "must be at least %lld characters long; it has %zu", (long long)op->n, n);
    return false;
}

/* 1 match, 0 no match, -1 the match limit was hit (patterns and
 * patternProperties); the match data is the result's, made on first use. */
int schema_regex_test(struct vctx *c, pcre2_code *re, const char *s, size_t len)
{
    if (!c->r->match_data) {
        c->r->match_data = pcre2_match_data_create(1, NULL);
        if (!c->r->match_data) return -1;
    }
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, c->r->match_data, c->s->mctx);
    if (rc >= 0) return 1;
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    return -1;
}

bool op_pattern(const struct sop *op, const struct json_value *inst, struct vctx *c,
                struct eset *ev)
{
    if (inst->type != JSON_STRING) return true;
    int m = schema_regex_test(c, op->res[0], inst->u.s.str, inst->len);
    if (m == 1) return true;
    if (m < 0)
        schema_report(c, op, "could not be matched against pattern %s within the match limit; "
                             "simplify the pattern",
                      op->sources[0]);
    else
        schema_report_text(c, op, inst, op->msg);
    return false;
}

bool op_format(const struct sop *op, const struct json_value *inst, struct vctx *c,
               struct eset *ev)
{
    if (inst->type != JSON_STRING) return true;
    if (op->format(inst->u.s.str, inst->len)) return true;
    schema_report_text(c, op, inst, op->msg);
    return false;
}

static int b64val(int ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

/* Decodes base64 (RFC 4648, padding required) into out (cap >= len). */
static bool b64_decode(const char *s, size_t len, char *out, size_t *olen)
{
    if (len % 4) return false;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (s[i + k] == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else {
                if (pad) return false;
                v[k] = b64val((unsigned char)s[i + k]);
                if (v[k] < 0) return false;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        out[o++] = (char)(w >> 16);
        if (pad < 2) out[o++] = (char)(w >> 8);
        if (pad < 1) out[o++] = (char)w;
    }
    *olen = o;
    return true;
}

bool op_content(const struct sop *op, const struct json_value *inst, struct vctx *c,
                struct eset *ev)
{
    if (inst->type != JSON_STRING) return true;
    const char *data = inst->u.s.str;
    size_t len = inst->len;
    char *dec = NULL;
    bool ok = true;
    if (op->str && !strcmp(op->str, "base64")) {
        dec = malloc(len + 1);
        if (!dec || !b64_decode(inst->u.s.str, inst->len, dec, &len)) {
            schema_report(c, op, "is not valid base64 (contentEncoding)");
            free(dec);
            return false;
        }
        data = dec;
    }
    if (op->val && !strcmp(op->val->u.s.str, "application/json")) {
        struct arena a;
        arena_init(&a);
        struct json_value *v;
        if (json_parse(&a, data, len, NULL, &v, NULL) < 0) {
            schema_report(c, op, "is not valid JSON (contentMediaType application/json)");
            ok = false;
        }
        arena_cleanup(&a);
    }
    free(dec);
    return ok;
}

/* ---- arrays ------------------------------------------------------------------- */

bool op_max_items(const struct sop *op, const struct json_value *inst, struct vctx *c,
                  struct eset *ev)
{
    if (inst->type != JSON_ARRAY || (int64_t)inst->len <= op->n) return true;
    schema_report(c, op, "must have at most %lld items; it has %u", (long long)op->n, inst->len);
    return false;
}

bool op_min_items(const struct sop *op, const struct json_value *inst, struct vctx *c,
                  struct eset *ev)
{
    if (inst->type != JSON_ARRAY || (int64_t)inst->len >= op->n) return true;
    schema_report(c, op, "must have at least %lld items; it has %u", (long long)op->n, inst->len);
    return false;
}

/* A hash consistent with json_equal: numbers by their double (equal exact
 * values have equal doubles), objects independent of member order. */
static uint64_t vhash(const struct json_value *v, int depth)
{
    uint64_t h = (uint64_t)v->type * 0x9E3779B97F4A7C15ull;
    if (depth > 64) return h;
    switch (v->type) {
    case JSON_NUMBER: {
        double d = v->u.n.d;
        if (d == 0) d = 0; /* -0 == 0 */
        return keel_hash(&d, sizeof d);
    }
    case JSON_STRING:
        return keel_hash(v->u.s.str, v->len) ^ h;
    case JSON_ARRAY:
        for (uint32_t i = 0; i < v->len; i++) h = h * 31 + vhash(v->u.items[i], depth + 1);
        return h;
    case JSON_OBJECT: {
        uint64_t sum = h;
        for (uint32_t i = 0; i < v->len; i++)
            sum += keel_hash(v->u.members[i].key, v->u.members[i].key_len) * 7 +
                   vhash(v->u.members[i].value, depth + 1);
        return sum;
    }
    default:
        return h;
    }
}

struct hidx {
    uint64_t h;
    uint32_t i;
};

static int hidx_cmp(const void *a, const void *b)
{
    const struct hidx *x = a, *y = b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

bool op_unique_items(const struct sop *op, const struct json_value *inst, struct vctx *c,
                     struct eset *ev)
{
    if (inst->type != JSON_ARRAY || inst->len < 2) return true;
    uint32_t n = inst->len, di = 0, dj = 0;
    bool dup = false;
    if (n <= 16) {
        for (uint32_t i = 0; i < n && !dup; i++)
            for (uint32_t j = i + 1; j < n; j++)
                if (json_equal(inst->u.items[i], inst->u.items[j])) {
                    dup = true, di = i, dj = j;
                    break;
                }
    } else {
        size_t smark = c->r->scratch_used;
        struct hidx *hs = schema_scratch_alloc(c, (size_t)n * sizeof *hs);
        for (uint32_t i = 0; i < n; i++) hs[i] = (struct hidx){vhash(inst->u.items[i], 0), i};
        qsort(hs, n, sizeof *hs, hidx_cmp);
        for (uint32_t a = 0; a < n && !dup; a++)
            for (uint32_t b = a + 1; b < n && hs[b].h == hs[a].h; b++)
                if (json_equal(inst->u.items[hs[a].i], inst->u.items[hs[b].i])) {
                    dup = true, di = hs[a].i, dj = hs[b].i;
                    break;
                }
        c->r->scratch_used = smark;
    }
    if (!dup) return true;
    schema_report(c, op, "must not contain duplicates; items %u and %u are equal", di, dj);
    return false;
}

/* ---- objects ------------------------------------------------------------------ */

/* True if the object inst has a member named key (json_getn, inlined:
 * member names are short, and this runs for every required name). */
static inline bool has_key(const struct json_value *inst, const char *key, uint32_t len)
{
    for (uint32_t j = 0; j < inst->len; j++) {
        const struct json_member *m = &inst->u.members[j];
        if (m->key_len == len && same_key(m->key, key, len)) return true;
    }
    return false;
}

bool op_max_properties(const struct sop *op, const struct json_value *inst, struct vctx *c,
                       struct eset *ev)
{
    if (inst->type != JSON_OBJECT || (int64_t)inst->len <= op->n) return true;
    schema_report(c, op, "must have at most %lld properties; it has %u", (long long)op->n,
                  inst->len);
    return false;
}

bool op_min_properties(const struct sop *op, const struct json_value *inst, struct vctx *c,
                       struct eset *ev)
{
    if (inst->type != JSON_OBJECT || (int64_t)inst->len >= op->n) return true;
    schema_report(c, op, "must have at least %lld properties; it has %u", (long long)op->n,
                  inst->len);
    return false;
}

bool op_required(const struct sop *op, const struct json_value *inst, struct vctx *c,
                 struct eset *ev)
{
    if (inst->type != JSON_OBJECT) return true;
    bool ok = true;
    for (uint32_t i = 0; i < op->nsubs; i++) {
        if (has_key(inst, op->names[i], op->name_lens[i])) continue;
        ok = false;
        if (stop(c)) return false;
        schema_report_text(c, op, NULL, op->msgs[i]);
    }
    return ok;
}

/* dependentRequired, and the name-list form of draft 2019's dependencies:
 * inst, which has name i of op, must have every name of op->name_lists[i]. */
bool schema_require_dependents(const struct sop *op, uint32_t i, const struct json_value *inst,
                               struct vctx *c, bool *ok)
{
    for (uint32_t j = 0; j < op->list_lens[i]; j++) {
        const char *need = op->name_lists[i][j];
        if (json_get(inst, need)) continue;
        *ok = false;
        if (stop(c)) return false;
        schema_report(c, op, "must have property `%s` because it has `%.*s`", need,
                      (int)op->name_lens[i], op->names[i]);
    }
    return true;
}

bool op_dependent_required(const struct sop *op, const struct json_value *inst, struct vctx *c,
                           struct eset *ev)
{
    if (inst->type != JSON_OBJECT) return true;
    bool ok = true;
    for (uint32_t i = 0; i < op->nsubs; i++) {
        if (!json_getn(inst, op->names[i], op->name_lens[i])) continue;
        if (!schema_require_dependents(op, i, inst, c, &ok)) return false;
    }
    return ok;
}

