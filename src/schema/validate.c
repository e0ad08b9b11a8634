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
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

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

struct scope {
    const struct scope *up;
    const struct sresource *res;
};

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

/* ---- scratch ---------------------------------------------------------------- */

static void *scratch_alloc(struct vctx *c, size_t n)
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

static bool eset_new(struct vctx *c, struct eset *e, uint32_t n)
{
    size_t words = ((size_t)n + 63) / 64;
    e->n = n;
    e->bits = scratch_alloc(c, words * 8 + 8);
    memset(e->bits, 0, words * 8);
    return true;
}

static inline void eset_mark(struct eset *e, uint32_t i)
{
    if (e && i < e->n) e->bits[i / 64] |= (uint64_t)1 << (i % 64);
}

static inline bool eset_has(const struct eset *e, uint32_t i)
{
    return e && i < e->n && (e->bits[i / 64] >> (i % 64) & 1);
}

static void eset_or(struct eset *dst, const struct eset *src)
{
    if (!dst || !src) return;
    size_t words = ((size_t)(dst->n < src->n ? dst->n : src->n) + 63) / 64;
    for (size_t i = 0; i < words; i++) dst->bits[i] |= src->bits[i];
}

/* ---- recording errors ------------------------------------------------------------ */

/*
 * An error is recorded as facts, not text: the failing keyword (its sop,
 * or the node for a node-level error), the instance value, both paths
 * copied out of the stack frames as arrays of segments (into r->segs),
 * and the message as a template with its arguments (pointers into the
 * schema or the instance, and integers).  Nothing is formatted while the
 * walk runs.  render_all() turns the facts into the strings of struct
 * schema_error — at the end of schema_validate(), or, when the caller set
 * r->lazy, on the first schema_result_error() — so a caller that only
 * wants the verdict, or only some errors, pays for no text it does not
 * read.  The rendered text is byte for byte what formatting at the time
 * of the failure produced.
 *
 * Invariant: facts[0 .. kept) are complete; segs[0 .. segs_used) hold
 * their paths, each leaf first.
 */

union earg {
    const char *s;
    unsigned long long u;
    long long i;
};

/* How the part of a message after its subject is made. */
enum emsg { M_FORMAT, M_TEXT, M_TYPE };

struct efact {
    const struct sop *op;          /* failing keyword; NULL: the node itself       */
    const struct snode *owner;     /* node of op (or the failing node)             */
    struct json_value inst;        /* the instance value, a shallow copy (it may be
                                      a key wrapped on the stack by propertyNames)  */
    const char *fmt;               /* M_FORMAT: template (%s %u %.*s %lld %zu %%)  */
    union earg args[4];            /* its arguments, in order                      */
    uint32_t iseg, niseg;          /* instance path: segs[iseg .. iseg + niseg)    */
    uint32_t kseg, nkseg;          /* keyword path (then op->kw, if op)            */
    size_t at[3];                  /* offsets of the rendered strings in msgbuf    */
    uint8_t msg;                   /* enum emsg                                    */
    bool subject;                  /* starts with the subject ("`title`", ...)     */
    bool got;                      /* ends with "; got `<instance>`"               */
};

struct seg {
    const char *key; /* NULL for array indices */
    uint32_t len;
    uint32_t idx;
};

/* Copies the path ending at p into r->segs, leaf first (one pass up the
 * stack frames; rendering reads it backwards). */
static bool copy_path(struct schema_result *r, const struct pathseg *p, uint32_t *at, uint32_t *n)
{
    size_t start = r->segs_used, used = start;
    struct seg *s = r->segs;
    for (; p; p = p->up) {
        if (used == r->segs_cap) {
            size_t cap = r->segs_cap ? r->segs_cap * 2 : 64;
            s = realloc(r->segs, cap * sizeof *s);
            if (!s) return false;
            r->segs = s;
            r->segs_cap = cap;
        }
        s[used++] = (struct seg){p->key, p->len, p->idx};
    }
    *at = (uint32_t)start;
    *n = (uint32_t)(used - start);
    r->segs_used = used;
    return true;
}

/* Counts an error and returns its fact to fill in, or NULL when it is not
 * kept (enough kept already, or out of memory). */
static struct efact *new_fact(struct vctx *c, const struct sop *op, const struct snode *owner,
                              const struct json_value *inst, uint8_t msg, bool subject, bool got)
{
    struct schema_result *r = c->r;
    r->error_count++;
    if (r->kept >= c->limit) return NULL;
    if (r->kept == r->facts_cap) {
        size_t cap = r->facts_cap ? r->facts_cap * 2 : 8;
        struct efact *f = realloc(r->facts, cap * sizeof *f);
        if (!f) return NULL;
        r->facts = f;
        r->facts_cap = cap;
    }
    struct efact *f = (struct efact *)r->facts + r->kept;
    if (!copy_path(r, c->ipath, &f->iseg, &f->niseg) ||
        !copy_path(r, c->kpath, &f->kseg, &f->nkseg))
        return NULL;
    r->kept++;
    f->op = op;
    f->owner = owner;
    if (inst) f->inst = *inst;
    f->fmt = NULL;
    f->msg = msg;
    f->subject = subject;
    f->got = got;
    return f;
}

/* Takes the arguments fmt asks for off ap (at most four slots). */
static void capture(struct efact *f, const char *fmt, va_list ap)
{
    unsigned n = 0;
    f->fmt = fmt;
    for (const char *p = fmt; (p = strchr(p, '%')) != NULL && n < 4;) {
        p++;
        if (*p == 's') f->args[n++].s = va_arg(ap, const char *);
        else if (*p == 'u') f->args[n++].u = va_arg(ap, unsigned);
        else if (*p == 'l') f->args[n++].i = va_arg(ap, long long), p += 2;
        else if (*p == 'z') f->args[n++].u = va_arg(ap, size_t), p += 1;
        else if (*p == '.' && n < 3) { /* %.*s */
            f->args[n++].i = va_arg(ap, int);
            f->args[n++].s = va_arg(ap, const char *);
            p += 2;
        }
        if (*p) p++;
    }
}

/* Records an error at the current location for keyword op; the message
 * is the subject, a space and fmt with its arguments (all of which must
 * outlive the result: literals, schema or instance strings). */
static void report(struct vctx *c, const struct sop *op, const char *fmt, ...) KEEL_PRINTF(3, 4);
static void report(struct vctx *c, const struct sop *op, const char *fmt, ...)
{
    if (!c->collect) return;
    struct efact *f = new_fact(c, op, op->owner, NULL, M_FORMAT, true, false);
    if (!f) return;
    va_list ap;
    va_start(ap, fmt);
    capture(f, fmt, ap);
    va_end(ap);
}

/* Like report, with the instance value appended as "; got `...`". */
static void report_got(struct vctx *c, const struct sop *op, const struct json_value *inst,
                       const char *fmt, ...) KEEL_PRINTF(4, 5);
static void report_got(struct vctx *c, const struct sop *op, const struct json_value *inst,
                       const char *fmt, ...)
{
    if (!c->collect) return;
    struct efact *f = new_fact(c, op, op->owner, inst, M_FORMAT, true, true);
    if (!f) return;
    va_list ap;
    va_start(ap, fmt);
    capture(f, fmt, ap);
    va_end(ap);
}

/* Records an error whose message is the subject, a space and text (which
 * must outlive the result: a literal or op->msg), then "; got `...`" when
 * inst is given. */
static void report_text(struct vctx *c, const struct sop *op, const struct json_value *inst,
                        const char *text)
{
    if (!c->collect) return;
    struct efact *f = new_fact(c, op, op->owner, inst, M_TEXT, true, inst != NULL);
    if (f) f->fmt = text;
}

/* Records a node-level error (op NULL) with a fixed text. */
static void report_node(struct vctx *c, const struct snode *n, const char *text, bool subject)
{
    struct efact *f = new_fact(c, NULL, n, NULL, M_TEXT, subject, false);
    if (f) f->fmt = text;
}

/* ---- rendering ------------------------------------------------------------------ */

/* Appends n bytes; the buffer stays NUL-terminated (as util's buf
 * promises) with one reservation instead of one call per byte. */
static inline void put_bytes(struct buf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) buf_reserve(b, n + 1);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

static inline void put_str(struct buf *b, const char *s)
{
    put_bytes(b, s, strlen(s));
}

static void put_u64(struct buf *b, unsigned long long v)
{
    char tmp[24];
    int n = 24;
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put_bytes(b, tmp + n, (size_t)(24 - n));
}

/* Appends "/" and the JSON Pointer escape of key (~ -> ~0, / -> ~1). */
static void put_token(struct buf *b, const char *key, size_t len)
{
    if (b->len + 2 * len + 2 > b->cap) buf_reserve(b, 2 * len + 2);
    char *o = b->data + b->len;
    *o++ = '/';
    for (size_t i = 0; i < len; i++) {
        char ch = key[i];
        if (ch == '~') *o++ = '~', *o++ = '0';
        else if (ch == '/') *o++ = '~', *o++ = '1';
        else *o++ = ch;
    }
    *o = 0;
    b->len = (size_t)(o - b->data);
}

/* Appends the instance path of the n segments s (leaf first). */
static void put_path(struct buf *b, const struct seg *s, uint32_t n)
{
    for (uint32_t i = n; i-- > 0;) {
        if (s[i].key) {
            put_token(b, s[i].key, s[i].len);
        } else {
            put_bytes(b, "/", 1);
            put_u64(b, s[i].idx);
        }
    }
}

static void put_name(struct buf *b, const char *key, uint32_t len)
{
    put_bytes(b, "`", 1);
    put_bytes(b, key, len > 60 ? 60 : len);
    put_bytes(b, "`", 1);
}

/* A short description of where the instance is, for messages, from the
 * n path segments s (leaf first). */
static void subject(struct buf *b, const struct seg *s, uint32_t n)
{
    if (!n) {
        put_bytes(b, "the value", 9);
        return;
    }
    if (s[0].key) {
        put_name(b, s[0].key, s[0].len);
        return;
    }
    put_bytes(b, "item ", 5);
    put_u64(b, s[0].idx);
    if (n > 1 && s[1].key) {
        put_bytes(b, " of ", 4);
        put_name(b, s[1].key, s[1].len);
    }
}

/* Appends a short rendering of v: strings bare, others as JSON, cut to
 * about 60 bytes (on a UTF-8 character boundary). */
static void show(struct buf *b, const struct json_value *v)
{
    size_t start = b->len;
    static const char *const literal[] = {[JSON_NULL] = "null", [JSON_FALSE] = "false",
                                          [JSON_TRUE] = "true"};
    if (v->type == JSON_STRING) put_bytes(b, v->u.s.str, v->len > 256 ? 256 : v->len);
    else if (v->type == JSON_NUMBER) put_str(b, v->u.n.text); /* as json_write has it */
    else if (v->type <= JSON_TRUE && literal[v->type]) put_str(b, literal[v->type]);
    else json_write(b, v, 0, NULL);
    if (b->len - start > 64) {
        size_t cut = start + 60;
        while (cut > start && ((unsigned char)b->data[cut] & 0xC0) == 0x80) cut--;
        b->len = cut;
        put_bytes(b, "...", 3);
    }
}

/* Drops what follows a NUL at or after start: text that used to pass
 * through a "%s" ends there, and messages must not change. */
static void cut_at_nul(struct buf *b, size_t start)
{
    const char *z = memchr(b->data + start, 0, b->len - start);
    if (z) {
        b->len = (size_t)(z - b->data);
        b->data[b->len] = 0;
    }
}

/* M_FORMAT: the template with its captured arguments. */
static void body_format(struct buf *b, const struct efact *f)
{
    const char *s = f->fmt;
    unsigned n = 0;
    for (;;) {
        const char *p = strchr(s, '%');
        if (!p) {
            put_str(b, s);
            return;
        }
        put_bytes(b, s, (size_t)(p - s));
        s = p + 1;
        if (*s == '%') {
            put_bytes(b, "%", 1);
            s += 1;
            continue;
        }
        if (n >= 4) return; /* capture() took no more */
        if (*s == 's') {
            put_str(b, f->args[n++].s);
            s += 1;
        } else if (*s == 'u' || *s == 'z') {
            put_u64(b, f->args[n++].u);
            s += *s == 'z' ? 2 : 1;
        } else if (*s == 'l') { /* %lld */
            long long v = f->args[n++].i;
            if (v < 0) put_bytes(b, "-", 1);
            put_u64(b, v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v);
            s += 3;
        } else if (*s == '.') { /* %.*s */
            long long len = f->args[n].i;
            const char *str = f->args[n + 1].s;
            n += 2;
            put_bytes(b, str, len > 0 ? strnlen(str, (size_t)len) : 0);
            s += 3;
        } else {
            return; /* not a conversion the messages use */
        }
    }
}

static const char *const type_word[] = {"null", "a boolean", "an object", "an array",
                                        "a number", "a string", "an integer"};
static const uint32_t type_of[] = {
    [JSON_NULL] = T_NULL,     [JSON_FALSE] = T_BOOLEAN, [JSON_TRUE] = T_BOOLEAN,
    [JSON_NUMBER] = T_NUMBER, [JSON_STRING] = T_STRING, [JSON_ARRAY] = T_ARRAY,
    [JSON_OBJECT] = T_OBJECT,
};

/* M_TEXT: the text as it is. */
static void body_text(struct buf *b, const struct efact *f)
{
    put_str(b, f->fmt);
}

/* M_TYPE: "must be a string or null, not a number" (op->msg is all but
 * the last word). */
static void body_type(struct buf *b, const struct efact *f)
{
    put_str(b, f->op->msg);
    uint32_t t = type_of[f->inst.type];
    put_str(b, f->inst.type == JSON_NUMBER ? "a number" : type_word[__builtin_ctz(t)]);
}

/* ---- messages made at compile time ----------------------------------------------- */

/* Appends fmt with its arguments, as body_format renders them. */
static void put_format(struct buf *b, const char *fmt, ...)
{
    struct efact f;
    va_list ap;
    va_start(ap, fmt);
    capture(&f, fmt, ap);
    va_end(ap);
    body_format(b, &f);
}

/* type: "must be a string or null, not " (the instance's type follows). */
static void msg_type(struct buf *b, const struct sop *op)
{
    put_bytes(b, "must be ", 8);
    for (int i = 0, k = 0; i < 7; i++) {
        if (!(op->types & (1u << i))) continue;
        if (k++) put_bytes(b, " or ", 4);
        put_str(b, type_word[i]);
    }
    put_bytes(b, ", not ", 6);
}

/* const: "must be `<const>`". */
static void msg_const(struct buf *b, const struct sop *op)
{
    put_bytes(b, "must be `", 9);
    size_t start = b->len;
    show(b, op->val);
    cut_at_nul(b, start);
    put_bytes(b, "`", 1);
}

/* enum: "must be one of a, b, c" (the first 12). */
static void msg_enum(struct buf *b, const struct sop *op)
{
    const struct json_value *e = op->val;
    put_bytes(b, "must be one of ", 15);
    if (!e->len) put_str(b, "(nothing: enum is empty)");
    size_t start = b->len;
    for (uint32_t i = 0; i < e->len && i < 12; i++) {
        if (i) put_bytes(b, ", ", 2);
        show(b, e->u.items[i]);
    }
    if (e->len > 12) {
        put_str(b, ", ... (");
        put_u64(b, e->len);
        put_str(b, " in all)");
    }
    cut_at_nul(b, start);
}

/* additionalProperties: false, with the allowed names. */
static void msg_not_allowed(struct buf *b, const struct sop *op)
{
    const struct sop *props = op->props;
    put_str(b, "is not an allowed property");
    if (!props || !props->nsubs) return;
    size_t start = b->len;
    put_str(b, "; allowed properties are ");
    for (uint32_t i = 0; i < props->nsubs && i < 20; i++) {
        if (i) put_bytes(b, ", ", 2);
        put_bytes(b, props->names[i], props->name_lens[i] > 60 ? 60 : props->name_lens[i]);
    }
    if (props->nsubs > 20) put_str(b, ", ...");
    cut_at_nul(b, start);
}

static void msg_multiple_of(struct buf *b, const struct sop *op)
{
    put_format(b, "must be a multiple of %s", op->val->u.n.text);
}
static void msg_maximum(struct buf *b, const struct sop *op)
{
    put_format(b, "must be at most %s", op->val->u.n.text);
}
static void msg_exclusive_maximum(struct buf *b, const struct sop *op)
{
    put_format(b, "must be less than %s", op->val->u.n.text);
}
static void msg_minimum(struct buf *b, const struct sop *op)
{
    put_format(b, "must be at least %s", op->val->u.n.text);
}
static void msg_exclusive_minimum(struct buf *b, const struct sop *op)
{
    put_format(b, "must be greater than %s", op->val->u.n.text);
}
static void msg_pattern(struct buf *b, const struct sop *op)
{
    put_format(b, "must match the pattern %s", op->sources[0]);
}
static void msg_format(struct buf *b, const struct sop *op)
{
    put_format(b, "must be a valid %s", op->str);
}
static void msg_any_of(struct buf *b, const struct sop *op)
{
    put_format(b, "must match at least one of the %u schemas in `anyOf`; it matches none (see "
                  "the errors for each)",
               op->nsubs);
}
static void msg_one_of(struct buf *b, const struct sop *op)
{
    put_format(b, "must match exactly one of the %u schemas in `oneOf`; it matches none",
               op->nsubs);
}
static void msg_not(struct buf *b, const struct sop *op)
{
    put_str(b, "must not match the schema in `not`");
}

/* The keywords whose (main) failure message depends on the schema only. */
static const struct {
    sop_fn fn;
    void (*make)(struct buf *b, const struct sop *op);
} op_msgs[] = {
    {op_type, msg_type},
    {op_const, msg_const},
    {op_enum, msg_enum},
    {op_multiple_of, msg_multiple_of},
    {op_maximum, msg_maximum},
    {op_exclusive_maximum, msg_exclusive_maximum},
    {op_minimum, msg_minimum},
    {op_exclusive_minimum, msg_exclusive_minimum},
    {op_pattern, msg_pattern},
    {op_format, msg_format},
    {op_additional_properties, msg_not_allowed},
    {op_any_of, msg_any_of},
    {op_one_of, msg_one_of},
    {op_not, msg_not},
};

void schema_op_messages(struct arena *a, struct sop *op)
{
    struct buf b;
    buf_init(&b);
    for (size_t k = 0; k < KEEL_ARRAY_LEN(op_msgs); k++) {
        if (op_msgs[k].fn != op->fn) continue;
        op_msgs[k].make(&b, op);
        op->msg = arena_strndup(a, b.data ? b.data : "", b.len);
    }
    if (op->fn == op_required) {
        op->msgs = arena_alloc(a, (op->nsubs + 1) * sizeof *op->msgs);
        for (uint32_t i = 0; i < op->nsubs; i++) {
            buf_reset(&b);
            put_format(&b, "is missing the required property `%.*s`", (int)op->name_lens[i],
                       op->names[i]);
            op->msgs[i] = arena_strndup(a, b.data, b.len);
        }
    }
    buf_cleanup(&b);
}

static void (*const bodies[])(struct buf *, const struct efact *) = {
    [M_FORMAT] = body_format,
    [M_TEXT] = body_text,
    [M_TYPE] = body_type,
};

/* The n segments at `at` (segs is NULL until a path has been copied). */
static inline const struct seg *segs_at(const struct seg *segs, uint32_t at, uint32_t n)
{
    return n ? segs + at : NULL;
}

/* Appends the message of f.  A message is read as a C string, so it ends
 * at the first NUL a shown value may carry (as it always has). */
static void put_message(struct buf *b, const struct efact *f, const struct seg *segs)
{
    if (f->subject) {
        subject(b, segs_at(segs, f->iseg, f->niseg), f->niseg);
        put_bytes(b, " ", 1);
    }
    bodies[f->msg](b, f);
    if (f->got) {
        put_bytes(b, "; got `", 7);
        show(b, &f->inst);
        put_bytes(b, "`", 1);
    }
}

/* Appends the instance location, keyword location and message of f, each
 * NUL-terminated, and notes their offsets in f->at. */
static void render_one(struct buf *b, struct efact *f, const struct seg *segs)
{
    f->at[0] = b->len;
    put_path(b, segs_at(segs, f->iseg, f->niseg), f->niseg);
    put_bytes(b, "", 1);
    f->at[1] = b->len;
    for (uint32_t i = f->nkseg; i-- > 0;)
        put_bytes(b, segs[f->kseg + i].key, segs[f->kseg + i].len);
    if (f->op) put_bytes(b, f->op->tok, f->op->kw_len + 1);
    put_bytes(b, "", 1);
    f->at[2] = b->len;
    put_message(b, f, segs);
    put_bytes(b, "", 1);
}

static void set_strings(struct schema_error *e, const struct efact *f, const char *base)
{
    e->instance_location = base + f->at[0];
    e->keyword_location = base + f->at[1];
    e->message = base + f->at[2];
    /* Schema-owned: valid while the schema lives. */
    e->absolute_keyword_location = f->op ? f->op->abs_kw : f->owner->abs_shown;
}

/* Fills r->errors[0 .. kept) from the facts; the strings live in msgbuf. */
static void render_all(struct schema_result *r)
{
    r->rendered = true;
    if (!r->kept) return;
    if (r->errors_cap < r->kept) {
        size_t cap = r->errors_cap ? r->errors_cap : 8;
        while (cap < r->kept) cap *= 2;
        struct schema_error *e = realloc(r->errors, cap * sizeof *e);
        if (!e) {
            r->kept = 0; /* no room to show them; error_count still tells */
            return;
        }
        r->errors = e;
        r->errors_cap = cap;
    }
    struct buf *b = &r->msgbuf;
    buf_reset(b);
    struct efact *facts = r->facts;
    for (size_t i = 0; i < r->kept; i++) render_one(b, &facts[i], r->segs);
    for (size_t i = 0; i < r->kept; i++) set_strings(&r->errors[i], &facts[i], b->data);
}

/* ---- the walk ------------------------------------------------------------------- */

static bool eval(const struct snode *n, const struct json_value *inst, struct vctx *c,
                 struct eset *ev)
{
    if (n->kind == SN_TRUE) return true;
    if (n->kind == SN_FALSE) {
        if (c->collect) report_node(c, n, "is not allowed here (the schema is `false`)", true);
        return false;
    }
    if (c->depth >= SCHEMA_MAX_EVAL_DEPTH) {
        if (c->collect)
            report_node(c, n,
                        "evaluation nests more than 2048 schemas deep here; the schema probably "
                        "loops through $ref without consuming input",
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
        eset_new(c, &local, inst->len);
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

/* Evaluates the single subschema n of op at keyword location .../<kw>.
 * Keyword path segments are pre-escaped tokens (sop.tok, sop.sub_toks). */
static bool eval_at(const struct sop *op, const struct snode *n, const struct json_value *inst,
                    struct vctx *c, struct eset *ev)
{
    PUSH_KEY(kpath, k, op->tok, op->kw_len + 1);
    bool ok = eval(n, inst, c, ev);
    POP(kpath, k);
    return ok;
}

/* Evaluates subschema i of op (subs[i]) at .../<kw>/<name or index>. */
static bool eval_at_sub(const struct sop *op, uint32_t i, const struct json_value *inst,
                        struct vctx *c, struct eset *ev)
{
    PUSH_KEY(kpath, k, op->sub_toks[i], op->sub_tok_lens[i]);
    bool ok = eval(op->subs[i], inst, c, ev);
    POP(kpath, k);
    return ok;
}

/* ---- assertions: any type ------------------------------------------------------- */

bool op_type(const struct sop *op, const struct json_value *inst, struct vctx *c, struct eset *ev)
{
    uint32_t t = type_of[inst->type];
    if (op->types & t) return true;
    if ((op->types & T_INTEGER) && json_is_integer(inst)) return true;
    if (c->collect) new_fact(c, op, op->owner, inst, M_TYPE, true, true);
    return false;
}

bool op_const(const struct sop *op, const struct json_value *inst, struct vctx *c, struct eset *ev)
{
    if (json_equal(inst, op->val)) return true;
    report_text(c, op, inst, op->msg);
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
    report_text(c, op, inst, op->msg);
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
            report_got(c, op, inst, "cannot be checked against multipleOf %s exactly (too many "
                                    "digits); use a simpler multipleOf",
                       m->u.n.text);
        return false;
    }
    if (good) return true;
    report_text(c, op, inst, op->msg);
    return false;
}

#define NUM_OP(fname, test)                                                                         \
    bool fname(const struct sop *op, const struct json_value *inst, struct vctx *c, struct eset *ev) \
    {                                                                                               \
        if (inst->type != JSON_NUMBER) return true;                                                 \
        int r = num_cmp(inst, op->val);                                                             \
        if (test) return true;                                                                      \
        report_text(c, op, inst, op->msg);                                                          \
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
    report(c, op, "must be at most %lld characters long; it has %zu", (long long)op->n, n);
    return false;
}

bool op_min_length(const struct sop *op, const struct json_value *inst, struct vctx *c,
                   struct eset *ev)
{
    if (inst->type != JSON_STRING || (int64_t)inst->len / 4 >= op->n) return true;
    size_t n = utf8_chars(inst->u.s.str, inst->len);
    if ((int64_t)n >= op->n) return true;
    report(c, op, "must be at least %lld characters long; it has %zu", (long long)op->n, n);
    return false;
}

/* 1 match, 0 no match, -1 the match limit was hit. */
static int regex_test(struct vctx *c, pcre2_code *re, const char *s, size_t len)
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
    int m = regex_test(c, op->res[0], inst->u.s.str, inst->len);
    if (m == 1) return true;
    if (m < 0)
        report(c, op, "could not be matched against pattern %s within the match limit; simplify "
                      "the pattern",
               op->sources[0]);
    else
        report_text(c, op, inst, op->msg);
    return false;
}

bool op_format(const struct sop *op, const struct json_value *inst, struct vctx *c,
               struct eset *ev)
{
    if (inst->type != JSON_STRING) return true;
    if (op->format(inst->u.s.str, inst->len)) return true;
    report_text(c, op, inst, op->msg);
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
            report(c, op, "is not valid base64 (contentEncoding)");
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
            report(c, op, "is not valid JSON (contentMediaType application/json)");
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
    report(c, op, "must have at most %lld items; it has %u", (long long)op->n, inst->len);
    return false;
}

bool op_min_items(const struct sop *op, const struct json_value *inst, struct vctx *c,
                  struct eset *ev)
{
    if (inst->type != JSON_ARRAY || (int64_t)inst->len >= op->n) return true;
    report(c, op, "must have at least %lld items; it has %u", (long long)op->n, inst->len);
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
        struct hidx *hs = scratch_alloc(c, (size_t)n * sizeof *hs);
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
    report(c, op, "must not contain duplicates; items %u and %u are equal", di, dj);
    return false;
}

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
        report(c, op, "must contain at least %lld item%s matching the `contains` schema; %lld do",
               (long long)op->n, op->n == 1 ? "" : "s", (long long)count);
        return false;
    }
    if (op->n2 >= 0 && count > op->n2) {
        report(c, op, "must contain at most %lld item%s matching the `contains` schema; %lld do",
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
            report(c, op, "is not allowed: no schema in `prefixItems`, `items` or `contains` "
                          "covers it");
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

static inline bool same_key(const char *a, const char *b, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        if (a[i] != b[i]) return false;
    return true;
}

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
    report(c, op, "must have at most %lld properties; it has %u", (long long)op->n, inst->len);
    return false;
}

bool op_min_properties(const struct sop *op, const struct json_value *inst, struct vctx *c,
                       struct eset *ev)
{
    if (inst->type != JSON_OBJECT || (int64_t)inst->len >= op->n) return true;
    report(c, op, "must have at least %lld properties; it has %u", (long long)op->n, inst->len);
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
        report_text(c, op, NULL, op->msgs[i]);
    }
    return ok;
}

bool op_dependent_required(const struct sop *op, const struct json_value *inst, struct vctx *c,
                           struct eset *ev)
{
    if (inst->type != JSON_OBJECT) return true;
    bool ok = true;
    for (uint32_t i = 0; i < op->nsubs; i++) {
        if (!json_getn(inst, op->names[i], op->name_lens[i])) continue;
        for (uint32_t j = 0; j < op->list_lens[i]; j++) {
            const char *need = op->name_lists[i][j];
            if (json_get(inst, need)) continue;
            ok = false;
            if (stop(c)) return false;
            report(c, op, "must have property `%s` because it has `%.*s`", need,
                   (int)op->name_lens[i], op->names[i]);
        }
    }
    return ok;
}

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
        for (uint32_t j = 0; j < op->list_lens[i]; j++) {
            const char *need = op->name_lists[i][j];
            if (json_get(inst, need)) continue;
            ok = false;
            if (stop(c)) return false;
            report(c, op, "must have property `%s` because it has `%.*s`", need,
                   (int)op->name_lens[i], op->names[i]);
        }
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
            int mt = regex_test(c, op->res[i], m->key, m->key_len);
            if (mt == 0) continue;
            PUSH_KEY(ipath, seg, m->key, m->key_len);
            bool r;
            if (mt < 0) {
                r = false;
                report(c, op, "could not be matched against pattern %s within the match limit",
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
            if (regex_test(c, op->pats->res[i], m->key, m->key_len) != 0) return true;
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
            report_text(c, op, NULL, op->msg);
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
            report(c, op, "is not an allowed property (no schema here evaluates it, and "
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
    eset_new(c, &tmp, ev->n);
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
    report_text(c, op, NULL, op->msg);
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
        report(c, op, "must match exactly one schema in `oneOf`, but matches both %u and %u",
               first, second);
    } else {
        branch_details(op, inst, c);
        report_text(c, op, NULL, op->msg);
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
    report_text(c, op, NULL, op->msg);
    return false;
}

bool op_if(const struct sop *op, const struct json_value *inst, struct vctx *c, struct eset *ev)
{
    bool collect = c->collect;
    c->collect = false;
    size_t smark = c->r->scratch_used;
    struct eset tmp;
    if (ev) eset_new(c, &tmp, ev->n);
    bool r = eval_at(op, op->sub, inst, c, ev ? &tmp : NULL);
    if (r && ev) eset_or(ev, &tmp);
    c->r->scratch_used = smark;
    c->collect = collect;
    const struct snode *next = r ? op->sub2 : op->sub3;
    if (!next) return true;
    PUSH_KEY(kpath, k, r ? "/then" : "/else", 5);
    bool ok = eval(next, inst, c, ev);
    POP(kpath, k);
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
    bool ok = eval(n, inst, &c, NULL);
    scratch_finish(&c);
    if (!ok && r->kept == 0) {
        struct vctx c3 = {.s = s, .r = r, .collect = true, .limit = limit};
        report_node(&c3, n, "the value is invalid", false);
    }
    r->valid = ok;
    if (!r->lazy) render_all(r);
    return ok;
}

bool schema_validate(const struct schema *s, const struct json_value *instance,
                     struct schema_result *r)
{
    return schema_validate_node(s, s->root, instance, r);
}

const struct schema_error *schema_result_error(struct schema_result *r, size_t i)
{
    if (i >= r->kept) return NULL;
    if (!r->rendered) render_all(r);
    return i < r->kept ? &r->errors[i] : NULL;
}

/* The strings of error i: the rendered ones, or (a lazy result not yet
 * rendered) rendered now into tmp, which must be empty. */
static struct schema_error error_at(const struct schema_result *r, size_t i, struct buf *tmp)
{
    if (r->rendered) return r->errors[i];
    struct efact f = ((const struct efact *)r->facts)[i];
    struct schema_error e;
    buf_reset(tmp);
    render_one(tmp, &f, r->segs);
    set_strings(&e, &f, tmp->data);
    return e;
}

void schema_result_write_json(const struct schema_result *r, struct buf *out)
{
    if (r->valid) {
        buf_puts(out, "{\"valid\":true}");
        return;
    }
    struct buf tmp;
    buf_init(&tmp);
    buf_puts(out, "{\"valid\":false,\"errors\":[");
    for (size_t i = 0; i < r->kept; i++) {
        struct schema_error e = error_at(r, i, &tmp);
        if (i) buf_putc(out, ',');
        buf_puts(out, "{\"keywordLocation\":");
        json_write_string(out, e.keyword_location, strlen(e.keyword_location));
        buf_puts(out, ",\"absoluteKeywordLocation\":");
        json_write_string(out, e.absolute_keyword_location, strlen(e.absolute_keyword_location));
        buf_puts(out, ",\"instanceLocation\":");
        json_write_string(out, e.instance_location, strlen(e.instance_location));
        buf_puts(out, ",\"error\":");
        json_write_string(out, e.message, strlen(e.message));
        buf_putc(out, '}');
    }
    buf_cleanup(&tmp);
    buf_putc(out, ']');
    if (r->error_count > r->kept) buf_printf(out, ",\"omitted\":%zu", r->error_count - r->kept);
    buf_putc(out, '}');
}

void schema_result_write_text(const struct schema_result *r, struct buf *out)
{
    if (r->valid) {
        buf_puts(out, "valid");
        return;
    }
    struct buf tmp;
    buf_init(&tmp);
    for (size_t i = 0; i < r->kept; i++) {
        struct schema_error e = error_at(r, i, &tmp);
        if (i) buf_putc(out, '\n');
        buf_puts(out, *e.instance_location ? e.instance_location : "(root)");
        buf_puts(out, ": ");
        buf_puts(out, e.message);
    }
    buf_cleanup(&tmp);
    if (r->error_count > r->kept)
        buf_printf(out, "\n... and %zu more errors", r->error_count - r->kept);
}
